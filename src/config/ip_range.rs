//! IP address ranges for `TRUSTED_PROXIES`: single addresses or CIDR blocks.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An address block in CIDR form (`10.0.0.0/8`, `fd00::/8`); a bare address is a block of one.
///
/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) are compared as the IPv4 address they carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// The block of `prefix` leading bits of `addr`; `None` when `prefix` is longer than the
    /// address. Host bits of `addr` are cleared.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then(|| Self {
            network: mask(addr, prefix),
            prefix,
        })
    }

    /// True when `ip` lies in this block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && mask(ip, self.prefix) == self.network
    }

    /// The first address of the block.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length in bits.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
}

/// `ip` with every bit after the first `prefix` cleared.
pub(crate) fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

impl FromStr for IpRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR range"))?;
        let canonical = addr.to_canonical();
        let max = if canonical.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => {
                let p: u8 = p
                    .parse()
                    .map_err(|_| format!("{s:?}: the prefix length is not a number"))?;
                // A mapped address keeps its IPv6 prefix length (`::ffff:10.0.0.0/104`).
                let p = if addr.is_ipv6() && canonical.is_ipv4() {
                    p.checked_sub(96)
                        .ok_or_else(|| format!("{s:?}: the prefix is shorter than ::ffff:0:0/96"))?
                } else {
                    p
                };
                if p > max {
                    return Err(format!("{s:?}: the prefix length exceeds {max}"));
                }
                p
            }
        };
        Self::new(canonical, prefix).ok_or_else(|| format!("{s:?} is not a valid range"))
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let max = if self.network.is_ipv4() { 32 } else { 128 };
        if self.prefix == max {
            write!(f, "{}", self.network)
        } else {
            write!(f, "{}/{}", self.network, self.prefix)
        }
    }
}

impl From<IpAddr> for IpRange {
    fn from(ip: IpAddr) -> Self {
        let ip = ip.to_canonical();
        let prefix = if ip.is_ipv4() { 32 } else { 128 };
        Self {
            network: ip,
            prefix,
        }
    }
}

impl Serialize for IpRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn single_addresses_and_blocks() {
        let one: IpRange = "127.0.0.1".parse().expect("range");
        assert!(one.contains(ip("127.0.0.1")));
        assert!(one.contains(ip("::ffff:127.0.0.1")));
        assert!(!one.contains(ip("127.0.0.2")));
        let block: IpRange = "10.1.2.3/8".parse().expect("range");
        assert_eq!(block.to_string(), "10.0.0.0/8");
        assert!(block.contains(ip("10.255.0.1")));
        assert!(!block.contains(ip("11.0.0.1")));
        assert!(
            !block.contains(ip("::a01:203")),
            "v6 never matches a v4 block"
        );
        let v6: IpRange = "fd00::/8".parse().expect("range");
        assert!(v6.contains(ip("fdab::1")));
        assert!(!v6.contains(ip("fe80::1")));
        let all: IpRange = "0.0.0.0/0".parse().expect("range");
        assert!(all.contains(ip("203.0.113.9")));
        let all6: IpRange = "::/0".parse().expect("range");
        assert!(all6.contains(ip("2001:db8::1")));
        let mapped: IpRange = "::ffff:10.0.0.0/104".parse().expect("range");
        assert_eq!(mapped.to_string(), "10.0.0.0/8");
    }

    #[test]
    fn bad_ranges_are_refused() {
        for bad in [
            "",
            "abc",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/x",
            "10.0.0.0/",
            "1.2.3/8",
            "::ffff:10.0.0.0/64",
        ] {
            assert!(bad.parse::<IpRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn serde_round_trip() {
        let r: IpRange = "192.168.0.0/16".parse().expect("range");
        let s = serde_json::to_string(&r).expect("ser");
        assert_eq!(s, "\"192.168.0.0/16\"");
        let back: IpRange = serde_json::from_str(&s).expect("de");
        assert_eq!(back, r);
    }
}
