//! `rxvault user ...` and `rxvault session ...`: accounts, roles, second
//! factors, service accounts and their API keys, sessions. A thin layer
//! over `rxvault-auth`'s key-holder administration: whoever can open the
//! vault with its key on this machine administers it.
//!
//! Every command works without a terminal for scripts and tests: passwords
//! come from `--password-file`, and secrets shown once (TOTP secret,
//! recovery codes, API keys) can go to files instead of the screen
//! (`--totp-secret-out`, `--recovery-codes-out`, `--key-out`), written with
//! mode 0600 and never over an existing file.

use crate::VaultArgs;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use rxvault_auth::cidr::Cidr;
use rxvault_auth::{Auth, AuthConfig, HostId, Role, Scope, SessionId, TotpEnrolment};
use rxvault_crypto::Password;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// `rxvault user ...`
#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a person (with a role) or a service account (--service).
    Add(AddArgs),
    /// List accounts, their roles, second factors and lock state.
    List {
        #[command(flatten)]
        vault: VaultArgs,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Disable an account and end its sessions at once.
    Disable(NameArgs),
    /// Enable a disabled account.
    Enable(NameArgs),
    /// Change a person's role (effective on their next request).
    Role {
        #[command(flatten)]
        vault: VaultArgs,
        /// The login name.
        username: String,
        /// pharmacist, technician, shipping-clerk, billing, privacy-officer or administrator.
        role: String,
    },
    /// Remove every second factor of a person and end their sessions; they
    /// enrol again at next login, or now with --enrol-totp.
    ResetMfa {
        #[command(flatten)]
        vault: VaultArgs,
        /// The login name.
        username: String,
        #[command(flatten)]
        totp: TotpArgs,
    },
    /// Clear a login name's failed attempts after a lockout.
    Unlock(NameArgs),
    /// Set a person's password and end their sessions.
    Password {
        #[command(flatten)]
        vault: VaultArgs,
        /// The login name.
        username: String,
        /// Read the new password from this file (else asked on the terminal).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Issue an API key for a service account (shown once).
    IssueKey {
        #[command(flatten)]
        vault: VaultArgs,
        /// The service account.
        service: String,
        /// A scope (repeatable): patients.read, patients.write, prescriptions.read,
        /// prescriptions.write, fills.read, fills.write, shipping.read, sessions.revoke.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Accept the key only from this address or CIDR block (repeatable; default: any).
        #[arg(long = "allow")]
        allow: Vec<String>,
        /// The key stops working after this many days.
        #[arg(long)]
        expires_days: Option<u64>,
        /// Write the key to this new file (mode 0600) instead of printing it.
        #[arg(long)]
        key_out: Option<PathBuf>,
    },
    /// List a service account's API keys (ids and metadata, never the keys).
    Keys(NameArgs),
    /// Revoke an API key by id.
    RevokeKey {
        #[command(flatten)]
        vault: VaultArgs,
        /// The key's id (from `user keys`).
        id: String,
    },
}

/// Flags of `user add`.
#[derive(Args, Debug)]
pub struct AddArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// The login name (3 to 64 of a-z 0-9 . _ - @).
    username: String,
    /// The role of a person.
    #[arg(long, required_unless_present = "service", conflicts_with = "service")]
    role: Option<String>,
    /// Create a service account (API keys only, no interactive login).
    #[arg(long)]
    service: bool,
    /// Read the initial password from this file (else asked on the terminal).
    #[arg(long, conflicts_with = "service")]
    password_file: Option<PathBuf>,
    /// Do not enrol a TOTP authenticator now: the person enrols a second
    /// factor (TOTP or passkey) at first login.
    #[arg(long, conflicts_with_all = ["service", "totp_secret_out"])]
    no_totp: bool,
    /// Write the TOTP secret (base32) to this new file instead of showing
    /// the QR code and URI.
    #[arg(long, conflicts_with = "service")]
    totp_secret_out: Option<PathBuf>,
    /// Write the recovery codes to this new file instead of printing them.
    #[arg(long, conflicts_with = "service")]
    recovery_codes_out: Option<PathBuf>,
}

/// A vault and an account name.
#[derive(Args, Debug)]
pub struct NameArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// The login or service name.
    username: String,
}

