//! Whose commits a read sees (`[routing] scope`): in `global` scope a read
//! through one connection sees every commit acknowledged on another before
//! it began, though the replica applies commits 2 s late; in `session`
//! scope the same reads find the replica without the row. And the causal
//! token: a ParameterStatus `pgrelay.last_lsn` ahead of each write's
//! acknowledgement.

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use pgrelay_tests::raw::{Message, RawClient};
use pgrelay_tests::{ProxyOptions, TestProxy, poll_until};

use crate::env::{Env, LazyEnv, route, trial, value};

/// Where the write that the read must see comes from.
#[derive(Debug, Clone, Copy)]
enum Writer {
    /// Another connection through this pgrelay.
    SamePgrelay,
    /// A client connected to the primary directly.
    Direct,
    /// A client of another pgrelay instance in front of the same cluster.
    AnotherPgrelay,
}

/// (trial, writer, scope, whether the scope promises the read sees it).
const CASES: [(&str, Writer, &str, bool); 6] = [
    (
        "scope::global_reads_see_commits_acknowledged_on_other_connections",
        Writer::SamePgrelay,
        "global",
        true,
    ),
    (
        "scope::session_reads_miss_other_connections_commits",
        Writer::SamePgrelay,
        "session",
        false,
    ),
    (
        "scope::cluster_reads_see_commits_made_around_pgrelay",
        Writer::Direct,
        "cluster",
        true,
    ),
    (
        "scope::global_reads_miss_commits_made_around_pgrelay",
        Writer::Direct,
        "global",
        false,
    ),
    (
        "scope::cluster_reads_see_commits_acknowledged_by_another_pgrelay",
        Writer::AnotherPgrelay,
        "cluster",
        true,
    ),
    (
        "scope::global_reads_miss_commits_acknowledged_by_another_pgrelay",
        Writer::AnotherPgrelay,
        "global",
        false,
    ),
];

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    let mut trials: Vec<Trial> = CASES
        .iter()
        .map(|&(name, writer, scope, promised)| {
            trial(env, name, move |env| async move {
                let tally = read_after_commit(&env, scope, writer).await?;
                if promised {
                    ensure!(tally.violations == 0, "{scope} scope: {tally:?}");
                } else {
                    // The replica is 2 s behind: where nothing is promised,
                    // it serves the reads and misses the rows.
                    ensure!(
                        tally.violations > 0 && tally.replica > 0,
                        "{scope} scope promises nothing here: {tally:?}"
                    );
                }
                Ok(())
            })
        })
        .collect();
    trials.push(trial(
        env,
        "scope::each_write_is_acknowledged_behind_its_position",
        last_lsn_parameter,
    ));
    trials.push(trial(
        env,
        "scope::the_token_travels_in_a_startup_packet",
        token_in_startup,
    ));
    trials.push(trial(
        env,
        "scope::psycopg_keeps_the_token",
        psycopg_keeps_the_token,
    ));
    trials.push(trial(
        env,
        "scope::a_write_in_a_batch_cut_by_flush_reaches_other_sessions_reads",
        flushed_batch_write_is_seen,
    ));
    trials.push(trial(
        env,
        "scope::a_copy_or_unparsed_write_is_acknowledged_behind_its_position",
        copy_acknowledged_behind_its_position,
    ));
    trials
}

const ROUNDS: i32 = 10;

/// What the reads found.
#[derive(Debug, Default)]
struct Tally {
    /// Reads that missed a row whose INSERT was acknowledged before.
    violations: u32,
    replica: u32,
    primary: u32,
}

async fn proxy(env: &Env, scope: &str) -> anyhow::Result<TestProxy> {
    TestProxy::start(
        &env.cluster,
        ProxyOptions {
            // The replica (2 s behind) is within this budget: only the
            // scope keeps reads off it.
            routing: format!("scope = \"{scope}\"\nmax_lag = \"10s\"\nmax_lag_bytes = \"1GB\""),
            ..ProxyOptions::default()
        },
    )
    .await
}

