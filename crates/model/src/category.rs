//! Field categories: the unit of sealing and of access control.
//!
//! Every element of a stored FHIR resource, at any depth, belongs to exactly
//! one category, decided by its content (the rules live in
//! `rxvault_fhir::split`: a fill's contained medication is clinical, its
//! ship-to shipping, a phone number contact wherever it is). Each category
//! of a record is sealed separately, so a role that may see only some
//! categories is served by decrypting only those: masking is the absence of
//! a key use, not a filter applied after decryption.

use std::fmt;

/// A category of PHI fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FieldCategory {
    /// Names, birth date, gender, deceased, language, race and ethnicity.
    Demographics,
    /// Addresses, phone numbers (every `telecom`), email.
    Contact,
    /// Medications, dosage, allergies, reasons, narrative text.
    Clinical,
    /// Payer, plan, group, subscriber relationship.
    HealthPlan,
    /// The record's own identifiers: its resource ID, medical record
    /// numbers, SSNs, member IDs, Rx numbers, transaction IDs. Not a
    /// reference to the patient from another record (that goes with the
    /// record's clinical or plan data).
    Identifiers,
    /// Ship-to name and address, carrier and tracking number of a fill.
    Shipping,
    /// Record metadata: profiles, status, bookkeeping.
    Administrative,
}

impl FieldCategory {
    /// Every category.
    pub const ALL: [FieldCategory; 7] = [
        FieldCategory::Demographics,
        FieldCategory::Contact,
        FieldCategory::Clinical,
        FieldCategory::HealthPlan,
        FieldCategory::Identifiers,
        FieldCategory::Shipping,
        FieldCategory::Administrative,
    ];

    /// The stable numeric code (part of the ciphertext format).
    pub fn code(self) -> u8 {
        match self {
            FieldCategory::Demographics => 1,
            FieldCategory::Contact => 2,
            FieldCategory::Clinical => 3,
            FieldCategory::HealthPlan => 4,
            FieldCategory::Identifiers => 5,
            FieldCategory::Shipping => 6,
            FieldCategory::Administrative => 7,
        }
    }

    /// The category with this code.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// A short stable name (`demographics`, `contact`, ...).
    pub fn name(self) -> &'static str {
        match self {
            FieldCategory::Demographics => "demographics",
            FieldCategory::Contact => "contact",
            FieldCategory::Clinical => "clinical",
            FieldCategory::HealthPlan => "health-plan",
            FieldCategory::Identifiers => "identifiers",
            FieldCategory::Shipping => "shipping",
            FieldCategory::Administrative => "administrative",
        }
    }

    /// The category with this name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl fmt::Display for FieldCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of field categories (a bit set over [`FieldCategory::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CategorySet(u16);

impl CategorySet {
    /// No category.
    pub const NONE: CategorySet = CategorySet(0);
    /// Every category.
    pub const ALL: CategorySet = CategorySet(0b1111_1110);

    /// A set of the given categories.
    pub fn of(categories: &[FieldCategory]) -> Self {
        categories.iter().fold(Self::NONE, |set, c| set.with(*c))
    }

    /// This set with `category` added.
    #[must_use]
    pub fn with(self, category: FieldCategory) -> Self {
        CategorySet(self.0 | (1 << category.code()))
    }

    /// Whether `category` is in the set.
    pub fn contains(self, category: FieldCategory) -> bool {
        self.0 & (1 << category.code()) != 0
    }

    /// The categories in the set, in code order.
    pub fn iter(self) -> impl Iterator<Item = FieldCategory> {
        FieldCategory::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<FieldCategory> for CategorySet {
    fn from_iter<I: IntoIterator<Item = FieldCategory>>(iter: I) -> Self {
        iter.into_iter().fold(Self::NONE, |set, c| set.with(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_contains_every_category_and_names_round_trip() {
        for c in FieldCategory::ALL {
            assert!(CategorySet::ALL.contains(c));
            assert!(!CategorySet::NONE.contains(c));
            assert_eq!(FieldCategory::from_code(c.code()), Some(c));
            assert_eq!(FieldCategory::from_name(c.name()), Some(c));
        }
        assert_eq!(CategorySet::ALL.iter().count(), FieldCategory::ALL.len());
        let set = CategorySet::of(&[FieldCategory::Contact, FieldCategory::Shipping]);
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            vec![FieldCategory::Contact, FieldCategory::Shipping]
        );
    }
}
