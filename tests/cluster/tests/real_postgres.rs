//! Starts real PostgreSQL clusters; needs the server binaries (see `pg_bin_dir`).

use std::time::{Duration, Instant};

use pgrelay_cluster::{Cluster, ClusterOptions, HostAuth};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

const DEADLINE: Duration = Duration::from_secs(30);

async fn start(opts: ClusterOptions) -> Cluster {
    let began = Instant::now();
    let cluster = Cluster::start(opts).await.expect("cluster starts");
    eprintln!(
        "started {} nodes in {:?}",
        cluster.nodes().len(),
        began.elapsed()
    );
    cluster
}

async fn count(client: &Client, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .map(|row| row.get(0))
        .unwrap_or(-1)
}

/// Polls `node` until `table` holds `expected` rows.
async fn wait_rows(cluster: &Cluster, node: usize, table: &str, expected: i64) {
    let client = cluster.client(node).await.expect("connect");
    let started = Instant::now();
    loop {
        let seen = count(&client, table).await;
        if seen == expected {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{} shows {seen} rows in {table}, want {expected}",
            cluster.nodes()[node].name
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn in_recovery(cluster: &Cluster, node: usize) -> bool {
    let client = cluster.client(node).await.expect("connect");
    client
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .expect("query")
        .get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_stream_from_the_primary() {
    let cluster = start(ClusterOptions::default()).await;
    let names: Vec<_> = cluster.nodes().iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["pg1", "pg2", "pg3"]);
    assert_eq!(
        cluster.node("pg3").map(|n| n.port),
        Some(cluster.nodes()[2].port)
    );

    let primary = cluster.client(0).await.expect("connect");
    primary
        .batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
        .await
        .expect("write");
    wait_rows(&cluster, 1, "t", 1).await;
    wait_rows(&cluster, 2, "t", 1).await;

    assert!(!in_recovery(&cluster, 0).await);
    assert!(in_recovery(&cluster, 1).await);
    assert!(in_recovery(&cluster, 2).await);

    let rows = primary
        .query(
            "SELECT application_name FROM pg_stat_replication ORDER BY 1",
            &[],
        )
        .await
        .expect("query");
    let receivers: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(receivers, ["pg2", "pg3"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_primary_restarts_on_its_port() {
    let cluster = start(ClusterOptions {
        replicas: 1,
        ..Default::default()
    })
    .await;
    let port = cluster.nodes()[0].port;
    let old_pid = cluster.nodes()[0].pid().expect("running");
    cluster.kill(0).expect("kill");
    assert!(!cluster.nodes()[0].is_running());
    assert!(cluster.client(0).await.is_err());
    assert!(cluster.kill(0).is_err(), "killing a dead node is an error");

    cluster.start_node(0).await.expect("restart");
    assert_eq!(cluster.nodes()[0].port, port);
    assert_ne!(cluster.nodes()[0].pid(), Some(old_pid));
    let client = cluster.client(0).await.expect("connect after restart");
    client.batch_execute("SELECT 1").await.expect("query");
    cluster
        .wait_streaming(DEADLINE)
        .await
        .expect("replica reconnects");

    cluster.stop(1).expect("stop replica");
    cluster.start_node(1).await.expect("start replica again");
    cluster
        .wait_streaming(DEADLINE)
        .await
        .expect("streams again");
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_delay_holds_back_replicas() {
    let cluster = start(ClusterOptions {
        replicas: 1,
        apply_delay: Some(Duration::from_secs(2)),
        ..Default::default()
    })
    .await;
    let primary = cluster.client(0).await.expect("connect");
    let written = Instant::now();
    primary
        .batch_execute("CREATE TABLE d (id int); INSERT INTO d VALUES (1)")
        .await
        .expect("write");
    let replica = cluster.client(1).await.expect("connect");
    let early = replica
        .query_one("SELECT to_regclass('d') IS NOT NULL", &[])
        .await
        .expect("query");
    assert!(
        !early.get::<_, bool>(0),
        "table visible on the replica right away"
    );
    wait_rows(&cluster, 1, "d", 1).await;
    assert!(written.elapsed() >= Duration::from_millis(1900));
}

#[tokio::test(flavor = "multi_thread")]
async fn first_replica_can_be_synchronous() {
    let cluster = start(ClusterOptions {
        replicas: 2,
        synchronous: true,
        ..Default::default()
    })
    .await;
    let primary = cluster.client(0).await.expect("connect");
    let rows = primary
        .query(
            "SELECT application_name, sync_state FROM pg_stat_replication ORDER BY 1",
            &[],
        )
        .await
        .expect("query");
    let states: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        states,
        [
            ("pg2".into(), "sync".into()),
            ("pg3".into(), "async".into())
        ]
    );
    primary
        .batch_execute("CREATE TABLE s (id int); INSERT INTO s VALUES (1)")
        .await
        .expect("synchronous commit returns");
}

#[tokio::test(flavor = "multi_thread")]
async fn drop_removes_processes_and_files() {
    let cluster = start(ClusterOptions {
        replicas: 1,
        ..Default::default()
    })
    .await;
    let dir = cluster.dir().to_owned();
    let data_dirs: Vec<_> = cluster.nodes().iter().map(|n| n.data_dir.clone()).collect();
    let pids: Vec<u32> = cluster.nodes().iter().filter_map(|n| n.pid()).collect();
    assert_eq!(pids.len(), 2);
    assert!(data_dirs.iter().all(|d| d.join("PG_VERSION").is_file()));

    drop(cluster);

    assert!(!dir.exists(), "{} still exists", dir.display());
    assert!(data_dirs.iter().all(|d| !d.exists()));
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "postmaster {pid} survived the drop"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn scram_roles_need_their_password() {
    let cluster = start(ClusterOptions {
        replicas: 1,
        host_auth: HostAuth::ScramSha256,
        roles: vec![("app".into(), "secret".into())],
        ..Default::default()
    })
    .await;
    for node in cluster.nodes() {
        let ok = format!("{} password=secret", node.conninfo("app", "postgres"));
        let (client, connection) = tokio_postgres::connect(&ok, NoTls)
            .await
            .unwrap_or_else(|e| panic!("app with the right password on {}: {e}", node.name));
        tokio::spawn(connection);
        client.batch_execute("SELECT 1").await.expect("query");

        let bad = format!("{} password=wrong", node.conninfo("app", "postgres"));
        let err = tokio_postgres::connect(&bad, NoTls)
            .await
            .err()
            .expect("wrong password must be rejected");
        assert_eq!(
            err.code(),
            Some(&SqlState::INVALID_PASSWORD),
            "unexpected error: {err:?}"
        );
    }
    // The harness's own superuser needs no password even under SCRAM.
    cluster.client(1).await.expect("superuser connects");
}

#[tokio::test(flavor = "multi_thread")]
async fn md5_roles_get_md5_verifiers() {
    let cluster = start(ClusterOptions {
        replicas: 0,
        host_auth: HostAuth::Md5,
        roles: vec![("legacy".into(), "pw'quoted".into())],
        extra_conf: vec!["work_mem = '8MB'".into()],
        ..Default::default()
    })
    .await;
    let node = &cluster.nodes()[0];
    let conninfo = format!(
        "{} password='pw\\'quoted'",
        node.conninfo("legacy", "postgres")
    );
    let (client, connection) = tokio_postgres::connect(&conninfo, NoTls)
        .await
        .expect("md5 login");
    tokio::spawn(connection);
    let work_mem: String = client
        .query_one("SHOW work_mem", &[])
        .await
        .expect("query")
        .get(0);
    assert_eq!(work_mem, "8MB");
    let admin = cluster.client(0).await.expect("connect");
    let verifier: String = admin
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'legacy'",
            &[],
        )
        .await
        .expect("query")
        .get(0);
    assert!(verifier.starts_with("md5"), "{verifier}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_extra_conf_reports_the_log() {
    let err = Cluster::start(ClusterOptions {
        replicas: 0,
        extra_conf: vec!["no_such_setting_here = 1".into()],
        ..Default::default()
    })
    .await
    .expect_err("an unknown setting stops the postmaster");
    let text = err.to_string();
    assert!(text.contains("no_such_setting_here"), "{text}");
}
