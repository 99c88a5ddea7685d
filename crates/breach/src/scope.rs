//! Who was affected and which of their data, from the audit log alone.
//!
//! **Selectors** name what was compromised: users, sessions, hosts,
//! source addresses, rxvault exports (by the export ID inside the file),
//! and a window. Each user, session, host and address is one indexed
//! audit query, narrowed by the window; the scope is the union of what
//! they name (a window alone is every entry in it). An export adds the
//! patients and the categories per record kind its started entry recorded.
//!
//! What counts as exposure: successful `read`, `search` and
//! `export-started` entries (and `export` entries from before started
//! entries existed, whose categories were not recorded: everything). The
//! categories of each are the ones the vault actually decrypted, per
//! record kind; the PHI types a letter names follow from them
//! ([`phi_types`]). Entries of breach response itself (session
//! [`SESSION`]) are not exposure.
//!
//! The scan stops at the log's size when it started ([`Scope::audit_size`]):
//! the same selectors over the same log give the same scope.
//!
//! A **leaked file** of unknown origin (CSV with a header, or NDJSON
//! objects) is matched row by row through the blind indexes, by the vault's
//! audited patient searches (family name + birth date, phone, member ID,
//! Rx number, transaction ID, patient identifier): each row's candidates
//! with a confidence, the rows that matched nobody listed by number. The
//! PHI types of a matched person are the file's columns.

use crate::incident::Breach;
use crate::{Error, Result, io_err};
use rxvault_audit::{Action, Outcome, Query};
use rxvault_model::{CategorySet, FieldCategory, RecordKind, Rid};
use rxvault_vault::access::{AuditLogUse, View};
use rxvault_vault::query::Find;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

/// The session id breach response's own reads are recorded under, so that
/// a later scope does not count them as exposure.
pub const SESSION: &str = "rxvault-breach";

/// What was compromised.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selectors {
    /// Compromised accounts (actor ids).
    #[serde(default)]
    pub users: Vec<String>,
    /// Compromised sessions.
    #[serde(default)]
    pub sessions: Vec<String>,
    /// Compromised hosts or agents.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Source addresses.
    #[serde(default)]
    pub ips: Vec<IpAddr>,
    /// From (Unix ms, inclusive).
    #[serde(default)]
    pub from_ms: Option<i64>,
    /// Until (Unix ms, exclusive).
    #[serde(default)]
    pub to_ms: Option<i64>,
    /// rxvault exports taken (their export IDs).
    #[serde(default)]
    pub exports: Vec<String>,
}

impl Selectors {
    fn identities(&self) -> usize {
        self.users.len() + self.sessions.len() + self.hosts.len() + self.ips.len()
    }

    /// Whether nothing is selected.
    pub fn is_empty(&self) -> bool {
        self.identities() == 0
            && self.exports.is_empty()
            && self.from_ms.is_none()
            && self.to_ms.is_none()
    }
}

/// A kind of PHI, as a notice names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PhiType {
    /// Name.
    Name,
    /// Postal address.
    Address,
    /// Phone number or email.
    Phone,
    /// Date of birth.
    BirthDate,
    /// Gender and other demographics.
    Gender,
    /// Patient ID, medical record number or other identifier.
    PatientId,
    /// Medications and prescription details.
    Medications,
    /// Allergies.
    Allergies,
    /// Health plan.
    HealthPlan,
    /// Health plan member ID.
    MemberId,
    /// Prescription (Rx) number.
    RxNumber,
    /// Pharmacy transaction ID.
    TransactionId,
}

impl PhiType {
    /// Every type, in the order notices list them.
    pub const ALL: [PhiType; 12] = [
        PhiType::Name,
        PhiType::Address,
        PhiType::Phone,
        PhiType::BirthDate,
        PhiType::Gender,
        PhiType::PatientId,
        PhiType::Medications,
        PhiType::Allergies,
        PhiType::HealthPlan,
        PhiType::MemberId,
        PhiType::RxNumber,
        PhiType::TransactionId,
    ];

