//! A checker of pgrelay's consistency policies, run over the network
//! against a proxy: by the `consistency` binary and by the `consistency`
//! integration tests.
//!
//! Two checks run at once, on tables of their own keyed by a run id, so
//! runs never see each other's rows:
//! - read-your-writes: `sessions` sessions each insert `rounds` rows and
//!   read each one back at once; a read that misses the session's own
//!   committed row is a violation. Even sessions use the simple query
//!   protocol, odd ones the extended protocol. In the cross-session mode
//!   ([`Mode::CrossSession`]) each of them is a pair of sessions instead:
//!   one inserts, the other reads the row as soon as the INSERT is
//!   acknowledged, which only `global` and `cluster` scope promise to see.
//! - monotonic reads: `readers` sessions that never write read a counter
//!   that a writer session increments all along; a read lower than the
//!   same session's previous read (a step back in time) is a violation. With `tighten_every`, some
//!   reads are made with no staleness budget at all, which sends them to
//!   the primary while the replicas lag: the next reads, back on the
//!   normal budget, must not return to a replica behind what they saw.
//!
//! Sessions run in the given `pgrelay.scope`, or the proxy's; the report
//! says which. Every read also returns the serving node's port, so the report says how
//! many reads replicas served. Sessions start with `pgrelay.min_lsn` set to
//! the position after the setup, so a stale replica never makes a
//! missing table look like a violation.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::future::try_join_all;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::proxy::connect;
use crate::wait::poll_until;

mod mode;

pub use mode::Mode;
pub use pgrelay_router::Scope;

/// How often a monotonic reader reads and the counter writer writes: fast
/// enough to see every change of route, slow enough to leave a small
/// machine's CPU to the sessions under test.
const PACE: Duration = Duration::from_millis(5);
/// Violations spelled out in a report; the rest are only counted.
const MAX_EXAMPLES: usize = 5;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS consistency_rows \
        (run bigint, session int, seq int, PRIMARY KEY (run, session, seq));
     CREATE TABLE IF NOT EXISTS consistency_counter (run bigint PRIMARY KEY, value bigint NOT NULL);
     CREATE SEQUENCE IF NOT EXISTS consistency_runs;";
const INSERT_ROW: &str = "INSERT INTO consistency_rows VALUES ($1, $2, $3)";
const READ_ROW: &str = "SELECT count(*), current_setting('port') FROM consistency_rows \
     WHERE run = $1 AND session = $2 AND seq = $3";
const READ_COUNTER: &str =
    "SELECT value, current_setting('port') FROM consistency_counter WHERE run = $1";
const BUMP_COUNTER: &str =
    "UPDATE consistency_counter SET value = value + 1 WHERE run = $1 RETURNING value";

/// `pgrelay.consistency` of the checked sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    Strong,
    Eventual,
    ReadYourWrites,
}

impl Consistency {
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::Strong => "strong",
            Consistency::Eventual => "eventual",
            Consistency::ReadYourWrites => "read-your-writes",
        }
    }

    /// Whether the policy promises both properties checked here.
    pub fn promises_read_your_writes(self) -> bool {
        self != Consistency::Eventual
    }
}

