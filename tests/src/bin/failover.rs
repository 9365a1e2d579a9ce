//! Failover figures: kills the primary under a write load through pgrelay,
//! on a fresh cluster per trial, and prints how long writes took to resume
//! and whether any acknowledged write was lost.
//!
//! `cargo run --release -p pgrelay-tests --bin failover -- [--trials N]
//!  [--writers W] [--synchronous] [--detect-after 1s] [--instances I]`
//!
//! With `--instances 3`, three pgrelay processes (this binary run again)
//! coordinate through an etcd of their own, and the writers are spread
//! over them: each instance's writers must reach the new primary.
//!
//! RTO is from `kill -9` of the primary to a writer's first acknowledged
//! write on the new primary, in the session it had before the kill:
//! "first" is the earliest writer, "all" the last one to get there.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pgrelay_cluster::{Cluster, ClusterOptions};
use pgrelay_tests::etcd::Etcd;
use pgrelay_tests::fleet::{Fleet, coordination_toml, instance_id};
use pgrelay_tests::proxy::connect;
use pgrelay_tests::write_load::{Tally, WriteLoad, rows_written};
use pgrelay_tests::{ProxyOptions, TestProxy};

const USAGE: &str = "usage: failover [--trials N] [--writers W] [--synchronous] \
                     [--detect-after DURATION] [--instances I]";

struct Options {
    trials: usize,
    writers: usize,
    synchronous: bool,
    detect_after: String,
    /// pgrelay processes coordinating through etcd; 1: one in-process
    /// proxy, no etcd.
    instances: usize,
}

fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<Options> {
    let mut options = Options {
        trials: 5,
        writers: 4,
        synchronous: false,
        detect_after: "1s".to_owned(),
        instances: 1,
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--trials" => options.trials = value()?.parse()?,
            "--writers" => options.writers = value()?.parse()?,
            "--detect-after" => options.detect_after = value()?,
            "--instances" => options.instances = value()?.parse::<usize>()?.max(1),
            "--synchronous" => options.synchronous = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    Ok(options)
}

fn main() -> ExitCode {
    pgrelay_tests::instance::run_if_instance();
    let run = || -> anyhow::Result<()> {
        let options = parse(std::env::args().skip(1))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime.block_on(trials(&options))
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("failover: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn trials(options: &Options) -> anyhow::Result<()> {
    println!(
        "{} trials, {} writers, {} pgrelay instance(s), {} standby, detect_after {}",
        options.trials,
        options.writers,
        options.instances,
        if options.synchronous {
            "synchronous"
        } else {
            "asynchronous"
        },
        options.detect_after
    );
    let mut first = Vec::new();
    let mut all = Vec::new();
    let (mut acknowledged, mut lost, mut errors, mut sessions_lost) = (0, 0, 0, 0);
    for n in 1..=options.trials {
        let tally = trial(options).await?;
        println!(
            "trial {n}: first write on the new primary {:?}, all writers {:?}, \
             {} acknowledged, {} lost, {} client errors, {} sessions lost",
            tally.first_resumed,
            tally.all_resumed,
            tally.acknowledged,
            tally.lost,
            tally.errors.len(),
            tally.sessions_lost
        );
        first.extend(tally.first_resumed);
        all.extend(tally.all_resumed);
        acknowledged += tally.acknowledged;
        lost += tally.lost;
        errors += tally.errors.len();
        sessions_lost += tally.sessions_lost;
    }
    println!(
        "RTO first writer: median {:?}, max {:?}; all writers: median {:?}, max {:?}",
        median(&mut first),
        first.iter().max(),
        median(&mut all),
        all.iter().max()
    );
    println!(
        "writes: {acknowledged} acknowledged, {lost} lost; {errors} client errors; \
         {sessions_lost} sessions lost"
    );
    Ok(())
}

/// What the writers connect to: one in-process pgrelay, or several
/// pgrelay processes coordinating through etcd.
enum Front {
    Alone(TestProxy),
    /// The fleet goes before its etcd.
    Fleet {
        fleet: Fleet,
        _etcd: Etcd,
    },
}

impl Front {
    async fn start(cluster: &Cluster, options: &Options) -> anyhow::Result<Front> {
        let proxy_options = |coordination: String| ProxyOptions {
            failover: format!("detect_after = \"{}\"", options.detect_after),
            coordination,
            ..ProxyOptions::default()
        };
        if options.instances == 1 {
            let proxy = TestProxy::start(cluster, proxy_options(String::new())).await?;
            return Ok(Front::Alone(proxy));
        }
        let etcd = Etcd::start().await?;
        let fleet = Fleet::start(cluster, options.instances, |i| {
            proxy_options(coordination_toml(etcd.endpoint(), &instance_id(i)))
        })
        .await?;
        fleet.settled(&etcd, "pg1", options.instances).await?;
        Ok(Front::Fleet { fleet, _etcd: etcd })
    }

    /// One conninfo per pgrelay.
    fn conninfos(&self) -> Vec<String> {
        let user = pgrelay_cluster::superuser();
        match self {
            Front::Alone(proxy) => vec![proxy.conninfo(user, "postgres")],
            Front::Fleet { fleet, .. } => fleet
                .instances
                .iter()
                .map(|i| {
                    format!(
                        "host=127.0.0.1 port={} user={user} dbname=postgres",
                        i.port()
                    )
                })
                .collect(),
        }
    }
}

async fn trial(options: &Options) -> anyhow::Result<Tally> {
    let cluster = Cluster::start(ClusterOptions {
        replicas: 2,
        synchronous: options.synchronous,
        ..ClusterOptions::default()
    })
    .await?;
    let front = Front::start(&cluster, options).await?;
    let conninfos = front.conninfos();
    connect(&conninfos[0])
        .await?
        .batch_execute("CREATE TABLE rto_rows (id int PRIMARY KEY)")
        .await?;
    let mut clients = Vec::new();
    for w in 0..options.writers {
        clients.push(connect(&conninfos[w % conninfos.len()]).await?);
    }
    let load = WriteLoad::start(clients, "rto_rows", cluster.nodes()[0].port, 50);
    rows_written(&connect(&conninfos[0]).await?, "rto_rows", 500).await?;
    cluster.kill(0)?;
    let killed = Instant::now();
    let reports = load.finish(Duration::from_secs(120)).await?;
    let present: BTreeSet<i32> = connect(&conninfos[0])
        .await?
        .query("/* pgrelay:primary */ SELECT id FROM rto_rows", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(Tally::of(&reports, &present, killed))
}

fn median(values: &mut [Duration]) -> Option<Duration> {
    values.sort();
    values.get(values.len() / 2).copied()
}
