//! A TCP relay between pgrelay and one node that a test can cut, to make
//! the node unreachable from pgrelay alone (the replicas still reach it):
//! a network partition on pgrelay's side.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Stops relaying when dropped.
pub struct Relay {
    addr: SocketAddr,
    cut: Arc<watch::Sender<bool>>,
    accept: JoinHandle<()>,
}

impl Relay {
    /// Relays connections on a free loopback port to `target`.
    pub async fn start(target: String) -> std::io::Result<Relay> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let cut = Arc::new(watch::Sender::new(false));
        let accept = tokio::spawn(accept_loop(listener, target, cut.clone()));
        Ok(Relay { addr, cut, accept })
    }

    /// Where pgrelay should connect.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Drops every relayed connection; new ones are accepted and then
    /// left unanswered (packets into a black hole) until `restore`.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, target: String, cut: Arc<watch::Sender<bool>>) {
    while let Ok((client, _)) = listener.accept().await {
        tokio::spawn(relay(client, target.clone(), cut.subscribe()));
    }
}

async fn relay(mut client: TcpStream, target: String, mut cut: watch::Receiver<bool>) {
    // A black hole while cut: the connection is held, nothing answers.
    if cut.wait_for(|cut| !*cut).await.is_err() {
        return;
    }
    let Ok(mut server) = TcpStream::connect(&target).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = cut.wait_for(|cut| *cut) => {}
    }
}
