//! The embedded reference data the generator draws from: geography, names,
//! drugs, allergens and health plans. Everything is compiled in (no files
//! are read at run time), so a dataset depends on nothing but its config.

pub(crate) mod allergens;
pub(crate) mod drugs;
pub(crate) mod geo;
pub(crate) mod names;
pub(crate) mod payers;
pub(crate) mod people;
