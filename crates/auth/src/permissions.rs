//! The permission table: which role may do what, and see which field
//! categories of which record kind. Data, in one place.
//!
//! Three tables, each a single `match` or array below:
//!
//! - [`ACTIONS`]: action × role → [`Grant`] (`N` no, `Y` yes, `T` only fills
//!   dated today), plus whether the action needs a fresh second factor
//!   ([`Action::needs_step_up`]) and whether break-glass may widen it
//!   ([`Action::break_glass_read`]).
//! - [`categories`]: role × record kind → the [`CategorySet`] the vault may
//!   decrypt for that role. Masking is by not decrypting
//!   (`Vault::open_record(record, categories)`), never by filtering after.
//! - [`scope_actions`] / [`scope_categories`]: the same for service-account
//!   scopes.
//!
//! Least privilege, as the incident taught it (one stolen workstation
//! account exported 137,110 charts):
//!
//! - **Shipping clerks** see only what a label needs (ship-to name and
//!   address, carrier and tracking, the fill's identifiers and status for
//!   the transaction ID) of fills dated **today**, and nothing else: no
//!   patients, plans, prescriptions, medications or allergies. The
//!   categories are decided by content (`rxvault_fhir::split`), so a
//!   contained medication, a reference to the patient and a phone number on
//!   the ship-to are not shipping data wherever a fill puts them.
//! - **Billing** sees demographics, contact, identifiers and plan data, and
//!   the identifiers and plan part of prescriptions and fills, but no
//!   clinical data (medications, allergies) and no shipping data.
//! - **Privacy officers** read the audit log and review break-glass grants;
//!   they read no chart.
//! - **Administrators** manage users and keys but read no chart, except
//!   through break-glass, which is time-limited, needs a typed reason and
//!   is flagged for review.
//! - **Separation of duties**: giving someone a role that reads charts or
//!   approves ([`needs_approval`]), or a service key a chart-reading scope
//!   ([`Scope::reads_charts`]), needs a second person's approval
//!   ([`Action::AccessApprove`]: another administrator or the privacy
//!   officer; see [`crate::duties`]).
//! - **Pharmacists** see everything and alone may bulk-export (with
//!   step-up); **technicians** see everything but may not verify
//!   (update) prescriptions or export.
//! - **Service accounts** get only what their scopes name; no scope grants
//!   bulk export, user or key administration, the audit or break-glass.
//!
//! Writes are limited to the categories the principal may read (a partial
//! view cannot overwrite what it cannot see); the vault enforces that by
//! merging only those categories.
//!
//! The compact matrix is rendered by [`matrix`] (and printed in the crate's
//! tests), so the table and its documentation cannot drift apart.

use rxvault_model::{CategorySet, FieldCategory as C, RecordKind};
use std::fmt;

/// A human role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Verifies prescriptions, counsels, sees whole charts.
    Pharmacist,
    /// Enters prescriptions and fills under a pharmacist.
    Technician,
    /// Packs and ships today's fills.
    ShippingClerk,
    /// Claims and plans.
    Billing,
    /// Reads the audit log, reviews break-glass.
    PrivacyOfficer,
    /// Manages users, sessions and keys.
    Administrator,
}

impl Role {
    /// Every role, in table order.
    pub const ALL: [Role; 6] = [
        Role::Pharmacist,
        Role::Technician,
        Role::ShippingClerk,
        Role::Billing,
        Role::PrivacyOfficer,
        Role::Administrator,
    ];