/// A client (of this pgrelay, of another, or connected to the primary
/// directly) inserts a row; another client of this pgrelay reads it right
/// after the INSERT is acknowledged.
async fn read_after_commit(env: &Env, scope: &str, writer: Writer) -> anyhow::Result<Tally> {
    let table = format!("scope_rows_{scope}_{}", writer as u8);
    env.prepare(&format!(
        "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id int)"
    ))
    .await?;
    let proxy = proxy(env, scope).await?;
    // Kept until the end: the writer's connection goes through it.
    let other = match writer {
        Writer::AnotherPgrelay => Some(proxy_for_writes(env).await?),
        _ => None,
    };
    let direct = match (&other, writer) {
        (Some(other), _) => other.client().await?,
        (None, Writer::SamePgrelay) => proxy.client().await?,
        (None, _) => env.cluster.client(0).await?,
    };
    let reader = proxy.client().await?;
    ensure!(value(&reader, "SHOW pgrelay.scope").await? == scope);
    let mut tally = Tally::default();
    for id in 0..ROUNDS {
        direct
            .simple_query(&format!("INSERT INTO {table} VALUES ({id})"))
            .await?;
        let seen = value(
            &reader,
            &format!("SELECT count(*) FROM {table} WHERE id = {id}"),
        )
        .await?;
        tally.count(&route(&reader).await?, &seen);
    }
    println!("scope {scope}, writes by {writer:?}: {tally:?}");
    // Once the replica has replayed everything, reads go there again. (The
    // primary may write WAL of its own meanwhile, a running-transactions
    // record: in `cluster` scope a read then waits for the replica, 2 s
    // late, to replay that too.)
    env.prepare("SELECT 1").await?;
    let count = format!("SELECT count(*) FROM {table}");
    let last = std::cell::RefCell::new(String::new());
    poll_until(
        std::time::Duration::from_secs(10),
        "a read on the replica",
        || async {
            let seen = value(&reader, &count).await.ok()?;
            let served = route(&reader).await.ok()?;
            *last.borrow_mut() = format!("{seen} rows, {served}");
            (seen == ROUNDS.to_string() && served == "pg2 replica read").then_some(())
        },
    )
    .await
    .with_context(|| format!("{scope} scope, replica caught up: {}", last.borrow()))?;
    Ok(tally)
}

impl Tally {
    fn count(&mut self, served: &str, seen: &str) {
        if served.contains("replica") {
            self.replica += 1;
        } else {
            self.primary += 1;
        }
        if seen != "1" {
            self.violations += 1;
        }
    }
}

/// Another pgrelay instance in front of the same cluster.
async fn proxy_for_writes(env: &Env) -> anyhow::Result<TestProxy> {
    TestProxy::start(&env.cluster, ProxyOptions::default()).await
}

/// The ParameterStatus `pgrelay.last_lsn` comes before the write's
/// ReadyForQuery, grows with each write, and matches `SHOW
/// pgrelay.last_lsn`.
async fn last_lsn_parameter(env: std::sync::Arc<Env>) -> anyhow::Result<()> {
    env.prepare("DROP TABLE IF EXISTS scope_token; CREATE TABLE scope_token (id int)")
        .await?;
    let proxy = proxy(&env, "global").await?;
    let params = [("user", "postgres"), ("database", "postgres")];
    let mut client = RawClient::connect(proxy.addr(), &params).await?;
    let mut last = 0u64;
    for id in 0..3 {
        let sql = format!("INSERT INTO scope_token VALUES ({id})");
        let answer = client.simple_query(sql.as_bytes()).await?;
        let token = last_lsn(&answer).context("no pgrelay.last_lsn before the acknowledgement")?;
        let lsn = pgrelay_health::parse_lsn(&token).context("not an LSN")?;
        ensure!(lsn > last, "the token did not grow: {token}");
        last = lsn;
        let shown = client.simple_query(b"SHOW pgrelay.last_lsn").await?;
        let row = shown.iter().find(|m| m.tag == b'D').context("no row")?;
        let shown = row
            .data_row()
            .into_iter()
            .next()
            .flatten()
            .unwrap_or_default();
        ensure!(shown == token.as_bytes(), "SHOW says otherwise");
    }
    let read = client.simple_query(b"SELECT 1").await?;
    ensure!(last_lsn(&read).is_none(), "a read carries no new token");
    Ok(())
}

/// The value of the `pgrelay.last_lsn` ParameterStatus in `answer`, if it
/// comes before its ReadyForQuery.
fn last_lsn(answer: &[Message]) -> Option<String> {
    let ready = answer.iter().position(|m| m.tag == b'Z')?;
    answer[..ready].iter().find_map(|m| {
        let body = m.body.as_slice();
        let (name, rest) = body.split_at(body.iter().position(|&b| b == 0)?);
        (m.tag == b'S' && name == b"pgrelay.last_lsn").then(|| {
            let value = &rest[1..];
            let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
            String::from_utf8_lossy(&value[..end]).into_owned()
        })
    })
}

