//! `rxvault user ...` and `rxvault session ...`: accounts, roles, second
//! factors, service accounts and their API keys, access requests, sessions.
//! A thin layer over `rxvault-auth`'s key-holder administration: whoever
//! can open the vault with its key on this machine administers it (the
//! local operator, `local` in the audit log). The same functions serve
//! HTTPS, so the same act gives the same audit entry.
//!
//! Separation of duties (`rxvault_auth::duties`): `user add` and `user
//! enrolment-code` print a one-time enrolment code, never a password; the
//! person runs `user redeem` (or `POST /api/v1/enrolment`) to set their own
//! password and enrol TOTP. A role that reads charts or approves, and an
//! API key that reads charts, wait for a second person: `user requests`,
//! `user approve`, `user refuse`. The local operator approves others'
//! requests; their own need an administrator or the privacy officer over
//! HTTPS, except the vault's first administrator and in single-operator
//! mode (`user single-operator on`, a one-person pharmacy).
//!
//! Every command works without a terminal for scripts and tests: passwords
//! and codes come from `--password-file` / `--code-file`, and secrets shown
//! once (enrolment codes, TOTP secret, recovery codes, API keys) can go to
//! files instead of the screen (`--code-out`, `--totp-secret-out`,
//! `--recovery-codes-out`, `--key-out`), written with mode 0600 and never
//! over an existing file.

use crate::VaultArgs;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use rxvault_auth::cidr::Cidr;
use rxvault_auth::{
    AccessRequest, Auth, AuthConfig, Client, EnrolmentCode, HostId, Login, RoleChange, Scope,
    SessionId, TotpEnrolment,
};
use rxvault_crypto::Password;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// `rxvault user ...`
#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a person (with a role; prints their one-time enrolment code)
    /// or a service account (--service).
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
    /// Change a person's role: at once for a lowering or a role that reads
    /// no chart, else a request a second person approves.
    Role {
        #[command(flatten)]
        vault: VaultArgs,
        /// The login name.
        username: String,
        /// pharmacist, technician, shipping-clerk, billing, privacy-officer or administrator.
        role: String,
    },
    /// Remove every second factor of a person and end their sessions; they
    /// enrol a new one at their next login.
    ResetMfa(NameArgs),
    /// Re-enrol a person (forgotten password, lost phone): their password,
    /// second factors and sessions are removed, a role that reads charts
    /// or approves waits for approval again, and a new one-time enrolment
    /// code is printed.
    EnrolmentCode(CodeOutArgs),
    /// Redeem an enrolment code (the person it is for, at this machine):
    /// set your own password, then enrol a TOTP authenticator.
    Redeem(RedeemArgs),
    /// Clear a login name's failed attempts after a lockout.
    Unlock(NameArgs),
    /// Access requests waiting for a second person.
    Requests {
        #[command(flatten)]
        vault: VaultArgs,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Approve an access request (someone else's; your own only in
    /// single-operator mode).
    Approve(RequestArgs),
    /// Refuse an access request (a refused API key is revoked).
    Refuse(RequestArgs),
    /// Show or switch single-operator mode: a one-person pharmacy, where
    /// the local operator may approve their own requests (audited).
    SingleOperator {
        #[command(flatten)]
        vault: VaultArgs,
        /// on or off (omit to show the current mode).
        mode: Option<Switch>,
    },
    /// Issue an API key for a service account (shown once). A key with a
    /// chart-reading scope works once a second person approves it.
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

/// On or off.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// Switch on.
    On,
    /// Switch off.
    Off,
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
    /// Write the enrolment code to this new file (mode 0600) instead of
    /// printing it.
    #[arg(long, conflicts_with = "service")]
    code_out: Option<PathBuf>,
}

/// A vault and an account name.
#[derive(Args, Debug)]
pub struct NameArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// The login or service name.
    username: String,
}

