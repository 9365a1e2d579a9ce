//! pgrelay against PostgreSQL directly and against PgBouncer, under pgbench.
//!
//! `cargo run --release -p pgrelay-tests --bin bench [-- --rounds N --duration SECS --scale S --replicas R --transport tcp|unix --workers W --counts TX]`
//!
//! `scripts/pgo` builds it (and `pgrelay`) profile-guided, in
//! `target/pgo/release/`, training on this bench's own workloads.
//!
//! pgrelay runs with its defaults, as a user would start it: `listen.workers`
//! 0 (one per core) unless `--workers` says otherwise, and the monitor's
//! default interval.
//!
//! `--transport unix` connects everything through Unix-domain sockets:
//! pgbench to each target, and pgrelay and PgBouncer to PostgreSQL. That
//! is how a proxy on the database host is best deployed, and it takes the
//! loopback TCP stack (most of a proxy's kernel time) out of the figures.
//!
//! With `--replicas 1` pgrelay routes the read-only workloads to the
//! replica (its default read-your-writes policy), while direct and
//! PgBouncer runs go to the primary: the figure a read/write-splitting
//! deployment cares about.
//!
//! `--only mixed-scopes` (with `--replicas 1`) measures instead what each
//! consistency scope costs: writers and readers at once through pgrelay,
//! in `session`, `global` and `cluster` scope (see `bench/scopes.rs`).
//!
//! `--otlp` adds two more pgrelay targets with `[tracing]` on, exporting
//! to an OTLP/HTTP receiver in the bench process (not charged to pgrelay):
//! `pgrelay-t0` with `sample_ratio = 0` (tracing on, every statement
//! sampled out) and `pgrelay-t1` with `sample_ratio = 1` (a span per
//! statement, exported); plain `pgrelay` is tracing absent. The three
//! proxies run side by side all along, so each pgrelay figure includes the
//! others' idle monitors alike; the span exporter's thread counts as
//! pgrelay's.
//!
//! A bare byte forwarder runs beside them (see `bench/forwarder.rs`): its
//! CPU per transaction is what the kernel and the event loop alone cost on
//! the machine, the floor under any proxy's figure.
//!
//! `--counts TX` adds, after the timings, what does not move with the
//! machine: system calls (strace) and instructions (callgrind) per
//! transaction of pgrelay, the forwarder and PgBouncer, over `pgbench -t
//! TX` per client of each selected workload, each proxy a process of its
//! own over TCP (also with `--transport unix`); see `bench/counts.rs`. It
//! needs strace and valgrind, and takes minutes: callgrind runs a proxy
//! some 30 times slower. `.ci/run` runs the bench only as `scripts/pgo`'s
//! training (2 s per workload), and asserts none of its figures.
//!
//! Targets run interleaved (each workload on direct, pgrelay, the
//! forwarder and pgbouncer in turn, round after round) so that drift on a
//! small shared machine hits all of them alike. Missing a target is a
//! finding, not a failure: the exit status is non-zero only when the
//! measurement itself could not be made.

// A binary's root file resolves modules next to itself, in src/bin/, where
// cargo would take each for a binary of its own; hence the explicit paths.
#[path = "bench/counts.rs"]
mod counts;
#[path = "bench/cpu.rs"]
mod cpu;
#[path = "bench/forwarder.rs"]
mod forwarder;
#[path = "bench/idle.rs"]
mod idle;
#[path = "bench/latency_log.rs"]
mod latency_log;
#[path = "bench/pgbench.rs"]
mod pgbench;
#[path = "bench/pgbouncer.rs"]
mod pgbouncer;
#[path = "bench/ready.rs"]
mod ready;
#[path = "bench/report.rs"]
mod report;
#[path = "bench/scopes.rs"]
mod scopes;
#[path = "bench/targets.rs"]
mod targets;
#[path = "bench/tool_summary.rs"]
mod tool_summary;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use pgrelay_cluster::{Cluster, ClusterError, ClusterOptions};
use pgrelay_tests::{ProxyOptions, TestProxy};

use crate::cpu::{MachineTicks, Probe};
use crate::forwarder::Forwarder;
use crate::pgbench::WORKLOADS;
use crate::pgbouncer::PgBouncer;
use crate::report::{Measured, Run, Target};

