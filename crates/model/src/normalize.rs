//! Normalisation of values before blind indexing.
//!
//! A blind index matches only byte-identical inputs, so values are reduced
//! to a canonical form first: case, punctuation and spacing differences must
//! not stop a pharmacist from finding a patient. Each function returns `None`
//! when nothing indexable is left.

/// Upper-case letters and digits only (`"O'Brien-Smith 2"` → `"OBRIENSMITH2"`).
///
/// Non-ASCII letters are kept (upper-cased), so `"Peña"` and `"PEÑA"` match.
pub fn name_key(value: &str) -> Option<String> {
    let key: String = value
        .chars()
        .flat_map(char::to_uppercase)
        .filter(|c| c.is_alphanumeric())
        .collect();
    (!key.is_empty()).then_some(key)
}

/// Digits of a phone number, without a leading US country code
/// (`"+1 (555) 810-7203"` → `"5558107203"`). Fewer than 7 digits is not a
/// phone number.
pub fn phone_digits(value: &str) -> Option<String> {
    let digits: String = value.chars().filter(char::is_ascii_digit).collect();
    let digits = match digits.strip_prefix('1') {
        Some(rest) if digits.len() == 11 => rest.to_string(),
        _ => digits,
    };
    (digits.len() >= 7).then_some(digits)
}

/// Identifiers (member IDs, Rx numbers, transaction IDs): letters and digits,
/// upper-cased; spaces, dashes and other separators dropped.
pub fn identifier_key(value: &str) -> Option<String> {
    name_key(value)
}

/// A FHIR date or dateTime reduced to its `YYYY-MM-DD` day; `None` for
/// partial dates (`1985`, `1985-03`) and anything that is not a date.
///
/// US-style `MM/DD/YYYY` is accepted too, as people type it.
pub fn day(value: &str) -> Option<String> {
    let value = value.trim();
    if let Some((m, rest)) = value.split_once('/') {
        let (d, y) = rest.split_once('/')?;
        let (y, m, d) = (
            y.parse::<u16>().ok()?,
            m.parse::<u8>().ok()?,
            d.parse::<u8>().ok()?,
        );
        return valid_day(y, m, d);
    }
    let head = value.get(..10)?;
    let bytes = head.as_bytes();
    if bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let y = head[..4].parse::<u16>().ok()?;
    let m = head[5..7].parse::<u8>().ok()?;
    let d = head[8..10].parse::<u8>().ok()?;
    if value.len() > 10 && !value[10..].starts_with('T') {
        return None;
    }
    valid_day(y, m, d)
}

fn valid_day(y: u16, m: u8, d: u8) -> Option<String> {
    let month = time::Month::try_from(m).ok()?;
    time::Date::from_calendar_date(i32::from(y), month, d).ok()?;
    Some(format!("{y:04}-{m:02}-{d:02}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        assert_eq!(name_key(" o'Brien-smith ").as_deref(), Some("OBRIENSMITH"));
        assert_eq!(name_key("Peña").as_deref(), name_key("PEÑA").as_deref());
        assert_eq!(name_key(" - "), None);
        assert_eq!(phone_digits("555-810-7203").as_deref(), Some("5558107203"));
        assert_eq!(
            phone_digits("+1 555 810 7203").as_deref(),
            Some("5558107203")
        );
        assert_eq!(phone_digits("12"), None);
        assert_eq!(day("1927-05-21").as_deref(), Some("1927-05-21"));
        assert_eq!(
            day("1989-05-09T20:35:22-04:00").as_deref(),
            Some("1989-05-09")
        );
        assert_eq!(day("05/21/1927").as_deref(), Some("1927-05-21"));
        assert_eq!(day("1927-02-30"), None);
        assert_eq!(day("1927"), None);
        assert_eq!(day("1927-05-21x"), None);
    }

    proptest! {
        #[test]
        fn normalisation_is_idempotent(s in "\\PC*") {
            if let Some(k) = name_key(&s) { prop_assert_eq!(name_key(&k), Some(k.clone())); }
            if let Some(p) = phone_digits(&s) { prop_assert_eq!(phone_digits(&p), Some(p.clone())); }
            if let Some(d) = day(&s) { prop_assert_eq!(day(&d), Some(d.clone())); }
        }

        #[test]
        fn us_and_iso_dates_agree(y in 1900u16..2100, m in 1u8..=12, d in 1u8..=28) {
            let iso = format!("{y:04}-{m:02}-{d:02}");
            let us = format!("{m:02}/{d:02}/{y:04}");
            prop_assert_eq!(day(&iso), day(&us));
            prop_assert_eq!(day(&iso), Some(iso));
        }
    }
}
