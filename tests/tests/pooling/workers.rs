//! Few clients stay on one worker; many spread over all of them; a
//! cancel accepted by one worker reaches a query another one runs.
//!
//! The kernel used to spread new clients evenly over the workers, and two
//! workers sharing 8 `pgbench -S` clients took a third more CPU per
//! transaction than one worker with all 8: each woke for its own few
//! clients' messages instead of handling several per wakeup.

use std::sync::Arc;
use std::time::Duration;

use anyhow::ensure;
use libtest_mimic::Trial;
use pgrelay::accept_gate::{FILL, SLACK};
use pgrelay_tests::activity::count_backends;
use pgrelay_tests::proxy::connect;
use pgrelay_tests::{ProxyOptions, TestProxy, poll_until};
use tokio_postgres::{CancelToken, Client, NoTls};

use crate::env::{Env, LazyEnv, trial};

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![
        trial(
            env,
            "workers::few_clients_share_one_worker_and_many_spread",
            few_then_many,
        ),
        trial(
            env,
            "workers::a_cancel_accepted_by_another_worker_reaches_the_query",
            cancel_across_workers,
        ),
    ]
}

async fn two_workers(env: &Env) -> anyhow::Result<TestProxy> {
    let options = ProxyOptions {
        workers: 2,
        ..ProxyOptions::default()
    };
    TestProxy::start(&env.cluster, options).await
}

/// Clients each of the two workers serves, once they add up to `total`.
async fn settled(proxy: &TestProxy, total: usize) -> anyhow::Result<Vec<usize>> {
    let what = format!("the workers to count {total} clients");
    poll_until(Duration::from_secs(10), &what, || {
        let counts: Vec<usize> = (proxy.handle().clients_per_worker().into_iter())
            .map(|c| c.unwrap_or(0))
            .collect();
        let done = counts.iter().sum::<usize>() == total;
        async move { done.then_some(counts) }
    })
    .await
}

/// Opens `n` clients through `proxy`, each of which has run a query.
async fn open(proxy: &TestProxy, n: usize) -> anyhow::Result<Vec<Client>> {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        let client = connect(&proxy.conninfo("postgres", "postgres")).await?;
        client.simple_query("SELECT 1").await?;
        clients.push(client);
    }
    Ok(clients)
}

async fn few_then_many(env: Arc<Env>) -> anyhow::Result<()> {
    let proxy = two_workers(&env).await?;
    let few = open(&proxy, 8).await?;
    let counts = settled(&proxy, 8).await?;
    ensure!(
        counts.contains(&8),
        "8 clients were spread over the workers: {counts:?}"
    );
    let more = open(&proxy, 2 * FILL + 8).await?;
    let total = few.len() + more.len();
    let counts = settled(&proxy, total).await?;
    println!("workers: {total} clients served as {counts:?}");
    ensure!(
        counts.iter().all(|&c| c >= FILL),
        "{total} clients did not spread over both workers: {counts:?}"
    );
    // Every client is still served, on whichever worker it is.
    for client in few.iter().chain(&more) {
        client.simple_query("SELECT 1").await?;
    }
    // Clients that leave are counted out (else the gate would go on
    // sending new ones elsewhere), and new ones are taken and served.
    // (Which worker takes them is not checked: one just told to stop may
    // take one in the moment before it hears.)
    drop(more);
    settled(&proxy, few.len()).await?;
    let again = open(&proxy, 4).await?;
    settled(&proxy, few.len() + again.len()).await?;
    // Workers that stop accepting give up their turns.
    proxy.handle().drain();
    poll_until(
        Duration::from_secs(10),
        "the workers to leave the gate",
        || {
            let left = proxy
                .handle()
                .clients_per_worker()
                .iter()
                .all(Option::is_none);
            async move { left.then_some(()) }
        },
    )
    .await?;
    Ok(())
}

/// Since the accept gate, fewer than `FILL` clients share one worker, so
/// no other test sends a CancelRequest to a worker other than the one
/// serving the query. Here the query's worker is past its fill and slack,
/// so only the other one listens when the cancel connects.
async fn cancel_across_workers(env: Arc<Env>) -> anyhow::Result<()> {
    let proxy = two_workers(&env).await?;
    let victim = open(&proxy, 1).await?.remove(0);
    let counts = settled(&proxy, 1).await?;
    let home = counts.iter().position(|&c| c == 1).expect("one client");
    // Each client with the worker that took it (the count that rose).
    let mut others: Vec<(Client, usize)> = Vec::new();
    let mut last = counts;
    while last[home] < FILL + SLACK {
        ensure!(
            others.len() < 4 * FILL,
            "the victim's worker never reached {}: {last:?}",
            FILL + SLACK
        );
        let client = open(&proxy, 1).await?.remove(0);
        let counts = settled(&proxy, others.len() + 2).await?;
        let took = (0..counts.len())
            .find(|&i| counts[i] > last[i])
            .expect("a worker took the client");
        others.push((client, took));
        last = counts;
    }
    // Whether the other worker filled meanwhile (its accepts race the
    // victim's worker's while both listen) or not: below FILL it is the
    // one taking clients, and the victim's worker, past FILL + SLACK,
    // takes none.
    while last
        .iter()
        .enumerate()
        .any(|(i, &c)| i != home && c >= FILL)
    {
        let at = others
            .iter()
            .rposition(|&(_, worker)| worker != home)
            .expect("a client of the other worker");
        others.remove(at);
        last = settled(&proxy, others.len() + 1).await?;
    }
    let counts = last;
    println!("workers: the victim's worker {home} of {counts:?} takes no clients");

    let cancel = victim.cancel_token();
    let mut query = CancelOnDrop {
        cancel: cancel.clone(),
        task: tokio::spawn(async move {
            victim
                .simple_query("/* pgrelay:primary */ SELECT pg_sleep(30) /* cross-worker victim */")
                .await
        }),
    };
    let primary = [env.cluster.client(0).await?];
    let running = "query LIKE '%cross-worker victim%' AND state = 'active'";
    poll_until(
        Duration::from_secs(10),
        "the victim's sleep to run",
        || async { (count_backends(&primary, running).await? == 1).then_some(()) },
    )
    .await?;
    cancel.cancel_query(NoTls).await?;
    let result = tokio::time::timeout(Duration::from_secs(10), &mut query.task)
        .await
        .map_err(|_| anyhow::anyhow!("the cancel did not end the query in 10 s"))??;
    let e = result.expect_err("the query was cancelled");
    ensure!(
        e.as_db_error().map(|d| d.code().code()) == Some("57014"),
        "expected query_canceled, got {e:?}"
    );
    // The clients of both workers go on.
    for (client, _) in &others {
        client.simple_query("SELECT 1").await?;
    }
    Ok(())
}

/// Cancels its task's query and aborts the task when dropped unfinished:
/// a check that fails must not leave the query running on the shared
/// cluster (aborting alone would not close the client while an answer is
/// pending).
struct CancelOnDrop<T> {
    cancel: CancelToken,
    task: tokio::task::JoinHandle<T>,
}

impl<T> Drop for CancelOnDrop<T> {
    fn drop(&mut self) {
        if self.task.is_finished() {
            return;
        }
        let cancel = self.cancel.clone();
        tokio::spawn(async move { cancel.cancel_query(NoTls).await });
        self.task.abort();
    }
}