/// A vault, a person, and where their new enrolment code goes.
#[derive(Args, Debug)]
pub struct CodeOutArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// The login name.
    username: String,
    /// Write the enrolment code to this new file (mode 0600) instead of
    /// printing it.
    #[arg(long)]
    code_out: Option<PathBuf>,
}

/// A vault and an access request.
#[derive(Args, Debug)]
pub struct RequestArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// The request's id (from `user requests`).
    id: String,
}

/// Flags of `user redeem`.
#[derive(Args, Debug)]
pub struct RedeemArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// Your login name.
    username: String,
    /// Read the enrolment code from this file (else asked on the terminal).
    #[arg(long)]
    code_file: Option<PathBuf>,
    /// Read your new password from this file (else asked on the terminal).
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// Only set the password: enrol a second factor (TOTP or passkey) at
    /// your first login over HTTPS instead.
    #[arg(long, conflicts_with_all = ["totp_secret_out", "recovery_codes_out"])]
    no_totp: bool,
    /// Write the TOTP secret (base32) to this new file instead of showing
    /// the QR code and URI.
    #[arg(long)]
    totp_secret_out: Option<PathBuf>,
    /// Write the recovery codes to this new file instead of printing them.
    #[arg(long)]
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

/// An enrolment code from a file (trimmed) or, on a terminal, typed
/// (hidden).
fn read_code(file: Option<&Path>) -> Result<String> {
    if let Some(f) = file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("enrolment code file {}", f.display()))?;
        return Ok(text.trim().to_string());
    }
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to ask for the enrolment code: pass --code-file FILE");
    }
    rpassword::prompt_password("enrolment code: ").context("reading the enrolment code")
}

/// Refuses an output file that exists already, before anything is done
/// (a code that could not be written would be lost with its account's
/// state changed).
fn refuse_existing(out: Option<&Path>) -> Result<()> {
    if let Some(path) = out
        && path.exists()
    {
        bail!(
            "{} exists already: secrets are never written over a file",
            path.display()
        );
    }
    Ok(())
}

/// A line typed on standard input (a TOTP code to confirm enrolment).
fn read_line(prompt: &str) -> Result<String> {
    eprint!("{prompt}");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading standard input")?;
    Ok(line.trim().to_string())
}

fn show_enrolment(username: &str, code: &EnrolmentCode, out: Option<&Path>) -> Result<()> {
    let expires = rfc3339(code.expires_at());
    match out {
        Some(path) => {
            write_secret(path, &format!("{}\n", code.code()))?;
            outln!(
                "enrolment code for {username} written to {} (mode 0600); it works once, until {expires}",
                path.display()
            );
        }
        None => outln!(
            "enrolment code for {username} (shown once; works once, until {expires}):\n{}",
            code.code()
        ),
    }
    outln!(
        "{username} redeems it to set their own password and enrol TOTP: `rxvault user redeem {username}` on this machine, or POST /api/v1/enrolment"
    );
    Ok(())
}

fn show_request(r: &AccessRequest) {
    outln!(
        "{} for {} waits for a second person: request {} (asked by {}, lapses {})",
        r.grant,
        r.target,
        r.id,
        r.requested_by,
        rfc3339(r.expires_at)
    );
    outln!(
        "  approve: an administrator or the privacy officer over HTTPS (POST /api/v1/access-requests/{}/approve), or `rxvault user approve {}` for a request someone else made (your own only in single-operator mode)",
        r.id,
        r.id
    );
}

