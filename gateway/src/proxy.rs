//! Reverse proxies and browsers on other origins.
//!
//! `IM_TRUSTED_PROXIES` (CIDRs; default loopback) names the proxies whose
//! `X-Forwarded-For`, `-Proto` and `-Host` are believed. [`layer`] runs first on every
//! request: from a trusted peer it keeps those headers and takes the client's address from
//! `X-Forwarded-For` (the right-most address that is not a trusted proxy: what the
//! outermost proxy of ours saw); from anyone else it removes them, so nothing downstream
//! (rate limits, absolute URLs, the admin cookie's `Secure`) can be told a lie.
//! [`ClientIp`] is the address rate limits count.
//!
//! `IM_CORS_ORIGINS` (none by default) lets web clients on those origins call the API
//! ([`cors`]); `*` allows any origin but never together with credentials.

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// The proxies whose forwarding headers count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<IpNet>);

impl Default for TrustedProxies {
    /// Loopback: a proxy on the same machine.
    fn default() -> Self {
        use std::net::{Ipv4Addr, Ipv6Addr};
        Self(vec![IpNet::from(IpAddr::V4(Ipv4Addr::LOCALHOST)), IpNet::from(IpAddr::V6(Ipv6Addr::LOCALHOST))])
    }
}

impl TrustedProxies {
    /// A comma-separated list of CIDRs or single addresses; empty: none.
    pub fn parse(raw: &str) -> Result<Self, String> {
        raw.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<IpNet>()
                    .or_else(|_| p.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{p:?} is not a CIDR or an address"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client behind `peer`: `peer` itself unless it is trusted, else the right-most
    /// address of `forwarded_for` that is not a trusted proxy (the left-most when all are).
    pub fn client(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let chain: Vec<IpAddr> =
            forwarded_for.into_iter().flat_map(|v| v.split(',')).filter_map(|a| a.trim().parse::<IpAddr>().ok()).collect();
        chain.iter().rev().find(|a| !self.trusts(**a)).or(chain.first()).copied().unwrap_or(peer)
    }

    /// Shown in settings: the CIDRs, comma-separated.
    pub fn to_setting(&self) -> String {
        self.0.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
    }
}

const FORWARDED: [&str; 4] = ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded"];

/// The address rate limits count for this request (set by [`layer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl std::fmt::Display for ClientIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        Ok(parts.extensions.get::<ClientIp>().copied().unwrap_or(ClientIp(peer.unwrap_or(IpAddr::from([127, 0, 0, 1])))))
    }
}

/// The first middleware: forwarding headers believed from trusted proxies only, and the
/// client's address recorded.
pub async fn layer(
    axum::extract::State(proxies): axum::extract::State<std::sync::Arc<TrustedProxies>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let client = match peer {
        Some(peer) if proxies.trusts(peer) => {
            let forwarded_for = request.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok()).map(str::to_owned);
            proxies.client(peer, forwarded_for.as_deref())
        }
        other => {
            for name in FORWARDED {
                request.headers_mut().remove(name);
            }
            other.unwrap_or(IpAddr::from([127, 0, 0, 1]))
        }
    };
    request.extensions_mut().insert(ClientIp(client));
    next.run(request).await
}

/// The scheme and host clients reached us by: `X-Forwarded-Proto`/`-Host` (left
/// there by [`layer`] only when a trusted proxy sent them), else `http` and `Host`.
pub fn scheme_and_host(headers: &axum::http::HeaderMap) -> (&'static str, Option<String>) {
    let first = |name: &str| {
        headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.split(',').next()).map(str::trim).filter(|v| !v.is_empty())
    };
    let scheme = if first("x-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("https")) { "https" } else { "http" };
    let valid = |h: &&str| h.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    let host = first("x-forwarded-host").filter(valid).or_else(|| first("host").filter(valid));
    (scheme, host.map(str::to_owned))
}

/// CORS for the configured origins (none: no CORS headers, browsers keep their
/// same-origin rule).
pub fn cors(origins: &[String], credentials: bool) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{HeaderName, HeaderValue, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    let layer = CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([axum::http::header::CONTENT_TYPE, axum::http::header::AUTHORIZATION, HeaderName::from_static("token")])
        .expose_headers([HeaderName::from_static("x-refresh-token")])
        .max_age(std::time::Duration::from_secs(600));
    Some(if credentials { layer.allow_credentials(true) } else { layer })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn the_client_is_the_last_address_no_trusted_proxy_added() {
        let proxies = TrustedProxies::parse("127.0.0.1/32, 10.0.0.0/8").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(proxies.client(ip("203.0.113.9"), Some("1.2.3.4")), ip("203.0.113.9"), "an untrusted peer is the client");
        assert_eq!(proxies.client(ip("127.0.0.1"), Some("198.51.100.7")), ip("198.51.100.7"));
        assert_eq!(
            proxies.client(ip("127.0.0.1"), Some("6.6.6.6, 198.51.100.7, 10.1.2.3")),
            ip("198.51.100.7"),
            "a spoofed prefix is skipped"
        );
        assert_eq!(proxies.client(ip("127.0.0.1"), Some("10.0.0.5, 10.0.0.6")), ip("10.0.0.5"));
        assert_eq!(proxies.client(ip("127.0.0.1"), None), ip("127.0.0.1"));
        assert!(proxies.trusts(ip("::ffff:127.0.0.1")), "IPv4-mapped addresses count as IPv4");
        assert_eq!(TrustedProxies::parse("").map(|p| p.0.len()), Ok(0));
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert_eq!(TrustedProxies::parse("192.0.2.1").map(|p| p.to_setting()), Ok("192.0.2.1/32".to_owned()));
    }

    #[test]
    fn forwarded_scheme_and_host() {
        let mut h = axum::http::HeaderMap::new();
        h.insert("host", "10.0.0.2:7001".parse().unwrap_or_else(|_| unreachable!()));
        assert_eq!(scheme_and_host(&h), ("http", Some("10.0.0.2:7001".into())));
        h.insert("x-forwarded-proto", "https".parse().unwrap_or_else(|_| unreachable!()));
        h.insert("x-forwarded-host", "im.example.com, inner".parse().unwrap_or_else(|_| unreachable!()));
        assert_eq!(scheme_and_host(&h), ("https", Some("im.example.com".into())));
        h.insert("x-forwarded-host", "evil.example/<x>".parse().unwrap_or_else(|_| unreachable!()));
        assert_eq!(scheme_and_host(&h).1, Some("10.0.0.2:7001".into()), "not a host name: the Host header");
    }
}