    /// The stable name (`name`, `birth-date`, ...).
    pub fn name(self) -> &'static str {
        match self {
            PhiType::Name => "name",
            PhiType::Address => "address",
            PhiType::Phone => "phone",
            PhiType::BirthDate => "birth-date",
            PhiType::Gender => "gender",
            PhiType::PatientId => "patient-id",
            PhiType::Medications => "medications",
            PhiType::Allergies => "allergies",
            PhiType::HealthPlan => "health-plan",
            PhiType::MemberId => "member-id",
            PhiType::RxNumber => "rx-number",
            PhiType::TransactionId => "transaction-id",
        }
    }

    /// The HHS portal's type of PHI (`Demographic`, `Financial`,
    /// `Clinical`, `Other`).
    pub fn hhs(self) -> &'static str {
        match self {
            PhiType::Name
            | PhiType::Address
            | PhiType::Phone
            | PhiType::BirthDate
            | PhiType::Gender
            | PhiType::PatientId => "Demographic",
            PhiType::HealthPlan | PhiType::MemberId => "Financial",
            PhiType::Medications | PhiType::Allergies | PhiType::RxNumber => "Clinical",
            PhiType::TransactionId => "Other",
        }
    }
}

/// The PHI types that decrypting `categories` of records of `kind`
/// exposes.
pub fn phi_types(kind: RecordKind, categories: CategorySet) -> BTreeSet<PhiType> {
    use FieldCategory as C;
    use PhiType as P;
    let mut out = BTreeSet::new();
    for c in categories.iter() {
        let types: &[PhiType] = match (kind, c) {
            (RecordKind::Patient, C::Demographics) => &[P::Name, P::BirthDate, P::Gender],
            (RecordKind::Patient, C::Contact) => &[P::Address, P::Phone],
            (RecordKind::Patient, C::Identifiers) => &[P::PatientId],
            (RecordKind::Coverage, C::HealthPlan) => &[P::HealthPlan],
            (RecordKind::Coverage, C::Identifiers) => &[P::MemberId],
            (RecordKind::Prescription, C::Clinical) => &[P::Medications],
            (RecordKind::Prescription, C::Identifiers) => &[P::RxNumber],
            (RecordKind::Fill, C::Clinical) => &[P::Medications],
            (RecordKind::Fill, C::Identifiers) => &[P::TransactionId],
            (RecordKind::Fill, C::Shipping) => &[P::Name, P::Address],
            (RecordKind::Allergy, C::Clinical) => &[P::Allergies],
            (_, C::Contact) => &[P::Phone],
            (_, C::HealthPlan) => &[P::HealthPlan],
            (_, C::Clinical) => &[P::Medications],
            _ => &[],
        };
        out.extend(types.iter().copied());
    }
    out
}

/// One affected person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Affected {
    /// The patient's record key (hex).
    #[serde(with = "rid_hex")]
    pub patient: Rid,
    /// The categories exposed, per record kind (FHIR type → category
    /// names).
    pub categories: BTreeMap<String, BTreeSet<String>>,
    /// The PHI types exposed.
    pub phi: BTreeSet<PhiType>,
    /// How they were found (`user`, `session`, `host`, `ip`, `window`,
    /// `export:ID`, `leaked-file`).
    pub sources: BTreeSet<String>,
    /// First exposure (Unix ms; 0 for a leaked file).
    pub first_ms: i64,
    /// Last exposure (Unix ms).
    pub last_ms: i64,
}

/// A leaked file's row that matched somebody.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowMatch {
    /// The row (1-based, the header not counted).
    pub row: u64,
    /// The patients it matched (several when the keys disagree or a key
    /// is shared, as twins share a name and birth date).
    #[serde(with = "rids_hex")]
    pub patients: Vec<Rid>,
    /// `exact` (two or more keys agree, or one unique identifier), `probable`
    /// (one shared key such as name + birth date or phone), `ambiguous`
    /// (candidates disagree).
    pub confidence: String,
    /// Keys that agreed with the best candidate / keys the row had.
    pub agreeing: u32,
    /// Keys the row had.
    pub keys: u32,
}

/// A leaked file's matching.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeakedReport {
    /// The file's name as given.
    pub file: String,
    /// Rows read.
    pub rows: u64,
    /// Matched rows.
    pub matched: Vec<RowMatch>,
    /// Rows that matched nobody (row numbers).
    pub unmatched: Vec<u64>,
    /// Columns recognised, with the PHI type each carries.
    pub columns: BTreeMap<String, String>,
}