    /// The stable name (stored, and used on the command line).
    pub fn name(self) -> &'static str {
        match self {
            Role::Pharmacist => "pharmacist",
            Role::Technician => "technician",
            Role::ShippingClerk => "shipping-clerk",
            Role::Billing => "billing",
            Role::PrivacyOfficer => "privacy-officer",
            Role::Administrator => "administrator",
        }
    }

    /// The role with this name.
    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    fn column(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Something a principal may ask to do. Endpoints map to exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Read a patient (and the chart parts of other kinds the role sees).
    PatientRead,
    /// Find patients through the blind indexes.
    PatientSearch,
    /// Create a patient.
    PatientCreate,
    /// Update a patient.
    PatientUpdate,
    /// Read health plans (`Coverage`).
    CoverageRead,
    /// Create or update health plans.
    CoverageWrite,
    /// Read allergies.
    AllergyRead,
    /// Create or update allergies.
    AllergyWrite,
    /// Read prescriptions.
    PrescriptionRead,
    /// Find prescriptions (Rx number).
    PrescriptionSearch,
    /// Receive (create) a prescription.
    PrescriptionCreate,
    /// Update or verify a prescription.
    PrescriptionUpdate,
    /// Read fills and shipments.
    FillRead,
    /// Find fills (transaction ID, fill date).
    FillSearch,
    /// Create a fill.
    FillCreate,
    /// Update a fill (status, carrier, tracking).
    FillUpdate,
    /// The day's shipping manifest.
    ShippingManifest,
    /// Export many records at once (FHIR bulk export).
    BulkExport,
    /// Create, change, disable users; reset MFA; service accounts and API
    /// keys.
    UserAdmin,
    /// Revoke sessions (per session, user or host).
    RevokeSessions,
    /// Key rotation and key status.
    KeyOperations,
    /// Read the audit log and review break-glass grants.
    AuditRead,
    /// Start emergency access beyond one's role.
    BreakGlass,
    /// Approve or refuse another person's request for chart access (a role,
    /// an API key's scopes): the second person of separation of duties.
    AccessApprove,
    /// See and work detection's alerts (acknowledge, resolve).
    AlertsManage,
}

impl Action {
    /// Every action, in table order.
    pub const ALL: [Action; 25] = [
        Action::PatientRead,
        Action::PatientSearch,
        Action::PatientCreate,
        Action::PatientUpdate,
        Action::CoverageRead,
        Action::CoverageWrite,
        Action::AllergyRead,
        Action::AllergyWrite,
        Action::PrescriptionRead,
        Action::PrescriptionSearch,
        Action::PrescriptionCreate,
        Action::PrescriptionUpdate,
        Action::FillRead,
        Action::FillSearch,
        Action::FillCreate,
        Action::FillUpdate,
        Action::ShippingManifest,
        Action::BulkExport,
        Action::UserAdmin,
        Action::RevokeSessions,
        Action::KeyOperations,
        Action::AuditRead,
        Action::BreakGlass,
        Action::AccessApprove,
        Action::AlertsManage,
    ];

