//! Masking by content (issue 9, item 1), as a property: for arbitrary valid
//! FHIR shapes of every stored kind (`rxvault_testkit::shapes`: contained
//! resources, references of every form, extensions, backbone elements,
//! `telecom` and `address` in many places), sealed by a real vault, every
//! role's and every API-key scope's view (`Vault::open_record`, and
//! `open_record_json` as the server serves it) is exactly the elements of
//! its categories: nothing more, nothing less. What "its categories" means
//! comes from an oracle written here from the rules documented in
//! `rxvault_fhir::split` (the module docs), not from the product's table or
//! code: a leaf's category is decided from its path upwards.
//!
//! `cargo test --test masking -- --nocapture` prints what was generated
//! (contained resources by type, references by target, telecoms,
//! extensions, per kind); the test fails if some kind lacked any of them.
//! `PROPTEST_CASES` sets the number of cases (default 600, five resources
//! each).

mod common;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rxvault_auth::permissions;
use rxvault_auth::{Role, Scope};
use rxvault_model::{CategorySet, FieldCategory as C, RecordKind};
use rxvault_testkit::shapes;
use rxvault_vault::Vault;
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::BTreeMap;

// ------------------------------------------------------------- the oracle --

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    K(String),
    I(usize),
}

/// The rules, as `rxvault_fhir::split` documents them. Rule 1, the element
/// table: each kind's top-level elements by category (all others clinical).
fn table(kind: RecordKind, element: &str) -> C {
    let element = element.strip_prefix('_').unwrap_or(element);
    let rows: &[(C, &[&str])] = &[
        (C::Identifiers, &["id", "identifier"]),
        (
            C::Administrative,
            &["meta", "implicitRules", "language", "modifierExtension"],
        ),
    ];
    for (c, names) in rows {
        if names.contains(&element) {
            return *c;
        }
    }
    let rows: &[(C, &[&str])] = match kind {
        RecordKind::Patient => &[
            (
                C::Demographics,
                &[
                    "name",
                    "gender",
                    "birthDate",
                    "maritalStatus",
                    "communication",
                    "photo",
                    "deceasedBoolean",
                    "deceasedDateTime",
                    "multipleBirthBoolean",
                    "multipleBirthInteger",
                ],
            ),
            (C::Contact, &["telecom", "address", "contact"]),
            (
                C::Administrative,
                &[
                    "active",
                    "generalPractitioner",
                    "managingOrganization",
                    "link",
                ],
            ),
        ],
        RecordKind::Coverage => &[
            (C::Identifiers, &["subscriberId"]),
            (C::Administrative, &["status"]),
            (
                C::HealthPlan,
                &[
                    "type",
                    "policyHolder",
                    "subscriber",
                    "beneficiary",
                    "dependent",
                    "relationship",
                    "period",
                    "payor",
                    "class",
                    "order",
                    "network",
                    "costToBeneficiary",
                    "subrogation",
                    "contract",
                    "extension",
                ],
            ),
        ],
        RecordKind::Prescription => &[
            (C::Identifiers, &["groupIdentifier"]),
            (C::HealthPlan, &["insurance"]),
            (C::Administrative, &["status", "intent"]),
        ],
        RecordKind::Fill => &[
            (C::Shipping, &["destination", "receiver"]),
            (C::Administrative, &["status"]),
        ],
        RecordKind::Allergy => &[(C::Administrative, &["clinicalStatus", "verificationStatus"])],
    };
    rows.iter()
        .find(|(_, names)| names.contains(&element))
        .map_or(C::Clinical, |(c, _)| *c)
}

/// Rule 4: where a reference to the patient goes, per kind.
fn link(kind: RecordKind) -> C {
    match kind {
        RecordKind::Coverage => C::HealthPlan,
        RecordKind::Patient => C::Administrative,
        _ => C::Clinical,
    }
}

const WHO_WHERE: [&str; 5] = [
    "Location",
    "Organization",
    "Practitioner",
    "PractitionerRole",
    "RelatedPerson",
];
const PLAN: [&str; 4] = ["Coverage", "Claim", "ClaimResponse", "ExplanationOfBenefit"];

