//! etcd as production runs it: TLS only, authentication on. An instance
//! with the CA (`ca_file`) and the right user leads and records the
//! primary; one with a wrong password is out of touch (`coordination_up`
//! false) and still routes.

use std::time::Duration;

use anyhow::{Context, ensure};
use pgrelay_tests::etcd::{Etcd, ROOT};
use pgrelay_tests::fleet::{Fleet, PREFIX, coordination_toml, instance_id, status};
use pgrelay_tests::poll_until;
use pgrelay_tests::proxy::connect;

use crate::{cluster, options, trial};

pub fn trials() -> Vec<libtest_mimic::Trial> {
    vec![trial(
        "secured::over_tls_with_a_user_the_right_password_leads_a_wrong_one_is_out_of_touch",
        over_tls_with_a_user,
    )]
}

const PASSWORD: &str = "etcd-secret-1";

async fn over_tls_with_a_user() -> anyhow::Result<()> {
    let etcd = Etcd::start_secured(PASSWORD).await?;
    let ca_file = etcd.secured().context("a secured etcd")?.ca_file.clone();
    let cluster = cluster().await?;
    let fleet = Fleet::start(&cluster, 2, |i| {
        let password = if i == 0 { PASSWORD } else { "wrong" };
        let mut o = options(etcd.endpoint(), i);
        o.coordination = format!(
            "{}\nca_file = \"{}\"\nusername = \"{ROOT}\"\npassword = \"{password}\"",
            coordination_toml(etcd.endpoint(), &instance_id(i)),
            ca_file.display()
        );
        o
    })
    .await?;
    let result = check(&etcd, &fleet).await;
    result.with_context(|| fleet.logs())
}

async fn check(etcd: &Etcd, fleet: &Fleet) -> anyhow::Result<()> {
    let state = poll_until(
        Duration::from_secs(20),
        "i0 to lead and record pg1",
        || async {
            let state = etcd.state(PREFIX).await?;
            let leader = etcd.leader(PREFIX).await?;
            (leader == instance_id(0) && state.primary.as_deref() == Some("pg1")).then_some(state)
        },
    )
    .await?;
    ensure!(state.history.is_empty(), "{state:?}");
    let good = status(fleet.instances[0].admin).await?;
    ensure!(
        good["coordination_up"] == true && good["leader"] == instance_id(0),
        "i0: {good}"
    );
    // The wrong password never gets in: out of touch, and it says so.
    let bad = status(fleet.instances[1].admin).await?;
    ensure!(bad["coordination_up"] == false, "i1: {bad}");
    let instances = good["instances"].as_array().context("instances")?;
    ensure!(
        instances.len() == 1 && instances[0]["id"] == instance_id(0),
        "only i0 reports: {good}"
    );
    // Out of touch, i1 still routes writes to the primary it knows.
    let client = connect(&format!(
        "host=127.0.0.1 port={} user={} dbname=postgres",
        fleet.instances[1].port(),
        pgrelay_cluster::superuser()
    ))
    .await?;
    client
        .batch_execute("CREATE TABLE secured_rows (i int); INSERT INTO secured_rows VALUES (1)")
        .await?;
    Ok(())
}