/// The scope of an incident.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// The selectors it was computed from.
    pub selectors: Selectors,
    /// The audit log's size when it was computed: entries at or past it
    /// were not considered.
    pub audit_size: u64,
    /// Audit entries that exposed PHI.
    pub entries: u64,
    /// The affected people, by record key.
    pub affected: Vec<Affected>,
    /// The leaked file's matching, if one was given.
    pub leaked: Option<LeakedReport>,
}

impl Scope {
    /// The counts the rules need (states come with the letters' addresses:
    /// here every person counts in `??` until then).
    pub fn counts(&self) -> crate::Counts {
        crate::Counts {
            total: self.affected.len() as u64,
            by_state: BTreeMap::new(),
            unmailable: 0,
        }
    }

    /// The union of the PHI types exposed.
    pub fn phi_union(&self) -> BTreeSet<PhiType> {
        self.affected
            .iter()
            .flat_map(|a| a.phi.iter().copied())
            .collect()
    }
}

#[derive(Default)]
struct Acc {
    categories: BTreeMap<RecordKind, CategorySet>,
    phi: BTreeSet<PhiType>,
    sources: BTreeSet<String>,
    first_ms: i64,
    last_ms: i64,
    seen: bool,
}

impl Acc {
    fn add(&mut self, kinds: &[(RecordKind, CategorySet)], source: &str, t: i64) {
        for (k, c) in kinds {
            let e = self.categories.entry(*k).or_insert(CategorySet::NONE);
            *e = c.iter().chain(e.iter()).collect();
            self.phi.extend(phi_types(*k, *c));
        }
        self.sources.insert(source.to_string());
        if !self.seen {
            self.first_ms = t;
            self.last_ms = t;
            self.seen = true;
        }
        self.first_ms = self.first_ms.min(t);
        self.last_ms = self.last_ms.max(t);
    }
}

/// What one entry exposed: (kind, categories) pairs, or `None` if it is
/// not exposure.
fn exposure(e: &rxvault_audit::entry::LoggedEntry) -> Option<Vec<(RecordKind, CategorySet)>> {
    if e.entry.outcome != Outcome::Success || e.entry.patients.is_empty() {
        return None;
    }
    if e.entry.session.as_deref() == Some(SESSION) {
        return None;
    }
    match &e.entry.action {
        Action::Read { kind, categories } => Some(match kind {
            Some(k) => vec![(*k, *categories)],
            None => RecordKind::ALL.iter().map(|k| (*k, *categories)).collect(),
        }),
        Action::Search {
            kind, categories, ..
        } => Some(vec![(
            kind.unwrap_or(RecordKind::Patient),
            categories.unwrap_or(CategorySet::ALL),
        )]),
        Action::ExportStarted {
            format, categories, ..
        } => Some(export_kinds(*format, categories)),
        Action::Export { .. } => Some(
            RecordKind::ALL
                .iter()
                .map(|k| (*k, CategorySet::ALL))
                .collect(),
        ),
        _ => None,
    }
}

/// What an export's file holds, per record kind. A shipping manifest's
/// columns are fixed (transaction ID, carrier, tracking, ship-to name and
/// address), whether the vault took the ship-to from the fill or from the
/// patient's own demographics and contact: the file holds no birth date or
/// phone, so it counts as the fill's shipping and identifiers.
fn export_kinds(
    format: rxvault_audit::ExportFormat,
    categories: &rxvault_audit::KindCategories,
) -> Vec<(RecordKind, CategorySet)> {
    match format {
        rxvault_audit::ExportFormat::ShippingCsv => vec![(
            RecordKind::Fill,
            CategorySet::of(&[FieldCategory::Shipping, FieldCategory::Identifiers]),
        )],
        _ => categories.iter().collect(),
    }
}

/// A patient a leaked file's row matched, with the file's PHI types.
type Found = (Rid, BTreeSet<PhiType>);

