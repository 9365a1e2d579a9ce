//! The TLS settings' files, read whole when the config is: a missing or
//! broken certificate is a problem `pgrelay check` reports with its key,
//! not a surprise at the first connection.

use std::path::Path;

use super::reader::Problems;
use super::{CertFiles, NodeConfig, SslMode, TlsConfig};
use crate::tls::pem;

pub(super) fn check_files(tls: &TlsConfig, nodes: &[NodeConfig], p: &mut Problems) {
    if let Some(server) = &tls.server {
        check_pair(server, "tls.cert_file", "tls.key_file", p);
    }
    if let Some(path) = &tls.nodes.sslrootcert {
        check_certs(path, "tls.sslrootcert", p);
    }
    check_node(&tls.nodes.sslrootcert, tls.nodes.sslmode, "tls", p);
    if let Some(client) = &tls.nodes.client_cert {
        check_pair(client, "tls.sslcert", "tls.sslkey", p);
    }
    for (i, node) in nodes.iter().enumerate() {
        // What a node shares with [tls] was checked there.
        let own = &node.tls;
        let prefix = format!("nodes[{i}]");
        if own.sslrootcert != tls.nodes.sslrootcert
            && let Some(path) = &own.sslrootcert
        {
            check_certs(path, &format!("{prefix}.sslrootcert"), p);
        }
        if own.sslmode != tls.nodes.sslmode {
            check_node(&own.sslrootcert, own.sslmode, &prefix, p);
        }
        if let Some(client) = &own.client_cert
            && Some(client) != tls.nodes.client_cert.as_ref()
        {
            let (cert, key) = (format!("{prefix}.sslcert"), format!("{prefix}.sslkey"));
            check_pair(client, &cert, &key, p);
        }
    }
}

/// `verify-*` without a CA to verify against.
fn check_node(root: &Option<std::path::PathBuf>, mode: SslMode, prefix: &str, p: &mut Problems) {
    if mode.verifies() && root.is_none() {
        p.push(
            format!("{prefix}.sslmode"),
            format!("\"{mode}\" needs sslrootcert (the CA certificates to trust)"),
        );
    }
}

fn check_pair(files: &CertFiles, cert_key: &str, key_key: &str, p: &mut Problems) {
    check_certs(&files.cert_file, cert_key, p);
    if let Err(message) = pem::private_key(&files.key_file) {
        p.push(key_key, message);
    }
}

fn check_certs(path: &Path, key: &str, p: &mut Problems) {
    if let Err(message) = pem::certificates(path) {
        p.push(key, message);
    }
}