/// Rule 2: top-level extensions of patients and fills, by url.
fn extension_rule(kind: RecordKind, url: Option<&str>) -> Option<C> {
    let demographic = |u: &str| {
        [
            "us-core-race",
            "us-core-ethnicity",
            "us-core-birthsex",
            "us-core-genderIdentity",
            "us-core-sex",
        ]
        .iter()
        .any(|n| u == format!("http://hl7.org/fhir/us/core/StructureDefinition/{n}"))
            || [
                "patient-mothersMaidenName",
                "patient-birthPlace",
                "patient-nationality",
                "patient-citizenship",
                "patient-religion",
                "patient-genderIdentity",
                "individual-genderIdentity",
                "individual-pronouns",
            ]
            .iter()
            .any(|n| u == format!("http://hl7.org/fhir/StructureDefinition/{n}"))
    };
    match kind {
        RecordKind::Fill => Some(
            if url.is_some_and(|u| {
                u.starts_with("https://rxvault.dev/fhir/StructureDefinition/shipment-")
            }) {
                C::Shipping
            } else {
                C::Clinical
            },
        ),
        RecordKind::Patient => Some(if url.is_some_and(demographic) {
            C::Demographics
        } else {
            C::Clinical
        }),
        _ => None,
    }
}

struct Oracle<'a> {
    kind: RecordKind,
    r: &'a Map<String, Value>,
    patient: &'a str,
}

fn get<'v>(mut v: &'v Value, path: &[Step]) -> &'v Value {
    for s in path {
        v = match s {
            Step::K(k) => &v[k.as_str()],
            Step::I(i) => &v[*i],
        };
    }
    v
}

/// Whether `v` is a Reference (a `reference` string, or a `type` string
/// with an `identifier` or `display`).
fn is_reference(v: &Value) -> bool {
    let Some(o) = v.as_object() else { return false };
    o.get("reference").is_some_and(Value::is_string)
        || (o.get("type").is_some_and(Value::is_string)
            && (o.contains_key("identifier") || o.contains_key("display")))
}