impl Breach<'_> {
    /// Computes the scope of `selectors` from the audit log (an audited use
    /// of the log) without storing it.
    pub fn compute_scope(&self, selectors: &Selectors) -> Result<Scope> {
        if selectors.is_empty() {
            return Err(Error::Invalid(
                "give at least one selector: --user, --session, --host, --ip, --export, or a \
                 --from/--to window"
                    .into(),
            ));
        }
        if let (Some(f), Some(t)) = (selectors.from_ms, selectors.to_ms)
            && f >= t
        {
            return Err(Error::Invalid(
                "the window is empty: --from must be before --to".into(),
            ));
        }
        let vault = self.vault();
        let who = self.requester();
        let mut acc: BTreeMap<Rid, Acc> = BTreeMap::new();
        let mut entries = 0u64;
        let mut queries: Vec<(String, Query)> = Vec::new();
        let window = Query {
            from_ms: selectors.from_ms,
            to_ms: selectors.to_ms,
            ..Default::default()
        };
        for u in &selectors.users {
            queries.push((
                "user".into(),
                Query {
                    user: Some(u.clone()),
                    ..window.clone()
                },
            ));
        }
        for s in &selectors.sessions {
            queries.push((
                "session".into(),
                Query {
                    session: Some(s.clone()),
                    ..window.clone()
                },
            ));
        }
        for h in &selectors.hosts {
            queries.push((
                "host".into(),
                Query {
                    host: Some(h.clone()),
                    ..window.clone()
                },
            ));
        }
        for ip in &selectors.ips {
            queries.push((
                "ip".into(),
                Query {
                    ip: Some(*ip),
                    ..window.clone()
                },
            ));
        }
        if selectors.identities() == 0 && (selectors.from_ms.is_some() || selectors.to_ms.is_some())
        {
            queries.push(("window".into(), window.clone()));
        }
        let mut exports = Vec::new();
        let audit_size = vault.use_audit_log(who, AuditLogUse::Query, |reader| {
            let size = reader.size()?;
            let mut seen = BTreeSet::new();
            for (source, q) in &queries {
                reader.scan(q, 10_000, |e| {
                    if e.index >= size {
                        return Ok(());
                    }
                    let Some(kinds) = exposure(&e) else {
                        return Ok(());
                    };
                    if seen.insert(e.index) {
                        entries += 1;
                    }
                    for p in &e.entry.patients {
                        acc.entry(*p).or_default().add(&kinds, source, e.time_ms);
                    }
                    Ok(())
                })?;
            }
            for x in &selectors.exports {
                exports.push((x.clone(), reader.export_scope(x)?));
            }
            Ok(size)
        })?;
        for (x, found) in exports {
            let Some(scope) = found else {
                return Err(Error::Invalid(format!(
                    "{x:?} is not the ID of an rxvault export this vault's audit log recorded"
                )));
            };
            if scope.started.index >= audit_size {
                continue;
            }
            let kinds = export_kinds(scope.format, &scope.categories);
            entries += 1;
            for p in &scope.patients {
                acc.entry(*p).or_default().add(
                    &kinds,
                    &format!("export:{x}"),
                    scope.started.time_ms,
                );
            }
        }
        Ok(Scope {
            selectors: selectors.clone(),
            audit_size,
            entries,
            affected: acc.into_iter().map(|(p, a)| finish(p, a)).collect(),
            leaked: None,
        })
    }

    /// Computes the scope (selectors, and a leaked file if given) and
    /// stores it with the incident (audited `scope`, naming every affected
    /// patient).
    pub fn scope(
        &self,
        incident: &str,
        selectors: &Selectors,
        leaked: Option<&Path>,
    ) -> Result<crate::Incident> {
        // Unknown incident: an error before any search is made.
        self.show(incident)?;
        let mut scope = if selectors.is_empty() && leaked.is_some() {
            Scope::default()
        } else {
            self.compute_scope(selectors)?
        };
        if let Some(file) = leaked {
            let rows = read_leaked(file)?;
            let (report, found) = self.match_leaked(file, &rows)?;
            let mut acc: BTreeMap<Rid, Acc> = BTreeMap::new();
            for a in std::mem::take(&mut scope.affected) {
                acc.insert(a.patient, unfinish(&a));
            }
            for (p, phi) in found {
                let a = acc.entry(p).or_default();
                a.phi.extend(phi);
                a.sources.insert("leaked-file".into());
                a.seen = true;
            }
            scope.affected = acc.into_iter().map(|(p, a)| finish(p, a)).collect();
            scope.leaked = Some(report);
        }
        let patients: Vec<Rid> = scope.affected.iter().map(|a| a.patient).collect();
        self.edit(incident, "scope", &patients, |i| {
            i.scope = Some(scope);
            // New scope, new counts (the next outputs compute them).
            i.counts = None;
            Ok(())
        })
    }

    fn match_leaked(&self, file: &Path, rows: &LeakedRows) -> Result<(LeakedReport, Vec<Found>)> {
        let vault = self.vault();
        let who = self.requester();
        // The searches decrypt nothing a letter needs: administrative
        // metadata of the patient records returned.
        let view = View::uniform(CategorySet::of(&[FieldCategory::Administrative]));
        let phi: BTreeSet<PhiType> = rows.columns.values().flat_map(|c| c.phi()).collect();
        let mut report = LeakedReport {
            file: file.display().to_string(),
            rows: rows.rows.len() as u64,
            columns: rows
                .columns
                .iter()
                .map(|(name, c)| (name.clone(), c.name().to_string()))
                .collect(),
            ..Default::default()
        };
        let mut found = Vec::new();
        for (n, row) in rows.rows.iter().enumerate() {
            let row_no = n as u64 + 1;
            let finds = row_finds(row);
            let mut votes: BTreeMap<Rid, u32> = BTreeMap::new();
            let mut unique_hit = false;
            for (find, unique) in &finds {
                let hits = vault.search_patients(who, &view, find)?;
                if hits.len() == 1 && *unique {
                    unique_hit = true;
                }
                for (rid, _) in hits {
                    *votes.entry(rid).or_default() += 1;
                }
            }
            let Some(best) = votes.values().copied().max() else {
                report.unmatched.push(row_no);
                continue;
            };
            let top: Vec<Rid> = votes
                .iter()
                .filter(|(_, v)| **v == best)
                .map(|(r, _)| *r)
                .collect();
            let confidence = if top.len() > 1 {
                "ambiguous"
            } else if best >= 2 || unique_hit {
                "exact"
            } else {
                "probable"
            };
            for p in &top {
                found.push((*p, phi.clone()));
            }
            report.matched.push(RowMatch {
                row: row_no,
                patients: top,
                confidence: confidence.into(),
                agreeing: best,
                keys: finds.len() as u32,
            });
        }
        Ok((report, found))
    }
}

