// The status page's refresher. The server rendered the page complete;
// from a second after load this fetches `status` every second and redraws
// the same markup with DOM calls only (text is never parsed as HTML).
// Mirrors page.rs: fill_percent, bytes_text, seconds_text and the markup.
(() => {
  'use strict';
  const EVERY_MS = 1000;
  const UNKNOWN = '\u2014';
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
  const fillPercent = (value, budget) => {
    if (!(value > 0)) return 0;
    if (budget <= 0) return 100;
    return Math.min((value * 100) / (budget * TRACK), 100);
  };

  const lagBar = (kind, value, budget, format) => {
    if (value == null) {
      return el('div', { class: 'lag' }, el('span', { class: 'fig', 'data-kind': kind }, UNKNOWN));
    }
    const over = value > budget;
    const state = over ? 'over' : 'ok';
    const text = format(value);
    const title = `${text} of ${format(budget)}: ${over ? 'over budget' : 'within budget'}`;
    return el('div', { class: 'lag' },
      el('span', { class: 'bar', title },
        el('i', { class: `fill ${state}`, style: `width:${fillPercent(value, budget).toFixed(1)}%` }),
        el('i', { class: 'line', style: `left:${LINE}%` })),
      el('span', { class: `fig ${state}`, 'data-kind': kind }, text));
  };

  const row = (n) => {
    const lag = n.role === 'replica'
      ? [lagBar('bytes', n.lag_bytes, BYTES, bytesText),
        lagBar('seconds', n.lag_seconds, SECONDS, secondsText)]
      : [UNKNOWN];
    return el('tr', { 'data-node': n.name },
      el('td', {}, n.name),
      el('td', {}, n.addr),
      el('td', {}, el('span', { class: `role role-${n.role}` }, n.role)),
      el('td', { class: n.healthy ? 'good' : 'bad' }, n.healthy ? 'yes' : 'no'),
      el('td', {}, n.timeline == null ? UNKNOWN : String(n.timeline)),
      el('td', {}, n.replay_lsn == null ? UNKNOWN : el('code', {}, n.replay_lsn)),
      el('td', {}, ...lag));
  };

  const failovers = (list) => (list.length === 0
    ? [el('li', { class: 'none' }, 'none')]
    : list.slice().reverse().map((f) => el('li', {}, el('time', {}, f.at),
      `: ${f.from} \u2192 ${f.to} in ${secondsText(f.duration_seconds)}`)));

  const render = (status) => {
    const primary = document.getElementById('primary');
    primary.textContent = status.primary == null ? 'none' : status.primary;
    if (status.primary == null) primary.setAttribute('class', 'bad');
    else primary.removeAttribute('class');
    document.getElementById('nodes').replaceChildren(...status.nodes.map(row));
    document.getElementById('failovers').replaceChildren(...failovers(status.failovers || []));
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
        render(await reply.json());
        say(`Updated ${new Date().toLocaleTimeString()}; refreshing every second.`, false);
      }
    } catch (e) {
      say(`Cannot fetch /status (${e.message}); showing the last state, retrying.`, true);
    } finally {
      setTimeout(refresh, EVERY_MS);
    }
  };
  setTimeout(refresh, EVERY_MS);
})();