const USAGE: &str = "usage: bench [--rounds N] [--duration SECS] [--scale S] [--replicas R] [--transport tcp|unix] [--workers W] [--idle-clients N] [--only WORKLOAD,...] [--otlp] [--counts TX]\n  (--only mixed-scopes, with --replicas 1: the price of each consistency scope)\n  (--counts TX: syscalls and instructions per transaction of each proxy over pgbench -t TX per client;\n   needs strace and valgrind; always over TCP, also with --transport unix; 0, the default: off)";

/// How pgbench reaches the targets, and the proxies reach PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Unix,
}

/// Command-line settings.
#[derive(Debug, Clone, Copy)]
struct Args {
    rounds: usize,
    /// pgbench `-T` of every measured run.
    duration: u64,
    /// pgbench `-i -s`.
    scale: u64,
    /// Streaming replicas behind pgrelay (0: a lone primary).
    replicas: usize,
    transport: Transport,
    /// pgrelay's `listen.workers` (0: its default).
    workers: usize,
    /// Idle clients whose memory is measured (0: not measured).
    idle_clients: usize,
    /// `--only`: the workloads to run, by name (`None`: all of them but
    /// `mixed-scopes`).
    only: Option<&'static str>,
    /// `--otlp`: also measure pgrelay with tracing on (sampled out, and
    /// sampled).
    otlp: bool,
    /// `--counts`: pgbench `-t` per client of the syscall and instruction
    /// counts (0: not counted).
    counts: u64,
}

impl Args {
    fn runs(&self, workload: &str) -> bool {
        let named = |only: &str| only.split(',').any(|name| name == workload);
        match self.only {
            Some(only) => named(only),
            None => workload != scopes::NAME,
        }
    }
}

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<Args> {
        let mut parsed = Args {
            rounds: 3,
            duration: 10,
            scale: 10,
            replicas: 0,
            transport: Transport::Tcp,
            workers: 0,
            idle_clients: 10_000,
            only: None,
            otlp: false,
            counts: 0,
        };
        while let Some(arg) = args.next() {
            let (key, inline) = match arg.split_once('=') {
                Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                None => (arg, None),
            };
            if key == "-h" || key == "--help" {
                println!("{USAGE}");
                std::process::exit(0);
            }
            if key == "--otlp" {
                parsed.otlp = true;
                continue;
            }
            let value = match inline {
                Some(v) => v,
                None => args
                    .next()
                    .with_context(|| format!("{key} needs a value\n{USAGE}"))?,
            };
            if key == "--only" {
                let unknown = value
                    .split(',')
                    .find(|n| *n != scopes::NAME && WORKLOADS.iter().all(|w| w.name != *n));
                if let Some(name) = unknown {
                    bail!("--only: no workload {name:?}\n{USAGE}");
                }
                // Parsed once per run: kept for the whole of it.
                parsed.only = Some(Box::leak(value.into_boxed_str()));
                continue;
            }
            if key == "--transport" {
                parsed.transport = match value.as_str() {
                    "tcp" => Transport::Tcp,
                    "unix" => Transport::Unix,
                    _ => bail!("--transport: expected tcp or unix, got {value:?}\n{USAGE}"),
                };
                continue;
            }
            let number: u64 = value
                .parse()
                .ok()
                .filter(|&n| {
                    n > 0
                        || [
                            "--rounds",
                            "--replicas",
                            "--workers",
                            "--idle-clients",
                            "--counts",
                        ]
                        .contains(&key.as_str())
                })
                .with_context(|| format!("{key}: expected a positive integer, got {value:?}"))?;
            match key.as_str() {
                "--rounds" => parsed.rounds = usize::try_from(number)?,
                "--duration" => parsed.duration = number,
                "--scale" => parsed.scale = number,
                "--replicas" => parsed.replicas = usize::try_from(number)?,
                "--workers" => parsed.workers = usize::try_from(number)?,
                "--idle-clients" => parsed.idle_clients = usize::try_from(number)?,
                "--counts" => parsed.counts = number,
                _ => bail!("unknown argument {key:?}\n{USAGE}"),
            }
        }
        if parsed.runs(scopes::NAME) && parsed.replicas == 0 {
            bail!(
                "--only {}: needs --replicas 1 or more\n{USAGE}",
                scopes::NAME
            );
        }
        Ok(parsed)
    }
}