fn finish(patient: Rid, a: Acc) -> Affected {
    Affected {
        patient,
        categories: a
            .categories
            .iter()
            .map(|(k, c)| {
                (
                    k.fhir_type().to_string(),
                    c.iter().map(|c| c.name().to_string()).collect(),
                )
            })
            .collect(),
        phi: a.phi,
        sources: a.sources,
        first_ms: a.first_ms,
        last_ms: a.last_ms,
    }
}

fn unfinish(a: &Affected) -> Acc {
    Acc {
        categories: a
            .categories
            .iter()
            .filter_map(|(k, cs)| {
                let kind = RecordKind::ALL.into_iter().find(|x| x.fhir_type() == k)?;
                Some((
                    kind,
                    cs.iter()
                        .filter_map(|c| FieldCategory::from_name(c))
                        .collect(),
                ))
            })
            .collect(),
        phi: a.phi.clone(),
        sources: a.sources.clone(),
        first_ms: a.first_ms,
        last_ms: a.last_ms,
        seen: true,
    }
}

/// A leaked file's column, by what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Column {
    Family,
    Given,
    FullName,
    BirthDate,
    Phone,
    MemberId,
    RxNumber,
    TransactionId,
    PatientId,
    Address,
    Gender,
    Medication,
    Allergy,
    Plan,
}