impl Oracle<'_> {
    fn root(&self) -> Value {
        Value::Object(self.r.clone())
    }

    fn contained(&self) -> &[Value] {
        self.r
            .get("contained")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// The innermost rule deciding `path` when no reference or telecom
    /// fixes it: the contained resource, top-level extension or element it
    /// is in.
    fn base(&self, path: &[Step]) -> C {
        let root = self.root();
        match path {
            [Step::K(c), Step::I(i), rest @ ..] if c == "contained" => {
                let item = &self.contained()[*i];
                if !item.is_object() {
                    return C::Clinical;
                }
                if item["resourceType"] != "Patient" {
                    return self.contained_category(*i);
                }
                match rest {
                    [] => self.contained_category(*i),
                    [Step::K(k), ..] if k == "resourceType" => link(self.kind),
                    [Step::K(k), Step::I(j), ..] if k == "extension" => {
                        let url = item["extension"][*j]["url"].as_str();
                        extension_rule(RecordKind::Patient, url).unwrap()
                    }
                    [Step::K(k), ..] if k == "extension" => C::Clinical,
                    [Step::K(k), ..] => match table(RecordKind::Patient, k) {
                        c @ (C::Demographics | C::Contact | C::Clinical) => c,
                        _ => link(self.kind),
                    },
                    _ => unreachable!(),
                }
            }
            [Step::K(c), ..] if c == "contained" => C::Clinical,
            [Step::K(e), Step::I(j), ..]
                if e == "extension" && extension_rule(self.kind, None).is_some() =>
            {
                let url = get(&root, &path[..2])["url"].as_str();
                extension_rule(self.kind, url).unwrap()
            }
            [Step::K(e)] if e == "extension" && extension_rule(self.kind, None).is_some() => {
                C::Clinical
            }
            [Step::K(k), ..] => table(self.kind, k),
            [] | [Step::I(_), ..] => unreachable!("leaves are inside elements"),
        }
    }

    /// Where the outermost reference or `telecom` on the way to `path` is
    /// (its prefix length), if there is one (a contained resource itself is
    /// never read as a reference).
    fn fixing(&self, path: &[Step]) -> Option<usize> {
        let root = self.root();
        (1..=path.len()).find(|n| {
            let prefix = &path[..*n];
            if let Some(Step::K(k)) = prefix.last()
                && (k == "telecom" || k == "valueContactPoint")
            {
                return true;
            }
            let contained_root = matches!(prefix, [Step::K(c), Step::I(_)] if c == "contained");
            !contained_root && is_reference(get(&root, prefix))
        })
    }

    /// What fixes `path`, if anything, and to which category.
    fn fixed(&self, path: &[Step]) -> Option<(usize, C)> {
        let n = self.fixing(path)?;
        let prefix = &path[..n];
        if let Some(Step::K(k)) = prefix.last()
            && (k == "telecom" || k == "valueContactPoint")
        {
            return Some((n, C::Contact));
        }
        let root = self.root();
        Some((n, self.reference(get(&root, prefix), self.base(prefix))))
    }

    fn category(&self, leaf: &[Step]) -> C {
        match self.fixed(leaf) {
            Some((_, c)) => c,
            None => self.base(leaf),
        }
    }

    /// Rule 3 for the contained resource at `i` (not a patient's elements).
    fn contained_category(&self, i: usize) -> C {
        let item = &self.contained()[i];
        let t = item["resourceType"].as_str().unwrap_or("");
        if t == "Patient" {
            return link(self.kind);
        }
        if PLAN.contains(&t) {
            return C::HealthPlan;
        }
        if !WHO_WHERE.contains(&t) {
            return C::Clinical;
        }
        let Some(id) = item["id"].as_str() else {
            return C::Clinical;
        };
        // The places outside `contained` whose reference names it, where
        // that reference is not inside another reference or a telecom.
        let root = self.root();
        let mut places = Vec::new();
        let mut nodes = Vec::new();
        all_nodes(&root, &mut Vec::new(), &mut nodes);
        for path in nodes {
            if matches!(path.first(), Some(Step::K(c)) if c == "contained") || path.is_empty() {
                continue;
            }
            let node = get(&root, &path);
            if is_reference(node)
                && node["reference"].as_str() == Some(&format!("#{id}"))
                && self.fixing(&path) == Some(path.len())
            {
                places.push(self.base(&path));
            }
        }
        match places.split_first() {
            Some((first, rest)) if rest.iter().all(|p| p == first) => *first,
            _ => C::Clinical,
        }
    }

    /// Rule 4: a reference found where the category is `here`.
    fn reference(&self, node: &Value, here: C) -> C {
        let declared = node["type"].as_str();
        let reference = node["reference"].as_str();
        if let Some(local) = reference.and_then(|r| r.strip_prefix('#')) {
            let found = self
                .contained()
                .iter()
                .position(|c| c["id"].as_str() == Some(local));
            return match found {
                Some(i) if self.contained()[i]["resourceType"] == "Patient" => link(self.kind),
                Some(i) => self.contained_category(i),
                None => here,
            };
        }
        let mut types: Vec<&str> = declared.into_iter().collect();
        let mut id = None;
        if let Some(r) = reference {
            if let Some(rest) = r.strip_prefix("urn:uuid:").or(r.strip_prefix("urn:oid:")) {
                id = Some(rest);
            } else if let Some(q) = r.find('?') {
                types.extend(r[..q].rsplit('/').next().filter(|t| capitalised(t)));
            } else {
                let r = match r.find("/_history/") {
                    Some(h) => &r[..h],
                    None => r,
                };
                let segments: Vec<&str> = r.split('/').collect();
                id = segments.last().copied().filter(|s| !s.is_empty());
                if segments.len() >= 2 {
                    types.extend(Some(segments[segments.len() - 2]).filter(|t| capitalised(t)));
                }
            }
        }
        if types.contains(&"Patient") || id == Some(self.patient) {
            link(self.kind)
        } else if types.is_empty() {
            here
        } else if types.iter().any(|t| PLAN.contains(t)) {
            C::HealthPlan
        } else if types.iter().all(|t| WHO_WHERE.contains(t)) {
            here
        } else {
            C::Clinical
        }
    }

    /// Every stored leaf (a primitive or an empty object or array) with
    /// its category.
    fn leaves(&self) -> Vec<(Vec<Step>, C)> {
        let mut out = Vec::new();
        for (k, v) in self.r.iter().filter(|(k, _)| *k != "resourceType") {
            let mut all = Vec::new();
            leaf_paths(v, &mut vec![Step::K(k.clone())], &mut all);
            out.extend(all.into_iter().map(|p| {
                let c = self.category(&p);
                (p, c)
            }));
        }
        out
    }
}

fn capitalised(t: &str) -> bool {
    t.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && t.chars().all(|c| c.is_ascii_alphanumeric())
}

fn all_nodes(v: &Value, path: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(path.clone());
    match v {
        Value::Object(o) => o.iter().for_each(|(k, x)| {
            path.push(Step::K(k.clone()));
            all_nodes(x, path, out);
            path.pop();
        }),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| {
            path.push(Step::I(i));
            all_nodes(x, path, out);
            path.pop();
        }),
        _ => {}
    }
}

