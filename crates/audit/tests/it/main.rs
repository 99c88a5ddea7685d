//! rxvault-audit's integration tests, compiled as one binary.

mod common;
mod export;
mod kat;
mod log;
mod properties;
mod stream;
mod tamper;