impl FromStr for Consistency {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Consistency> {
        match s {
            "strong" => Ok(Consistency::Strong),
            "eventual" => Ok(Consistency::Eventual),
            "read-your-writes" => Ok(Consistency::ReadYourWrites),
            _ => bail!("expected strong, eventual or read-your-writes, got {s:?}"),
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// libpq-style connection string of the proxy.
    pub conninfo: String,
    pub consistency: Consistency,
    /// Who reads each row back.
    pub mode: Mode,
    /// `SET pgrelay.scope` in every session (`None`: the proxy's).
    pub scope: Option<Scope>,
    /// Read-your-writes sessions (pairs of sessions, cross-session).
    pub sessions: usize,
    /// Insert-then-read rounds of each of them.
    pub rounds: usize,
    /// Monotonic-read sessions.
    pub readers: usize,
    /// The counter writer runs at least this long, and until every
    /// read-your-writes session is done.
    pub write_for: Duration,
    /// After the writer stops, readers go on until they read its last
    /// value where their reads go (a replica, unless no replica was ever
    /// ready or the policy is `strong`), for at most this long.
    pub settle: Duration,
    /// How long to wait before the checks for a replica to serve this
    /// policy's reads of the new tables (not for `strong`).
    pub warmup: Duration,
    /// Every this many reads, a monotonic reader makes one with
    /// `pgrelay.max_lag = '0ms'` and then resets its budget; 0: never.
    pub tighten_every: u64,
}

impl Options {
    pub fn new(conninfo: impl Into<String>, consistency: Consistency) -> Options {
        Options {
            conninfo: conninfo.into(),
            consistency,
            mode: Mode::Own,
            scope: None,
            sessions: 8,
            rounds: 20,
            readers: 4,
            write_for: Duration::from_secs(2),
            settle: Duration::from_secs(10),
            warmup: Duration::from_secs(10),
            tighten_every: 0,
        }
    }
}

/// Reads per kind of node that served them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Served {
    pub primary: u64,
    pub replica: u64,
}

impl Served {
    fn add(&mut self, other: Served) {
        self.primary += other.primary;
        self.replica += other.replica;
    }
}

/// What a run found.
#[derive(Debug, Clone)]
pub struct Report {
    pub consistency: Consistency,
    pub mode: Mode,
    /// The sessions' `pgrelay.scope`, as the proxy showed it.
    pub scope: Scope,
    pub sessions: usize,
    pub writes: u64,
    /// Read-backs of the sessions' own rows.
    pub reads: u64,
    pub ryw_violations: u64,
    pub ryw_served: Served,
    pub readers: usize,
    pub monotonic_reads: u64,
    pub monotonic_violations: u64,
    pub monotonic_served: Served,
    pub counter_writes: u64,
    /// A replica served this policy's reads before the checks began
    /// (false: the warm-up timed out, or the policy is `strong`).
    pub replica_ready: bool,
    /// The first few violations of each check, spelled out.
    pub examples: Vec<String>,
}

impl Report {
    pub fn violations(&self) -> u64 {
        self.ryw_violations + self.monotonic_violations
    }

    /// Violations of what the policy and scope promise: every one but
    /// `eventual`'s, and but the cross-session misses of `session` scope.
    pub fn broken_promises(&self) -> u64 {
        if !self.consistency.promises_read_your_writes() {
            return 0;
        }
        let read_backs_promised = self.mode == Mode::Own || self.scope != Scope::Session;
        self.monotonic_violations
            + if read_backs_promised {
                self.ryw_violations
            } else {
                0
            }
    }

    /// Reads of both checks.
    pub fn served(&self) -> Served {
        let mut all = self.ryw_served;
        all.add(self.monotonic_served);
        all
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all = self.served();
        writeln!(f, "consistency: {}", self.consistency.as_str())?;
        writeln!(f, "scope: {}", self.scope.as_str())?;
        writeln!(f, "mode: {} (who reads each row back)", self.mode.as_str())?;
        writeln!(f, "replica ready: {}", self.replica_ready)?;
        writeln!(f, "sessions: {}", self.sessions)?;
        writeln!(f, "writes: {}", self.writes)?;
        writeln!(f, "reads: {}", self.reads)?;
        writeln!(
            f,
            "read-your-writes violations ({} reads, {} scope): {}",
            self.mode.as_str(),
            self.scope.as_str(),
            self.ryw_violations
        )?;
        writeln!(
            f,
            "read-backs served: replicas {}, primary {}",
            self.ryw_served.replica, self.ryw_served.primary
        )?;
        writeln!(f, "monotonic readers: {}", self.readers)?;
        writeln!(f, "monotonic reads: {}", self.monotonic_reads)?;
        writeln!(f, "monotonic violations: {}", self.monotonic_violations)?;
        writeln!(
            f,
            "monotonic reads served: replicas {}, primary {}",
            self.monotonic_served.replica, self.monotonic_served.primary
        )?;
        writeln!(f, "counter writes: {}", self.counter_writes)?;
        write!(
            f,
            "all reads served: replicas {}, primary {}",
            all.replica, all.primary
        )?;
        for example in &self.examples {
            write!(f, "\nviolation: {example}")?;
        }
        Ok(())
    }
}

/// One task's counts.
#[derive(Debug, Default)]
struct Tally {
    writes: u64,
    reads: u64,
    violations: u64,
    served: Served,
    examples: Vec<String>,
}

impl Tally {
    fn read_on(&mut self, port: &str, setup: &Setup) {
        self.reads += 1;
        if port == setup.primary_port {
            self.served.primary += 1;
        } else {
            self.served.replica += 1;
        }
    }

