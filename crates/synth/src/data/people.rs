//! Origin groups: who the patients are, in 2020 Census proportions, and what
//! follows from it (name lists, the language they prefer at the pharmacy,
//! their OMB race and ethnicity as recorded with US Core extensions).
//!
//! Preferred-language shares follow the ACS "language spoken at home" and
//! "speaks English less than very well" tables: about 13% of US residents
//! speak Spanish at home but only some of them prefer it for their health
//! care, so overall roughly 91% prefer English, 7% Spanish, and fractions of
//! a percent Chinese, Vietnamese, Korean, Tagalog, Russian, Arabic, Haitian
//! Creole, French, German, and others.

use super::names::*;

/// A CDC race code (`urn:oid:2.16.840.1.113883.6.238`) and display.
pub(crate) type RaceCode = (&'static str, &'static str);

/// White.
pub(crate) const WHITE: RaceCode = ("2106-3", "White");
/// Black or African American.
pub(crate) const BLACK: RaceCode = ("2054-5", "Black or African American");
/// Asian.
pub(crate) const ASIAN: RaceCode = ("2028-9", "Asian");
/// American Indian or Alaska Native.
pub(crate) const NATIVE: RaceCode = ("1002-5", "American Indian or Alaska Native");
/// Native Hawaiian or Other Pacific Islander.
pub(crate) const PACIFIC: RaceCode = ("2076-8", "Native Hawaiian or Other Pacific Islander");
/// Hispanic or Latino.
pub(crate) const HISPANIC: RaceCode = ("2135-2", "Hispanic or Latino");
/// Not Hispanic or Latino.
pub(crate) const NOT_HISPANIC: RaceCode = ("2186-5", "Not Hispanic or Latino");

/// An origin group.
pub(crate) struct Origin {
    /// Name (for tests and debugging).
    pub name: &'static str,
    /// Share of the population, per 10,000.
    pub weight: u32,
    /// Surname tables and how often each is used.
    pub surnames: &'static [(&'static [(&'static str, u32)], u32)],
    /// Given names (male, female) typical of the group, if any.
    pub given: Option<(&'static [&'static str], &'static [&'static str])>,
    /// Chance (per 10,000) of a group-typical given name rather than a
    /// general American one.
    pub given_share: u32,
    /// Languages preferred over English and their chance (per 10,000).
    pub languages: &'static [(&'static str, u32)],
    /// OMB race category (with a detailed code for Asian groups).
    pub race: RaceCode,
    /// Detailed race, if recorded.
    pub race_detail: Option<RaceCode>,
    /// Hispanic or Latino ethnicity.
    pub hispanic: bool,
    /// Whether surnames take the feminine form for women (`-ov` -> `-ova`).
    pub gendered_surnames: bool,
}

