//! Reading patients: a chart by patient ID, and searches through the blind
//! indexes (no decryption until a match is found, and then only of the
//! matches).

use crate::access::View;
use crate::{Error, Result, Vault};
use rxvault_fhir::{Resource, map};
use rxvault_model::record::{MedicationListEntry, medication_list};
use rxvault_model::{
    Allergy, CategorySet, Coverage, Fill, IndexKind, Patient, Prescription, RecordKind, Rid,
};
use serde::Serialize;

/// A search the blind indexes can answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Find {
    /// Family name and birth date (both required: the index is on the pair).
    FamilyBirthDate {
        /// Family name, any case and punctuation.
        family: String,
        /// Birth date, `YYYY-MM-DD` or `MM/DD/YYYY`.
        birth_date: String,
    },
    /// A phone number, any formatting.
    Phone(String),
    /// A health plan member ID.
    MemberId(String),
    /// A prescription's Rx number.
    RxNumber(String),
    /// A fill's transaction ID.
    TransactionId(String),
    /// A patient identifier's value (medical record number and others).
    PatientIdentifier(String),
}

impl Find {
    pub(crate) fn index(&self) -> (IndexKind, String) {
        match self {
            Find::FamilyBirthDate { family, birth_date } => {
                (IndexKind::FamilyBirthDate, format!("{family}|{birth_date}"))
            }
            Find::Phone(v) => (IndexKind::Phone, v.clone()),
            Find::MemberId(v) => (IndexKind::MemberId, v.clone()),
            Find::RxNumber(v) => (IndexKind::RxNumber, v.clone()),
            Find::TransactionId(v) => (IndexKind::TransactionId, v.clone()),
            Find::PatientIdentifier(v) => (IndexKind::PatientIdentifier, v.clone()),
        }
    }
}

/// A patient's records, as (possibly partial) FHIR resources.
#[derive(Debug, Clone)]
pub struct Chart {
    /// The patient's storage key.
    pub rid: Rid,
    /// The Patient resource.
    pub patient: Resource,
    /// Health plans.
    pub coverages: Vec<Resource>,
    /// Prescriptions.
    pub prescriptions: Vec<Resource>,
    /// Fills and shipments.
    pub fills: Vec<Resource>,
    /// Allergies.
    pub allergies: Vec<Resource>,
}

/// The typed view of a chart.
#[derive(Debug, Clone, Serialize)]
pub struct ChartView {
    /// The patient.
    pub patient: Patient,
    /// Health plans.
    pub coverages: Vec<Coverage>,
    /// The medication list, derived from prescriptions and fills.
    pub medications: Vec<MedicationListEntry>,
    /// Prescriptions.
    pub prescriptions: Vec<Prescription>,
    /// Fills.
    pub fills: Vec<Fill>,
    /// Allergies.
    pub allergies: Vec<Allergy>,
}

impl Chart {
    /// The typed view (fields of categories that were not opened are empty).
    pub fn view(&self) -> Result<ChartView> {
        let bad = |e: rxvault_fhir::FieldError| Error::Corrupt {
            what: format!("record of patient {}", self.rid),
            message: e.to_string(),
        };
        let prescriptions: Vec<Prescription> = self
            .prescriptions
            .iter()
            .map(map::prescription_view)
            .collect::<Result<_, _>>()
            .map_err(bad)?;
        let fills: Vec<Fill> = self
            .fills
            .iter()
            .map(map::fill_view)
            .collect::<Result<_, _>>()
            .map_err(bad)?;
        Ok(ChartView {
            patient: map::patient_view(&self.patient).map_err(bad)?,
            coverages: self
                .coverages
                .iter()
                .map(map::coverage_view)
                .collect::<Result<_, _>>()
                .map_err(bad)?,
            medications: medication_list(&prescriptions, &fills),
            prescriptions,
            fills,
            allergies: self
                .allergies
                .iter()
                .map(map::allergy_view)
                .collect::<Result<_, _>>()
                .map_err(bad)?,
        })
    }
}

impl Vault {
    #[cfg(feature = "unaudited")]
    /// The chart of the patient with FHIR id `patient_id`, opening only the
    /// categories in `want` (not audited: see [`Vault::read_chart`]).
    pub(crate) fn chart(&self, patient_id: &str, want: CategorySet) -> Result<Option<Chart>> {
        self.chart_with(
            &self.rid(RecordKind::Patient, patient_id),
            &View::uniform(want),
        )
    }

    /// The chart of the patient with storage key `rid`, opening of each kind
    /// only what `view` allows.
    pub(crate) fn chart_with(&self, rid: &Rid, view: &View) -> Result<Option<Chart>> {
        let Some(record) = self.store.get(RecordKind::Patient, rid)? else {
            return Ok(None);
        };
        let patient = self.open_record(&record, view.of(RecordKind::Patient))?;
        let of = |kind| -> Result<Vec<Resource>> {
            self.store
                .by_patient(kind, rid)?
                .iter()
                .map(|r| self.open_record(r, view.of(kind)))
                .collect()
        };
        Ok(Some(Chart {
            rid: *rid,
            patient,
            coverages: of(RecordKind::Coverage)?,
            prescriptions: of(RecordKind::Prescription)?,
            fills: of(RecordKind::Fill)?,
            allergies: of(RecordKind::Allergy)?,
        }))
    }

    /// The storage keys of the patients a search matches (no part is
    /// decrypted; each hit's binding is checked).
    pub(crate) fn find_rids(&self, query: &Find) -> Result<Vec<Rid>> {
        let (kind, value) = query.index();
        let Some(token) = self.token(kind, &value) else {
            return Err(Error::Invalid(format!(
                "nothing to search for in that {}",
                kind.name()
            )));
        };
        let mut patients = Vec::new();
        // Each hit is checked to carry the entry and to belong to the
        // patient its row names (both bound into its envelope).
        for record in self.lookup_records(kind, &token)? {
            let rid = if record.kind == RecordKind::Patient {
                Some(record.rid)
            } else {
                record.patient
            };
            if let Some(rid) = rid
                && !patients.contains(&rid)
            {
                patients.push(rid);
            }
        }
        Ok(patients)
    }

    #[cfg(feature = "unaudited")]
    /// The patients a search matches, opened with `want`.
    pub(crate) fn find(&self, query: &Find, want: CategorySet) -> Result<Vec<(Rid, Patient)>> {
        self.find_resources(query, want)?
            .into_iter()
            .map(|(rid, resource)| {
                let patient = map::patient_view(&resource).map_err(|e| Error::Corrupt {
                    what: format!("patient {rid}"),
                    message: e.to_string(),
                })?;
                Ok((rid, patient))
            })
            .collect()
    }

    /// The patients a search matches, as (possibly partial) FHIR resources.
    pub(crate) fn find_resources(
        &self,
        query: &Find,
        want: CategorySet,
    ) -> Result<Vec<(Rid, Resource)>> {
        let mut out = Vec::new();
        for rid in self.find_rids(query)? {
            if let Some(record) = self.store.get(RecordKind::Patient, &rid)? {
                out.push((rid, self.open_record(&record, want)?));
            }
        }
        Ok(out)
    }
}
