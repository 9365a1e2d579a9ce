/// What can go wrong talking to etcd. Every one of them means "out of
/// touch": the instance keeps routing and promotes nothing until etcd
/// answers again.
#[derive(Debug, thiserror::Error)]
pub enum CoordError {
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("etcd did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("the lease expired")]
    LeaseExpired,
    #[error("reading TLS file {path}: {source}")]
    TlsFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
}