/// The allocator of the shipped `pgrelay` binary: the bench runs pgrelay
/// in this process, and measures it as users run it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // The counts run pgrelay as a process of its own: this binary again.
    pgrelay_tests::instance::run_if_instance();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(forwarder::CHILD_FLAG) {
        return match forwarder::run_child(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench: forwarder: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if args.first().map(String::as_str) == Some(idle::CHILD_FLAG) {
        return match idle::run_child(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench: idle clients: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match Args::parse(args.into_iter()).and_then(drive) {
        Ok(()) => ExitCode::SUCCESS,
        // The cause chain on one line, without the backtrace a
        // RUST_BACKTRACE in the environment would add to `main`'s Err.
        Err(e) => {
            eprintln!("bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn drive(args: Args) -> anyhow::Result<()> {
    // Named so that the CPU accounting, which charges threads named
    // `pgrelay-*`, can never mistake the driver for the proxy.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bench-driver")
        .build()?;
    runtime.block_on(async {
        tokio::select! {
            result = bench(args) => result,
            // Returning, rather than dying on the signal, lets the guards
            // stop PgBouncer, the proxy and the cluster.
            _ = tokio::signal::ctrl_c() => bail!("interrupted"),
        }
    })
}

/// Where pgbench reaches a target listening in `dir` (its Unix sockets).
fn host_for(transport: Transport, dir: &std::path::Path) -> String {
    match transport {
        Transport::Tcp => "127.0.0.1".to_owned(),
        Transport::Unix => dir.display().to_string(),
    }
}

/// The first line: what the run will do.
fn announce(args: &Args) {
    println!(
        "bench: {} rounds x {} workloads x {} s, scale {}, over {:?}, pgrelay workers {}",
        args.rounds,
        WORKLOADS.iter().filter(|w| args.runs(w.name)).count()
            + usize::from(args.runs(scopes::NAME)),
        args.duration,
        args.scale,
        args.transport,
        pgrelay::worker::worker_count_here(args.workers)
    );
}

async fn bench(args: Args) -> anyhow::Result<()> {
    if args.counts > 0 {
        counts::check_tools()?;
    }
    let hz = cpu::ticks_per_second();
    announce(&args);

    let cluster = bench_cluster(&args).await?;
    let pg_port = cluster.nodes()[0].port;
    let proxy_sockets = tempfile::Builder::new()
        .prefix("pgrelay-bench-sockets-")
        .tempdir()?;
    let cluster_dir = cluster.dir().display().to_string();
    let proxy_options = proxy_options(&args, &cluster, proxy_sockets.path());
    let traced = match args.otlp {
        true => Some(start_traced(&cluster, &proxy_options).await?),
        false => None,
    };
    let proxy = TestProxy::start(&cluster, proxy_options).await?;
    let (pg_host, bouncer_pg_host) = match args.transport {
        Transport::Tcp => ("127.0.0.1".to_owned(), "127.0.0.1"),
        Transport::Unix => (cluster_dir.clone(), cluster_dir.as_str()),
    };
    let bouncer = match pgbouncer::find() {
        Some(binary) => {
            let started = PgBouncer::start(&binary, bouncer_pg_host, pg_port, args.transport, &[]);
            Some(started.await?)
        }
        None => None,
    };
    let forwarder = Forwarder::start(bouncer_pg_host, pg_port, args.transport, &[]).await?;
    println!(
        "bench: direct on port {pg_port}, pgrelay on port {}, bare forwarder on port {}, pgbouncer {}",
        proxy.port(),
        forwarder.port(),
        bouncer.as_ref().map_or_else(
            || "not installed".to_owned(),
            |b| format!("on port {}", b.port())
        )
    );

    let host_of = |dir: &std::path::Path| host_for(args.transport, dir);
    let mut targets = vec![
        (Target::Direct, pg_host, pg_port, Probe::None),
        (
            Target::Pgrelay,
            host_of(proxy_sockets.path()),
            proxy.port(),
            Probe::Pgrelay,
        ),
        (
            Target::Forwarder,
            host_of(forwarder.dir()),
            forwarder.port(),
            Probe::Process(forwarder.pid()),
        ),
    ];
    for (target, traced) in traced.iter().flat_map(|t| &t.proxies) {
        let host = host_of(proxy_sockets.path());
        targets.push((*target, host, traced.port(), Probe::Pgrelay));
    }
    targets.extend(bouncer.as_ref().map(|b| {
        let probe = Probe::Process(b.pid());
        (Target::Pgbouncer, host_of(b.dir()), b.port(), probe)
    }));

    let scope_host = host_of(proxy_sockets.path());
    let (runs, scope_runs, scope_failures) =
        measure_rounds(&args, &targets, (&proxy, &scope_host), hz).await?;

    let names: Vec<&'static str> = WORKLOADS
        .iter()
        .map(|w| w.name)
        .filter(|name| args.runs(name))
        .collect();
    if !names.is_empty() {
        report::print(&runs, &names, bouncer.is_some());
    }
    if args.runs(scopes::NAME) {
        scopes::print(&scope_runs);
    }
    if let Some(traced) = &traced {
        println!(
            "\notlp: {} spans received from pgrelay-t1 (sample_ratio 1), pgrelay-t0 exported none",
            traced.receiver.count()
        );
    }
    if args.counts > 0 && !names.is_empty() {
        report_counts(&args, &cluster, &names).await?;
    }
    if args.idle_clients > 0 {
        report_idle_memory(args.idle_clients, proxy.port(), bouncer.as_ref()).await?;
    }
    fail_on_broken_runs(&runs, scope_failures)
}

/// The cluster the bench runs against: a database `bench` with the
/// pgbench tables at `args.scale`, replicated to every replica.
async fn bench_cluster(args: &Args) -> anyhow::Result<Cluster> {
    let cluster = start_cluster(args.replicas).await?;
    let pg_port = cluster.nodes()[0].port;
    cluster
        .client(0)
        .await?
        .batch_execute("CREATE DATABASE bench")
        .await
        .context("creating database bench")?;
    let scale = args.scale.to_string();
    println!("bench: pgbench -i -s {scale} on the primary (port {pg_port})");
    pgbench::run(
        "127.0.0.1",
        pg_port,
        &["-i", "-s", &scale, "-q", "bench"],
        Duration::from_secs(600),
    )
    .await
    .context("initializing the pgbench tables")?;
    wait_for_replicas(&cluster, args.replicas).await?;
    Ok(cluster)
}

/// pgrelay as a user runs it (default monitor), with room for the idle
/// clients whose memory is measured; over Unix sockets in `sockets` and
/// to the nodes' sockets when the transport says so.
fn proxy_options(args: &Args, cluster: &Cluster, sockets: &std::path::Path) -> ProxyOptions {
    let clients_limit = format!("max_client_connections = {}", args.idle_clients + 1000);
    let as_a_user_runs_it = ProxyOptions {
        workers: args.workers,
        monitor: String::new(),
        listen_extra: clients_limit.clone(),
        ..ProxyOptions::default()
    };
    match args.transport {
        Transport::Tcp => as_a_user_runs_it,
        Transport::Unix => ProxyOptions {
            listen_extra: format!(
                "{clients_limit}\nunix_socket_dir = \"{}\"",
                sockets.display()
            ),
            node_addrs: pgrelay_tests::socket_node_addrs(cluster),
            ..as_a_user_runs_it
        },
    }
}

/// Counts syscalls and instructions per transaction of each proxy on the
/// `names`d workloads, over TCP whatever `--transport` says, and prints
/// them.
async fn report_counts(args: &Args, cluster: &Cluster, names: &[&str]) -> anyhow::Result<()> {
    let tcp = Args {
        transport: Transport::Tcp,
        ..*args
    };
    let setup = counts::Setup {
        // Over TCP no socket directory is used.
        pgrelay_toml: pgrelay_tests::proxy::config_toml(
            cluster,
            &proxy_options(&tcp, cluster, std::path::Path::new("")),
        )?,
        pg_port: cluster.nodes()[0].port,
        pgbouncer: pgbouncer::find(),
        tx: args.counts,
    };
    let workloads: Vec<pgbench::Workload> = WORKLOADS
        .into_iter()
        .filter(|w| names.contains(&w.name))
        .collect();
    println!(
        "\nbench: counting syscalls and instructions per transaction (pgbench -t {} per client)",
        args.counts
    );
    let counted = counts::measure(&setup, &workloads).await;
    counts::print(&counted, args.counts);
    // As with the timings, PgBouncer's limits are findings; ours, and the
    // forwarder's (the floor the figures are read against), are not.
    let broken = (counted.iter())
        .filter(|c| c.target != Target::Pgbouncer)
        .filter(|c| c.syscalls.is_err() || c.instructions.is_err())
        .count();
    if broken > 0 {
        bail!("{broken} counts of pgrelay or the forwarder failed");
    }
    Ok(())
}

/// The pgrelay targets with tracing on, and where they send spans.
struct Traced {
    receiver: pgrelay_tests::otlp::Receiver,
    proxies: Vec<(Target, TestProxy)>,
}

/// Two more proxies as `options` says, with `[tracing]` sampling nothing
/// and everything, exporting to a receiver in this process.
async fn start_traced(cluster: &Cluster, options: &ProxyOptions) -> anyhow::Result<Traced> {
    let receiver = pgrelay_tests::otlp::Receiver::start().await?;
    let mut proxies = Vec::new();
    for (target, ratio) in [
        (Target::PgrelaySampledOut, "0.0"),
        (Target::PgrelaySampled, "1.0"),
    ] {
        let traced = ProxyOptions {
            tracing: format!(
                "otlp_endpoint = \"{}\"\nsample_ratio = {ratio}",
                receiver.endpoint()
            ),
            ..options.clone()
        };
        proxies.push((target, TestProxy::start(cluster, traced).await?));
    }
    Ok(Traced { receiver, proxies })
}

/// A pgrelay target and the host its clients use.
type ProxyAt<'a> = (&'a TestProxy, &'a str);

/// Every selected workload on every target, round after round
/// (interleaved, so drift hits all alike), then the scope runs of each
/// round: the runs, the scope runs, and how many scope runs failed.
async fn measure_rounds(
    args: &Args,
    targets: &[(Target, String, u16, Probe)],
    (proxy, scope_host): ProxyAt<'_>,
    hz: f64,
) -> anyhow::Result<(Vec<Run>, Vec<scopes::ScopeRun>, usize)> {
    let mut runs = Vec::new();
    let (mut scope_runs, mut scope_failures) = (Vec::new(), 0);
    for round in 0..args.rounds {
        for workload in WORKLOADS.iter().filter(|w| args.runs(w.name)) {
            for (target, host, port, probe) in targets {
                let (target, port, probe) = (*target, *port, *probe);
                let outcome = measure(host, port, workload, args.duration, probe, hz).await?;
                let run = Run {
                    round,
                    workload: workload.name,
                    target,
                    outcome: outcome.map_err(|e| format!("{e:#}")),
                };
                println!("{}", report::run_line(&run, args.rounds));
                runs.push(run);
            }
        }
        if args.runs(scopes::NAME) {
            let rounds = (round, args.rounds);
            let (ran, failed) = scopes::round(scope_host, proxy, rounds, args.duration).await;
            scope_runs.extend(ran);
            scope_failures += failed;
        }
    }
    Ok((runs, scope_runs, scope_failures))
}

/// Prints what `n` idle clients cost pgrelay (on `port`) and PgBouncer.
async fn report_idle_memory(
    n: usize,
    port: u16,
    bouncer: Option<&PgBouncer>,
) -> anyhow::Result<()> {
    let own = std::process::id();
    let per_client = idle_memory(own, port, n).await?;
    let bouncer_per_client = match bouncer {
        Some(b) => Some(idle_memory(b.pid(), b.port(), n).await?),
        None => None,
    };
    println!(
        "\nidle clients ({n}, TCP): pgrelay {per_client:.0} bytes each (target <= 8192), \
         pgbouncer {}",
        bouncer_per_client.map_or_else(
            || "not installed".to_owned(),
            |b| format!("{b:.0} bytes each")
        )
    );
    Ok(())
}

/// Reports each failed run; an error if any against direct or pgrelay
/// (or a scope run) failed. PgBouncer's limits (e.g. no `-M prepared` in
/// transaction pooling before 1.21) are part of the comparison; ours and
/// PostgreSQL's are not.
fn fail_on_broken_runs(runs: &[Run], scope_failures: usize) -> anyhow::Result<()> {
    for run in runs.iter().filter(|r| r.outcome.is_err()) {
        if let Err(e) = &run.outcome {
            eprintln!(
                "\nround {} {} on {} failed:\n{e}",
                run.round + 1,
                run.workload,
                run.target.name()
            );
        }
    }
    let broken = runs
        .iter()
        .filter(|r| r.outcome.is_err() && r.target != Target::Pgbouncer)
        .count()
        + scope_failures;
    if broken > 0 {
        bail!("{broken} pgbench runs against direct or pgrelay failed");
    }
    Ok(())
}

/// Bytes of resident memory process `pid` (a proxy listening on `port`)
/// gains per client while `n` idle clients are logged in to it.
async fn idle_memory(pid: u32, port: u16, n: usize) -> anyhow::Result<f64> {
    let before = idle::rss_bytes(pid)?;
    let clients = idle::IdleClients::hold("127.0.0.1", port, n, "bench").await?;
    let after = idle::settled_rss_bytes(pid).await?;
    clients.release().await;
    Ok(after.saturating_sub(before) as f64 / n as f64)
}

/// One run with the proxy's CPU time around it. The outer error is a
/// failure of the bench itself; the inner one a failed pgbench run, kept
/// to be reported with the others.
async fn measure(
    host: &str,
    port: u16,
    workload: &pgbench::Workload,
    seconds: u64,
    probe: Probe,
    hz: f64,
) -> anyhow::Result<anyhow::Result<Measured>> {
    let before = probe.ticks()?;
    let switches_before = probe.switches()?;
    let machine_before = MachineTicks::read()?;
    let report = match pgbench::measure(host, port, workload, seconds).await {
        Ok(report) => report,
        Err(e) => return Ok(Err(e)),
    };
    let after = probe.ticks()?;
    let switches_after = probe.switches()?;
    let steal_percent = MachineTicks::read()?.steal_percent_since(machine_before);
    let transactions = report.processed.max(1) as f64;
    let per_tx = |ticks: u64| ticks as f64 / hz / transactions * 1e6;
    let used = before.zip(after).map(|(b, a)| a.since(b));
    let switched = switches_before.zip(switches_after).map(|(b, a)| a.since(b));
    Ok(Ok(Measured {
        report,
        cpu_us_per_tx: used.map(|t| per_tx(t.total())),
        sys_us_per_tx: used.map(|t| per_tx(t.system)),
        switches_per_tx: switched.map(|s| s.total() as f64 / transactions),
        preempted_per_tx: switched.map(|s| s.preempted as f64 / transactions),
        steal_percent,
    }))
}

/// A lone primary by default: replicas would only take CPU from the
/// measured path unless pgrelay is to route reads to them.
async fn start_cluster(replicas: usize) -> anyhow::Result<Cluster> {
    let options = |replicas| ClusterOptions {
        replicas,
        ..ClusterOptions::default()
    };
    if replicas > 0 {
        let cluster = Cluster::start(options(replicas)).await;
        return cluster.context("starting the PostgreSQL cluster");
    }
    match Cluster::start(options(0)).await {
        Err(ClusterError::InvalidOptions(why)) => {
            println!("bench: cluster without replicas rejected ({why}); using one replica");
            Ok(Cluster::start(options(1)).await?)
        }
        other => Ok(other.context("starting the PostgreSQL cluster")?),
    }
}

/// Waits until every replica has replayed the primary's WAL as it is now
/// (the pgbench tables), so reads routed there find them.
async fn wait_for_replicas(cluster: &Cluster, replicas: usize) -> anyhow::Result<()> {
    if replicas == 0 {
        return Ok(());
    }
    let lsn: String = cluster
        .client(0)
        .await?
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await?
        .get(0);
    let sql = format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn");
    for replica in 1..=replicas {
        let client = cluster.client(replica).await?;
        pgrelay_tests::poll_until(
            Duration::from_secs(120),
            "a replica to replay the tables",
            || async {
                let row = client.query_one(sql.as_str(), &[]).await.ok()?;
                row.get::<_, bool>(0).then_some(())
            },
        )
        .await?;
    }
    Ok(())
}