    fn violation(&mut self, what: impl FnOnce() -> String) {
        self.violations += 1;
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(what());
        }
    }

    fn sum(tallies: Vec<Tally>) -> Tally {
        let mut total = Tally::default();
        for t in tallies {
            total.writes += t.writes;
            total.reads += t.reads;
            total.violations += t.violations;
            total.served.add(t.served);
            total.examples.extend(t.examples);
        }
        total.examples.truncate(MAX_EXAMPLES);
        total
    }
}

/// What every session of a run shares.
struct Setup {
    run: i64,
    /// `current_setting('port')` of the primary.
    primary_port: String,
    /// The setup's causal token, if the proxy gave one.
    token: Option<String>,
    /// The sessions' scope, as the proxy shows it.
    scope: Scope,
}

impl Setup {
    fn node(&self, port: &str) -> &'static str {
        if port == self.primary_port {
            "the primary"
        } else {
            "a replica"
        }
    }
}

/// When the monotonic readers may stop.
#[derive(Debug, Clone, Copy)]
struct Finish {
    last_value: i64,
    deadline: Instant,
}

/// Runs both checks against the proxy at `options.conninfo`.
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let setup = setup(options)
        .await
        .context("setting up the checker's tables")?;
    let replica_ready = warm_up(options, &setup).await;
    let writer = session(options, &setup).await?;
    let stop = AtomicBool::new(false);
    let (finish_tx, finish_rx) = watch::channel(None::<Finish>);
    let started = Instant::now();

    let sessions = async {
        let result = try_join_all(
            (0..options.sessions).map(|s| read_your_writes(options, &setup, s as i32)),
        )
        .await;
        if result.is_ok() {
            tokio::time::sleep_until(started + options.write_for).await;
        }
        stop.store(true, Ordering::Relaxed);
        result
    };
    let counter = async {
        let result = write_counter(&writer, setup.run, &stop).await;
        let (last_value, deadline) = match &result {
            Ok((_, last)) => (*last, Instant::now() + options.settle),
            Err(_) => (i64::MAX, Instant::now()),
        };
        finish_tx.send_replace(Some(Finish {
            last_value,
            deadline,
        }));
        result
    };
    let readers = try_join_all(
        (0..options.readers)
            .map(|r| read_monotonic(options, &setup, r, finish_rx.clone(), replica_ready)),
    );
    let (sessions, counter, readers) = tokio::join!(sessions, counter, readers);
    let sessions = Tally::sum(sessions.context("a read-your-writes session failed")?);
    let (counter_writes, _) = counter.context("the counter writer failed")?;
    let scope = setup.scope;
    let readers = Tally::sum(readers.context("a monotonic reader failed")?);

    // Up to MAX_EXAMPLES of each check.
    let mut examples = sessions.examples;
    examples.extend(readers.examples);
    Ok(Report {
        consistency: options.consistency,
        mode: options.mode,
        scope,
        sessions: options.sessions,
        writes: sessions.writes,
        reads: sessions.reads,
        ryw_violations: sessions.violations,
        ryw_served: sessions.served,
        readers: options.readers,
        monotonic_reads: readers.reads,
        monotonic_violations: readers.violations,
        monotonic_served: readers.served,
        counter_writes,
        replica_ready,
        examples,
    })
}

