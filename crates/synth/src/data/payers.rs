//! Health plans: Medicare Part D and Medicare Advantage sponsors, Medicaid
//! managed-care plans, commercial carriers and PBMs, TRICARE, with the plan
//! names members see on their cards and the shape of their member IDs.

/// The line of business (decides eligibility and the Coverage type code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Line {
    /// Medicare Part D or Medicare Advantage with drug coverage (65+).
    Medicare,
    /// The state's Medicaid program.
    Medicaid,
    /// Employer or individual coverage.
    Commercial,
    /// TRICARE (military).
    Tricare,
}

impl Line {
    /// The Source of Payment Typology code and display (`Coverage.type`).
    pub(crate) fn sopt(self) -> (&'static str, &'static str) {
        match self {
            Line::Medicare => ("1", "MEDICARE"),
            Line::Medicaid => ("2", "MEDICAID"),
            Line::Commercial => ("5", "PRIVATE HEALTH INSURANCE"),
            Line::Tricare => ("311", "TRICARE (CHAMPUS)"),
        }
    }
}

/// The shape of a member ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemberId {
    /// N digits.
    Digits(u8),
    /// A fixed letter then N digits (Aetna `W…`, Humana `H…`).
    Letter(char, u8),
    /// Cigna: `U`, 8 digits, a 2-digit suffix.
    Cigna,
    /// Blue Cross Blue Shield: a 3-letter prefix then 9 digits.
    Bcbs,
    /// N random letters then M digits.
    Letters(u8, u8),
}

/// The shape of a group number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    /// An employer group number (digits, sometimes with a letter prefix).
    Employer,
    /// The CMS contract and plan benefit package (`S1234-001`, `H1234-001`).
    MedicareContract,
}

/// A payer.
pub(crate) struct Payer {
    /// The name on the card; `None` for the state's Blue Cross Blue Shield
    /// licensee or Medicaid program (see `geo::State`).
    pub name: Option<&'static str>,
    /// Plan names.
    pub plans: &'static [&'static str],
    /// Member ID shape.
    pub member_id: MemberId,
    /// Group number shape.
    pub group: Group,
    /// Relative market share within the line of business.
    pub weight: u32,
    /// Only where Kaiser Permanente operates.
    pub kaiser_only: bool,
}

macro_rules! payer {
    ($name:expr, [$($p:expr),+], $id:expr, $group:expr, $w:expr) => {
        Payer { name: $name, plans: &[$($p),+], member_id: $id, group: $group, weight: $w, kaiser_only: false }
    };
    ($name:expr, [$($p:expr),+], $id:expr, $group:expr, $w:expr, kaiser) => {
        Payer { name: $name, plans: &[$($p),+], member_id: $id, group: $group, weight: $w, kaiser_only: true }
    };
}

/// Medicare Part D / Medicare Advantage sponsors.
pub(crate) static MEDICARE: &[Payer] = &[
    payer!(
        Some("UnitedHealthcare / Optum Rx"),
        [
            "AARP Medicare Rx Preferred from UHC (PDP)",
            "AARP Medicare Rx Saver from UHC (PDP)",
            "AARP Medicare Advantage Choice (PPO)",
            "AARP Medicare Advantage Patriot (HMO-POS)",
            "UnitedHealthcare Dual Complete (HMO D-SNP)"
        ],
        MemberId::Digits(9),
        Group::MedicareContract,
        28
    ),
    payer!(
        Some("Humana"),
        [
            "Humana Basic Rx Plan (PDP)",
            "Humana Premier Rx Plan (PDP)",
            "Humana Gold Plus (HMO)",
            "Humana Choice (PPO)"
        ],
        MemberId::Letter('H', 8),
        Group::MedicareContract,
        20
    ),
    payer!(
        Some("Aetna / CVS Caremark"),
        [
            "Aetna Medicare SilverScript Choice (PDP)",
            "Aetna Medicare SilverScript Plus (PDP)",
            "Aetna Medicare Premier (PPO)",
            "Aetna Medicare Eagle (PPO)"
        ],
        MemberId::Letter('W', 9),
        Group::MedicareContract,
        16
    ),
    payer!(
        Some("Wellcare"),
        [
            "Wellcare Value Script (PDP)",
            "Wellcare Classic (PDP)",
            "Wellcare Dual Liberty (HMO D-SNP)"
        ],
        MemberId::Digits(10),
        Group::MedicareContract,
        10
    ),
    payer!(
        Some("Cigna Healthcare / Express Scripts"),
        [
            "Cigna Healthcare Saver Rx (PDP)",
            "Cigna True Choice Medicare (PPO)"
        ],
        MemberId::Cigna,
        Group::MedicareContract,
        5
    ),
    payer!(
        None,
        ["Blue Medicare Advantage (PPO)", "BlueRx Plus (PDP)"],
        MemberId::Bcbs,
        Group::MedicareContract,
        10
    ),
    payer!(
        Some("Kaiser Permanente"),
        ["Kaiser Permanente Senior Advantage (HMO)"],
        MemberId::Digits(9),
        Group::MedicareContract,
        30,
        kaiser
    ),
];