impl Column {
    fn of(header: &str) -> Option<Column> {
        let h: String = header
            .trim()
            .to_ascii_lowercase()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        Some(match h.as_str() {
            "family" | "familyname" | "lastname" | "last" | "surname" => Column::Family,
            "given" | "givenname" | "firstname" | "first" => Column::Given,
            "name" | "fullname" | "patientname" | "patient" => Column::FullName,
            "birthdate" | "dob" | "dateofbirth" | "birthday" => Column::BirthDate,
            "phone" | "telephone" | "phonenumber" | "mobile" | "tel" => Column::Phone,
            "memberid" | "member" | "memberno" | "membernumber" => Column::MemberId,
            "rxnumber" | "rx" | "rxno" | "rxnum" | "prescriptionnumber" => Column::RxNumber,
            "transactionid" | "transaction" | "txnid" | "txn" => Column::TransactionId,
            "patientid" | "mrn" | "medicalrecordnumber" | "identifier" => Column::PatientId,
            "address" | "street" | "address1" | "addressline" | "city" | "state" | "zip"
            | "zipcode" | "postalcode" => Column::Address,
            "gender" | "sex" => Column::Gender,
            "medication" | "medications" | "drug" | "ndc" => Column::Medication,
            "allergy" | "allergies" => Column::Allergy,
            "plan" | "healthplan" | "payer" | "insurance" => Column::Plan,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Column::Family => "family",
            Column::Given => "given",
            Column::FullName => "name",
            Column::BirthDate => "birth-date",
            Column::Phone => "phone",
            Column::MemberId => "member-id",
            Column::RxNumber => "rx-number",
            Column::TransactionId => "transaction-id",
            Column::PatientId => "patient-id",
            Column::Address => "address",
            Column::Gender => "gender",
            Column::Medication => "medications",
            Column::Allergy => "allergies",
            Column::Plan => "health-plan",
        }
    }

    fn phi(self) -> Vec<PhiType> {
        match self {
            Column::Family | Column::Given | Column::FullName => vec![PhiType::Name],
            Column::BirthDate => vec![PhiType::BirthDate],
            Column::Phone => vec![PhiType::Phone],
            Column::MemberId => vec![PhiType::MemberId],
            Column::RxNumber => vec![PhiType::RxNumber],
            Column::TransactionId => vec![PhiType::TransactionId],
            Column::PatientId => vec![PhiType::PatientId],
            Column::Address => vec![PhiType::Address],
            Column::Gender => vec![PhiType::Gender],
            Column::Medication => vec![PhiType::Medications],
            Column::Allergy => vec![PhiType::Allergies],
            Column::Plan => vec![PhiType::HealthPlan],
        }
    }
}

struct LeakedRows {
    /// Recognised columns: header → what it holds.
    columns: BTreeMap<String, Column>,
    rows: Vec<BTreeMap<Column, String>>,
}

/// The blind-index searches a row allows, each with whether it names one
/// person (an identifier) or may be shared (name + birth date, phone).
fn row_finds(row: &BTreeMap<Column, String>) -> Vec<(Find, bool)> {
    let get = |c: Column| row.get(&c).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mut out = Vec::new();
    let family = get(Column::Family).map(str::to_string).or_else(|| {
        get(Column::FullName).and_then(|n| match n.split_once(',') {
            Some((family, _)) => Some(family.trim().to_string()),
            None => n.split_whitespace().last().map(str::to_string),
        })
    });
    if let (Some(family), Some(birth_date)) = (family, get(Column::BirthDate)) {
        out.push((
            Find::FamilyBirthDate {
                family,
                birth_date: birth_date.to_string(),
            },
            false,
        ));
    }
    if let Some(v) = get(Column::Phone) {
        out.push((Find::Phone(v.into()), false));
    }
    if let Some(v) = get(Column::MemberId) {
        out.push((Find::MemberId(v.into()), true));
    }
    if let Some(v) = get(Column::RxNumber) {
        out.push((Find::RxNumber(v.into()), true));
    }
    if let Some(v) = get(Column::TransactionId) {
        out.push((Find::TransactionId(v.into()), true));
    }
    if let Some(v) = get(Column::PatientId) {
        out.push((Find::PatientIdentifier(v.into()), true));
    }
    out
}

fn read_leaked(path: &Path) -> Result<LeakedRows> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        Error::Invalid(format!(
            "{}: not UTF-8 text (byte {}): give the leaked file as CSV or NDJSON",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })?;
    let first = text.trim_start();
    let mut columns = BTreeMap::new();
    let mut rows = Vec::new();
    if first.starts_with('{') {
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line)
                .map_err(|e| {
                    Error::Invalid(format!(
                        "{} line {}: not a JSON object ({e}): nothing was changed",
                        path.display(),
                        n + 1
                    ))
                })?;
            let mut row = BTreeMap::new();
            for (k, val) in v {
                if let Some(c) = Column::of(&k) {
                    columns.insert(k.clone(), c);
                    let s = match val {
                        serde_json::Value::String(s) => s,
                        serde_json::Value::Null => continue,
                        other => other.to_string(),
                    };
                    row.entry(c).or_insert(s);
                }
            }
            rows.push(row);
        }
    } else {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(text.as_bytes());
        let headers = reader
            .headers()
            .map_err(|e| {
                Error::Invalid(format!(
                    "{}: not CSV ({e}): nothing was changed",
                    path.display()
                ))
            })?
            .clone();
        let map: Vec<Option<Column>> = headers.iter().map(Column::of).collect();
        for (h, c) in headers.iter().zip(&map) {
            if let Some(c) = c {
                columns.insert(h.to_string(), *c);
            }
        }
        for (n, record) in reader.records().enumerate() {
            let record = record.map_err(|e| {
                Error::Invalid(format!(
                    "{} row {}: malformed CSV ({}): nothing was changed",
                    path.display(),
                    n + 1,
                    match e.kind() {
                        csv::ErrorKind::UnequalLengths {
                            expected_len, len, ..
                        } => format!("{len} fields where the header has {expected_len}"),
                        _ => e.to_string(),
                    }
                ))
            })?;
            let mut row = BTreeMap::new();
            for (v, c) in record.iter().zip(&map) {
                if let Some(c) = c {
                    row.entry(*c).or_insert_with(|| v.to_string());
                }
            }
            rows.push(row);
        }
    }
    let searchable = [
        Column::Family,
        Column::FullName,
        Column::Phone,
        Column::MemberId,
        Column::RxNumber,
        Column::TransactionId,
        Column::PatientId,
    ];
    if !columns.values().any(|c| searchable.contains(c)) {
        return Err(Error::Invalid(format!(
            "{}: no column to match patients by (a name with a birth date, phone, member ID, Rx \
             number, transaction ID or patient ID): nothing was changed",
            path.display()
        )));
    }
    if rows.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: no rows: nothing was changed",
            path.display()
        )));
    }
    Ok(LeakedRows { columns, rows })
}

