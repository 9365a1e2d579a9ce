// The status page's refresher. The server rendered the page complete;
// from a second after load this fetches `status` every second and redraws
// the same markup with DOM calls only (text is never parsed as HTML).
// Mirrors page.rs (fill_percent, bytes_text, seconds_text, cause_text and
// the markup) and when.rs (utc_text, ago_text). Times are UTC and "x ago"
// is measured against the server's clock (`generated_at`), never the
// browser's zone or clock. The banner's words come from /status.
(() => {
  'use strict';
  const EVERY_MS = 1000;
  const UNKNOWN = '\u2014';
  const UNKNOWN_LAG = 'unknown: the replica streams from nobody (or is down)';
  const app = document.getElementById('app');
  const BYTES = Number(app.dataset.maxLagBytes);
  const SECONDS = Number(app.dataset.maxLagSeconds);
  const LINE = Number(app.dataset.budgetLine);
  const TRACK = 100 / LINE;
  const note = document.getElementById('note');

  const el = (tag, attrs, ...children) => {
    const e = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) e.setAttribute(name, value);
    e.append(...children);
    return e;
  };
  const trim = (t) => (t.includes('.') ? t.replace(/\.?0+$/, '') : t);
  const bytesText = (n) => {
    const units = ['B', 'kB', 'MB', 'GB', 'TB'];
    let v = n;
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i += 1;
    }
    return `${i === 0 ? String(n) : trim(v.toFixed(1))} ${units[i]}`;
  };
  const secondsText = (s) => `${trim(s.toFixed(3))} s`;
  const causeText = (c) => ({ primary_lost: 'primary lost', manual: 'manual promotion' }[c] || c);
  const utcText = (iso) => `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;
  const agoText = (iso, nowIso) => {
    const secs = Math.max(0, Math.floor((Date.parse(nowIso) - Date.parse(iso)) / 1000));
    if (secs < 1) return 'just now';
    if (secs < 120) return `${secs} s ago`;
    if (secs < 7200) return `${Math.floor(secs / 60)} min ago`;
    if (secs < 172800) return `${Math.floor(secs / 3600)} h ago`;
    return `${Math.floor(secs / 86400)} d ago`;
  };
  const whenText = (iso, nowIso) => `${utcText(iso)} (${agoText(iso, nowIso)})`;
  const since = (what, iso, nowIso) => (iso == null ? []
    : [' ', el('span', { class: 'since' }, `${what} since ${whenText(iso, nowIso)}`)]);
  const fillPercent = (value, budget) => {
    if (!(value > 0)) return 0;
    if (budget <= 0) return 100;
    return Math.min((value * 100) / (budget * TRACK), 100);
  };

  const lagBar = (kind, value, budget, format) => {
    const lab = el('span', { class: 'lab' }, kind === 'bytes' ? 'WAL' : 'time');
    if (value == null) {
      return el('div', { class: 'lag' }, lab, el('span', {
        class: 'fig unknown', 'data-kind': kind, title: UNKNOWN_LAG,
      }, UNKNOWN));
    }
    const over = value > budget;
    const state = over ? 'over' : 'ok';
    const text = format(value);
    const title = `${text} of ${format(budget)}: ${over ? 'over budget' : 'within budget'}`;
    return el('div', { class: 'lag' }, lab,
      el('span', { class: 'bar', title },
        el('i', { class: `fill ${state}`, style: `width:${fillPercent(value, budget).toFixed(1)}%` }),
        el('i', { class: 'line', style: `left:${LINE}%` })),
      el('span', { class: `fig ${state}`, 'data-kind': kind }, text));
  };

  const row = (n, now) => {
    const lag = n.role === 'replica'
      ? [lagBar('bytes', n.lag_bytes, BYTES, bytesText),
        lagBar('seconds', n.lag_seconds, SECONDS, secondsText)]
      : [UNKNOWN];
    const role = n.role === 'fenced'
      ? el('a', { class: 'role role-fenced', href: '#fenced' }, 'fenced')
      : el('span', { class: `role role-${n.role}` }, n.role);
    return el('tr', { 'data-node': n.name },
      el('td', {}, n.name),
      el('td', {}, n.addr),
      el('td', {}, role, ...since('fenced', n.fenced_since, now)),
      el('td', {}, el('span', { class: n.healthy ? 'good' : 'bad' }, n.healthy ? 'yes' : 'no'),
        ...since('down', n.down_since, now)),
      el('td', {}, n.upstream == null ? UNKNOWN : n.upstream),
      el('td', {}, n.timeline == null ? UNKNOWN : String(n.timeline)),
      el('td', {}, n.replay_lsn == null ? UNKNOWN : el('code', {}, n.replay_lsn)),
      el('td', {}, ...lag));
  };

  // Oldest first, numbered from 1: the order they happened in.
  const failovers = (list, now) => (list.length === 0
    ? [el('tr', { class: 'none' }, el('td', { colspan: '7' }, 'none'))]
    : list.map((f, i) => el('tr', {},
      el('td', {}, String(i + 1)),
      el('td', {}, whenText(f.at, now)),
      el('td', {}, causeText(f.cause)),
      el('td', {}, `${f.from} \u2192 ${f.to}`),
      el('td', {}, f.promoted_lsn == null ? UNKNOWN : el('code', {}, f.promoted_lsn)),
      el('td', {}, String(f.epoch)),
      el('td', {}, secondsText(f.duration_seconds)))));

  const banner = (status) => {
    const b = status.failover_banner;
    const box = document.getElementById('failover');
    box.setAttribute('class', `banner ${b.level}`);
    box.dataset.state = status.failover_state;
    document.getElementById('failover-text').textContent = b.text;
    document.getElementById('failover-since').textContent = status.failover_since == null
      ? '' : `since ${whenText(status.failover_since, status.generated_at)}`;
    document.getElementById('failover-advice').textContent = b.advice;
  };

  const render = (status) => {
    const now = status.generated_at;
    const primary = document.getElementById('primary');
    primary.textContent = status.primary == null ? 'none' : status.primary;
    if (status.primary == null) primary.setAttribute('class', 'bad');
    else primary.removeAttribute('class');
    banner(status);
    document.getElementById('nodes').replaceChildren(...status.nodes.map((n) => row(n, now)));
    document.getElementById('failovers').replaceChildren(...failovers(status.failovers || [], now));
    app.dataset.rendered = 'script';
  };

  const say = (text, error) => {
    note.textContent = text;
    note.className = error ? 'note err' : 'note';
  };

  const refresh = async () => {
    try {
      if (!document.hidden) {
        const reply = await fetch('status', { cache: 'no-store' });
        if (!reply.ok) throw new Error(`HTTP ${reply.status}`);
        const status = await reply.json();
        render(status);
        say(`Updated ${utcText(status.generated_at)}; refreshing every second. Times are UTC.`, false);
      }
    } catch (e) {
      say(`Cannot fetch /status (${e.message}); showing the last state, retrying.`, true);
    } finally {
      setTimeout(refresh, EVERY_MS);
    }
  };
  setTimeout(refresh, EVERY_MS);
})();
