//! Signed checkpoints: a tree size and root hash, signed with the vault's
//! Ed25519 key, in the C2SP `tlog-checkpoint` / `signed-note` text format.
//!
//! ```text
//! rxvault/audit/<vault id>                 origin
//! 1048576                                  tree size
//! 3q2+7w...base64 root hash...=            root hash (RFC 6962)
//! time 1764371234567                       extension: when (Unix ms)
//! key rxvault/audit/<id>+1a2b3c4d+AXk...=  extension: the verifier key
//!                                          blank line
//! — rxvault/audit/<id> Gqz...=             signature: key id ‖ Ed25519
//! ```
//!
//! The signature covers the text above the blank line (origin, size, root,
//! time and key), byte for byte. Key ids and verifier keys follow C2SP
//! signed-note: key id = `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)[..4]`,
//! verifier key = `name+hex(key id)+base64(0x01 ‖ public key)`.
//!
//! **The embedded key is not a trust anchor by itself**: a checkpoint read
//! from the log proves something only when it verifies with a key obtained
//! elsewhere (the vault's keyring, or a checkpoint kept outside as a
//! witness copy). See [`crate::verify`].

use crate::Result;
use crate::merkle::Hash;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rxvault_crypto::{Secrets, sha256, verify_signature};
use std::fmt;

/// The signed-note signature type of Ed25519.
const ED25519: u8 = 0x01;

/// The em dash and space that start a signature line.
const SIG_PREFIX: &str = "\u{2014} ";

/// Why a checkpoint text is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed checkpoint: {0}")]
pub struct CheckpointError(pub String);

fn bad(what: impl Into<String>) -> CheckpointError {
    CheckpointError(what.into())
}

/// A signed-note verifier key: a name and an Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VerifierKey {
    /// The key's name (the log's origin).
    pub name: String,
    /// The Ed25519 public key.
    pub key: [u8; 32],
}

impl VerifierKey {
    /// The 4-byte key id.
    pub fn key_id(&self) -> [u8; 4] {
        let h = sha256(&[self.name.as_bytes(), b"\n", &[ED25519], &self.key]);
        [h[0], h[1], h[2], h[3]]
    }

    /// Parses `name+hexid+base64key`.
    pub fn parse(s: &str) -> Result<Self, CheckpointError> {
        let mut parts = s.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("a verifier key is name+keyid+key"));
        };
        let raw = B64
            .decode(key)
            .map_err(|_| bad("the verifier key is not base64"))?;
        if raw.len() != 33 || raw[0] != ED25519 {
            return Err(bad("the verifier key is not an Ed25519 key"));
        }
        let vk = VerifierKey {
            name: name.to_string(),
            key: raw[1..].try_into().expect("32 bytes"),
        };
        valid_name(&vk.name)?;
        if hex::encode(vk.key_id()) != id {
            return Err(bad("the verifier key's id does not match its key"));
        }
        Ok(vk)
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = vec![ED25519];
        raw.extend_from_slice(&self.key);
        write!(
            f,
            "{}+{}+{}",
            self.name,
            hex::encode(self.key_id()),
            B64.encode(raw)
        )
    }
}

fn valid_name(name: &str) -> Result<(), CheckpointError> {
    if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '+') {
        return Err(bad("a key name is non-empty, without spaces or '+'"));
    }
    Ok(())
}

/// What a checkpoint commits to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin (`rxvault/audit/<vault id>`).
    pub origin: String,
    /// How many entries.
    pub size: u64,
    /// The root hash of those entries.
    pub root: Hash,
    /// When it was signed (Unix ms).
    pub time_ms: i64,
}

/// One signature line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The signer's key name.
    pub name: String,
    /// Its key id.
    pub key_id: [u8; 4],
    /// The signature bytes.
    pub signature: Vec<u8>,
}

/// A checkpoint with its signed-note text and signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// What it commits to.
    pub checkpoint: Checkpoint,
    /// The verifier key the note names (not trusted by itself).
    pub key: VerifierKey,
    /// The signature lines.
    pub signatures: Vec<NoteSignature>,
    text: String,
    note: String,
}

/// The origin of a vault's audit log.
pub fn origin_for(vault_id: &str) -> String {
    format!("rxvault/audit/{vault_id}")
}

fn body_text(c: &Checkpoint, key: &VerifierKey) -> String {
    format!(
        "{}\n{}\n{}\ntime {}\nkey {}\n",
        c.origin,
        c.size,
        B64.encode(c.root),
        c.time_ms,
        key
    )
}

impl Checkpoint {
    /// Signs this checkpoint with the vault's key (the keyring must hold
    /// the signing key).
    pub fn sign(self, keyring: &Secrets) -> Result<SignedCheckpoint> {
        valid_name(&self.origin)?;
        if self.origin.contains('\n') {
            return Err(bad("the origin is one line").into());
        }
        let public = keyring.signing_public_key().ok_or(crate::Error::NoSigner)?;
        let key = VerifierKey {
            name: self.origin.clone(),
            key: public,
        };
        let text = body_text(&self, &key);
        let signature = keyring.sign(text.as_bytes())?;
        let mut blob = key.key_id().to_vec();
        blob.extend_from_slice(&signature);
        let note = format!("{text}\n{SIG_PREFIX}{} {}\n", key.name, B64.encode(&blob));
        Ok(SignedCheckpoint {
            signatures: vec![NoteSignature {
                name: key.name.clone(),
                key_id: key.key_id(),
                signature: signature.to_vec(),
            }],
            checkpoint: self,
            key,
            text,
            note,
        })
    }
}