/// The token a write's acknowledgement carried, given to another
/// connection's startup (`options=-c pgrelay.min_lsn=…`), makes that
/// connection's reads see the write even in `session` scope; a bad token
/// refuses the login; the nodes never see the setting.
async fn token_in_startup(env: std::sync::Arc<Env>) -> anyhow::Result<()> {
    env.prepare("DROP TABLE IF EXISTS scope_carried; CREATE TABLE scope_carried (id int)")
        .await?;
    let proxy = proxy(&env, "session").await?;
    let params = [("user", "postgres"), ("database", "postgres")];
    let mut writer = RawClient::connect(proxy.addr(), &params).await?;
    let answer = writer
        .simple_query(b"INSERT INTO scope_carried VALUES (1)")
        .await?;
    let token = last_lsn(&answer).context("no token")?;
    let conninfo = proxy.conninfo(pgrelay_cluster::superuser(), "postgres");
    // Without the token (session scope, the replica 2 s behind): missed.
    let without = pgrelay_tests::proxy::connect(&conninfo).await?;
    let missed = value(&without, "SELECT count(*) FROM scope_carried").await?;
    ensure!(
        missed == "0",
        "without the token the replica should miss the row"
    );
    let with_token = format!("{conninfo} options='-c pgrelay.min_lsn={token} -c geqo=on'");
    let reader = pgrelay_tests::proxy::connect(&with_token).await?;
    ensure!(value(&reader, "SHOW pgrelay.min_lsn").await? == token);
    let seen = value(&reader, "SELECT count(*) FROM scope_carried").await?;
    ensure!(
        seen == "1",
        "the reader with the token missed the row ({})",
        route(&reader).await?
    );
    let on_node = value(
        &reader,
        "SELECT coalesce(current_setting('pgrelay.min_lsn', true), 'unset') || ' ' || current_setting('geqo')",
    )
    .await?;
    ensure!(on_node == "unset on", "the node saw {on_node}");
    // As a parameter of its own, and refused when it is no LSN.
    let own = [
        ("user", "postgres"),
        ("database", "postgres"),
        ("pgrelay.scope", "cluster"),
    ];
    let mut client = RawClient::connect(proxy.addr(), &own).await?;
    let shown = client.simple_query(b"SHOW pgrelay.scope").await?;
    let row = shown.iter().find(|m| m.tag == b'D').context("no row")?;
    ensure!(row.data_row().into_iter().next().flatten().as_deref() == Some(&b"cluster"[..]));
    let bad = format!("{conninfo} options='-c pgrelay.min_lsn=later'");
    let refused = pgrelay_tests::proxy::connect(&bad).await;
    let code = refused.err().and_then(|e| {
        e.downcast_ref::<tokio_postgres::Error>()
            .and_then(|e| e.code().cloned())
    });
    ensure!(
        code.as_ref().map(|c| c.code()) == Some("22023"),
        "a bad token at startup: {code:?}"
    );
    Ok(())
}

/// libpq keeps the token like any ParameterStatus: psycopg's
/// `conn.info.parameter_status` has it after a write, and it is what the
/// session says it is.
async fn psycopg_keeps_the_token(env: std::sync::Arc<Env>) -> anyhow::Result<()> {
    env.prepare("DROP TABLE IF EXISTS scope_driver; CREATE TABLE scope_driver (id int)")
        .await?;
    let proxy = proxy(&env, "global").await?;
    let conninfo = proxy.conninfo(pgrelay_cluster::superuser(), "postgres");
    let script = "import psycopg, sys\n\
        c = psycopg.connect(sys.argv[1], autocommit=True)\n\
        before = c.info.parameter_status('pgrelay.last_lsn')\n\
        c.execute('INSERT INTO scope_driver VALUES (1)')\n\
        token = c.info.parameter_status('pgrelay.last_lsn')\n\
        shown = c.execute('SHOW pgrelay.last_lsn').fetchone()[0]\n\
        print(before, token, shown)\n";
    let out = pgrelay_tests::psycopg::run(script, &[&conninfo]).await?;
    let words: Vec<&str> = out.split_whitespace().collect();
    ensure!(
        words.len() == 3 && words[0] == "None" && words[1] == words[2],
        "before the write, after it, and SHOW: {out}"
    );
    ensure!(
        pgrelay_health::parse_lsn(words[1]).is_some_and(|lsn| lsn > 0),
        "{out}"
    );
    Ok(())
}

