//! The database schema and its versions.
//!
//! Migrations are numbered and applied in order inside one transaction each;
//! the applied version is `meta.schema_version`. A database whose version is
//! newer than [`CURRENT`] is refused ([`Error::TooNew`](crate::Error)), never
//! written to.
//!
//! DDL is written once, in the subset SQLite and PostgreSQL share; the
//! PostgreSQL backend maps `BLOB` to `BYTEA` and drops `WITHOUT ROWID`.

use rxvault_model::RecordKind;

/// The schema version this build writes.
pub const CURRENT: u32 = 7;

/// The statements of migration `version` (1-based).
pub(crate) fn migration(version: u32) -> Vec<String> {
    match version {
        1 => {
            let mut s = vec![
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)".to_string(),
                "CREATE TABLE data_keys (id BIGINT NOT NULL, kek_version BIGINT NOT NULL, \
                 purpose BIGINT NOT NULL, wrapped BLOB NOT NULL, PRIMARY KEY (id, kek_version))"
                    .to_string(),
                "CREATE TABLE blind_index (index_kind BIGINT NOT NULL, token BLOB NOT NULL, \
                 record_kind BIGINT NOT NULL, rid BLOB NOT NULL, \
                 PRIMARY KEY (index_kind, token, record_kind, rid)) WITHOUT ROWID"
                    .to_string(),
                "CREATE INDEX blind_index_record ON blind_index (record_kind, rid)".to_string(),
            ];
            for kind in RecordKind::ALL {
                let t = kind.table();
                s.push(format!(
                    "CREATE TABLE {t} (rid BLOB PRIMARY KEY, patient_rid BLOB, \
                     dek_id BIGINT NOT NULL, derived BIGINT NOT NULL DEFAULT 0, \
                     envelope BLOB NOT NULL, updated_at BIGINT NOT NULL)"
                ));
                if kind.has_patient() {
                    s.push(format!("CREATE INDEX {t}_patient ON {t} (patient_rid)"));
                }
            }
            s
        }
        // Identity and access (`crate::auth`): accounts, second factors,
        // sessions, API keys, throttling, break-glass grants. Secrets are
        // stored as hashes (passwords: Argon2id PHC strings keyed with the
        // vault's pepper, which is not in the database; tokens, keys,
        // recovery codes: SHA-256) or sealed by the keyring (TOTP secrets,
        // break-glass reasons, with the sealing data key's id beside them).
        2 => [
            "CREATE TABLE auth_accounts (id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE, \
             kind BIGINT NOT NULL, role TEXT NOT NULL, disabled BIGINT NOT NULL DEFAULT 0, \
             password_hash TEXT, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)",
            "CREATE TABLE auth_totp (account_id TEXT PRIMARY KEY, sealed_secret BLOB NOT NULL, \
             dek_id BIGINT NOT NULL, last_step BIGINT, created_at BIGINT NOT NULL)",
            "CREATE TABLE auth_passkeys (credential_id BLOB PRIMARY KEY, account_id TEXT NOT NULL, \
             name TEXT NOT NULL, passkey TEXT NOT NULL, created_at BIGINT NOT NULL, \
             last_used_at BIGINT)",
            "CREATE INDEX auth_passkeys_account ON auth_passkeys (account_id)",
            "CREATE TABLE auth_recovery_codes (account_id TEXT NOT NULL, code_hash BLOB NOT NULL, \
             created_at BIGINT NOT NULL, used_at BIGINT, PRIMARY KEY (account_id, code_hash))",
            "CREATE TABLE auth_ceremonies (id TEXT PRIMARY KEY, account_id TEXT NOT NULL, \
             purpose TEXT NOT NULL, state TEXT NOT NULL, expires_at BIGINT NOT NULL)",
            "CREATE TABLE auth_sessions (id TEXT PRIMARY KEY, token_hash BLOB NOT NULL UNIQUE, \
             account_id TEXT NOT NULL, stage BIGINT NOT NULL, host TEXT, source TEXT NOT NULL, \
             created_at BIGINT NOT NULL, last_seen_at BIGINT NOT NULL, \
             expires_at BIGINT NOT NULL, mfa_at BIGINT, revoked_at BIGINT)",
            "CREATE INDEX auth_sessions_account ON auth_sessions (account_id)",
            "CREATE INDEX auth_sessions_host ON auth_sessions (host)",
            "CREATE TABLE auth_api_keys (id TEXT PRIMARY KEY, key_hash BLOB NOT NULL UNIQUE, \
             account_id TEXT NOT NULL, scopes TEXT NOT NULL, allowed_sources TEXT NOT NULL, \
             created_at BIGINT NOT NULL, expires_at BIGINT, revoked_at BIGINT, \
             last_used_at BIGINT)",
            "CREATE INDEX auth_api_keys_account ON auth_api_keys (account_id)",
            "CREATE TABLE auth_throttle (scope BIGINT NOT NULL, subject BLOB NOT NULL, \
             failures BIGINT NOT NULL, last_failure_at BIGINT NOT NULL, \
             PRIMARY KEY (scope, subject))",
            "CREATE TABLE auth_break_glass (id TEXT PRIMARY KEY, account_id TEXT NOT NULL, \
             session_id TEXT NOT NULL, sealed_reason BLOB NOT NULL, dek_id BIGINT NOT NULL, \
             started_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, ended_at BIGINT, \
             reviewed_at BIGINT, reviewed_by TEXT)",
            "CREATE INDEX auth_break_glass_session ON auth_break_glass (session_id)",
        ]
        .into_iter()
        .map(str::to_string)
        .collect(),
        // Records are sealed in envelope format 2, which binds the patient
        // link, the derived flag and the blind-index entries. No table
        // changes: the vault reseals existing records when it opens
        // (`meta.record_format`). The version exists so that an older
        // rxvault, which writes format 1 envelopes the migrated vault
        // refuses, refuses the database instead (`Error::TooNew`).
        3 => Vec::new(),
        // Separation of duties (`crate::auth`): one-time enrolment codes
        // (SHA-256 only), access requests a second person approves (a role
        // that reads charts or approves, an API key with a chart-reading
        // scope), identity settings (single-operator mode), and keys
        // waiting for approval (existing keys were usable: not pending).
        4 => [
            "CREATE TABLE auth_enrolment_codes (account_id TEXT PRIMARY KEY, \
             code_hash BLOB NOT NULL, issued_by TEXT, created_at BIGINT NOT NULL, \
             expires_at BIGINT NOT NULL)",
            "CREATE TABLE auth_access_requests (id TEXT PRIMARY KEY, kind BIGINT NOT NULL, \
             account_id TEXT NOT NULL, role TEXT, previous_role TEXT, api_key_id TEXT, \
             requested_by TEXT, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, \
             status BIGINT NOT NULL, decided_by TEXT, decided_at BIGINT)",
            "CREATE INDEX auth_access_requests_account ON auth_access_requests (account_id)",
            "CREATE INDEX auth_access_requests_status ON auth_access_requests (status)",
            "CREATE TABLE auth_settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "ALTER TABLE auth_api_keys ADD COLUMN pending BIGINT NOT NULL DEFAULT 0",
        ]
        .into_iter()
        .map(str::to_string)
        .collect(),
        // Records are sealed in envelope format 3, split into categories
        // by content (issue 9, item 1). No table changes either: the vault
        // splits existing records again when it opens. An older rxvault
        // would write format 2 envelopes, which the migrated vault refuses,
        // so it must refuse the database (`Error::TooNew`).
        5 => Vec::new(),
        // Detection (`crate::detect`): the engine's sealed state snapshot,
        // alerts (sealed bodies), each sink's delivery outbox, settings
        // (the sealed honeytoken set, the last index alerted on).
        6 => [
            "CREATE TABLE detect_state (id BIGINT PRIMARY KEY, next_idx BIGINT NOT NULL, \
             sealed BLOB NOT NULL, updated_ms BIGINT NOT NULL)",
            "CREATE TABLE detect_settings (name TEXT PRIMARY KEY, value BLOB NOT NULL)",
            "CREATE TABLE detect_alerts (id TEXT PRIMARY KEY, grp BLOB NOT NULL, \
             status TEXT NOT NULL, severity TEXT NOT NULL, rule TEXT NOT NULL, \
             first_idx BIGINT NOT NULL, last_idx BIGINT NOT NULL, first_ms BIGINT NOT NULL, \
             last_ms BIGINT NOT NULL, findings BIGINT NOT NULL, sealed BLOB NOT NULL, \
             updated_ms BIGINT NOT NULL)",
            "CREATE INDEX detect_alerts_group ON detect_alerts (grp, last_ms)",
            "CREATE INDEX detect_alerts_first ON detect_alerts (first_ms)",
            "CREATE TABLE detect_outbox (sink TEXT NOT NULL, alert_id TEXT NOT NULL, \
             version BIGINT NOT NULL, attempts BIGINT NOT NULL, next_ms BIGINT NOT NULL, \
             last_error TEXT, delivered_ms BIGINT, PRIMARY KEY (sink, alert_id, version))",
        ]
        .into_iter()
        .map(str::to_string)
        .collect(),
        // Sealed documents (`crate::auth`, [`AuthStore::sealed_document`]):
        // values a capability crate seals with the vault's keys and keeps in
        // the vault's database, such as breach incidents (issue 13). The
        // store sees a namespace, an id, a revision (compare-and-swap
        // updates), the sealing data key's id and ciphertext.
        //
        // [`AuthStore::sealed_document`]: crate::auth::AuthStore::sealed_document
        7 => vec![
            "CREATE TABLE sealed_documents (namespace TEXT NOT NULL, id TEXT NOT NULL, \
             revision BIGINT NOT NULL, dek_id BIGINT NOT NULL, sealed BLOB NOT NULL, \
             created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, \
             PRIMARY KEY (namespace, id))"
                .to_string(),
        ],
        _ => Vec::new(),
    }
}