/// Medicaid managed-care plans (the payer is the state's program).
pub(crate) static MEDICAID_PLANS: &[&str] = &[
    "UnitedHealthcare Community Plan",
    "Molina Healthcare",
    "Aetna Better Health",
    "Amerigroup",
    "CareSource",
    "Centene Medicaid Managed Care",
    "Medicaid Fee-for-Service",
];

/// Commercial carriers and PBMs.
pub(crate) static COMMERCIAL: &[Payer] = &[
    payer!(
        Some("UnitedHealthcare / Optum Rx"),
        [
            "UnitedHealthcare Choice Plus",
            "UnitedHealthcare Options PPO",
            "UnitedHealthcare Navigate HMO",
            "UnitedHealthcare Select Plus"
        ],
        MemberId::Digits(9),
        Group::Employer,
        20
    ),
    payer!(
        None,
        [
            "Blue Preferred PPO",
            "BlueCard PPO",
            "Blue Advantage HMO",
            "Blue Choice PPO"
        ],
        MemberId::Bcbs,
        Group::Employer,
        30
    ),
    payer!(
        Some("Aetna / CVS Caremark"),
        [
            "Aetna Choice POS II",
            "Aetna Open Access Managed Choice",
            "Aetna HMO"
        ],
        MemberId::Letter('W', 9),
        Group::Employer,
        12
    ),
    payer!(
        Some("Cigna Healthcare / Express Scripts"),
        ["Cigna Open Access Plus", "Cigna LocalPlus", "Cigna PPO"],
        MemberId::Cigna,
        Group::Employer,
        10
    ),
    payer!(
        Some("Humana"),
        ["Humana ChoiceCare PPO", "Humana HMO Premier"],
        MemberId::Letter('H', 8),
        Group::Employer,
        3
    ),
    payer!(
        Some("CVS Caremark"),
        [
            "Employer Group Rx Plan",
            "Caremark Standard Control Formulary"
        ],
        MemberId::Letters(3, 8),
        Group::Employer,
        6
    ),
    payer!(
        Some("Express Scripts"),
        [
            "Employer Group Rx Plan",
            "National Preferred Formulary Plan"
        ],
        MemberId::Digits(11),
        Group::Employer,
        6
    ),
    payer!(
        Some("Optum Rx"),
        ["Employer Group Rx Plan", "Optum Rx Premium Formulary Plan"],
        MemberId::Letters(2, 9),
        Group::Employer,
        5
    ),
    payer!(
        Some("Kaiser Permanente"),
        [
            "Kaiser Permanente HMO",
            "Kaiser Permanente Gold 80 HMO",
            "Kaiser Permanente Silver 70 HMO"
        ],
        MemberId::Digits(9),
        Group::Employer,
        25,
        kaiser
    ),
];

/// TRICARE plans (`TRICARE For Life` is for those 65 and over).
pub(crate) static TRICARE_PLANS: &[&str] = &["TRICARE Prime", "TRICARE Select"];
