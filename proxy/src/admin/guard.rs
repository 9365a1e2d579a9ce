//! Who may change pgrelay's state over HTTP (`POST /promote/{node}`).
//!
//! Reading (`/metrics`, `/status`, `/healthz`, `/`) is open. A call that
//! changes state needs `Authorization: Bearer <[admin] token>`; with no
//! token configured, it is taken only from loopback. Either way a browser
//! must not be usable as a confused deputy: a request a web page makes
//! carries an `Origin` of that page (refused unless it is the admin
//! server itself), and a page that rebinds its own host name to 127.0.0.1
//! still sends its name in `Host` (refused without a token unless it is a
//! loopback name).

use std::net::IpAddr;

use hyper::HeaderMap;
use hyper::header::{AUTHORIZATION, HOST, ORIGIN};

use crate::config::AdminToken;

/// Why a state-changing request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A browser sent it from another origin (or says it is cross-site).
    CrossOrigin,
    /// No or a wrong bearer token (401).
    BadToken,
    /// No token configured, and the caller is not on this host (or names
    /// a host that is not loopback).
    NotLocal,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::CrossOrigin => "cross-origin requests may not change pgrelay's state",
            Refusal::BadToken => {
                "this call needs the admin token: Authorization: Bearer <[admin] token>"
            }
            Refusal::NotLocal => {
                "no [admin] token is configured, so state-changing calls are taken from \
                 loopback only"
            }
        }
    }
}

/// Decides whether a state-changing request from `peer` may proceed.
pub fn authorize(
    peer: IpAddr,
    headers: &HeaderMap,
    token: Option<&AdminToken>,
) -> Result<(), Refusal> {
    let host = header(headers, HOST.as_str());
    if is_cross_origin(headers, host) {
        return Err(Refusal::CrossOrigin);
    }
    match token {
        Some(token) => {
            let given = header(headers, AUTHORIZATION.as_str()).and_then(bearer);
            match given {
                Some(given) if token.matches(given) => Ok(()),
                _ => Err(Refusal::BadToken),
            }
        }
        None if peer.to_canonical().is_loopback() && host.is_some_and(is_loopback_host) => Ok(()),
        None => Err(Refusal::NotLocal),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `Origin` present and naming anything but this server, or a browser's
/// `Sec-Fetch-Site` saying the request comes from another site.
fn is_cross_origin(headers: &HeaderMap, host: Option<&str>) -> bool {
    let site = header(headers, "sec-fetch-site");
    if site.is_some_and(|s| s != "same-origin" && s != "none") {
        return true;
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return false;
    };
    let origin = origin.to_str().unwrap_or("null");
    let same = host.is_some_and(|host| {
        origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|o| o.eq_ignore_ascii_case(host))
    });
    !same
}

/// The credentials of `Bearer <token>` (the scheme is case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim())
}

/// `localhost`, a loopback address, either with a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;

    use super::*;

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const REMOTE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 7));

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn token() -> AdminToken {
        AdminToken("0123456789abcdef".into())
    }

    #[test]
    fn with_a_token_only_the_token_counts() {
        let t = token();
        let right = headers(&[
            ("host", "pgrelay:9187"),
            ("authorization", "Bearer 0123456789abcdef"),
        ]);
        assert_eq!(authorize(REMOTE, &right, Some(&t)), Ok(()));
        let lower = headers(&[("host", "x"), ("authorization", "bearer 0123456789abcdef")]);
        assert_eq!(authorize(REMOTE, &lower, Some(&t)), Ok(()));
        for wrong in [
            headers(&[("host", "127.0.0.1:9187")]),
            headers(&[("host", "x"), ("authorization", "Bearer 0123456789abcdeX")]),
            headers(&[("host", "x"), ("authorization", "Basic 0123456789abcdef")]),
            headers(&[("host", "x"), ("authorization", "Bearer")]),
        ] {
            // Loopback is no excuse once a token is configured.
            assert_eq!(
                authorize(LOCAL, &wrong, Some(&t)),
                Err(Refusal::BadToken),
                "{wrong:?}"
            );
        }
    }

    #[test]
    fn without_a_token_only_loopback_by_a_loopback_name() {
        for host in [
            "127.0.0.1:9187",
            "localhost:9187",
            "LOCALHOST",
            "[::1]:9187",
            "127.0.0.1",
        ] {
            assert_eq!(
                authorize(LOCAL, &headers(&[("host", host)]), None),
                Ok(()),
                "{host}"
            );
        }
        assert_eq!(
            authorize(REMOTE, &headers(&[("host", "127.0.0.1:9187")]), None),
            Err(Refusal::NotLocal)
        );
        // DNS rebinding: a page's own name pointed at 127.0.0.1.
        assert_eq!(
            authorize(LOCAL, &headers(&[("host", "evil.example:9187")]), None),
            Err(Refusal::NotLocal)
        );
        assert_eq!(
            authorize(LOCAL, &HeaderMap::new(), None),
            Err(Refusal::NotLocal)
        );
    }

    #[test]
    fn cross_origin_is_refused_even_with_the_token() {
        let t = token();
        let auth = ("authorization", "Bearer 0123456789abcdef");
        let evil = headers(&[
            ("host", "127.0.0.1:9187"),
            ("origin", "http://evil.example"),
            auth,
        ]);
        assert_eq!(authorize(LOCAL, &evil, Some(&t)), Err(Refusal::CrossOrigin));
        let null = headers(&[("host", "127.0.0.1:9187"), ("origin", "null")]);
        assert_eq!(authorize(LOCAL, &null, None), Err(Refusal::CrossOrigin));
        let site = headers(&[("host", "127.0.0.1:9187"), ("sec-fetch-site", "cross-site")]);
        assert_eq!(authorize(LOCAL, &site, None), Err(Refusal::CrossOrigin));
        let same = headers(&[
            ("host", "127.0.0.1:9187"),
            ("origin", "http://127.0.0.1:9187"),
        ]);
        assert_eq!(authorize(LOCAL, &same, None), Ok(()));
    }
}
