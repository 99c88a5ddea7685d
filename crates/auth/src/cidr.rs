//! IP allow-lists for API keys: CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`,
//! or a bare address for a single host).
//!
//! A block is stored in its canonical text form (network address with the
//! host bits cleared, then `/prefix`), so parse → display → parse is the
//! identity (property-tested). An IPv4-mapped IPv6 source address
//! (`::ffff:10.1.2.3`, as a dual-stack listener reports IPv4 peers) is
//! matched as the IPv4 address it maps.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// A malformed CIDR block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP address or CIDR block (like 10.0.0.0/8 or 2001:db8::/32)")]
pub struct CidrError(pub String);

impl Cidr {
    /// The block of `prefix` leading bits of `address` (host bits are
    /// cleared).
    pub fn new(address: IpAddr, prefix: u8) -> Option<Cidr> {
        let max = if address.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return None;
        }
        Some(Cidr {
            network: mask(address, prefix),
            prefix,
        })
    }

    /// Whether `address` is in the block.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = unmap(address);
        address.is_ipv4() == self.network.is_ipv4() && mask(address, self.prefix) == self.network
    }
}

fn unmap(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn mask(address: IpAddr, prefix: u8) -> IpAddr {
    match address {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let bad = || CidrError(s.chars().take(64).collect());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let address: IpAddr = addr.parse().map_err(|_| bad())?;
        let address = unmap(address);
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
        };
        Cidr::new(address, prefix).ok_or_else(bad)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Parses a space-separated allow-list (empty: any address).
pub fn parse_list(text: &str) -> Result<Vec<Cidr>, CidrError> {
    text.split_whitespace().map(str::parse).collect()
}

/// Renders an allow-list as stored (space-separated canonical blocks).
pub fn render_list(list: &[Cidr]) -> String {
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `address` may use a key with this allow-list (an empty list
/// allows any address).
pub fn allows(list: &[Cidr], address: IpAddr) -> bool {
    list.is_empty() || list.iter().any(|c| c.contains(address))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_canonicalises_and_matches() {
        let c: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!(c.contains(ip("10.255.0.1")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.9.9.9")), "IPv4-mapped");
        let host: Cidr = "192.0.2.7".parse().unwrap();
        assert_eq!(host.to_string(), "192.0.2.7/32");
        assert!(host.contains(ip("192.0.2.7")) && !host.contains(ip("192.0.2.8")));
        let v6: Cidr = "2001:db8:1::5/32".parse().unwrap();
        assert_eq!(v6.to_string(), "2001:db8::/32");
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let any4: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(any4.contains(ip("203.0.113.9")) && !any4.contains(ip("::1")));
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "10.0.0/8",
            "x",
            "::/129",
            "1.2.3.4/+8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        let list = parse_list(" 10.0.0.0/8  2001:db8::/32 ").unwrap();
        assert_eq!(render_list(&list), "10.0.0.0/8 2001:db8::/32");
        assert!(allows(&list, ip("10.2.3.4")) && !allows(&list, ip("192.0.2.1")));
        assert!(allows(&[], ip("192.0.2.1")));
    }

    proptest! {
        #[test]
        fn v4_round_trips_and_contains_its_network(a in any::<u32>(), p in 0u8..=32) {
            let c = Cidr::new(IpAddr::V4(Ipv4Addr::from(a)), p).unwrap();
            let again: Cidr = c.to_string().parse().unwrap();
            prop_assert_eq!(again, c);
            prop_assert!(c.contains(IpAddr::V4(Ipv4Addr::from(a))));
        }

        #[test]
        fn v6_round_trips_and_contains_its_network(a in any::<u128>(), p in 0u8..=128) {
            let addr = IpAddr::V6(Ipv6Addr::from(a));
            prop_assume!(Ipv6Addr::from(a).to_ipv4_mapped().is_none());
            let c = Cidr::new(addr, p).unwrap();
            let again: Cidr = c.to_string().parse().unwrap();
            prop_assert_eq!(again, c);
            prop_assert!(c.contains(addr));
        }

        #[test]
        fn parsing_never_panics(s in "[0-9a-f:./]{0,45}") {
            let _ = s.parse::<Cidr>();
        }

        #[test]
        fn containment_is_prefix_equality(a in any::<u32>(), b in any::<u32>(), p in 0u8..=32) {
            let c = Cidr::new(IpAddr::V4(Ipv4Addr::from(a)), p).unwrap();
            let same = p == 0 || (a ^ b) >> (32 - u32::from(p)) == 0;
            prop_assert_eq!(c.contains(IpAddr::V4(Ipv4Addr::from(b))), same);
        }
    }
}
