//! Prints the cost of a cache hit versus a full parse for the pgbench -S
//! query and a 4-join ORM query. Run with
//! `cargo run --release -p pgrelay-router --example classify_cost`.

use std::hint::black_box;
use std::time::Instant;

use pgrelay_router::{Classifier, classify, fingerprint};

const PGBENCH: &str = "SELECT abalance FROM pgbench_accounts WHERE aid = 4711;";
const ORM: &str = "SELECT \"orders\".\"id\", \"orders\".\"created_at\", \"customers\".\"name\", \
    \"items\".\"sku\", \"products\".\"title\", \"warehouses\".\"city\" FROM \"orders\" \
    INNER JOIN \"customers\" ON (\"orders\".\"customer_id\" = \"customers\".\"id\") \
    INNER JOIN \"items\" ON (\"items\".\"order_id\" = \"orders\".\"id\") \
    LEFT OUTER JOIN \"products\" ON (\"items\".\"product_id\" = \"products\".\"id\") \
    LEFT OUTER JOIN \"warehouses\" ON (\"products\".\"warehouse_id\" = \"warehouses\".\"id\") \
    WHERE (\"customers\".\"email\" = 'someone@example.com' AND \"orders\".\"created_at\" >= '2024-01-01' \
    AND \"products\".\"price\" > 10.5) ORDER BY \"orders\".\"created_at\" DESC LIMIT 21";

fn per_call(iterations: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..iterations / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    start.elapsed().as_secs_f64() * 1e9 / f64::from(iterations)
}

fn main() {
    for (name, sql) in [("pgbench -S", PGBENCH), ("4-join ORM", ORM)] {
        let parse = per_call(2_000, || {
            black_box(classify(black_box(sql)));
        });
        let fp = per_call(200_000, || {
            black_box(fingerprint(black_box(sql)));
        });
        let mut classifier = Classifier::new(1024);
        let hit = per_call(200_000, || {
            black_box(classifier.classify(black_box(sql)));
        });
        println!(
            "{name:>11}: full classify {:>8.0} ns | fingerprint {:>6.0} ns | cache hit {:>6.0} ns | {:.0}x",
            parse,
            fp,
            hit,
            parse / hit
        );
    }
}
