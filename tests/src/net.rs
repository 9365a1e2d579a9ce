//! This host's addresses, for tests that need a client that is not on
//! loopback.

use std::net::{IpAddr, Ipv4Addr};

/// An IPv4 address of an interface of this host that is up and is not
/// loopback: connecting to it from here makes a peer pgrelay does not
/// count as local. `None` on a host with loopback only.
pub fn non_loopback_ipv4() -> Option<Ipv4Addr> {
    let interfaces = nix::ifaddrs::getifaddrs().ok()?;
    interfaces
        .filter(|i| i.flags.contains(nix::net::if_::InterfaceFlags::IFF_UP))
        .filter_map(|i| i.address?.as_sockaddr_in().map(|a| a.ip()))
        .find(|ip| !ip.is_loopback())
}

/// [`non_loopback_ipv4`] as an [`IpAddr`], or an error that says why the
/// test cannot run here.
pub fn non_loopback_ip() -> anyhow::Result<IpAddr> {
    non_loopback_ipv4()
        .map(IpAddr::V4)
        .ok_or_else(|| anyhow::anyhow!("this host has no non-loopback IPv4 address to test from"))
}
