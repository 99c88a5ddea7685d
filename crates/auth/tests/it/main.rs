//! Integration tests of `rxvault-auth`, compiled as one binary: a real vault
//! (SQLite, and PostgreSQL with `RXVAULT_TEST_PG_URL`), real Argon2id, real
//! TOTP checked against `oathtool`, real WebAuthn ceremonies against
//! webauthn-authenticator-rs's software passkey, time from a manual clock.

mod common;

mod admin;
mod break_glass;
mod duties;
mod login;
mod matrix;
mod no_vault;
mod passkeys;
mod sessions;
mod signin_audit;
mod throttle;