mod rid_hex {
    use rxvault_model::Rid;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(r: &Rid, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&r.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Rid, D::Error> {
        let s = String::deserialize(d)?;
        Rid::from_hex(&s).ok_or_else(|| serde::de::Error::custom("a record key is 32 hex digits"))
    }
}

mod rids_hex {
    use rxvault_model::Rid;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(r: &[Rid], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(r.iter().map(Rid::to_string))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Rid>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| {
                Rid::from_hex(s)
                    .ok_or_else(|| serde::de::Error::custom("a record key is 32 hex digits"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shipping_read_exposes_name_and_address_only() {
        let shipping = CategorySet::of(&[FieldCategory::Shipping]);
        assert_eq!(
            phi_types(RecordKind::Fill, shipping),
            [PhiType::Name, PhiType::Address].into_iter().collect()
        );
        let chart = phi_types(RecordKind::Prescription, CategorySet::ALL);
        assert!(chart.contains(&PhiType::Medications) && chart.contains(&PhiType::RxNumber));
    }

    #[test]
    fn record_keys_round_trip_through_hex() {
        let r = Rid([0xab; 16]);
        let json = serde_json::to_string(&RowMatch {
            row: 1,
            patients: vec![r],
            confidence: "exact".into(),
            agreeing: 1,
            keys: 1,
        })
        .unwrap();
        assert!(json.contains(&"ab".repeat(16)), "{json}");
        let back: RowMatch = serde_json::from_str(&json).unwrap();
        assert_eq!(back.patients, [r]);
    }

    #[test]
    fn leaked_columns_are_recognised_by_their_headers() {
        assert_eq!(Column::of("Last Name"), Some(Column::Family));
        assert_eq!(Column::of("DOB"), Some(Column::BirthDate));
        assert_eq!(Column::of("member_id"), Some(Column::MemberId));
        assert_eq!(Column::of("favourite colour"), None);
        let row: BTreeMap<Column, String> = [
            (Column::FullName, "María José Peña".to_string()),
            (Column::BirthDate, "1970-01-02".to_string()),
            (Column::RxNumber, "RX1".to_string()),
        ]
        .into_iter()
        .collect();
        let finds = row_finds(&row);
        assert_eq!(finds.len(), 2);
        assert!(matches!(&finds[0].0, Find::FamilyBirthDate { family, .. } if family == "Peña"));
        assert!(finds[1].1, "an Rx number names one person");
    }
}