    /// A stable name (`patient.read`, ...), for logs, audit and errors.
    pub fn name(self) -> &'static str {
        match self {
            Action::PatientRead => "patient.read",
            Action::PatientSearch => "patient.search",
            Action::PatientCreate => "patient.create",
            Action::PatientUpdate => "patient.update",
            Action::CoverageRead => "coverage.read",
            Action::CoverageWrite => "coverage.write",
            Action::AllergyRead => "allergy.read",
            Action::AllergyWrite => "allergy.write",
            Action::PrescriptionRead => "prescription.read",
            Action::PrescriptionSearch => "prescription.search",
            Action::PrescriptionCreate => "prescription.create",
            Action::PrescriptionUpdate => "prescription.update",
            Action::FillRead => "fill.read",
            Action::FillSearch => "fill.search",
            Action::FillCreate => "fill.create",
            Action::FillUpdate => "fill.update",
            Action::ShippingManifest => "shipping.manifest",
            Action::BulkExport => "export.bulk",
            Action::UserAdmin => "user.admin",
            Action::RevokeSessions => "session.revoke",
            Action::KeyOperations => "key.operations",
            Action::AuditRead => "audit.read",
            Action::BreakGlass => "break-glass",
            Action::AccessApprove => "access.approve",
            Action::AlertsManage => "alerts.manage",
        }
    }

    /// Whether this action needs a second-factor check within the step-up
    /// window (5 minutes by default): the actions that can do the most
    /// harm with a hijacked session.
    pub fn needs_step_up(self) -> bool {
        matches!(
            self,
            Action::BulkExport
                | Action::UserAdmin
                | Action::KeyOperations
                | Action::BreakGlass
                | Action::AccessApprove
        )
    }

    /// Whether an active break-glass grant adds this action: reads and
    /// searches of charts only (never writes, exports or administration).
    pub fn break_glass_read(self) -> bool {
        matches!(
            self,
            Action::PatientRead
                | Action::PatientSearch
                | Action::CoverageRead
                | Action::AllergyRead
                | Action::PrescriptionRead
                | Action::PrescriptionSearch
                | Action::FillRead
                | Action::FillSearch
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A limit on a permitted action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Constraint {
    /// No limit beyond the categories.
    Unrestricted,
    /// Only fills whose fill date is today (the clock's date): the server
    /// finds them through the fill-date blind index and refuses any other.
    FillsDatedToday,
}

/// One cell of the action table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Not permitted.
    N,
    /// Permitted.
    Y,
    /// Permitted for fills dated today only.
    T,
}

impl Grant {
    fn constraint(self) -> Option<Constraint> {
        match self {
            Grant::N => None,
            Grant::Y => Some(Constraint::Unrestricted),
            Grant::T => Some(Constraint::FillsDatedToday),
        }
    }
}

use Grant::{N, T, Y};

/// Action × role, columns in [`Role::ALL`] order:
/// pharmacist, technician, shipping clerk, billing, privacy officer,
/// administrator.
pub const ACTIONS: [(Action, [Grant; 6]); 25] = [
    //                                 pharm tech ship bill priv admin
    (Action::PatientRead, [Y, Y, N, Y, N, N]),
    (Action::PatientSearch, [Y, Y, N, Y, N, N]),
    (Action::PatientCreate, [Y, Y, N, N, N, N]),
    (Action::PatientUpdate, [Y, Y, N, Y, N, N]),
    (Action::CoverageRead, [Y, Y, N, Y, N, N]),
    (Action::CoverageWrite, [Y, Y, N, Y, N, N]),
    (Action::AllergyRead, [Y, Y, N, N, N, N]),
    (Action::AllergyWrite, [Y, Y, N, N, N, N]),
    (Action::PrescriptionRead, [Y, Y, N, Y, N, N]),
    (Action::PrescriptionSearch, [Y, Y, N, Y, N, N]),
    (Action::PrescriptionCreate, [Y, Y, N, N, N, N]),
    (Action::PrescriptionUpdate, [Y, N, N, N, N, N]),
    (Action::FillRead, [Y, Y, T, Y, N, N]),
    (Action::FillSearch, [Y, Y, T, Y, N, N]),
    (Action::FillCreate, [Y, Y, N, N, N, N]),
    (Action::FillUpdate, [Y, Y, T, N, N, N]),
    (Action::ShippingManifest, [Y, Y, T, N, N, N]),
    (Action::BulkExport, [Y, N, N, N, N, N]),
    (Action::UserAdmin, [N, N, N, N, N, Y]),
    (Action::RevokeSessions, [N, N, N, N, N, Y]),
    (Action::KeyOperations, [N, N, N, N, N, Y]),
    (Action::AuditRead, [N, N, N, N, Y, N]),
    (Action::BreakGlass, [N, N, N, Y, N, Y]),
    (Action::AccessApprove, [N, N, N, N, Y, Y]),
    (Action::AlertsManage, [N, N, N, N, Y, Y]),
];

/// Whether `role` may do `action`, and with which limit (`None`: not
/// permitted). Break-glass and step-up are applied on top by the caller
/// ([`crate::Principal::permits`], [`crate::Auth::authorize`]).
pub fn allowed(role: Role, action: Action) -> Option<Constraint> {
    ACTIONS
        .iter()
        .find(|(a, _)| *a == action)
        .and_then(|(_, row)| row[role.column()].constraint())
}

/// The field categories of `kind` that `role` may see.
pub fn categories(role: Role, kind: RecordKind) -> CategorySet {
    use RecordKind as K;
    match (role, kind) {
        (Role::Pharmacist | Role::Technician, _) => CategorySet::ALL,
        // A label: ship-to, carrier and tracking; the fill's identifiers
        // (transaction ID) and status. Nothing of any other kind.
        (Role::ShippingClerk, K::Fill) => {
            CategorySet::of(&[C::Shipping, C::Identifiers, C::Administrative])
        }
        (Role::ShippingClerk, _) => CategorySet::NONE,
        (Role::Billing, K::Patient) => CategorySet::of(&[
            C::Demographics,
            C::Contact,
            C::Identifiers,
            C::Administrative,
        ]),
        (Role::Billing, K::Coverage | K::Prescription) => {
            CategorySet::of(&[C::HealthPlan, C::Identifiers, C::Administrative])
        }
        (Role::Billing, K::Fill) => CategorySet::of(&[C::Identifiers, C::Administrative]),
        (Role::Billing, K::Allergy) => CategorySet::NONE,
        (Role::PrivacyOfficer | Role::Administrator, _) => CategorySet::NONE,
    }
}

impl Role {
    /// Whether this role reads charts: some chart read or search without a
    /// limit (pharmacist, technician, billing; not the shipping clerk,
    /// who sees today's labels only).
    pub fn reads_charts(self) -> bool {
        Action::ALL
            .into_iter()
            .any(|a| a.break_glass_read() && allowed(self, a) == Some(Constraint::Unrestricted))
    }

    /// Whether giving someone this role needs a second person: it reads
    /// charts, may break the glass, or approves others' access (a role
    /// that approves, given alone, would let its giver approve their own
    /// requests through it).
    pub fn is_sensitive(self) -> bool {
        self.reads_charts()
            || allowed(self, Action::BreakGlass).is_some()
            || allowed(self, Action::AccessApprove).is_some()
    }

    /// Whether everything this role may do and see, `other` may too (a
    /// change from `other` to this role is a lowering).
    pub fn within(self, other: Role) -> bool {
        let rank = |c: Option<Constraint>| match c {
            None => 0,
            Some(Constraint::FillsDatedToday) => 1,
            Some(Constraint::Unrestricted) => 2,
        };
        Action::ALL
            .into_iter()
            .all(|a| rank(allowed(self, a)) <= rank(allowed(other, a)))
            && RecordKind::ALL.into_iter().all(|k| {
                let theirs = categories(other, k);
                categories(self, k).iter().all(|c| theirs.contains(c))
            })
    }
}

/// Whether changing a person's role from `from` (`None`: no role yet) to
/// `to` needs a second person's approval: `to` is sensitive
/// ([`Role::is_sensitive`]) and not a lowering ([`Role::within`]). Giving
/// a shipping-clerk role, or lowering a role, takes effect at once.
pub fn needs_approval(from: Option<Role>, to: Role) -> bool {
    to.is_sensitive() && !from.is_some_and(|f| to.within(f))
}

/// What an active break-glass grant lets its holder see, of every kind.
pub fn break_glass_categories(_kind: RecordKind) -> CategorySet {
    CategorySet::ALL
}

/// A service-account scope (granted per API key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Read and search patients, their plans and allergies.
    PatientsRead,
    /// Create and update patients, plans and allergies.
    PatientsWrite,
    /// Read and search prescriptions.
    PrescriptionsRead,
    /// Receive and update prescriptions.
    PrescriptionsWrite,
    /// Read and search fills.
    FillsRead,
    /// Create and update fills.
    FillsWrite,
    /// Today's shipping manifest and labels only.
    ShippingRead,
    /// Revoke sessions (the workstation agent cutting a host off).
    SessionsRevoke,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 8] = [
        Scope::PatientsRead,
        Scope::PatientsWrite,
        Scope::PrescriptionsRead,
        Scope::PrescriptionsWrite,
        Scope::FillsRead,
        Scope::FillsWrite,
        Scope::ShippingRead,
        Scope::SessionsRevoke,
    ];

    /// The stable name (`patients.read`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Scope::PatientsRead => "patients.read",
            Scope::PatientsWrite => "patients.write",
            Scope::PrescriptionsRead => "prescriptions.read",
            Scope::PrescriptionsWrite => "prescriptions.write",
            Scope::FillsRead => "fills.read",
            Scope::FillsWrite => "fills.write",
            Scope::ShippingRead => "shipping.read",
            Scope::SessionsRevoke => "sessions.revoke",
        }
    }

    /// The scope with this name.
    pub fn from_name(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether this scope reads charts (a chart read or search without a
    /// limit): a key with it is usable only once a second person approves
    /// it. `shipping.read` (today's labels) does not.
    pub fn reads_charts(self) -> bool {
        scope_actions(self)
            .iter()
            .any(|(a, c)| a.break_glass_read() && *c == Constraint::Unrestricted)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The actions a scope grants, with their limits.
pub fn scope_actions(scope: Scope) -> &'static [(Action, Constraint)] {
    use Action as A;
    use Constraint::{FillsDatedToday as Today, Unrestricted as All};
    match scope {
        Scope::PatientsRead => &[
            (A::PatientRead, All),
            (A::PatientSearch, All),
            (A::CoverageRead, All),
            (A::AllergyRead, All),
        ],
        Scope::PatientsWrite => &[
            (A::PatientCreate, All),
            (A::PatientUpdate, All),
            (A::CoverageWrite, All),
            (A::AllergyWrite, All),
        ],
        Scope::PrescriptionsRead => &[(A::PrescriptionRead, All), (A::PrescriptionSearch, All)],
        Scope::PrescriptionsWrite => &[(A::PrescriptionCreate, All), (A::PrescriptionUpdate, All)],
        Scope::FillsRead => &[(A::FillRead, All), (A::FillSearch, All)],
        Scope::FillsWrite => &[(A::FillCreate, All), (A::FillUpdate, All)],
        Scope::ShippingRead => &[
            (A::ShippingManifest, Today),
            (A::FillRead, Today),
            (A::FillSearch, Today),
        ],
        Scope::SessionsRevoke => &[(A::RevokeSessions, All)],
    }
}

/// The field categories of `kind` a scope lets its key see.
pub fn scope_categories(scope: Scope, kind: RecordKind) -> CategorySet {
    use RecordKind as K;
    match (scope, kind) {
        (Scope::PatientsRead, K::Patient | K::Coverage | K::Allergy) => CategorySet::ALL,
        (Scope::PrescriptionsRead, K::Prescription) => CategorySet::ALL,
        (Scope::FillsRead, K::Fill) => CategorySet::ALL,
        (Scope::ShippingRead, K::Fill) => {
            CategorySet::of(&[C::Shipping, C::Identifiers, C::Administrative])
        }
        _ => CategorySet::NONE,
    }
}

/// The permission of a set of scopes for `action`: the least limited grant
/// among them.
pub fn scopes_allow(scopes: &[Scope], action: Action) -> Option<Constraint> {
    let mut best = None;
    for s in scopes {
        for (a, c) in scope_actions(*s) {
            if *a == action {
                best = match (best, *c) {
                    (Some(Constraint::Unrestricted), _) | (_, Constraint::Unrestricted) => {
                        Some(Constraint::Unrestricted)
                    }
                    _ => Some(*c),
                };
            }
        }
    }
    best
}

/// The union of the categories of `kind` a set of scopes may see.
pub fn scopes_categories(scopes: &[Scope], kind: RecordKind) -> CategorySet {
    scopes
        .iter()
        .flat_map(|s| scope_categories(*s, kind).iter())
        .collect()
}

/// The tables rendered as text (action × role with `Y`/`T`/`-` and `*` for
/// step-up, then role × kind categories).
pub fn matrix() -> String {
    let mut out = String::from("action               pharm tech ship bill priv admin  step-up\n");
    for (action, row) in ACTIONS {
        out.push_str(&format!("{:<20}", action.name()));
        for cell in row {
            out.push_str(match cell {
                N => "   - ",
                Y => "   Y ",
                T => "   T ",
            });
        }
        out.push_str(if action.needs_step_up() {
            "   yes\n"
        } else {
            "\n"
        });
    }
    out.push('\n');
    for role in Role::ALL {
        out.push_str(&format!("{}:\n", role.name()));
        for kind in RecordKind::ALL {
            let set = categories(role, kind);
            let names: Vec<&str> = set.iter().map(|c| c.name()).collect();
            out.push_str(&format!(
                "  {:<20} {}\n",
                kind.fhir_type(),
                if set == CategorySet::ALL {
                    "all".to_string()
                } else if names.is_empty() {
                    "-".to_string()
                } else {
                    names.join(", ")
                }
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_every_action_once_in_order() {
        assert_eq!(
            ACTIONS.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
            Action::ALL.to_vec()
        );
        for (i, r) in Role::ALL.iter().enumerate() {
            assert_eq!(r.column(), i);
            assert_eq!(Role::from_name(r.name()), Some(*r));
        }
        for s in Scope::ALL {
            assert_eq!(Scope::from_name(s.name()), Some(s));
        }
        println!("{}", matrix());
    }

    #[test]
    fn shipping_clerks_see_only_todays_labels() {
        for action in Action::ALL {
            let got = allowed(Role::ShippingClerk, action);
            match action {
                Action::FillRead
                | Action::FillSearch
                | Action::FillUpdate
                | Action::ShippingManifest => {
                    assert_eq!(got, Some(Constraint::FillsDatedToday), "{action}")
                }
                _ => assert_eq!(got, None, "{action}"),
            }
        }
        for kind in RecordKind::ALL {
            let set = categories(Role::ShippingClerk, kind);
            if kind == RecordKind::Fill {
                assert!(!set.contains(C::Clinical) && !set.contains(C::Demographics));
                assert!(set.contains(C::Shipping));
            } else {
                assert!(set.is_empty(), "{kind}");
            }
        }
    }

    #[test]
    fn billing_never_sees_clinical_data_and_officers_no_charts() {
        for kind in RecordKind::ALL {
            assert!(
                !categories(Role::Billing, kind).contains(C::Clinical),
                "{kind}"
            );
            assert!(
                !categories(Role::Billing, kind).contains(C::Shipping),
                "{kind}"
            );
            assert!(categories(Role::PrivacyOfficer, kind).is_empty());
            assert!(categories(Role::Administrator, kind).is_empty());
        }
        assert_eq!(allowed(Role::Billing, Action::AllergyRead), None);
        for action in Action::ALL {
            let priv_ok = allowed(Role::PrivacyOfficer, action).is_some();
            assert_eq!(
                priv_ok,
                matches!(
                    action,
                    Action::AuditRead | Action::AccessApprove | Action::AlertsManage
                ),
                "{action}"
            );
            if allowed(Role::Administrator, action).is_some() {
                assert!(
                    matches!(
                        action,
                        Action::UserAdmin
                            | Action::RevokeSessions
                            | Action::KeyOperations
                            | Action::BreakGlass
                            | Action::AccessApprove
                            | Action::AlertsManage
                    ),
                    "{action}"
                );
            }
        }
    }

    #[test]
    fn a_role_that_may_act_on_a_kind_sees_some_of_it() {
        // The action and category tables agree: a read permission on a kind
        // comes with something to see, and no visibility without a read.
        let kind_of = |a: Action| match a {
            Action::PatientRead => Some(RecordKind::Patient),
            Action::CoverageRead => Some(RecordKind::Coverage),
            Action::AllergyRead => Some(RecordKind::Allergy),
            Action::PrescriptionRead => Some(RecordKind::Prescription),
            Action::FillRead => Some(RecordKind::Fill),
            _ => None,
        };
        for role in Role::ALL {
            for action in Action::ALL {
                if let Some(kind) = kind_of(action) {
                    assert_eq!(
                        allowed(role, action).is_some(),
                        !categories(role, kind).is_empty(),
                        "{role} {action}"
                    );
                }
            }
        }
        for scope in Scope::ALL {
            for action in Action::ALL {
                if let Some(kind) = kind_of(action) {
                    assert_eq!(
                        scopes_allow(&[scope], action).is_some(),
                        !scope_categories(scope, kind).is_empty(),
                        "{scope} {action}"
                    );
                }
            }
        }
    }

    #[test]
    fn no_scope_reaches_the_dangerous_actions() {
        for scope in Scope::ALL {
            for action in [
                Action::BulkExport,
                Action::UserAdmin,
                Action::KeyOperations,
                Action::AuditRead,
                Action::BreakGlass,
                Action::AccessApprove,
                Action::AlertsManage,
            ] {
                assert_eq!(scopes_allow(&[scope], action), None, "{scope} {action}");
            }
        }
        assert_eq!(
            scopes_allow(&[Scope::ShippingRead, Scope::FillsRead], Action::FillRead),
            Some(Constraint::Unrestricted),
            "the least limited grant wins"
        );
        assert_eq!(
            scopes_allow(&[Scope::ShippingRead], Action::FillRead),
            Some(Constraint::FillsDatedToday)
        );
        assert_eq!(
            scopes_categories(
                &[Scope::ShippingRead, Scope::PatientsRead],
                RecordKind::Fill
            ),
            scope_categories(Scope::ShippingRead, RecordKind::Fill)
        );
    }

    #[test]
    fn step_up_and_break_glass_sets() {
        let step_up: Vec<Action> = Action::ALL
            .into_iter()
            .filter(|a| a.needs_step_up())
            .collect();
        assert_eq!(
            step_up,
            vec![
                Action::BulkExport,
                Action::UserAdmin,
                Action::KeyOperations,
                Action::BreakGlass,
                Action::AccessApprove
            ]
        );
        for a in Action::ALL {
            if a.break_glass_read() {
                assert!(!a.needs_step_up());
                assert!(a.name().ends_with(".read") || a.name().ends_with(".search"));
            }
        }
    }

    #[test]
    fn which_role_changes_need_a_second_person() {
        use Role::*;
        let chart: Vec<Role> = Role::ALL.into_iter().filter(|r| r.reads_charts()).collect();
        assert_eq!(chart, vec![Pharmacist, Technician, Billing]);
        let sensitive: Vec<Role> = Role::ALL.into_iter().filter(|r| r.is_sensitive()).collect();
        assert_eq!(
            sensitive,
            vec![
                Pharmacist,
                Technician,
                Billing,
                PrivacyOfficer,
                Administrator
            ],
            "chart readers, break-glass holders and approvers"
        );
        // A new account: every sensitive role needs a second person.
        for r in Role::ALL {
            assert_eq!(needs_approval(None, r), r != ShippingClerk, "{r}");
        }
        // Lowerings and non-chart roles take effect at once.
        assert!(!needs_approval(Some(Pharmacist), Technician));
        assert!(!needs_approval(Some(Pharmacist), ShippingClerk));
        assert!(!needs_approval(Some(Administrator), ShippingClerk));
        assert!(!needs_approval(Some(Billing), Billing));
        // Raises and sideways moves into a sensitive role do not.
        assert!(needs_approval(Some(Technician), Pharmacist));
        assert!(needs_approval(Some(Billing), Technician), "allergies");
        assert!(needs_approval(Some(Technician), Billing), "break-glass");
        assert!(needs_approval(Some(ShippingClerk), Billing));
        assert!(needs_approval(Some(Administrator), Pharmacist));
        assert!(needs_approval(Some(Pharmacist), Administrator));
        assert!(needs_approval(Some(Administrator), PrivacyOfficer));
        assert!(needs_approval(Some(PrivacyOfficer), Administrator));
        for r in Role::ALL {
            assert!(r.within(r));
        }
        let chart_scopes: Vec<Scope> = Scope::ALL
            .into_iter()
            .filter(|s| s.reads_charts())
            .collect();
        assert_eq!(
            chart_scopes,
            vec![
                Scope::PatientsRead,
                Scope::PrescriptionsRead,
                Scope::FillsRead
            ]
        );
    }
}
