//! The client's address behind trusted reverse proxies (docs/protocol.md §3.4).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::config::IpRange;

/// The client IP of a request: the TCP peer, unless the peer is a trusted proxy; then the
/// right-most `X-Forwarded-For` address that is not itself a trusted proxy. Without a peer,
/// 127.0.0.1 (and `X-Forwarded-For` is ignored).
///
/// Proxies append the address they received the request from, so every entry right of the
/// client's was written by a trusted hop, and everything left of it by the client. Walking from
/// the right stops at the first untrusted address. An entry that does not parse ends the walk
/// at the hop right of it (whoever wrote it is not trusted to name anyone). With every entry
/// trusted, the left-most is taken. Several `X-Forwarded-For` headers count as one list in order.
pub(crate) fn client_ip(
    headers: &http::HeaderMap,
    peer: Option<SocketAddr>,
    trusted: &[IpRange],
) -> IpAddr {
    // No address at all (an embedder's service without `ClientAddr` or `with_peer`): the request
    // counts as 127.0.0.1, which is never taken for a trusted proxy, whatever it forwards.
    let Some(peer) = peer else {
        return IpAddr::V4(Ipv4Addr::LOCALHOST);
    };
    let peer_ip = peer.ip().to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|r| r.contains(ip));
    if !is_trusted(peer_ip) {
        return peer_ip;
    }
    // Split the raw bytes: a proxy appends to whatever the client sent, so one value may hold
    // the client's non-ASCII junk and, after a comma, the real address (a value that is not
    // valid text as a whole must not hide the entries a proxy added to it).
    let entries: Vec<&[u8]> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|e| !e.is_empty())
        .collect();
    let mut client = peer_ip;
    for entry in entries.iter().rev() {
        let Some(ip) = std::str::from_utf8(entry).ok().and_then(parse_entry) else {
            return client;
        };
        client = ip;
        if !is_trusted(ip) {
            return ip;
        }
    }
    client
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:80`, `[::1]:80`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    entry
        .parse::<SocketAddr>()
        .ok()
        .map(|s| s.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(list: &[&str]) -> Vec<IpRange> {
        list.iter().map(|s| s.parse().expect("range")).collect()
    }

    fn ip_of(xff: &[&str], peer: &str, proxies: &[&str]) -> String {
        let mut h = http::HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().expect("value"));
        }
        let peer: SocketAddr = format!("{peer}:4000").parse().expect("peer");
        client_ip(&h, Some(peer), &trusted(proxies)).to_string()
    }

    /// A service served without any client address (no `ClientAddr`, no `with_peer`) counts
    /// as 127.0.0.1, and must not then believe `X-Forwarded-For` because 127.0.0.1 is a trusted
    /// proxy: any client could name its own address and escape per-IP limits.
    #[test]
    fn an_unknown_peer_never_counts_as_a_trusted_proxy() {
        let mut h = http::HeaderMap::new();
        h.append("x-forwarded-for", "198.51.100.7".parse().expect("value"));
        let ip = client_ip(&h, None, &trusted(&["127.0.0.1"]));
        assert_eq!(ip.to_string(), "127.0.0.1");
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_writes() {
        assert_eq!(ip_of(&["198.51.100.7"], "203.0.113.1", &[]), "203.0.113.1");
        assert_eq!(
            ip_of(&["198.51.100.7"], "203.0.113.1", &["127.0.0.1"]),
            "203.0.113.1"
        );
    }

    #[test]
    fn the_right_most_untrusted_entry_wins() {
        let proxies = ["127.0.0.1"];
        assert_eq!(
            ip_of(&["198.51.100.7"], "127.0.0.1", &proxies),
            "198.51.100.7"
        );
        // A forged left entry changes nothing.
        assert_eq!(
            ip_of(&["203.0.113.9, 198.51.100.7"], "127.0.0.1", &proxies),
            "198.51.100.7"
        );
        // A chain of trusted hops (CIDR) is skipped.
        assert_eq!(
            ip_of(
                &["203.0.113.9, 198.51.100.7, 10.0.0.5, 10.1.0.9"],
                "127.0.0.1",
                &["127.0.0.1", "10.0.0.0/8"]
            ),
            "198.51.100.7"
        );
        // Several headers are one list.
        assert_eq!(
            ip_of(&["203.0.113.9", "198.51.100.7"], "127.0.0.1", &proxies),
            "198.51.100.7"
        );
        // Ports and IPv6 forms.
        assert_eq!(
            ip_of(&["198.51.100.7:5555"], "127.0.0.1", &proxies),
            "198.51.100.7"
        );
        assert_eq!(
            ip_of(&["[2001:db8::7]:443"], "127.0.0.1", &proxies),
            "2001:db8::7"
        );
        assert_eq!(
            ip_of(&["::ffff:198.51.100.7"], "127.0.0.1", &proxies),
            "198.51.100.7"
        );
    }

    #[test]
    fn junk_bytes_written_by_the_client_do_not_hide_the_appended_address() {
        let mut h = http::HeaderMap::new();
        let value = http::HeaderValue::from_bytes(b"\x80\xff, 198.51.100.7").expect("value");
        h.append("x-forwarded-for", value);
        let peer: SocketAddr = "127.0.0.1:4000".parse().expect("peer");
        let ip = client_ip(&h, Some(peer), &trusted(&["127.0.0.1"]));
        assert_eq!(ip.to_string(), "198.51.100.7");
    }

    #[test]
    fn garbage_or_nothing_leaves_the_last_trusted_hop() {
        let proxies = ["127.0.0.1", "10.0.0.0/8"];
        assert_eq!(ip_of(&[], "127.0.0.1", &proxies), "127.0.0.1");
        assert_eq!(ip_of(&["unknown"], "127.0.0.1", &proxies), "127.0.0.1");
        assert_eq!(
            ip_of(&["198.51.100.7, junk, 10.0.0.5"], "127.0.0.1", &proxies),
            "10.0.0.5"
        );
        // Every hop trusted: the left-most.
        assert_eq!(
            ip_of(&["10.0.0.1, 10.0.0.2"], "127.0.0.1", &proxies),
            "10.0.0.1"
        );
    }
}