/// `COPY … FROM STDIN` as a Query: its acknowledgement too comes behind
/// the token, and another connection's read right after sees its rows
/// (global scope; the replica applies 2 s late).
async fn copy_acknowledged_behind_its_position(env: std::sync::Arc<Env>) -> anyhow::Result<()> {
    env.prepare("DROP TABLE IF EXISTS scope_copied; CREATE TABLE scope_copied (id int)")
        .await?;
    let proxy = proxy(&env, "global").await?;
    let reader = proxy.client().await?;
    let params = [("user", "postgres"), ("database", "postgres")];
    let mut client = RawClient::connect(proxy.addr(), &params).await?;
    client
        .send(&pgrelay_tests::raw::frame(
            b'Q',
            b"COPY scope_copied FROM STDIN\0",
        ))
        .await?;
    let copy_in = client.read_message().await?;
    ensure!(
        copy_in.tag == b'G',
        "expected CopyInResponse, got {copy_in:?}"
    );
    let mut rows = pgrelay_tests::raw::frame(b'd', b"1\n2\n");
    rows.extend(pgrelay_tests::raw::frame(b'c', b""));
    client.send(&rows).await?;
    let answer = client.read_until_ready().await?;
    ensure!(
        answer.iter().all(|m| m.tag != b'E'),
        "the COPY failed: {answer:?}"
    );
    let token =
        last_lsn(&answer).context("no pgrelay.last_lsn before the COPY's acknowledgement")?;
    ensure!(pgrelay_health::parse_lsn(&token).is_some_and(|lsn| lsn > 0));
    let seen = value(&reader, "SELECT count(*) FROM scope_copied").await?;
    ensure!(
        seen == "2",
        "a read right after the COPY saw {seen} rows ({})",
        route(&reader).await?
    );
    // A text the parser cannot read (`TABLE t`) runs on the primary as a
    // possible write; it says no `copy`, so its position is asked right
    // behind it, not before the session's next read.
    let answer = client.simple_query(b"TABLE scope_copied").await?;
    ensure!(answer.iter().all(|m| m.tag != b'E'), "{answer:?}");
    let later = last_lsn(&answer).context("no pgrelay.last_lsn behind the unparsed text")?;
    ensure!(pgrelay_health::parse_lsn(&later) >= pgrelay_health::parse_lsn(&token));
    Ok(())
}

/// A write in an extended-protocol batch cut by a Flush (read partway: its
/// position cannot be asked behind it): once the writer's connection goes
/// back to the pool, other sessions' reads see the write, though the
/// writer never reads again (global scope; the replica is 2 s behind).
async fn flushed_batch_write_is_seen(env: std::sync::Arc<Env>) -> anyhow::Result<()> {
    use pgrelay_tests::raw::msg;
    env.prepare("DROP TABLE IF EXISTS scope_flushed; CREATE TABLE scope_flushed (id int)")
        .await?;
    let proxy = proxy(&env, "global").await?;
    let params = [("user", "postgres"), ("database", "postgres")];
    let mut writer = RawClient::connect(proxy.addr(), &params).await?;
    let mut batch = msg::parse("", "INSERT INTO scope_flushed VALUES (1)");
    batch.extend(msg::bind(""));
    batch.extend(msg::execute());
    batch.extend(msg::flush());
    writer.send(&batch).await?;
    loop {
        let m = writer.read_message().await?;
        ensure!(m.tag != b'E', "the INSERT failed: {m:?}");
        if m.tag == b'C' {
            break;
        }
    }
    writer.send(&msg::sync()).await?;
    writer.read_until_ready().await?;
    // Its token follows on its own, once pgrelay has asked.
    let token = tokio::time::timeout(std::time::Duration::from_secs(2), writer.read_message())
        .await
        .context("no ParameterStatus after the batch")??;
    ensure!(
        last_lsn(&[
            token.clone(),
            Message {
                tag: b'Z',
                body: b"I".to_vec()
            }
        ])
        .is_some(),
        "expected pgrelay.last_lsn, got {token:?}"
    );
    let reader = proxy.client().await?;
    let started = std::time::Instant::now();
    poll_until(
        std::time::Duration::from_secs(1),
        "the read to see the row",
        || async {
            let seen = value(&reader, "SELECT count(*) FROM scope_flushed")
                .await
                .ok()?;
            (seen == "1").then_some(())
        },
    )
    .await
    .context("well before the replica (2 s behind) could have it")?;
    println!(
        "flushed batch write seen by another session after {:?}",
        started.elapsed()
    );
    Ok(())
}
