//! Where push requests may go (docs/protocol.md §4.9, amended): hosts with public addresses only.
//!
//! A web endpoint is chosen by the client, so without this check any user could make the server
//! POST to loopback, private or link-local services (SSRF). Registration checks every address the
//! host resolves to; delivery checks the addresses actually connected to (the Web Push
//! provider's resolver), so DNS rebinding between the two does not help.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use http::Uri;

/// Why an endpoint host was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum AddressError {
    /// The host resolves to a loopback, private, link-local… address (or, at delivery, to
    /// nothing else).
    #[error("push endpoint host has no public address")]
    NotPublic,
    /// The host did not resolve.
    #[error("push endpoint host did not resolve")]
    NoAddress,
    /// The lookup took too long.
    #[error("push endpoint host lookup timed out")]
    Timeout,
}

/// Whether `ip` is a public (globally routable unicast) address that push requests may reach.
///
/// Refused: unspecified, loopback, RFC 1918 and RFC 4193 private, link-local, CGNAT
/// (100.64.0.0/10), multicast, broadcast and reserved, documentation and benchmarking ranges,
/// 0.0.0.0/8, the IETF protocol-assignment blocks (192.0.0.0/24, 2001::/23, Teredo included),
/// IPv4-compatible IPv6, NAT64 local-use, and everything outside 2000::/3 in IPv6. IPv4-mapped
/// IPv6, NAT64 (64:ff9b::/96) and 6to4 (2002::/16) addresses are judged by the IPv4 address they
/// embed.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let refused = a == 0 // "this network", 0.0.0.0 included
        || a == 10 // RFC 1918
        || a == 127 // loopback
        || (a == 100 && (64..128).contains(&b)) // CGNAT, RFC 6598
        || (a == 169 && b == 254) // link-local
        || (a == 172 && (16..32).contains(&b)) // RFC 1918
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast (deprecated)
        || (a == 192 && b == 168) // RFC 1918
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224; // multicast, reserved, broadcast
    !refused
}

fn embedded_v4(high: u16, low: u16) -> Ipv4Addr {
    let [a, b] = high.to_be_bytes();
    let [c, d] = low.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // NAT64 well-known prefix (RFC 6052): an IPv4 address behind a translator.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(embedded_v4(s[6], s[7]));
    }
    // Only 2000::/3 is global unicast: this refuses ::/8 (unspecified, loopback,
    // IPv4-compatible), 64:ff9b:1::/48, 100::/64, fc00::/7, fe80::/10, fec0::/10 and ff00::/8.
    if s[0] & 0xe000 != 0x2000 {
        return false;
    }
    match s[0] {
        // IETF protocol assignments (Teredo, ORCHID, benchmarking…) and documentation.
        0x2001 => s[1] >= 0x0200 && s[1] != 0x0db8,
        // 6to4 (RFC 3056): judged by the IPv4 address it carries.
        0x2002 => is_public_v4(embedded_v4(s[1], s[2])),
        // Documentation (RFC 9637).
        0x3fff => s[1] >= 0x1000,
        _ => true,
    }
}

/// The host (lowercase, IPv6 brackets and a trailing dot removed) and port of an endpoint URL
/// with scheme `http` or `https`; `None` when it does not parse as one.
pub(crate) fn endpoint_host(endpoint: &str) -> Option<(String, u16)> {
    let uri: Uri = endpoint.parse().ok()?;
    let default_port = match uri.scheme_str()? {
        s if s.eq_ignore_ascii_case("https") => 443,
        s if s.eq_ignore_ascii_case("http") => 80,
        _ => return None,
    };
    let host = uri.host()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    Some((host, uri.port_u16().unwrap_or(default_port)))
}

/// Resolves `host` (an IP literal is taken as is) within `timeout`.
pub(crate) async fn resolve(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, AddressError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
        Err(_) => Err(AddressError::Timeout),
        Ok(Err(_)) => Err(AddressError::NoAddress),
        Ok(Ok(addrs)) => Ok(addrs.collect()),
    }
}

/// Registration's check: `host` resolves, and to public addresses only.
pub(crate) async fn check_host(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<(), AddressError> {
    let addrs = resolve(host, port, timeout).await?;
    if addrs.is_empty() {
        return Err(AddressError::NoAddress);
    }
    if addrs.iter().all(|a| is_public_ip(a.ip())) {
        Ok(())
    } else {
        Err(AddressError::NotPublic)
    }
}

/// Delivery's filter: the public addresses of `addrs`; an error when none is left.
#[cfg_attr(not(feature = "web-push"), allow(dead_code))]
pub(crate) fn public_only(addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, AddressError> {
    if addrs.is_empty() {
        return Err(AddressError::NoAddress);
    }
    let public: Vec<SocketAddr> = addrs.into_iter().filter(|a| is_public_ip(a.ip())).collect();
    if public.is_empty() {
        Err(AddressError::NotPublic)
    } else {
        Ok(public)
    }
}

#[cfg(test)]
#[path = "address_tests.rs"]
mod tests;