fn request_json(r: &AccessRequest) -> serde_json::Value {
    serde_json::json!({
        "id": r.id,
        "target": r.target,
        "grant": r.grant.to_string(),
        "requested_by": r.requested_by,
        "created_at": rfc3339(r.created_at),
        "expires_at": rfc3339(r.expires_at),
        "status": r.status.name(),
    })
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
            refuse_existing(a.code_out.as_deref())?;
            // Audited by rxvault-auth with its real outcome (an unknown
            // role or a taken name as denied), the request and the code too.
            let new = admin.add_person_named(&a.username, role)?;
            outln!("created {} ({})", new.user.username, new.user.id);
            match &new.role {
                RoleChange::Applied => outln!("role: {role}"),
                RoleChange::Pending(r) => {
                    outln!("no role until the request is approved");
                    show_request(r);
                }
            }
            show_enrolment(&new.user.username, &new.enrolment, a.code_out.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::List { vault, json } => {
            let auth = open_auth(&vault)?;
            for u in auth.key_holder().users()? {
                let role = match (u.service, u.role) {
                    (true, _) => "service",
                    (false, Some(r)) => r.name(),
                    (false, None) => "-",
                };
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
                    if !u.service {
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
            match open_auth(&vault)?
                .key_holder()
                .set_role_named(&username, &r)?
            {
                RoleChange::Applied => outln!("{username} is now {r}"),
                RoleChange::Pending(request) => {
                    outln!("{username}'s role is unchanged until the request is approved");
                    show_request(&request);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::ResetMfa(n) => {
            open_auth(&n.vault)?.key_holder().reset_mfa(&n.username)?;
            outln!(
                "second factors of {} removed; sessions revoked; they enrol a new one at next login",
                n.username
            );
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::EnrolmentCode(a) => {
            refuse_existing(a.code_out.as_deref())?;
            let auth = open_auth(&a.vault)?;
            let issued = auth.key_holder().issue_enrolment_code(&a.username)?;
            outln!(
                "{}: password, second factors and sessions removed",
                a.username
            );
            if let Some(r) = &issued.request {
                show_request(r);
            }
            show_enrolment(&a.username, &issued.enrolment, a.code_out.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::Redeem(a) => {
            redeem(a, &mut || read_line("code from your authenticator app: "))
        }
        UserCommand::Unlock(n) => {
            open_auth(&n.vault)?.key_holder().unlock(&n.username)?;
            outln!("{} unlocked", n.username);
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::Requests { vault, json } => {
            let auth = open_auth(&vault)?;
            let pending = auth.key_holder().approver().pending()?;
            for r in &pending {
                if json {
                    outln!("{}", request_json(r));
                } else {
                    outln!(
                        "{}  {:<20} {:<40} asked by {:<16} lapses {}",
                        r.id,
                        r.target,
                        r.grant.to_string(),
                        r.requested_by,
                        rfc3339(r.expires_at)
                    );
                }
            }
            if !json {
                eprintln!("{} pending request(s)", pending.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::Approve(a) => {
            let auth = open_auth(&a.vault)?;
            // Audited by rxvault-auth with its real outcome and basis.
            let r = auth.key_holder().approver().approve(&a.id)?;
            outln!("approved: {} for {}", r.grant, r.target);
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::Refuse(a) => {
            let auth = open_auth(&a.vault)?;
            let r = auth.key_holder().approver().refuse(&a.id)?;
            outln!("refused: {} for {}", r.grant, r.target);
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::SingleOperator { vault, mode } => {
            let auth = open_auth(&vault)?;
            if let Some(mode) = mode {
                auth.key_holder().set_single_operator(mode == Switch::On)?;
            }
            if auth.single_operator()? {
                outln!(
                    "single-operator mode is on: the local operator may approve their own access requests (each approval is audited as such)"
                );
            } else {
                outln!(
                    "single-operator mode is off: access requests need a second person (an administrator or the privacy officer over HTTPS, or the local operator for someone else's request)"
                );
            }
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
            if let Some(r) = &issued.request {
                outln!("the key reads charts: it is refused until the request is approved");
                show_request(r);
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
                    } else if k.pending {
                        "PENDING APPROVAL"
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

/// `user redeem`: the person sets their own password with their code and,
/// unless `--no-totp`, enrols a TOTP authenticator here, confirmed with a
/// first code from `confirm` (the terminal).
fn redeem(a: RedeemArgs, confirm: &mut dyn FnMut() -> Result<String>) -> Result<ExitCode> {
    let code = read_code(a.code_file.as_deref())?;
    let password = read_password(a.password_file.as_deref())?;
    let auth = open_auth(&a.vault)?;
    let here = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    // Audited by rxvault-auth (enrolment-code-redeemed) with its outcome.
    let login = auth.redeem_enrolment(&a.username, &code, &password, &Client::at(here))?;
    outln!("password set for {}", a.username);
    let Login::Enrol(enrolling) = login else {
        outln!("log in with it and your second factor");
        return Ok(ExitCode::SUCCESS);
    };
    if a.no_totp {
        outln!(
            "enrol a second factor (TOTP or passkey) at your first login over HTTPS (POST /api/v1/sessions, then /api/v1/sessions/enrol/...)"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let enrolment = auth.start_totp_enrolment(&enrolling)?;
    show_totp(&enrolment, a.totp_secret_out.as_deref())?;
    let first = confirm()?;
    let (session, codes) = auth.finish_totp_enrolment(enrolling, &first)?;
    // The enrolment completed a login; this command needs no session.
    auth.logout(session.principal())?;
    outln!("TOTP enrolled for {}", a.username);
    show_codes(&codes, a.recovery_codes_out.as_deref())?;
    Ok(ExitCode::SUCCESS)
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

    fn pending_ids(fx: &Fx) -> Vec<String> {
        let auth = open_auth(&fx.args).unwrap();
        let ids = auth.key_holder().approver().pending().unwrap();
        ids.into_iter().map(|r| r.id).collect()
    }

    fn request(fx: &Fx, id: &str) -> RequestArgs {
        RequestArgs {
            vault: fx.args.clone(),
            id: id.to_string(),
        }
    }

    #[test]
    fn a_person_redeems_their_code_and_logs_in_once_their_role_is_approved() {
        let fx = vault();
        run_user(UserCommand::SingleOperator {
            vault: fx.args.clone(),
            mode: Some(Switch::On),
        })
        .unwrap();
        run_user(UserCommand::Add(AddArgs {
            vault: fx.args.clone(),
            username: "Pat.Smith".into(),
            role: Some("pharmacist".into()),
            service: false,
            code_out: Some(fx.file("code")),
        }))
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(fx.file("code"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let pending = pending_ids(&fx);
        assert_eq!(pending.len(), 1, "the pharmacist role waits for approval");
        run_user(UserCommand::Approve(request(&fx, &pending[0]))).unwrap();
        assert!(pending_ids(&fx).is_empty());

        // The person sets their own password and enrols TOTP.
        std::fs::write(fx.file("pw"), "violet harbor lantern 42\n").unwrap();
        let totp_file = fx.file("totp");
        let mut confirm = || {
            let secret = TotpSecret::from_base32(std::fs::read_to_string(&totp_file)?.trim())?;
            // The previous step: a login right after is no replay.
            Ok(secret
                .code_at(SystemClock.now().unix_timestamp() - 30)
                .to_string())
        };
        let redeem_args = || RedeemArgs {
            vault: fx.args.clone(),
            username: "pat.smith".into(),
            code_file: Some(fx.file("code")),
            password_file: Some(fx.file("pw")),
            no_totp: false,
            totp_secret_out: Some(fx.file("totp")),
            recovery_codes_out: Some(fx.file("codes")),
        };
        redeem(redeem_args(), &mut confirm).unwrap();
        for f in ["totp", "codes"] {
            let mode = std::fs::metadata(fx.file(f)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        let codes = std::fs::read_to_string(fx.file("codes")).unwrap();
        assert_eq!(codes.lines().count(), 10);
        std::fs::remove_file(fx.file("totp")).unwrap();
        std::fs::remove_file(fx.file("codes")).unwrap();
        assert!(
            redeem(redeem_args(), &mut confirm).is_err(),
            "a code works once"
        );
        assert!(
            !fx.file("totp").exists(),
            "nothing was enrolled with the spent code"
        );

        let auth = open_auth(&fx.args).unwrap();
        let here = "127.0.0.1".parse().unwrap();
        let password = Password::new("violet harbor lantern 42".into());
        let Login::SecondFactor(p) = auth
            .login_password("pat.smith", &password, &rxvault_auth::Client::at(here))
            .unwrap()
        else {
            panic!("TOTP was enrolled")
        };
        let codes: Vec<&str> = codes.lines().collect();
        let session = auth.verify_recovery_code(p, codes[0]).unwrap();
        assert_eq!(
            session.principal().role(),
            Some(rxvault_auth::Role::Pharmacist)
        );

        // Files are never overwritten.
        let again = run_user(UserCommand::Add(AddArgs {
            vault: fx.args.clone(),
            username: "other".into(),
            role: Some("billing".into()),
            service: false,
            code_out: Some(fx.file("code")),
        }));
        assert!(again.is_err());
        assert!(
            auth.key_holder().user("other").is_err(),
            "refused before the account was made"
        );

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

        // Re-enrolment: the password is gone and the role waits again.
        run_user(UserCommand::EnrolmentCode(CodeOutArgs {
            vault: fx.args.clone(),
            username: "pat.smith".into(),
            code_out: Some(fx.file("code2")),
        }))
        .unwrap();
        assert!(
            auth.login_password("pat.smith", &password, &Client::at(here))
                .is_err()
        );
        assert_eq!(pending_ids(&fx).len(), 1);
        let users = auth.key_holder().users().unwrap();
        assert_eq!(users[0].role, None);
    }

    #[test]
    fn roles_requests_disable_and_keys() {
        let fx = vault();
        let add = |name: &str, role: Option<&str>, service: bool| {
            run_user(UserCommand::Add(AddArgs {
                vault: fx.args.clone(),
                username: name.into(),
                role: role.map(str::to_string),
                service,
                code_out: (!service).then(|| fx.file(&format!("code-{name}"))),
            }))
        };
        add("tess", Some("technician"), false).unwrap();
        add("sam", Some("shipping-clerk"), false).unwrap();
        add("pms", None, true).unwrap();
        assert!(add("bad", Some("superuser"), false).is_err());
        let tess_request = pending_ids(&fx);
        assert_eq!(tess_request.len(), 1, "a shipping clerk needs no approval");
        // The local operator's own request needs someone else...
        assert!(run_user(UserCommand::Approve(request(&fx, &tess_request[0]))).is_err());
        // ... unless this is a one-person pharmacy.
        run_user(UserCommand::SingleOperator {
            vault: fx.args.clone(),
            mode: Some(Switch::On),
        })
        .unwrap();
        run_user(UserCommand::Approve(request(&fx, &tess_request[0]))).unwrap();
        run_user(UserCommand::Role {
            vault: fx.args.clone(),
            username: "tess".into(),
            role: "billing".into(),
        })
        .unwrap();
        let billing = pending_ids(&fx);
        assert_eq!(billing.len(), 1, "technician to billing is not a lowering");
        run_user(UserCommand::Refuse(request(&fx, &billing[0]))).unwrap();
        run_user(UserCommand::Role {
            vault: fx.args.clone(),
            username: "tess".into(),
            role: "shipping-clerk".into(),
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
        assert_eq!(tess.role, Some(rxvault_auth::Role::ShippingClerk));
        assert!(tess.disabled && !tess.totp);
        let key = std::fs::read_to_string(fx.file("key")).unwrap();
        let key = rxvault_crypto::Token::from_presented(key.trim());
        let lan = "10.1.2.3".parse().unwrap();
        assert!(
            auth.authenticate_api_key(&key, lan).is_err(),
            "a chart-reading key waits for approval"
        );
        let key_request = pending_ids(&fx);
        assert_eq!(key_request.len(), 1);
        run_user(UserCommand::Approve(request(&fx, &key_request[0]))).unwrap();
        let p = auth.authenticate_api_key(&key, lan).unwrap();
        assert_eq!(p.scopes(), &[Scope::FillsRead]);
        assert!(
            auth.authenticate_api_key(&key, "192.0.2.1".parse().unwrap())
                .is_err()
        );
    }
}
