//! The password policy (NIST SP 800-63B §5.1.1.2, rev. 3 and 4).
//!
//! - **Length:** at least [`MIN_CHARS`] (8) and at most [`MAX_CHARS`] (256)
//!   characters, counted after NFKC normalisation. Rev. 4 asks for 15 when
//!   a password is the only factor; in rxvault it never is (every human
//!   account must pass a second factor before it can do anything), so 8
//!   applies.
//! - **Blocklist:** refused if it is one of the most common passwords seen
//!   in breaches (a bundled list, `data/common-passwords.txt`, see
//!   `data/README.md` for its source and licence), compared
//!   case-insensitively; or if it contains the user name or the product
//!   name; or is one character repeated or a run like `abcdefgh` /
//!   `98765432`.
//! - **No composition rules** (no "one digit, one symbol"), **no periodic
//!   rotation**; any printable Unicode, spaces included.
//!
//! Passwords are NFKC-normalised before checking and hashing, so the same
//! password typed on two keyboards (composed or decomposed accents) is the
//! same password.

use rxvault_crypto::Password;
use std::collections::HashSet;
use std::fmt;
use std::sync::OnceLock;
use unicode_normalization::UnicodeNormalization;

/// Fewest characters a password may have.
pub const MIN_CHARS: usize = 8;
/// Most characters a password may have.
pub const MAX_CHARS: usize = 256;

/// Words no password may contain (case-insensitively).
const CONTEXT_WORDS: [&str; 2] = ["rxvault", "rx vault"];

const COMMON: &str = include_str!("../data/common-passwords.txt");

fn common() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| COMMON.lines().filter(|l| !l.is_empty()).collect())
}

/// How many passwords the bundled blocklist holds.
pub fn blocklist_len() -> usize {
    common().len()
}

/// Why a password was refused. Says which rule, never the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Fewer than [`MIN_CHARS`] characters.
    TooShort,
    /// More than [`MAX_CHARS`] characters.
    TooLong,
    /// On the list of common breached passwords.
    Common,
    /// Contains the user name or the product name.
    ContextWord,
    /// One repeated character, or a straight run of characters.
    Repetitive,
    /// Contains control characters.
    ControlCharacter,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rejection::TooShort => "a password needs at least 8 characters",
            Rejection::TooLong => "a password may have at most 256 characters",
            Rejection::Common => {
                "this password is one of the most common ones in breached password lists; choose another"
            }
            Rejection::ContextWord => "a password may not contain the user name or the product name",
            Rejection::Repetitive => {
                "a password may not be one repeated character or a run like abcdefgh"
            }
            Rejection::ControlCharacter => "a password may not contain control characters",
        })
    }
}

/// The NFKC normal form of a password, as checked and hashed.
pub fn normalize(password: &Password) -> Password {
    Password::new(password.expose().nfkc().collect())
}

/// Checks a new password for `username` (both as entered). Returns the
/// normalised password to hash.
pub fn check(username: &str, password: &Password) -> Result<Password, Rejection> {
    let normalized = normalize(password);
    let text = normalized.expose();
    let chars = normalized.char_count();
    if chars < MIN_CHARS {
        return Err(Rejection::TooShort);
    }
    if chars > MAX_CHARS {
        return Err(Rejection::TooLong);
    }
    if text.chars().any(char::is_control) {
        return Err(Rejection::ControlCharacter);
    }
    let lower = zeroize::Zeroizing::new(text.to_lowercase());
    if common().contains(lower.as_str()) {
        return Err(Rejection::Common);
    }
    let user = username.trim().to_lowercase();
    if (user.chars().count() >= 3 && lower.contains(&user))
        || CONTEXT_WORDS.iter().any(|w| lower.contains(w))
    {
        return Err(Rejection::ContextWord);
    }
    if repetitive(&lower) {
        return Err(Rejection::Repetitive);
    }
    Ok(normalized)
}

/// One character repeated, or every character one code point above (or
/// below) the previous one.
fn repetitive(text: &str) -> bool {
    let cps: Vec<i64> = text.chars().map(|c| i64::from(u32::from(c))).collect();
    let steps: HashSet<i64> = cps.windows(2).map(|w| w[1] - w[0]).collect();
    steps.len() == 1 && steps.iter().all(|d| d.abs() <= 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Password {
        Password::new(s.to_string())
    }

    #[test]
    fn length_limits_count_characters() {
        assert_eq!(check("ann", &p("Zq9!x2")).err(), Some(Rejection::TooShort));
        assert!(
            check("ann", &p("Zq9!x2mé")).is_ok(),
            "8 characters, 9 bytes"
        );
        assert!(check("ann", &p(&"lj3k ".repeat(52)[..256])).is_ok());
        assert_eq!(
            check("ann", &p(&"lj3k ".repeat(52)[..257])).err(),
            Some(Rejection::TooLong)
        );
    }

    #[test]
    fn common_breached_passwords_are_refused_in_any_case() {
        assert!(blocklist_len() > 10_000);
        for bad in [
            "password",
            "PASSWORD",
            "Password1",
            "iloveyou",
            "1qaz2wsx",
            "trustno1",
        ] {
            if bad.chars().count() >= MIN_CHARS {
                assert_eq!(
                    check("ann", &p(bad)).err(),
                    Some(Rejection::Common),
                    "{bad}"
                );
            }
        }
        // Long and unusual is fine: no composition rules.
        assert!(check("ann", &p("correct horse battery staple")).is_ok());
        assert!(check("ann", &p("alllowercaseletters")).is_ok());
        assert!(check("ann", &p("パスワードは長い方がいい")).is_ok());
    }

    #[test]
    fn context_words_and_runs_are_refused() {
        assert_eq!(
            check("pat.smith", &p("Pat.Smith-2026!")).err(),
            Some(Rejection::ContextWord)
        );
        assert_eq!(
            check("ann", &p("my-RxVault-pw")).err(),
            Some(Rejection::ContextWord)
        );
        assert_eq!(
            check("ann", &p("zzzzzzzzzz")).err(),
            Some(Rejection::Repetitive)
        );
        assert_eq!(
            check("ann", &p("lmnopqrstu")).err(),
            Some(Rejection::Repetitive)
        );
        assert!(check("ann", &p("9876543210x")).is_ok());
        assert_eq!(
            check("ann", &p("tab\there!x")).err(),
            Some(Rejection::ControlCharacter)
        );
    }

    #[test]
    fn nfkc_makes_composed_and_decomposed_equal() {
        let composed = p("caf\u{e9} au lait 42");
        let decomposed = p("cafe\u{301} au lait 42");
        assert_eq!(
            check("ann", &composed).unwrap().expose(),
            check("ann", &decomposed).unwrap().expose()
        );
        // Rejections never echo the password.
        assert!(!Rejection::Common.to_string().contains("password1"));
    }
}
