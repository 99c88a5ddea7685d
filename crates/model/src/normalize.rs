//! Normalisation of values before blind indexing.
//!
//! A blind index matches only byte-identical inputs, so values are reduced
//! to a canonical form first: case, punctuation and spacing differences must
//! not stop a pharmacist from finding a patient. Each function returns `None`
//! when nothing indexable is left.

/// Upper-case letters and digits only, accents folded
/// (`"O'Brien-Smith 2"` → `"OBRIENSMITH2"`, `"González"` → `"GONZALEZ"`).
///
/// Clerks type names without accents, and macOS sends them decomposed
/// (NFD): the value is decomposed (NFKD, which also folds compatibility
/// forms such as ligatures and full-width letters), combining marks are
/// dropped, and the letters that carry their stroke in the letter itself
/// and do not decompose are folded by hand (Ø → O, Ł → L, Đ → D, Ħ → H,
/// Æ → AE, Œ → OE, Þ → TH; ß upper-cases to SS). Other scripts are kept,
/// upper-cased where they have case. The cost is collisions: names that
/// differ only by accents (Peña and Pena) share an index key, so a search
/// returns both when the birth date matches too.
pub fn name_key(value: &str) -> Option<String> {
    use unicode_normalization::UnicodeNormalization;
    use unicode_normalization::char::is_combining_mark;
    // Upper-casing can make a letter that decomposes again (ǆ → Ǆ → DŽ):
    // decompose, case, decompose, so a key is its own key.
    let upper: String = value
        .nfkd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_uppercase)
        .collect();
    let mut key = String::with_capacity(upper.len());
    for u in upper.nfkd().filter(|c| !is_combining_mark(*c)) {
        match u {
            'Ø' => key.push('O'),
            'Ł' => key.push('L'),
            'Đ' | 'Ð' => key.push('D'),
            'Ħ' => key.push('H'),
            'Æ' => key.push_str("AE"),
            'Œ' => key.push_str("OE"),
            'Þ' => key.push_str("TH"),
            u if u.is_alphanumeric() => key.push(u),
            _ => {}
        }
    }
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
/// No accent folding: an identifier is compared as written.
pub fn identifier_key(value: &str) -> Option<String> {
    let key: String = value
        .chars()
        .flat_map(char::to_uppercase)
        .filter(|c| c.is_alphanumeric())
        .collect();
    (!key.is_empty()).then_some(key)
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
        // Accents fold, composed (NFC) or decomposed (NFD, as macOS sends).
        for typed in ["González", "Gonza\u{301}lez", "GONZALEZ", "gonzalez"] {
            assert_eq!(name_key(typed).as_deref(), Some("GONZALEZ"), "{typed:?}");
        }
        assert_eq!(
            name_key("Søren Łukasz Æbeltoft").as_deref(),
            Some("SORENLUKASZAEBELTOFT")
        );
        assert_eq!(name_key("Straße").as_deref(), Some("STRASSE"));
        assert_eq!(name_key("ﬁnley").as_deref(), Some("FINLEY"));
        assert_eq!(name_key("Nguyễn").as_deref(), Some("NGUYEN"));
        assert_eq!(name_key("王").as_deref(), Some("王"));
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
