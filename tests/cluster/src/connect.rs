//! Opening tokio-postgres connections to a node.

use std::time::Duration;

use tokio_postgres::{Client, Config, NoTls};

/// Connects over TCP to 127.0.0.1:`port` and drives the connection on a
/// spawned task, so the returned client is usable on its own.
pub(crate) async fn connect(
    port: u16,
    user: &str,
    dbname: &str,
    timeout: Duration,
) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = Config::new()
        .host("127.0.0.1")
        .port(port)
        .user(user)
        .dbname(dbname)
        .application_name("pgrelay-cluster")
        .connect_timeout(timeout)
        .connect(NoTls)
        .await?;
    tokio::spawn(async move {
        // The error, if any, surfaces to the client's next query.
        let _ = connection.await;
    });
    Ok(client)
}