fn leaf_paths(v: &Value, path: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match v {
        Value::Object(o) if !o.is_empty() => o.iter().for_each(|(k, x)| {
            path.push(Step::K(k.clone()));
            leaf_paths(x, path, out);
            path.pop();
        }),
        Value::Array(a) if !a.is_empty() => a.iter().enumerate().for_each(|(i, x)| {
            path.push(Step::I(i));
            leaf_paths(x, path, out);
            path.pop();
        }),
        _ => out.push(path.clone()),
    }
}

/// The resource holding only the leaves whose category is in `set`
/// (arrays closing up, emptied containers gone): what a reader of `set`
/// must be shown.
fn expected_view(
    r: &Map<String, Value>,
    leaves: &[(Vec<Step>, C)],
    set: CategorySet,
    kind: RecordKind,
) -> Value {
    #[derive(Default)]
    struct Tree {
        leaf: Option<Value>,
        keys: BTreeMap<String, Tree>,
        items: BTreeMap<usize, Tree>,
    }
    fn build(t: Tree) -> Value {
        if let Some(v) = t.leaf {
            return v;
        }
        if !t.items.is_empty() {
            return Value::Array(t.items.into_values().map(build).collect());
        }
        Value::Object(t.keys.into_iter().map(|(k, v)| (k, build(v))).collect())
    }
    let root = Value::Object(r.clone());
    let mut tree = Tree::default();
    for (path, c) in leaves.iter().filter(|(_, c)| set.contains(*c)) {
        let mut t = &mut tree;
        for s in path {
            t = match s {
                Step::K(k) => t.keys.entry(k.clone()).or_default(),
                Step::I(i) => t.items.entry(*i).or_default(),
            };
        }
        t.leaf = Some(get(&root, path).clone());
        let _ = c;
    }
    let mut out = build(tree);
    out["resourceType"] = Value::String(kind.fhir_type().into());
    out
}

// ------------------------------------------------------------ the property --

/// What was generated, per kind.
#[derive(Default, Debug)]
struct Counts {
    resources: u64,
    contained: BTreeMap<String, u64>,
    references: BTreeMap<&'static str, u64>,
    telecoms: u64,
    addresses: u64,
    extensions: u64,
    split_elements: u64,
    leaves: BTreeMap<&'static str, u64>,
}

