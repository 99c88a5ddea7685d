//! Allergens recorded in pharmacy profiles, weighted by how often patients
//! report them (penicillin far ahead, then sulfa drugs, opioids, latex and
//! the common food allergens).

/// An allergen.
pub(crate) struct Allergen {
    /// What the pharmacy records (`AllergyIntolerance.code.text`).
    pub substance: &'static str,
    /// `medication`, `food`, `environment`.
    pub category: &'static str,
    /// `allergy` or `intolerance`.
    pub kind: &'static str,
    /// Typical manifestations.
    pub reactions: &'static [&'static str],
    /// Chance (per 10,000) that criticality is `high`.
    pub high_per_10k: u32,
    /// Drug classes (see `drugs::Drug::class`) the patient must not be
    /// prescribed.
    pub excludes: &'static [&'static str],
    /// Whether the patient is likely to carry an epinephrine auto-injector.
    pub epinephrine: bool,
    /// Relative frequency.
    pub weight: u32,
}

macro_rules! allergen {
    ($s:expr, $cat:expr, $kind:expr, [$($r:expr),*], $high:expr, [$($x:expr),*], $epi:expr, $w:expr) => {
        Allergen { substance: $s, category: $cat, kind: $kind, reactions: &[$($r),*], high_per_10k: $high,
                   excludes: &[$($x),*], epinephrine: $epi, weight: $w }
    };
}

/// The allergens.
pub(crate) static ALLERGENS: &[Allergen] = &[
    allergen!(
        "Penicillin",
        "medication",
        "allergy",
        ["Hives", "Rash", "Itching", "Swelling", "Anaphylaxis"],
        1500,
        ["penicillin"],
        false,
        300
    ),
    allergen!(
        "Amoxicillin",
        "medication",
        "allergy",
        ["Rash", "Hives", "Itching"],
        1000,
        ["penicillin"],
        false,
        40
    ),
    allergen!(
        "Sulfa drugs (sulfonamide antibiotics)",
        "medication",
        "allergy",
        ["Rash", "Hives", "Itching"],
        800,
        ["sulfonamide"],
        false,
        120
    ),
    allergen!(
        "Codeine",
        "medication",
        "intolerance",
        ["Nausea", "Vomiting", "Itching", "Dizziness"],
        300,
        [],
        false,
        60
    ),
    allergen!(
        "Morphine",
        "medication",
        "intolerance",
        ["Itching", "Nausea", "Hives"],
        500,
        [],
        false,
        30
    ),
    allergen!(
        "Aspirin",
        "medication",
        "allergy",
        ["Hives", "Wheezing", "Swelling"],
        1000,
        ["nsaid"],
        false,
        40
    ),
    allergen!(
        "Ibuprofen",
        "medication",
        "allergy",
        ["Hives", "Swelling", "Stomach upset"],
        800,
        ["nsaid"],
        false,
        30
    ),
    allergen!(
        "Cephalexin",
        "medication",
        "allergy",
        ["Rash", "Hives"],
        1000,
        ["cephalosporin"],
        false,
        30
    ),
    allergen!(
        "Erythromycin",
        "medication",
        "intolerance",
        ["Nausea", "Stomach upset", "Diarrhea"],
        200,
        ["macrolide"],
        false,
        20
    ),
    allergen!(
        "Ciprofloxacin",
        "medication",
        "allergy",
        ["Rash", "Tendon pain"],
        800,
        ["fluoroquinolone"],
        false,
        20
    ),
    allergen!(
        "Tetracycline",
        "medication",
        "allergy",
        ["Rash", "Sun sensitivity"],
        500,
        ["tetracycline"],
        false,
        10
    ),
    allergen!(
        "Lisinopril",
        "medication",
        "intolerance",
        ["Cough", "Angioedema"],
        2000,
        ["acei"],
        false,
        25
    ),
    allergen!(
        "Statins",
        "medication",
        "intolerance",
        ["Muscle pain"],
        200,
        ["statin"],
        false,
        20
    ),
    allergen!(
        "Iodinated contrast media",
        "medication",
        "allergy",
        ["Hives", "Itching", "Anaphylaxis"],
        2500,
        [],
        false,
        20
    ),
    allergen!(
        "Latex",
        "environment",
        "allergy",
        ["Rash", "Itching", "Hives", "Anaphylaxis"],
        2000,
        [],
        false,
        40
    ),
    allergen!(
        "Bee venom",
        "environment",
        "allergy",
        ["Swelling", "Hives", "Anaphylaxis"],
        6000,
        [],
        true,
        20
    ),
    allergen!(
        "Adhesive tape",
        "environment",
        "intolerance",
        ["Rash", "Blistering"],
        100,
        [],
        false,
        15
    ),
    allergen!(
        "Peanut",
        "food",
        "allergy",
        ["Hives", "Swelling", "Anaphylaxis", "Wheezing"],
        7000,
        [],
        true,
        50
    ),
    allergen!(
        "Tree nuts",
        "food",
        "allergy",
        ["Hives", "Swelling", "Anaphylaxis"],
        6000,
        [],
        true,
        30
    ),
    allergen!(
        "Shellfish",
        "food",
        "allergy",
        ["Hives", "Swelling", "Vomiting", "Anaphylaxis"],
        5000,
        [],
        true,
        50
    ),
    allergen!(
        "Eggs",
        "food",
        "allergy",
        ["Hives", "Vomiting", "Rash"],
        2000,
        [],
        false,
        15
    ),
    allergen!(
        "Cow's milk",
        "food",
        "allergy",
        ["Hives", "Vomiting", "Diarrhea"],
        1500,
        [],
        false,
        15
    ),
    allergen!(
        "Soy",
        "food",
        "allergy",
        ["Hives", "Itching"],
        1000,
        [],
        false,
        5
    ),
    allergen!(
        "Wheat",
        "food",
        "allergy",
        ["Hives", "Stomach pain"],
        1000,
        [],
        false,
        5
    ),
];
