//! `rxvault demo`: a working vault with synthetic patients on the embedded
//! store, sample people (enrolled the way people are: one-time enrolment
//! codes, a pharmacist's role approved), and the commands to try next,
//! filled in with real values from it.

use anyhow::Result;
use clap::Args;
use rxvault_model::{Clock, RecordKind};
use rxvault_vault::config::VaultConfig;
use rxvault_vault::import::ImportOptions;
use rxvault_vault::keys::InitKey;
use rxvault_vault::{StoreConfig, Vault};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Flags of `rxvault demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// The demo vault's data directory (created, or refreshed if it exists).
    #[arg(long, default_value = "rxvault-demo")]
    data: PathBuf,
    /// How many synthetic patients.
    #[arg(long, default_value_t = 1000)]
    patients: u64,
    /// Seed of the synthetic data.
    #[arg(long, default_value_t = 2020)]
    seed: u64,
}

pub fn run(a: DemoArgs, clock: Arc<dyn Clock>) -> Result<ExitCode> {
    let dir = &a.data;
    let fresh = VaultConfig::load(dir).is_err();
    if fresh {
        let created = Vault::init(dir, StoreConfig::Sqlite, InitKey::File(None), clock.clone())?;
        outln!(
            "created vault {} in {}",
            created.config.vault_id,
            dir.display()
        );
        if let Some(k) = &created.key_file {
            outln!(
                "its key file is {} (outside the data directory, mode 0600)",
                k.display()
            );
        }
    } else {
        outln!("refreshing the demo vault in {}", dir.display());
    }
    let vault = Vault::open(dir, None, clock.clone())?;

    let config = rxvault_synth::Config {
        patients: a.patients,
        seed: a.seed,
        as_of: vault.today(),
    };
    let input = tempfile::Builder::new()
        .prefix("rxvault-demo-input")
        .tempdir()?;
    eprintln!("synthesizing {} patients (seed {}) ...", a.patients, a.seed);
    rxvault_synth::write_ndjson(&config, input.path(), &mut |_| {})?;
    let mut progress = crate::ui::ImportProgress::new(&[input.path().to_path_buf()]);
    let report = vault.import_for(
        &rxvault_vault::access::Requester::local(),
        &[input.path().to_path_buf()],
        &ImportOptions::default(),
        &mut progress,
    )?;
    progress.finish();
    drop(input); // the synthetic plaintext is deleted once imported
    crate::ui::print_import(&report);
    if fresh {
        // Decoys only the detector knows (`rxvault detect honeytokens add`
        // makes more).
        let n = crate::detect_cmd::add_honeytokens(&vault, 5)?;
        eprintln!("{n} honeytoken patients are among them (only the detector knows which)");
    }

    outln!("\nThe vault now holds:");
    for (kind, n) in vault.counts()? {
        outln!("{n:>9}  {kind}");
    }
    let vault = Arc::new(vault);
    let codes_shown = people(&vault, fresh)?;

    // Real values to try, from the first synthetic patient.
    let sample = rxvault_synth::patient_records(&config, 0);
    let p = &sample.patient;
    let d = dir.display();
    let rxvault = command_name();
    let family = p
        .primary_name()
        .and_then(|n| n.family.clone())
        .unwrap_or_default();
    let birth = p.birth_date.clone().unwrap_or_default();
    outln!("\nTry next:");
    outln!("  {rxvault} status --data {d}");
    outln!("  {rxvault} patient find --data {d} --family '{family}' --birth-date {birth}");
    if let Some(phone) = p.phones().next() {
        outln!("  {rxvault} patient find --data {d} --phone '{phone}'");
    }
    if let Some(m) = sample.coverages.iter().find_map(|c| c.member_id.clone()) {
        outln!("  {rxvault} patient find --data {d} --member-id {m}");
    }
    if let Some(rx) = sample.prescriptions.first() {
        outln!(
            "  {rxvault} patient find --data {d} --rx-number {}",
            rx.rx_number
        );
    }
    outln!("  {rxvault} patient show --data {d} {}", p.id);
    outln!(
        "  {rxvault} export shipping --data {d} --date {} --out shipping-{}.csv --plaintext",
        vault.today(),
        vault.today()
    );
    outln!(
        "  age-keygen -o export.key && {rxvault} export fhir --data {d} --out export --recipient $(age-keygen -y export.key)"
    );
    outln!("  {rxvault} keys rotate --data {d} --reencrypt");
    if !codes_shown {
        outln!(
            "  {rxvault} user enrolment-code --data {d} pat           # a new code for pat (their password and factors go)"
        );
    }
    outln!(
        "  {rxvault} user redeem --data {d} pat                   # as pat: the code, your own password, TOTP (QR code)"
    );
    outln!(
        "  {rxvault} user add --data {d} tess --role technician   # a role that reads charts waits for approval:"
    );
    outln!(
        "  {rxvault} user requests --data {d}                     #   then `user approve <id>` (you are the single operator)"
    );
    outln!(
        "  {rxvault} serve --data {d}                              # https://localhost:8443/fhir/metadata"
    );
    outln!(
        "  {rxvault} audit query --data {d}                        # everything above, recorded"
    );
    outln!("  {rxvault} audit verify --data {d}");
    outln!(
        "\nNothing under {d} is readable without the key: try `grep -r '{family}' {d}`: no match.",
    );
    if vault.counts()?.contains(&(RecordKind::Fill, 0)) {
        outln!("(no fills were generated; the shipping manifest will be empty)");
    }
    Ok(ExitCode::SUCCESS)
}

/// The demo's people, on a fresh vault: a demo is one person, so the vault
/// is in single-operator mode (audited), `admin` is its first
/// administrator, `pat` a pharmacist whose role the operator approves, and
/// `sam` a shipping clerk. Each gets a one-time enrolment code to redeem.
/// Returns whether codes were shown (not on a refresh).
fn people(vault: &Arc<Vault>, fresh: bool) -> Result<bool> {
    let auth = rxvault_auth::Auth::new(
        vault.clone(),
        vault.auth_store()?,
        vault.clone(),
        vault.clock().clone(),
        rxvault_auth::AuthConfig::default(),
    )?;
    let holder = auth.key_holder();
    let existing = holder.users()?;
    if !fresh || !existing.is_empty() {
        let names: Vec<&str> = existing.iter().map(|u| u.username.as_str()).collect();
        outln!(
            "\nPeople: {} (a new enrolment code: `user enrolment-code --data {} NAME`)",
            names.join(", "),
            vault.config().dir.display()
        );
        return Ok(false);
    }
    holder.set_single_operator(true)?;
    outln!(
        "\nPeople (a demo is one person: single-operator mode is on, so you approve your own requests; `user single-operator off` makes them wait for a second person):"
    );
    for (name, role) in [
        ("admin", rxvault_auth::Role::Administrator),
        ("pat", rxvault_auth::Role::Pharmacist),
        ("sam", rxvault_auth::Role::ShippingClerk),
    ] {
        let new = holder.add_person(name, role)?;
        let how = match &new.role {
            rxvault_auth::RoleChange::Applied => "",
            rxvault_auth::RoleChange::Pending(r) => {
                holder.approver().approve(&r.id)?;
                "approved by you; "
            }
        };
        outln!(
            "  {name:<6} {:<15} enrolment code {}  ({how}works once, for 72 hours)",
            role.name(),
            new.enrolment.code()
        );
    }
    Ok(true)
}

/// How to run this binary from here: `rxvault` if that is what the PATH
/// finds, else the path of this executable (e.g. after `cargo run`).
fn command_name() -> String {
    let me = std::env::current_exe()
        .ok()
        .and_then(|p| p.canonicalize().ok());
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("rxvault"))
            .find(|p| p.is_file())
            .and_then(|p| p.canonicalize().ok())
    });
    match me {
        Some(me) if on_path.as_ref() != Some(&me) => {
            let cwd = std::env::current_dir().unwrap_or_default();
            me.strip_prefix(&cwd)
                .map(|p| format!("./{}", p.display()))
                .unwrap_or_else(|_| me.display().to_string())
        }
        _ => "rxvault".to_string(),
    }
}