fn count(kind_counts: &mut Counts, oracle: &Oracle<'_>, leaves: &[(Vec<Step>, C)]) {
    kind_counts.resources += 1;
    for c in oracle.contained() {
        *kind_counts
            .contained
            .entry(c["resourceType"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    let root = oracle.root();
    let mut nodes = Vec::new();
    all_nodes(&root, &mut Vec::new(), &mut nodes);
    for path in &nodes {
        let node = get(&root, path);
        if let Some(Step::K(k)) = path.last() {
            match k.as_str() {
                "telecom" | "valueContactPoint" => kind_counts.telecoms += 1,
                "address" | "valueAddress" => kind_counts.addresses += 1,
                "extension" => {
                    kind_counts.extensions += node.as_array().map_or(0, |a| a.len() as u64)
                }
                _ => {}
            }
        }
        if path.is_empty()
            || !is_reference(node)
            || matches!(path.as_slice(), [Step::K(c), Step::I(_)] if c == "contained")
        {
            continue;
        }
        let r = node["reference"].as_str().unwrap_or("");
        let target = if r.starts_with('#') {
            "contained (#id)"
        } else if r.contains(oracle.patient) {
            "the patient"
        } else if r.contains("Patient") || node["type"] == "Patient" {
            "another patient"
        } else if r.contains("Practitioner") || node["type"] == "Practitioner" {
            "practitioner"
        } else if r.contains("Organization") {
            "organization"
        } else if r.contains("Location") {
            "location"
        } else if r.contains("Medication") {
            "medication"
        } else if r.contains("Coverage") {
            "coverage"
        } else if r.starts_with("urn:") {
            "urn of something else"
        } else {
            "other (condition, encounter, ...)"
        };
        *kind_counts.references.entry(target).or_default() += 1;
    }
    for (_, c) in leaves {
        *kind_counts.leaves.entry(c.name()).or_default() += 1;
    }
    for (k, _) in oracle.r.iter() {
        let cats: std::collections::BTreeSet<C> = leaves
            .iter()
            .filter(|(p, _)| p[0] == Step::K(k.clone()))
            .map(|(_, c)| *c)
            .collect();
        if cats.len() > 1 {
            kind_counts.split_elements += 1;
        }
    }
}

/// Every role's and scope's categories of `kind`, named; and each single
/// category, and all of them.
fn views(kind: RecordKind) -> Vec<(String, CategorySet)> {
    let mut out: Vec<(String, CategorySet)> = Role::ALL
        .into_iter()
        .map(|r| (format!("role {r}"), permissions::categories(r, kind)))
        .collect();
    out.extend(
        Scope::ALL
            .into_iter()
            .map(|s| (format!("scope {s}"), permissions::scope_categories(s, kind))),
    );
    out.extend(
        C::ALL
            .into_iter()
            .map(|c| (format!("category {c}"), CategorySet::of(&[c]))),
    );
    out.push(("everything".into(), CategorySet::ALL));
    out
}

fn check_one(
    vault: &Vault,
    kind: RecordKind,
    seed: u64,
    counts: &RefCell<BTreeMap<RecordKind, Counts>>,
) -> Result<(), TestCaseError> {
    let shape = shapes::generate(kind.fhir_type(), seed);
    let oracle = Oracle {
        kind,
        r: &shape.resource,
        patient: &shape.patient,
    };
    let leaves = oracle.leaves();
    count(
        counts.borrow_mut().entry(kind).or_default(),
        &oracle,
        &leaves,
    );
    let shown = Value::Object(shape.resource.clone());
    let write = vault
        .unaudited()
        .seal(kind, shape.resource.clone())
        .map_err(|e| TestCaseError::fail(format!("{kind}: {e}: {shown}")))?;
    let record = write.record;
    // The envelope lists (in the clear) exactly the categories the oracle
    // finds: what exports and audit entries name.
    let present: CategorySet = leaves.iter().map(|(_, c)| *c).collect();
    prop_assert_eq!(
        rxvault_crypto::Keyring::categories(&record.envelope).unwrap(),
        present,
        "{}",
        shown
    );
    for (who, set) in views(kind) {
        let want = expected_view(&shape.resource, &leaves, set, kind);
        let got = vault.unaudited().open_record(&record, set).unwrap();
        prop_assert_eq!(
            &Value::Object(got.clone()),
            &want,
            "{} {} of {}",
            who,
            kind,
            shown
        );
        let text = vault.unaudited().open_record_json(&record, set).unwrap();
        let served: Value = serde_json::from_slice(text.as_bytes()).unwrap();
        prop_assert_eq!(&served, &want, "{} {} as JSON text of {}", who, kind, shown);
    }
    Ok(())
}

#[test]
fn issue_9_item_1_every_view_holds_exactly_its_categories() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = common::sqlite_vault(tmp.path(), time::macros::datetime!(2026-11-28 12:00 UTC));

    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(600);
    let counts: RefCell<BTreeMap<RecordKind, Counts>> = RefCell::default();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&any::<u64>(), |seed| {
            for kind in RecordKind::ALL {
                check_one(&vault, kind, seed, &counts)?;
            }
            Ok(())
        })
        .unwrap();

    let counts = counts.into_inner();
    println!("generated ({cases} cases):");
    for (kind, c) in &counts {
        println!(
            "  {kind}: {} resources, {} elements split between categories, {} telecoms, {} addresses, {} extensions",
            c.resources, c.split_elements, c.telecoms, c.addresses, c.extensions
        );
        println!("    contained: {:?}", c.contained);
        println!("    references: {:?}", c.references);
        println!("    leaves by category: {:?}", c.leaves);
    }
    for kind in RecordKind::ALL {
        let c = &counts[&kind];
        for t in [
            "Medication",
            "Location",
            "Patient",
            "Organization",
            "Practitioner",
        ] {
            assert!(
                c.contained.get(t).copied().unwrap_or(0) > 0,
                "{kind}: no contained {t}"
            );
        }
        for t in [
            "the patient",
            "contained (#id)",
            "practitioner",
            "medication",
        ] {
            assert!(
                c.references.get(t).copied().unwrap_or(0) > 0,
                "{kind}: no reference to {t}"
            );
        }
        assert!(
            c.telecoms > 0 && c.addresses > 0 && c.extensions > 0,
            "{kind}: {c:?}"
        );
        assert!(c.split_elements > 0, "{kind}: no element was split");
    }
}
