//! Writers that insert rows through pgrelay, each in one session for its
//! whole life, across a failover: what they had acknowledged, the errors
//! they saw, and when each first wrote on a new primary. Used by the
//! failover tests and by the `failover` figures binary.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use tokio::task::JoinHandle;
use tokio_postgres::Client;

/// A writer gives up after this many errors.
const MAX_ERRORS: usize = 1_000;

/// What one writer saw.
#[derive(Debug, Default)]
pub struct WriterReport {
    /// Ids of the rows whose INSERT was acknowledged.
    pub acknowledged: Vec<i32>,
    /// Errors, as `SQLSTATE: message`.
    pub errors: Vec<String>,
    /// Acknowledged writes that ran on a node other than the old primary.
    pub on_new_primary: usize,
    pub first_on_new_primary: Option<Instant>,
    /// The session ended (the writer stopped there).
    pub session_lost: bool,
}

/// Running writers; see `start`.
pub struct WriteLoad {
    stop: Arc<AtomicBool>,
    writers: Vec<JoinHandle<WriterReport>>,
}

impl WriteLoad {
    /// Starts one writer per client, inserting into `table (id int
    /// PRIMARY KEY)` as fast as answers come. Each stops by itself after
    /// `writes_after` acknowledged writes on a node whose port is not
    /// `old_port`.
    pub fn start(clients: Vec<Client>, table: &str, old_port: u16, writes_after: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let insert = format!("INSERT INTO {table} VALUES ($1) RETURNING inet_server_port()");
        let writers = clients
            .into_iter()
            .enumerate()
            .map(|(w, client)| {
                let (stop, insert) = (stop.clone(), insert.clone());
                let first_id = i32::try_from(w).unwrap_or(0) * 1_000_000;
                tokio::spawn(write(
                    client,
                    insert,
                    first_id,
                    (old_port, writes_after),
                    stop,
                ))
            })
            .collect();
        WriteLoad { stop, writers }
    }

    /// Waits up to `timeout` for every writer to finish by itself; stops
    /// them (and fails) when the time is up.
    pub async fn finish(self, timeout: Duration) -> anyhow::Result<Vec<WriterReport>> {
        let stop = self.stop.clone();
        let all = async move {
            let mut reports = Vec::new();
            for writer in self.writers {
                reports.push(writer.await?);
            }
            anyhow::Ok(reports)
        };
        match tokio::time::timeout(timeout, all).await {
            Ok(reports) => reports,
            Err(_) => {
                stop.store(true, Ordering::Relaxed);
                bail!("the writers did not all write on a new primary within {timeout:?}")
            }
        }
    }
}

async fn write(
    client: Client,
    insert: String,
    first_id: i32,
    (old_port, writes_after): (u16, usize),
    stop: Arc<AtomicBool>,
) -> WriterReport {
    let mut seen = WriterReport::default();
    let mut id = first_id;
    while seen.on_new_primary < writes_after && !stop.load(Ordering::Relaxed) {
        id += 1;
        match client.query_one(insert.as_str(), &[&id]).await {
            Ok(row) => {
                seen.acknowledged.push(id);
                if row.get::<_, i32>(0) != i32::from(old_port) {
                    seen.on_new_primary += 1;
                    seen.first_on_new_primary.get_or_insert_with(Instant::now);
                }
            }
            Err(e) if client.is_closed() => {
                seen.errors.push(format!("session closed: {e}"));
                seen.session_lost = true;
                break;
            }
            Err(e) => {
                seen.errors.push(match e.as_db_error() {
                    Some(db) => format!("{}: {}", db.code().code(), db.message()),
                    None => e.to_string(),
                });
                // Enough to report; an endless error loop must not grow
                // the test's memory without bound.
                if seen.errors.len() >= MAX_ERRORS {
                    break;
                }
            }
        }
    }
    seen
}

/// Waits until `table` on the primary has at least `rows` rows: the load
/// is under way.
pub async fn rows_written(client: &Client, table: &str, rows: i64) -> anyhow::Result<()> {
    let count = format!("/* pgrelay:primary */ SELECT count(*) FROM {table}");
    crate::poll_until(Duration::from_secs(10), "writes under way", || async {
        let n: i64 = client.query_one(count.as_str(), &[]).await.ok()?.get(0);
        (n >= rows).then_some(())
    })
    .await
}

/// What the writers acknowledged and what is there now.
#[derive(Debug)]
pub struct Tally {
    pub acknowledged: usize,
    /// Acknowledged rows missing from `present`.
    pub lost: usize,
    pub errors: Vec<String>,
    pub sessions_lost: usize,
    /// From `killed` to the first writer's first write on the new primary,
    /// and to the last writer's.
    pub first_resumed: Option<Duration>,
    pub all_resumed: Option<Duration>,
}

impl Tally {
    pub fn of(reports: &[WriterReport], present: &BTreeSet<i32>, killed: Instant) -> Tally {
        let acknowledged: BTreeSet<i32> = reports
            .iter()
            .flat_map(|r| r.acknowledged.iter().copied())
            .collect();
        let resumed: Vec<Option<Duration>> = reports
            .iter()
            .map(|r| r.first_on_new_primary.map(|t| t - killed))
            .collect();
        let all_resumed = if resumed.iter().all(Option::is_some) {
            resumed.iter().flatten().max().copied()
        } else {
            None
        };
        Tally {
            acknowledged: acknowledged.len(),
            lost: acknowledged.difference(present).count(),
            errors: reports.iter().flat_map(|r| r.errors.clone()).collect(),
            sessions_lost: reports.iter().filter(|r| r.session_lost).count(),
            first_resumed: resumed.iter().flatten().min().copied(),
            all_resumed,
        }
    }
}