/// The origin groups.
pub(crate) static ORIGINS: &[Origin] = &[
    Origin {
        name: "general",
        weight: 6080,
        surnames: &[(SURNAMES_GENERAL, 1)],
        given: None,
        given_share: 0,
        languages: &[("de", 25), ("fr", 20), ("it", 15), ("pl", 20), ("pt", 15)],
        race: WHITE,
        race_detail: None,
        hispanic: false,
        gendered_surnames: false,
    },
    Origin {
        name: "african-american",
        weight: 1180,
        surnames: &[(SURNAMES_GENERAL, 6), (SURNAMES_AFRICAN_AMERICAN, 4)],
        given: Some((MALE_AFRICAN_AMERICAN, FEMALE_AFRICAN_AMERICAN)),
        given_share: 2500,
        languages: &[],
        race: BLACK,
        race_detail: None,
        hispanic: false,
        gendered_surnames: false,
    },
    Origin {
        name: "haitian",
        weight: 30,
        surnames: &[(SURNAMES_HAITIAN, 1)],
        given: Some((MALE_HAITIAN, FEMALE_HAITIAN)),
        given_share: 7000,
        languages: &[("ht", 4000), ("fr", 1000)],
        race: BLACK,
        race_detail: None,
        hispanic: false,
        gendered_surnames: false,
    },
    Origin {
        name: "hispanic",
        weight: 1870,
        surnames: &[(SURNAMES_HISPANIC, 9), (SURNAMES_GENERAL, 1)],
        given: Some((MALE_HISPANIC, FEMALE_HISPANIC)),
        given_share: 6500,
        languages: &[("es", 4000)],
        race: WHITE,
        race_detail: None,
        hispanic: true,
        gendered_surnames: false,
    },
    Origin {
        name: "chinese",
        weight: 140,
        surnames: &[(SURNAMES_CHINESE, 1)],
        given: Some((MALE_CHINESE, FEMALE_CHINESE)),
        given_share: 4500,
        languages: &[("zh", 4500)],
        race: ASIAN,
        race_detail: Some(("2034-7", "Chinese")),
        hispanic: false,
        gendered_surnames: false,
    },
    Origin {
        name: "indian",
        weight: 140,
        surnames: &[(SURNAMES_INDIAN, 1)],
        given: Some((MALE_INDIAN, FEMALE_INDIAN)),
        given_share: 8000,
        languages: &[("hi", 800), ("gu", 400), ("pa", 300), ("te", 200)],
        race: ASIAN,
        race_detail: Some(("2029-7", "Asian Indian")),
        hispanic: false,
        gendered_surnames: false,
    },
    Origin {
        name: "filipino",
        weight: 130,
        surnames: &[(SURNAMES_FILIPINO, 1)],
        given: Some((MALE_FILIPINO, FEMALE_FILIPINO)),
        given_share: 5000,
        languages: &[("tl", 1500)],
        race: ASIAN,
        race_detail: Some(("2036-2", "Filipino")),
        hispanic: false,
        gendered_surnames: false,
    },
    Origin {
        name: "vietnamese",
        weight: 70,
        surnames: &[(SURNAMES_VIETNAMESE, 1)],
        given: Some((MALE_VIETNAMESE, FEMALE_VIETNAMESE)),
        given_share: 6000,
        languages: &[("vi", 5000)],
        race: ASIAN,
        race_detail: Some(("2047-9", "Vietnamese")),
        hispanic: false,
        gendered_surnames: false,
    },
    Origin {
        name: "korean",
        weight: 60,
        surnames: &[(SURNAMES_KOREAN, 1)],
        given: Some((MALE_KOREAN, FEMALE_KOREAN)),
        given_share: 5000,
        languages: &[("ko", 4000)],
        race: ASIAN,
        race_detail: Some(("2040-4", "Korean")),
        hispanic: false,
        gendered_surnames: false,
    },
    Origin {
        name: "japanese",
        weight: 40,
        surnames: &[(SURNAMES_JAPANESE, 1)],
        given: Some((MALE_JAPANESE, FEMALE_JAPANESE)),
        given_share: 3000,
        languages: &[("ja", 1500)],
        race: ASIAN,
        race_detail: Some(("2039-6", "Japanese")),
        hispanic: false,
        gendered_surnames: false,
    },
    Origin {
        name: "arab",
        weight: 60,
        surnames: &[(SURNAMES_ARAB, 1)],
        given: Some((MALE_ARAB, FEMALE_ARAB)),
        given_share: 7500,
        languages: &[("ar", 3500)],
        race: WHITE,
        race_detail: None,
        hispanic: false,
        gendered_surnames: false,
    },
    Origin {
        name: "slavic",
        weight: 40,
        surnames: &[(SURNAMES_SLAVIC, 1)],
        given: Some((MALE_SLAVIC, FEMALE_SLAVIC)),
        given_share: 7500,
        languages: &[("ru", 4000), ("uk", 500)],
        race: WHITE,
        race_detail: None,
        hispanic: false,
        gendered_surnames: true,
    },
    Origin {
        name: "native-american",
        weight: 70,
        surnames: &[(SURNAMES_NATIVE_AMERICAN, 1)],
        given: None,
        given_share: 0,
        languages: &[("nv", 300)],
        race: NATIVE,
        race_detail: None,
        hispanic: false,
        gendered_surnames: false,
    },
    Origin {
        name: "pacific-islander",
        weight: 20,
        surnames: &[(SURNAMES_PACIFIC_ISLANDER, 1)],
        given: None,
        given_share: 0,
        languages: &[("sm", 800), ("to", 500)],
        race: PACIFIC,
        race_detail: None,
        hispanic: false,
        gendered_surnames: false,
    },
];