/// TOTP enrolment flags of `user reset-mfa`.
#[derive(Args, Debug)]
pub struct TotpArgs {
    /// Enrol a new TOTP authenticator now (shown as a QR code).
    #[arg(long)]
    enrol_totp: bool,
    /// With --enrol-totp: write the secret to this new file instead.
    #[arg(long, requires = "enrol_totp")]
    totp_secret_out: Option<PathBuf>,
    /// With --enrol-totp: write new recovery codes to this new file instead of printing them.
    #[arg(long, requires = "enrol_totp")]
    recovery_codes_out: Option<PathBuf>,
}

/// `rxvault session ...`
#[derive(Subcommand, Debug)]
pub enum SessionCommand {
    /// List sessions (live ones unless --all).
    List {
        #[command(flatten)]
        vault: VaultArgs,
        /// Only this person's.
        #[arg(long)]
        user: Option<String>,
        /// Include expired and revoked sessions.
        #[arg(long)]
        all: bool,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Revoke sessions at once: one, all of a person's, or all from a host.
    Revoke {
        #[command(flatten)]
        vault: VaultArgs,
        /// A session id (from `session list`).
        #[arg(long, required_unless_present_any = ["user", "host"], conflicts_with_all = ["user", "host"])]
        id: Option<String>,
        /// Every session of this person.
        #[arg(long, conflicts_with = "host")]
        user: Option<String>,
        /// Every session opened from this host or agent id.
        #[arg(long)]
        host: Option<String>,
    },
}

fn open_auth(args: &VaultArgs) -> Result<Auth> {
    auth_of(Arc::new(crate::open(args)?))
}

/// Identity and access over `vault`'s keys and identity store.
fn auth_of(vault: Arc<rxvault_vault::Vault>) -> Result<Auth> {
    Ok(Auth::new(
        vault.clone(),
        vault.auth_store()?,
        vault.clone(),
        vault.clock().clone(),
        AuthConfig::default(),
    )?)
}

/// A password from a file (one trailing newline is not part of it) or,
/// on a terminal, typed twice.
fn read_password(file: Option<&Path>) -> Result<Password> {
    if let Some(f) = file {
        let mut text =
            std::fs::read_to_string(f).with_context(|| format!("password file {}", f.display()))?;
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        return Ok(Password::new(text));
    }
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to ask for the password: pass --password-file FILE");
    }
    let first = rpassword::prompt_password("password: ").context("reading the password")?;
    let second = rpassword::prompt_password("again: ").context("reading the password")?;
    if first != second {
        bail!("the passwords differ");
    }
    Ok(Password::new(first))
}