impl SignedCheckpoint {
    /// Parses a signed note (strictly: the text must be exactly what this
    /// module writes, the signatures well formed). Signatures are not
    /// checked here.
    pub fn parse(note: &str) -> Result<Self, CheckpointError> {
        if note.len() > 64 * 1024 {
            return Err(bad("longer than 64 KiB"));
        }
        let Some((text, sigs)) = note.split_once("\n\n") else {
            return Err(bad("no blank line before the signatures"));
        };
        let text = format!("{text}\n");
        let lines: Vec<&str> = text.lines().collect();
        let [origin, size, root, time, key] = lines[..] else {
            return Err(bad("expected origin, size, root hash, time and key lines"));
        };
        valid_name(origin)?;
        if size.is_empty()
            || !size.bytes().all(|b| b.is_ascii_digit())
            || (size.len() > 1 && size.starts_with('0'))
        {
            return Err(bad("the tree size is not a decimal number"));
        }
        let size: u64 = size
            .parse()
            .map_err(|_| bad("the tree size is too large"))?;
        let root: Hash = B64
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| bad("the root hash is not 32 base64 bytes"))?;
        let time_ms: i64 = time
            .strip_prefix("time ")
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| bad("no time line"))?;
        let key = VerifierKey::parse(key.strip_prefix("key ").ok_or_else(|| bad("no key line"))?)?;
        let checkpoint = Checkpoint {
            origin: origin.to_string(),
            size,
            root,
            time_ms,
        };
        if body_text(&checkpoint, &key) != text {
            return Err(bad("not in canonical form"));
        }
        if !sigs.ends_with('\n') {
            return Err(bad("the signature lines do not end with a newline"));
        }
        let mut signatures = Vec::new();
        for line in sigs.lines() {
            let rest = line
                .strip_prefix(SIG_PREFIX)
                .ok_or_else(|| bad("a signature line starts with an em dash"))?;
            let (name, blob) = rest
                .split_once(' ')
                .ok_or_else(|| bad("a signature line is name and signature"))?;
            valid_name(name)?;
            let blob = B64
                .decode(blob)
                .map_err(|_| bad("a signature is not base64"))?;
            if blob.len() < 5 {
                return Err(bad("a signature is too short"));
            }
            signatures.push(NoteSignature {
                name: name.to_string(),
                key_id: blob[..4].try_into().expect("4 bytes"),
                signature: blob[4..].to_vec(),
            });
        }
        if signatures.is_empty() {
            return Err(bad("no signature"));
        }
        Ok(Self {
            checkpoint,
            key,
            signatures,
            text,
            note: note.to_string(),
        })
    }

    /// The full note (text, blank line, signatures).
    pub fn note(&self) -> &str {
        &self.note
    }

    /// The signed text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether a signature by `public` (under any name the note's
    /// signatures use) verifies over the text.
    pub fn signed_by(&self, public: &[u8; 32]) -> bool {
        self.signatures.iter().any(|s| {
            let vk = VerifierKey {
                name: s.name.clone(),
                key: *public,
            };
            vk.key_id() == s.key_id && verify_signature(public, self.text.as_bytes(), &s.signature)
        })
    }

    /// Whether the note is signed by the key it names (self-consistency
    /// only; says nothing about who signed it).
    pub fn self_signed(&self) -> bool {
        self.signed_by(&self.key.key)
    }
}

impl std::str::FromStr for SignedCheckpoint {
    type Err = CheckpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rxvault_crypto::SecretKey;
    use rxvault_crypto::kek::LocalKek;

    fn keyring() -> Secrets {
        let (ring, _) = Secrets::create(
            "v1",
            Box::new(LocalKek::new(1, SecretKey::generate().unwrap())),
        )
        .unwrap();
        let s = ring.prepare_signer().unwrap();
        ring.install_signer(s);
        ring
    }

    fn cp() -> Checkpoint {
        Checkpoint {
            origin: origin_for("v1"),
            size: 42,
            root: [7; 32],
            time_ms: 1_764_000_000_000,
        }
    }

    #[test]
    fn sign_parse_verify_round_trip() {
        let ring = keyring();
        let signed = cp().sign(&ring).unwrap();
        let parsed = SignedCheckpoint::parse(signed.note()).unwrap();
        assert_eq!(parsed, signed);
        assert!(parsed.self_signed());
        assert!(parsed.signed_by(&ring.signing_public_key().unwrap()));
        assert!(!parsed.signed_by(&keyring().signing_public_key().unwrap()));
        let vk = VerifierKey::parse(&parsed.key.to_string()).unwrap();
        assert_eq!(vk, parsed.key);
    }

    #[test]
    fn any_change_to_the_text_breaks_the_signature_or_the_parse() {
        let ring = keyring();
        let public = ring.signing_public_key().unwrap();
        let note = cp().sign(&ring).unwrap().note().to_string();
        let text_len = note.find("\n\n").unwrap() + 1;
        for i in 0..text_len {
            let mut bytes = note.clone().into_bytes();
            bytes[i] ^= 0x01;
            let Ok(s) = String::from_utf8(bytes) else {
                continue;
            };
            if let Ok(p) = SignedCheckpoint::parse(&s) {
                assert!(!p.signed_by(&public), "edit at byte {i} still verifies");
            }
        }
    }

    #[test]
    fn malformed_notes_are_refused() {
        let ring = keyring();
        let note = cp().sign(&ring).unwrap().note().to_string();
        for bad in [
            "",
            "x\n",
            &note.replace("\n42\n", "\n042\n"),
            &note.replace("\n\n", "\n"),
            &note.replace("time ", "tyme "),
            &note[..note.len() - 1],
            &note.replace('\u{2014}', "-"),
        ] {
            assert!(SignedCheckpoint::parse(bad).is_err(), "{bad:?}");
        }
    }
}
