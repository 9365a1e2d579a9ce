//! Free TCP ports on loopback.

use std::net::{Ipv4Addr, TcpListener};

use crate::error::ClusterError;

/// A port that was free a moment ago. Another process may grab it before the
/// postmaster binds it; callers retry with a new one when that happens.
pub(crate) fn free_port() -> Result<u16, ClusterError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| ClusterError::io("binding 127.0.0.1:0 to find a free port", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| ClusterError::io("reading the port of 127.0.0.1:0", e))?
        .port();
    Ok(port)
}
