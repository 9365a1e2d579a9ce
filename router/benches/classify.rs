//! What the router costs per statement: the fingerprint scan, a full
//! sqlparser classification (a cache miss), a cached verdict (a hit: one
//! scan and one hash lookup), and the routing decision. The target for a
//! cached verdict is ≤ 1 µs, so that caching is what makes read/write
//! splitting cheap enough to do on every Query message.
//!
//! Run with
//! `cargo bench -p pgrelay-router --bench classify -- --warm-up-time 1 --measurement-time 3`.
//! `cargo test` does not build this file (benches default to `test = false`).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use pgrelay_router::{
    Balance, Balancer, Classifier, Consistency, Decision, NodeView, Role, RouteReason, SessionView,
    TopologyView, classify, decide, fingerprint,
};

/// How many literal variants the cached benchmarks cycle through: every
/// iteration sends different text with the same shape, as a real client
/// does, so the hit is earned by the fingerprint and not by identical input.
/// Few enough that the texts stay in the CPU cache, as a Query the proxy has
/// just read into its buffer does; 1024 ORM variants (600 KB) measured about
/// 250 ns more per hit (input text no longer in cache, most likely).
const VARIANTS: usize = 16;

/// pgbench's built-in `select-only` (-S) script.
fn simple(aid: usize) -> String {
    format!("SELECT abalance FROM pgbench_accounts WHERE aid = {aid};")
}

/// What Django emits for a `select_related` over four joins: quoted
/// identifiers, parenthesised join and WHERE conditions, string and
/// numeric literals, ORDER BY and a LIMIT.
fn orm4join(n: usize) -> String {
    format!(
        "SELECT \"orders\".\"id\", \"orders\".\"created_at\", \"customers\".\"name\", \
         \"items\".\"sku\", \"products\".\"title\", \"warehouses\".\"city\" FROM \"orders\" \
         INNER JOIN \"customers\" ON (\"orders\".\"customer_id\" = \"customers\".\"id\") \
         INNER JOIN \"items\" ON (\"items\".\"order_id\" = \"orders\".\"id\") \
         LEFT OUTER JOIN \"products\" ON (\"items\".\"product_id\" = \"products\".\"id\") \
         LEFT OUTER JOIN \"warehouses\" ON (\"products\".\"warehouse_id\" = \"warehouses\".\"id\") \
         WHERE (\"customers\".\"email\" = 'user{n}@example.com' \
         AND \"orders\".\"created_at\" >= '2024-01-{day:02}' \
         AND \"products\".\"price\" > {n}.5) \
         ORDER BY \"orders\".\"created_at\" DESC LIMIT 21",
        day = n % 28 + 1,
    )
}

type Shape = (&'static str, fn(usize) -> String);

const SHAPES: [Shape; 2] = [("simple", simple), ("orm4join", orm4join)];

fn bench_fingerprint(c: &mut Criterion) {
    let mut group = c.benchmark_group("fingerprint");
    for (name, make) in SHAPES {
        let sql = make(12345);
        assert_eq!(
            fingerprint(&sql),
            fingerprint(&make(7)),
            "{name}: literals must not change the fingerprint"
        );
        group.bench_function(name, |b| b.iter(|| fingerprint(black_box(&sql))));
    }
    group.finish();
}

fn bench_classify_uncached(c: &mut Criterion) {
    let mut group = c.benchmark_group("classify_uncached");
    for (name, make) in SHAPES {
        let sql = make(12345);
        assert!(classify(&sql).access.is_read(), "{name} must be a read");
        group.bench_function(name, |b| b.iter(|| classify(black_box(&sql))));
    }
    group.finish();
}

fn bench_classify_cached(c: &mut Criterion) {
    let mut group = c.benchmark_group("classify_cached");
    for (name, make) in SHAPES {
        let variants: Vec<String> = (0..VARIANTS).map(make).collect();
        let mut classifier = Classifier::new(1024);
        classifier.classify(&variants[0]);
        let mut next = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                next = (next + 1) % VARIANTS;
                classifier.classify(black_box(&variants[next]))
            })
        });
        let stats = classifier.stats();
        assert_eq!(
            (stats.misses, stats.uncacheable),
            (1, 0),
            "{name}: every measured call must be a cache hit"
        );
    }
    group.finish();
}

fn node(name: &str, role: Role) -> NodeView {
    NodeView {
        name: name.to_owned(),
        role,
        healthy: true,
        replay_lsn: Some(1_000),
        connections: 0,
        lag_bytes: Some(0),
        lag_millis: Some(0),
    }
}

/// One primary and two replicas, all healthy and caught up.
fn topology() -> TopologyView {
    TopologyView {
        epoch: 1,
        primary: Some(0),
        nodes: vec![
            node("pg1", Role::Primary),
            node("pg2", Role::Replica),
            node("pg3", Role::Replica),
        ],
    }
}

fn eventual() -> SessionView {
    SessionView {
        consistency: Consistency::Eventual,
        pinned: false,
        min_lsn: 0,
        max_lag_bytes: None,
        max_lag_millis: None,
        prefer: None,
    }
}

fn bench_decide(c: &mut Criterion) {
    let view = topology();
    let session = eventual();
    let mut group = c.benchmark_group("decide");

    let statement = classify(&simple(12345));
    let mut balancer = Balancer::new(Balance::RoundRobin);
    let replica = decide(
        &statement,
        &statement.access,
        &session,
        &view,
        &mut balancer,
    );
    assert!(
        matches!(replica, Ok(Decision::Node(r)) if r.reason == RouteReason::ReplicaRead),
        "a plain SELECT must go to a replica, got {replica:?}"
    );
    group.bench_function("replica_read", |b| {
        b.iter(|| {
            decide(
                black_box(&statement),
                &statement.access,
                &session,
                &view,
                &mut balancer,
            )
        })
    });
    group.finish();

    // What the proxy does per simple-protocol Query once the shape is
    // known (proxy/src/session/steer.rs): cached verdict, function
    // volatility, decision.
    let variants: Vec<String> = (0..VARIANTS).map(simple).collect();
    let mut classifier = Classifier::new(1024);
    classifier.classify(&variants[0]);
    let mut next = 0;
    let mut group = c.benchmark_group("route_cached");
    group.bench_function("simple", |b| {
        b.iter(|| {
            next = (next + 1) % VARIANTS;
            let statement = classifier.classify(black_box(&variants[next]));
            let access = classifier.effective_access("postgres", &statement);
            decide(&statement, &access, &session, &view, &mut balancer)
        })
    });
    group.finish();
    assert_eq!(
        classifier.stats().misses,
        1,
        "route_cached must hit the cache"
    );
}

criterion_group!(
    benches,
    bench_fingerprint,
    bench_classify_uncached,
    bench_classify_cached,
    bench_decide
);
criterion_main!(benches);
