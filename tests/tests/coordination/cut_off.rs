//! Instances that must promote nothing: one cut off from etcd (it keeps
//! routing to the primary it knows), one cut off from the primary alone.

use std::time::Duration;

use anyhow::{Context, ensure};
use pgrelay_tests::etcd::Etcd;
use pgrelay_tests::fleet::{Fleet, coordination_toml, instance_id, status};
use pgrelay_tests::poll_until;
use pgrelay_tests::proxy::connect;
use pgrelay_tests::relay::Relay;

use crate::{cluster, options, trial, writable};

pub fn trials() -> Vec<libtest_mimic::Trial> {
    vec![
        trial(
            "cut_off::an_instance_cut_off_from_etcd_keeps_routing_and_never_promotes",
            cut_off_from_etcd,
        ),
        trial(
            "cut_off::an_instance_alone_cut_off_from_the_primary_promotes_nothing",
            cut_off_from_primary,
        ),
    ]
}

/// Longer than detection (`detect_after` 1 s, plus the probes' streak)
/// and a lease: what a promotion, if any, would need to show.
const NOTHING_HAPPENS_FOR: Duration = Duration::from_secs(5);

/// i0 reaches etcd through a relay; cut it, kill i1 (so nobody else could
/// act), then kill the primary: i0 keeps routing until the primary dies,
/// says it is out of touch, and never promotes, until etcd is back.
async fn cut_off_from_etcd() -> anyhow::Result<()> {
    let etcd = Etcd::start().await?;
    let relay = Relay::start(etcd.addr().to_owned()).await?;
    let cluster = cluster().await?;
    let through = format!("http://{}", relay.addr());
    let mut fleet = Fleet::new()?;
    let mut first = options(etcd.endpoint(), 0);
    first.coordination = coordination_toml(&through, &instance_id(0));
    fleet.spawn(&cluster, &first).await?;
    fleet.spawn(&cluster, &options(etcd.endpoint(), 1)).await?;
    let result = async {
        fleet.settled(&etcd, "pg1", 2).await?;
        relay.cut();
        let admin = fleet.instances[0].admin;
        poll_until(
            Duration::from_secs(10),
            "i0 to say it is out of touch",
            || async {
                let s = status(admin).await.ok()?;
                (s["coordination_up"] == false).then_some(())
            },
        )
        .await?;
        let metrics = pgrelay_tests::http::get(admin, "/metrics").await?.body;
        ensure!(
            metrics.lines().any(|l| l == "pgrelay_coordination_up 0"),
            "metrics say coordination is down"
        );
        let superuser = pgrelay_cluster::superuser();
        let client = connect(&format!(
            "host=127.0.0.1 port={} user={superuser} dbname=postgres",
            fleet.instances[0].port()
        ))
        .await?;
        client
            .batch_execute("CREATE TABLE still_routed (i int); INSERT INTO still_routed VALUES (1)")
            .await?;
        fleet.instances[1].kill();
        cluster.kill(0)?;
        tokio::time::sleep(NOTHING_HAPPENS_FOR).await;
        let promoted = writable(&cluster).await;
        ensure!(promoted.is_empty(), "nothing promoted, found {promoted:?}");
        let s = status(admin).await?;
        ensure!(
            s["primary"].is_null() && s["failover_state"] == "suspect",
            "i0: {s}"
        );
        anyhow::Ok(())
    }
    .await;
    result.with_context(|| fleet.logs())
}

/// i0 leads and reaches pg1 through a relay; cut it: i0 alone loses the
/// primary, i1 and i2 still see it, so nothing is promoted and i1 still
/// routes writes to pg1.
async fn cut_off_from_primary() -> anyhow::Result<()> {
    let etcd = Etcd::start().await?;
    let cluster = cluster().await?;
    let relay = Relay::start(cluster.nodes()[0].addr()).await?;
    let mut fleet = Fleet::new()?;
    let mut first = options(etcd.endpoint(), 0);
    first.node_addrs = vec![("pg1".to_owned(), relay.addr())];
    fleet.spawn(&cluster, &first).await?;
    let result = async {
        poll_until(Duration::from_secs(10), "i0 to lead", || async {
            (etcd.leader(pgrelay_tests::fleet::PREFIX).await? == "i0").then_some(())
        })
        .await?;
        for i in 1..3 {
            fleet.spawn(&cluster, &options(etcd.endpoint(), i)).await?;
        }
        fleet.settled(&etcd, "pg1", 3).await?;
        relay.cut();
        let admin = fleet.instances[0].admin;
        poll_until(
            Duration::from_secs(10),
            "i0 to report pg1 unreachable",
            || async {
                let s = status(admin).await.ok()?;
                let me = s["instances"]
                    .as_array()?
                    .iter()
                    .find(|i| i["id"] == "i0")?
                    .clone();
                (me["sees_primary"] == false).then_some(())
            },
        )
        .await?;
        tokio::time::sleep(NOTHING_HAPPENS_FOR).await;
        let promoted = writable(&cluster).await;
        ensure!(
            promoted == [("pg1".to_owned(), 1)],
            "pg1 alone writable, found {promoted:?}"
        );
        let superuser = pgrelay_cluster::superuser();
        let client = connect(&format!(
            "host=127.0.0.1 port={} user={superuser} dbname=postgres",
            fleet.instances[1].port()
        ))
        .await?;
        client.batch_execute("CREATE TABLE t (i int)").await?;
        let port: i32 = client
            .query_one("INSERT INTO t VALUES (1) RETURNING inet_server_port()", &[])
            .await?
            .get(0);
        ensure!(
            i32::from(cluster.nodes()[0].port) == port,
            "i1 writes to pg1, not {port}"
        );
        let s = status(admin).await.context("i0 status")?;
        ensure!(s["leader"] == "i0", "i0 still leads: {s}");
        // A manual promotion is the leader's: another instance refuses it
        // and names the leader.
        let reply =
            pgrelay_tests::http::request(fleet.instances[1].admin, "POST", "/promote/pg2").await?;
        ensure!(
            reply.status == 409 && reply.body.contains("i0 leads failover"),
            "POST /promote on a follower: {} {}",
            reply.status,
            reply.body
        );
        anyhow::Ok(())
    }
    .await;
    result.with_context(|| fleet.logs())
}