/// Creates the tables (once per database) and this run's counter row.
async fn setup(options: &Options) -> anyhow::Result<Setup> {
    let client = connect(&options.conninfo).await?;
    set_scope(&client, options.scope).await?;
    let scope = first_row(&client, "SHOW pgrelay.scope", 1).await?.remove(0);
    client.batch_execute(SCHEMA).await?;
    // nextval is volatile: this runs on the primary, whose port it reports.
    let row = first_row(
        &client,
        "SELECT nextval('consistency_runs'), current_setting('port')",
        2,
    )
    .await?;
    let run: i64 = row[0].parse().context("the run id")?;
    client
        .batch_execute(&format!(
            "INSERT INTO consistency_counter VALUES ({run}, 0)"
        ))
        .await?;
    let token = first_row(&client, "SHOW pgrelay.last_lsn", 1)
        .await?
        .remove(0);
    Ok(Setup {
        run,
        primary_port: row[1].clone(),
        token: (token != "0/0").then_some(token),
        scope: Scope::parse(&scope).with_context(|| format!("SHOW pgrelay.scope: {scope:?}"))?,
    })
}

async fn set_scope(client: &Client, scope: Option<Scope>) -> anyhow::Result<()> {
    if let Some(scope) = scope {
        client
            .batch_execute(&format!("SET pgrelay.scope = '{}'", scope.as_str()))
            .await?;
    }
    Ok(())
}

/// Waits, at most `options.warmup`, until a session of this policy reads
/// the run's tables on a replica, so that the checks exercise replicas
/// rather than the fallback to the primary while the setup replicates.
/// Errors count as "not yet": this only decides how long to wait.
async fn warm_up(options: &Options, setup: &Setup) -> bool {
    if options.consistency == Consistency::Strong {
        return false;
    }
    let Ok(client) = session(options, setup).await else {
        return false;
    };
    let sql = READ_COUNTER.replace("$1", &setup.run.to_string());
    poll_until(options.warmup, "a replica to serve reads", || async {
        let row = first_row(&client, &sql, 2).await.ok()?;
        (row[1] != setup.primary_port).then_some(())
    })
    .await
    .is_ok()
}

/// A connection with the run's policy and causal token.
async fn session(options: &Options, setup: &Setup) -> anyhow::Result<Client> {
    let client = connect(&options.conninfo).await?;
    client
        .batch_execute(&format!(
            "SET pgrelay.consistency = '{}'",
            options.consistency.as_str()
        ))
        .await?;
    set_scope(&client, options.scope).await?;
    if let Some(token) = &setup.token {
        client
            .batch_execute(&format!("SET pgrelay.min_lsn = '{token}'"))
            .await?;
    }
    Ok(client)
}

/// Inserts a row, reads it back at once (through another session, in
/// the cross-session mode); `rounds` times.
async fn read_your_writes(
    options: &Options,
    setup: &Setup,
    session_id: i32,
) -> anyhow::Result<Tally> {
    let client = session(options, setup).await?;
    let other = match options.mode {
        Mode::Own => None,
        Mode::CrossSession => Some(session(options, setup).await?),
    };
    let reader = other.as_ref().unwrap_or(&client);
    let extended = session_id % 2 == 1;
    let (insert, read) = if extended {
        (
            Some(client.prepare(INSERT_ROW).await?),
            Some(reader.prepare(READ_ROW).await?),
        )
    } else {
        (None, None)
    };
    let run = setup.run;
    let mut tally = Tally::default();
    for seq in 0..options.rounds as i32 {
        let (count, port) = match (&insert, &read) {
            (Some(insert), Some(read)) => {
                client.execute(insert, &[&run, &session_id, &seq]).await?;
                let row = reader.query_one(read, &[&run, &session_id, &seq]).await?;
                (row.try_get::<_, i64>(0)?, row.try_get::<_, String>(1)?)
            }
            _ => {
                client
                    .batch_execute(&format!(
                        "INSERT INTO consistency_rows VALUES ({run}, {session_id}, {seq})"
                    ))
                    .await?;
                let sql = READ_ROW
                    .replace("$1", &run.to_string())
                    .replace("$2", &session_id.to_string())
                    .replace("$3", &seq.to_string());
                let row = first_row(reader, &sql, 2).await?;
                (row[0].parse().context("count(*)")?, row[1].clone())
            }
        };
        tally.writes += 1;
        tally.read_on(&port, setup);
        if count != 1 {
            tally.violation(|| {
                format!(
                    "session {session_id} ({} protocol) round {seq}: {} on {} (port {port})",
                    if extended { "extended" } else { "simple" },
                    match options.mode {
                        Mode::Own => "its row was not visible",
                        Mode::CrossSession =>
                            "its acknowledged row was not visible to another session",
                    },
                    setup.node(&port)
                )
            });
        }
    }
    Ok(tally)
}

