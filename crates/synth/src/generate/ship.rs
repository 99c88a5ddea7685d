//! Shipping: carriers and tracking numbers in each carrier's real format,
//! with valid check digits.
//!
//! - USPS Intelligent Mail package barcode: 22 digits, `9400 1` then 16
//!   digits then a mod-10 check digit (weights 3,1 from the right).
//! - UPS: `1Z`, the shipper's 6-character account, a 2-digit service code,
//!   a 7-digit package number and a check digit (letters mapped to digits,
//!   odd positions doubled, mod 10).
//! - FedEx Express: 12 digits, the last a check digit (weights 1,3,7 from
//!   the right, mod 11, 10 -> 0).

use crate::rng::{Rng, hash_words};

/// A carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Carrier {
    /// United States Postal Service.
    Usps,
    /// UPS.
    Ups,
    /// FedEx.
    FedEx,
}

impl Carrier {
    /// The carrier's name as recorded on the fill.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Carrier::Usps => "USPS",
            Carrier::Ups => "UPS",
            Carrier::FedEx => "FedEx",
        }
    }
}

/// Picks the carrier for a package: cold-chain items go overnight by FedEx
/// or UPS, Schedule II items mostly by UPS with a signature, everything else
/// mostly by USPS.
pub(crate) fn pick_carrier(rng: &mut Rng, cold_chain: bool, schedule: u8) -> Carrier {
    let weights: [u32; 3] = if cold_chain {
        [0, 30, 70]
    } else if schedule == 2 {
        [10, 60, 30]
    } else {
        [70, 18, 12]
    };
    [Carrier::Usps, Carrier::Ups, Carrier::FedEx][rng.weighted_index(&weights)]
}

/// The USPS mod-10 check digit of a digit string.
pub(crate) fn usps_check(body: &[u8]) -> u8 {
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| u32::from(d - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// The UPS check digit of the 15 characters after `1Z`.
pub(crate) fn ups_check(body: &[u8]) -> u8 {
    let sum: u32 = body
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let v = if c.is_ascii_digit() {
                u32::from(c - b'0')
            } else {
                (u32::from(c) - 63) % 10
            };
            if i % 2 == 1 { v * 2 } else { v }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// The FedEx 12-digit check digit of the first 11 digits.
pub(crate) fn fedex_check(body: &[u8]) -> u8 {
    const WEIGHTS: [u32; 3] = [1, 3, 7];
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| u32::from(d - b'0') * WEIGHTS[i % 3])
        .sum();
    ((sum % 11) % 10) as u8
}

/// The pharmacy's UPS shipper account (fixed per dataset).
fn ups_account(seed: u64) -> [u8; 6] {
    const ALNUM: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut h = hash_words(&[seed, 0x0075_7073]);
    let mut out = [0u8; 6];
    for b in &mut out {
        *b = ALNUM[(h % 36) as usize];
        h /= 36;
    }
    out
}

/// A tracking number for a package sent by `carrier`.
pub(crate) fn tracking_number(rng: &mut Rng, seed: u64, carrier: Carrier) -> String {
    let mut s = String::with_capacity(22);
    match carrier {
        Carrier::Usps => {
            s.push_str("94001");
            rng.digits(&mut s, 16);
            let c = usps_check(s.as_bytes());
            s.push(char::from(b'0' + c));
        }
        Carrier::Ups => {
            s.push_str("1Z");
            s.extend(ups_account(seed).iter().map(|&b| char::from(b)));
            s.push_str(rng.pick::<&str>(&["03", "03", "03", "01", "02", "12"]));
            rng.digits(&mut s, 7);
            let c = ups_check(&s.as_bytes()[2..]);
            s.push(char::from(b'0' + c));
        }
        Carrier::FedEx => {
            s.push(char::from(b'1' + rng.below(9) as u8));
            rng.digits(&mut s, 10);
            let c = fedex_check(s.as_bytes());
            s.push(char::from(b'0' + c));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;

    #[test]
    fn published_examples_check() {
        // UPS's widely published sample tracking number.
        let ups = b"1Z999AA10123456784";
        assert_eq!(ups_check(&ups[2..17]), ups[17] - b'0');
        // FedEx's published 12-digit example.
        let fedex = b"012345678983";
        assert_eq!(fedex_check(&fedex[..11]), fedex[11] - b'0');
    }

    #[test]
    fn formats() {
        let mut rng = Rng::new(3, 3, Stream::Prescription);
        let usps = tracking_number(&mut rng, 1, Carrier::Usps);
        assert_eq!(usps.len(), 22);
        assert!(usps.starts_with("94") && usps.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(
            usps_check(&usps.as_bytes()[..21]),
            usps.as_bytes()[21] - b'0'
        );
        let ups = tracking_number(&mut rng, 1, Carrier::Ups);
        assert_eq!(ups.len(), 18);
        assert!(
            ups.starts_with("1Z")
                && ups
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        );
        let fedex = tracking_number(&mut rng, 1, Carrier::FedEx);
        assert_eq!(fedex.len(), 12);
        assert!(fedex.bytes().all(|b| b.is_ascii_digit()));
    }
}