/// Writes a secret to a new file readable by its owner only.
fn write_secret(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

fn show_totp(enrolment: &TotpEnrolment, out: Option<&Path>) -> Result<()> {
    match out {
        Some(path) => {
            write_secret(path, &format!("{}\n", enrolment.secret_base32().as_str()))?;
            outln!("TOTP secret written to {} (mode 0600)", path.display());
        }
        None => {
            outln!("Scan this QR code with an authenticator app (or enter the secret by hand):\n");
            outln!("{}", enrolment.qr_terminal()?);
            outln!("{}", enrolment.uri());
            outln!("secret: {}", enrolment.secret_base32().as_str());
        }
    }
    Ok(())
}

fn show_codes(codes: &rxvault_auth::RecoveryCodes, out: Option<&Path>) -> Result<()> {
    let text: String = codes.codes().iter().map(|c| format!("{c}\n")).collect();
    match out {
        Some(path) => {
            write_secret(path, &text)?;
            outln!("recovery codes written to {} (mode 0600)", path.display());
        }
        None => {
            outln!("\nRecovery codes (each works once; keep them apart from the phone):");
            out!("{text}");
        }
    }
    Ok(())
}

fn rfc3339(t: rxvault_model::Timestamp) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Runs `rxvault user ...`.
pub fn run_user(command: UserCommand) -> Result<ExitCode> {
    match command {
        UserCommand::Add(a) => {
            let auth = open_auth(&a.vault)?;
            let admin = auth.key_holder();
            if a.service {
                let info = admin.create_service_account(&a.username)?;
                outln!(
                    "created service account {} ({}); issue keys with `rxvault user issue-key`",
                    info.username,
                    info.id
                );
                return Ok(ExitCode::SUCCESS);
            }
            let role = a.role.as_deref().unwrap_or_default();
            let password = read_password(a.password_file.as_deref())?;
            // Audited by rxvault-auth with its real outcome (an unknown
            // role or a taken name as denied).
            let info = admin.create_user_named(&a.username, role, &password)?;
            outln!("created {} ({}) as {role}", info.username, info.id);
            if a.no_totp {
                outln!(
                    "no second factor yet: {} must enrol one (TOTP or passkey) at first login",
                    info.username
                );
            } else {
                let enrolment = admin.enrol_totp(&info.username)?;
                show_totp(&enrolment, a.totp_secret_out.as_deref())?;
                let codes = admin.issue_recovery_codes(&info.username)?;
                show_codes(&codes, a.recovery_codes_out.as_deref())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::List { vault, json } => {
            let auth = open_auth(&vault)?;
            for u in auth.key_holder().users()? {
                let role = u.role.map_or("service", Role::name);
                if json {
                    outln!(
                        "{}",
                        serde_json::json!({
                            "id": u.id.as_str(),
                            "username": u.username,
                            "role": role,
                            "disabled": u.disabled,
                            "locked": u.locked,
                            "totp": u.totp,
                            "passkeys": u.passkeys,
                            "recovery_codes": u.recovery_codes,
                            "created_at": rfc3339(u.created_at),
                        })
                    );
                } else {
                    let mut flags = Vec::new();
                    if u.disabled {
                        flags.push("DISABLED".to_string());
                    }
                    if u.locked {
                        flags.push("LOCKED".to_string());
                    }
                    if u.role.is_some() {
                        let mut f = Vec::new();
                        if u.totp {
                            f.push("totp".to_string());
                        }
                        if u.passkeys > 0 {
                            f.push(format!("{} passkeys", u.passkeys));
                        }
                        f.push(format!("{} recovery codes", u.recovery_codes));
                        flags.push(if u.totp || u.passkeys > 0 {
                            f.join(", ")
                        } else {
                            "no second factor yet".into()
                        });
                    }
                    outln!("{:<24} {:<16} {}", u.username, role, flags.join("; "));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::Disable(n) => {
            open_auth(&n.vault)?.key_holder().disable(&n.username)?;
            outln!("{} disabled; its sessions are revoked", n.username);
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::Enable(n) => {
            open_auth(&n.vault)?.key_holder().enable(&n.username)?;
            outln!("{} enabled", n.username);
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::Role {
            vault,
            username,
            role: r,
        } => {
            open_auth(&vault)?
                .key_holder()
                .set_role_named(&username, &r)?;
            outln!("{username} is now {r}");
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::ResetMfa {
            vault,
            username,
            totp,
        } => {
            let auth = open_auth(&vault)?;
            let admin = auth.key_holder();
            admin.reset_mfa(&username)?;
            outln!("second factors of {username} removed; sessions revoked");
            if totp.enrol_totp {
                let enrolment = admin.enrol_totp(&username)?;
                show_totp(&enrolment, totp.totp_secret_out.as_deref())?;
                let codes = admin.issue_recovery_codes(&username)?;
                show_codes(&codes, totp.recovery_codes_out.as_deref())?;
            } else {
                outln!("{username} enrols a new second factor at next login");
            }
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::Unlock(n) => {
            open_auth(&n.vault)?.key_holder().unlock(&n.username)?;
            outln!("{} unlocked", n.username);
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::Password {
            vault,
            username,
            password_file,
        } => {
            let password = read_password(password_file.as_deref())?;
            open_auth(&vault)?
                .key_holder()
                .set_password(&username, &password)?;
            outln!("password of {username} changed; sessions revoked");
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::IssueKey {
            vault,
            service,
            scopes,
            allow,
            expires_days,
            key_out,
        } => {
            let scopes = scopes
                .iter()
                .map(|s| {
                    Scope::from_name(s).with_context(|| {
                        format!(
                            "unknown scope {s:?}: one of {}",
                            Scope::ALL.map(|s| s.name()).join(", ")
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let allow = allow
                .iter()
                .map(|a| a.parse::<Cidr>())
                .collect::<Result<Vec<_>, _>>()?;
            let auth = open_auth(&vault)?;
            let issued = auth.key_holder().issue_api_key(
                &service,
                &scopes,
                &allow,
                expires_days.map(|d| Duration::from_secs(d.saturating_mul(86_400))),
            )?;
            match key_out {
                Some(path) => {
                    write_secret(&path, &format!("{}\n", issued.key.expose()))?;
                    outln!(
                        "API key {} written to {} (mode 0600)",
                        issued.id,
                        path.display()
                    );
                }
                None => outln!(
                    "API key {} (shown once; only its hash is kept):\n{}",
                    issued.id,
                    issued.key.expose()
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::Keys(n) => {
            let auth = open_auth(&n.vault)?;
            for k in auth.key_holder().api_keys(&n.username)? {
                let scopes: Vec<&str> = k.scopes.iter().map(|s| s.name()).collect();
                let allow: Vec<String> =
                    k.allowed_sources.iter().map(ToString::to_string).collect();
                outln!(
                    "{}  {}  allow: {}  expires: {}  {}",
                    k.id,
                    scopes.join(","),
                    if allow.is_empty() {
                        "any".to_string()
                    } else {
                        allow.join(",")
                    },
                    k.expires_at.map_or("never".into(), rfc3339),
                    if k.revoked_at.is_some() {
                        "REVOKED"
                    } else {
                        ""
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::RevokeKey { vault, id } => {
            open_auth(&vault)?.key_holder().revoke_api_key(&id)?;
            outln!("API key {id} revoked");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs `rxvault session ...`.
pub fn run_session(command: SessionCommand) -> Result<ExitCode> {
    match command {
        SessionCommand::List {
            vault,
            user,
            all,
            json,
        } => {
            let auth = open_auth(&vault)?;
            let admin = auth.key_holder();
            let names: std::collections::HashMap<String, String> = admin
                .users()?
                .into_iter()
                .map(|u| (u.id.as_str().to_string(), u.username))
                .collect();
            let sessions = admin.sessions(user.as_deref(), all)?;
            for s in &sessions {
                let who = names.get(s.user.as_str()).map_or("?", String::as_str);
                let state = if s.revoked_at.is_some() {
                    "revoked"
                } else if s.authenticated {
                    "active"
                } else {
                    "pending"
                };
                if json {
                    outln!(
                        "{}",
                        serde_json::json!({
                            "id": s.id.as_str(),
                            "user": who,
                            "state": state,
                            "host": s.host,
                            "source": s.source,
                            "created_at": rfc3339(s.created_at),
                            "last_seen_at": rfc3339(s.last_seen_at),
                            "expires_at": rfc3339(s.expires_at),
                        })
                    );
                } else {
                    outln!(
                        "{}  {:<20} {:<8} {:<16} {:<15} since {}  expires {}",
                        s.id,
                        who,
                        state,
                        s.host.as_deref().unwrap_or("-"),
                        s.source,
                        rfc3339(s.created_at),
                        rfc3339(s.expires_at)
                    );
                }
            }
            if !json {
                eprintln!("{} session(s)", sessions.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        SessionCommand::Revoke {
            vault,
            id,
            user,
            host,
        } => {
            let auth = open_auth(&vault)?;
            let admin = auth.key_holder();
            let n = match (id, user, host) {
                (Some(id), None, None) => admin.revoke_session(&SessionId::new(&id))?,
                (None, Some(u), None) => admin.revoke_user_sessions(&u)?,
                (None, None, Some(h)) => admin.revoke_host_sessions(&HostId::new(&h)?)?,
                _ => bail!("give one of --id, --user or --host"),
            };
            outln!("{n} session(s) revoked");
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keysource::KeyArgs;
    use rxvault_auth::Login;
    use rxvault_crypto::TotpSecret;
    use rxvault_model::{Clock, SystemClock};

    struct Fx {
        dir: tempfile::TempDir,
        args: VaultArgs,
    }

    fn vault() -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let key = dir.path().join("vault.key");
        rxvault_vault::Vault::init(
            &data,
            rxvault_vault::StoreConfig::Sqlite,
            rxvault_vault::keys::InitKey::File(Some(key.clone())),
            Arc::new(SystemClock),
        )
        .unwrap();
        let args = VaultArgs {
            data,
            key: KeyArgs {
                key_file: Some(key),
                passphrase_file: None,
            },
        };
        Fx { dir, args }
    }

    impl Fx {
        fn file(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }
    }

    #[test]
    fn add_writes_secrets_to_private_files_and_the_user_can_log_in() {
        let fx = vault();
        std::fs::write(fx.file("pw"), "violet harbor lantern 42\n").unwrap();
        run_user(UserCommand::Add(AddArgs {
            vault: fx.args.clone(),
            username: "Pat.Smith".into(),
            role: Some("pharmacist".into()),
            service: false,
            password_file: Some(fx.file("pw")),
            no_totp: false,
            totp_secret_out: Some(fx.file("totp")),
            recovery_codes_out: Some(fx.file("codes")),
        }))
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        for f in ["totp", "codes"] {
            let mode = std::fs::metadata(fx.file(f)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        let codes = std::fs::read_to_string(fx.file("codes")).unwrap();
        assert_eq!(codes.lines().count(), 10);
        let secret =
            TotpSecret::from_base32(std::fs::read_to_string(fx.file("totp")).unwrap().trim())
                .unwrap();

        let auth = open_auth(&fx.args).unwrap();
        let here = "127.0.0.1".parse().unwrap();
        let password = Password::new("violet harbor lantern 42".into());
        let Login::SecondFactor(p) = auth
            .login_password("pat.smith", &password, &rxvault_auth::Client::at(here))
            .unwrap()
        else {
            panic!("TOTP was enrolled")
        };
        let code = secret.code_at(SystemClock.now().unix_timestamp());
        let session = auth.verify_totp(p, &code).unwrap();
        assert_eq!(session.principal().role(), Some(Role::Pharmacist));

        // Files are never overwritten.
        let again = run_user(UserCommand::Add(AddArgs {
            vault: fx.args.clone(),
            username: "other".into(),
            role: Some("billing".into()),
            service: false,
            password_file: Some(fx.file("pw")),
            no_totp: false,
            totp_secret_out: Some(fx.file("totp")),
            recovery_codes_out: None,
        }));
        assert!(again.is_err());

        // Sessions can be listed and revoked from the command line.
        run_session(SessionCommand::List {
            vault: fx.args.clone(),
            user: None,
            all: false,
            json: true,
        })
        .unwrap();
        run_session(SessionCommand::Revoke {
            vault: fx.args.clone(),
            id: None,
            user: Some("pat.smith".into()),
            host: None,
        })
        .unwrap();
        assert!(auth.authenticate(session.token(), here, None).is_err());
    }

    #[test]
    fn roles_disable_reset_and_keys() {
        let fx = vault();
        std::fs::write(fx.file("pw"), "violet harbor lantern 42").unwrap();
        let add = |name: &str, role: Option<&str>, service: bool| {
            run_user(UserCommand::Add(AddArgs {
                vault: fx.args.clone(),
                username: name.into(),
                role: role.map(str::to_string),
                service,
                password_file: (!service).then(|| fx.file("pw")),
                no_totp: true,
                totp_secret_out: None,
                recovery_codes_out: None,
            }))
        };
        add("tess", Some("technician"), false).unwrap();
        add("pms", None, true).unwrap();
        assert!(add("bad", Some("superuser"), false).is_err());
        run_user(UserCommand::Role {
            vault: fx.args.clone(),
            username: "tess".into(),
            role: "billing".into(),
        })
        .unwrap();
        run_user(UserCommand::Disable(NameArgs {
            vault: fx.args.clone(),
            username: "tess".into(),
        }))
        .unwrap();
        run_user(UserCommand::IssueKey {
            vault: fx.args.clone(),
            service: "pms".into(),
            scopes: vec!["fills.read".into()],
            allow: vec!["10.0.0.0/8".into()],
            expires_days: Some(30),
            key_out: Some(fx.file("key")),
        })
        .unwrap();
        assert!(
            run_user(UserCommand::IssueKey {
                vault: fx.args.clone(),
                service: "pms".into(),
                scopes: vec!["everything".into()],
                allow: vec![],
                expires_days: None,
                key_out: None,
            })
            .is_err()
        );
        let auth = open_auth(&fx.args).unwrap();
        let users = auth.key_holder().users().unwrap();
        let tess = users.iter().find(|u| u.username == "tess").unwrap();
        assert_eq!(tess.role, Some(Role::Billing));
        assert!(tess.disabled && !tess.totp);
        let key = std::fs::read_to_string(fx.file("key")).unwrap();
        let key = rxvault_crypto::Token::from_presented(key.trim());
        let p = auth
            .authenticate_api_key(&key, "10.1.2.3".parse().unwrap())
            .unwrap();
        assert_eq!(p.scopes(), &[Scope::FillsRead]);
        assert!(
            auth.authenticate_api_key(&key, "192.0.2.1".parse().unwrap())
                .is_err()
        );
    }
}