/// Increments the run's counter until `stop`; returns the number of
/// increments and the last value.
async fn write_counter(client: &Client, run: i64, stop: &AtomicBool) -> anyhow::Result<(u64, i64)> {
    let bump = client.prepare(BUMP_COUNTER).await?;
    let mut pace = tokio::time::interval(PACE);
    pace.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (mut writes, mut last) = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        pace.tick().await;
        last = client.query_one(&bump, &[&run]).await?.try_get(0)?;
        writes += 1;
    }
    Ok((writes, last))
}

/// Reads the counter until told to finish; counts reads lower than the
/// session's previous read.
async fn read_monotonic(
    options: &Options,
    setup: &Setup,
    reader: usize,
    finish: watch::Receiver<Option<Finish>>,
    replica_ready: bool,
) -> anyhow::Result<Tally> {
    let client = session(options, setup).await?;
    let extended = reader % 2 == 1;
    let prepared = if extended {
        Some(client.prepare(READ_COUNTER).await?)
    } else {
        None
    };
    let simple = READ_COUNTER.replace("$1", &setup.run.to_string());
    // Where the final value must be read before stopping, so that the
    // readers also see the way back from the primary to a replica.
    let anywhere = !replica_ready || options.consistency == Consistency::Strong;
    let mut pace = tokio::time::interval(PACE);
    pace.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut tally = Tally::default();
    let mut previous: Option<(i64, String)> = None;
    loop {
        pace.tick().await;
        let tight = options.tighten_every > 0
            && tally.reads % options.tighten_every == options.tighten_every - 1;
        if tight {
            client.batch_execute("SET pgrelay.max_lag = '0ms'").await?;
        }
        let (value, port) = match &prepared {
            Some(statement) => {
                let row = client.query_one(statement, &[&setup.run]).await?;
                (row.try_get::<_, i64>(0)?, row.try_get::<_, String>(1)?)
            }
            None => {
                let row = first_row(&client, &simple, 2).await?;
                (row[0].parse().context("the counter")?, row[1].clone())
            }
        };
        if tight {
            client.batch_execute("RESET pgrelay.max_lag").await?;
        }
        tally.read_on(&port, setup);
        if let Some((before, before_port)) = &previous
            && value < *before
        {
            tally.violation(|| {
                format!(
                    "reader {reader}: read {value} on {} (port {port}{}) after {before} on {} (port {before_port})",
                    setup.node(&port),
                    if tight { ", no lag budget" } else { "" },
                    setup.node(before_port)
                )
            });
        }
        if let Some(f) = *finish.borrow() {
            let caught_up = value >= f.last_value && (anywhere || port != setup.primary_port);
            if caught_up || Instant::now() >= f.deadline {
                return Ok(tally);
            }
        }
        previous = Some((value, port));
    }
}

/// The first row of a simple query, as text; at least `columns` of them.
async fn first_row(client: &Client, sql: &str, columns: usize) -> anyhow::Result<Vec<String>> {
    let messages = client
        .simple_query(sql)
        .await
        .with_context(|| format!("running {sql}"))?;
    for message in messages {
        if let SimpleQueryMessage::Row(row) = message {
            if row.len() < columns {
                bail!("{sql} returned {} columns, not {columns}", row.len());
            }
            return Ok((0..row.len())
                .map(|i| row.get(i).unwrap_or_default().to_owned())
                .collect());
        }
    }
    bail!("{sql} returned no row")
}
