//! Checking every stored record against what the store says of it, without
//! decrypting anything (`rxvault check`).
//!
//! Every open already refuses a record whose patient link, derived flag or
//! data key column disagrees with its envelope, and every lookup refuses an
//! index entry the record was not sealed with. What no single read can see
//! is a record that is *missing* from an answer: a chart is assembled by the
//! `patient_rid` column, so a record whose link was altered to a key no
//! patient has (or whose patient row was deleted) is simply not in any
//! chart, and a record whose index row was deleted is not found by that
//! search. This pass finds both: it authenticates every record's header
//! against its row, checks that its patient exists, and that each index
//! entry it was sealed with is in the blind index.

use crate::keys::Progress;
use crate::records::{binding, check_dek_column};
use crate::{Result, Vault};
use rxvault_model::{RecordKind, Rid};
use std::collections::HashSet;

/// One record that is not what the store says.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Its kind.
    pub kind: RecordKind,
    /// Its record key (opaque; not PHI).
    pub rid: Rid,
    /// What is wrong.
    pub problem: String,
}

/// What [`Vault::check_records`] found.
#[derive(Debug, Clone, Default)]
pub struct IntegrityReport {
    /// Records checked.
    pub checked: u64,
    /// Records that are not what the store says.
    pub findings: Vec<Finding>,
}

impl Vault {
    /// Checks every record (see the module documentation). Store failures
    /// are errors; records that fail a check are findings, and the pass
    /// goes on.
    pub fn check_records(&self, progress: &mut dyn Progress) -> Result<IntegrityReport> {
        let total: u64 = self.counts()?.iter().map(|(_, n)| n).sum();
        progress.phase("checking records", Some(total));
        let mut report = IntegrityReport::default();
        let mut patients: HashSet<Rid> = HashSet::new();
        // Patients come first (RecordKind::ALL order), so every patient
        // key is known before the records that link to one.
        for kind in RecordKind::ALL {
            let mut after = None;
            loop {
                let page = self.store.scan(kind, after.as_ref(), 1000)?;
                let Some(last) = page.last() else { break };
                after = Some(last.rid);
                for record in &page {
                    report.checked += 1;
                    if kind == RecordKind::Patient {
                        patients.insert(record.rid);
                    }
                    let mut problem = |problem: String| {
                        report.findings.push(Finding {
                            kind,
                            rid: record.rid,
                            problem,
                        });
                    };
                    if let Some(p) = &record.patient
                        && !patients.contains(p)
                    {
                        problem(
                            "it links to no stored patient, so it is in no chart (its link was altered or its patient deleted)"
                                .into(),
                        );
                    }
                    let checked = check_dek_column(record).and_then(|()| {
                        self.with_keys(|keys| keys.check_record(&binding(record), &record.envelope))
                    });
                    match checked {
                        Ok(Some(tokens)) => {
                            for (index, token) in tokens {
                                let indexed = self
                                    .store
                                    .lookup(index, &token)?
                                    .iter()
                                    .any(|h| h.kind == kind && h.rid == record.rid);
                                if !indexed {
                                    problem(format!(
                                        "its {} index entry is missing, so that search does not find it",
                                        index.name()
                                    ));
                                }
                            }
                        }
                        Ok(None) => {}
                        Err(crate::Error::Store(e)) => return Err(e.into()),
                        Err(e) => problem(e.to_string()),
                    }
                }
                progress.advance(page.len() as u64);
            }
        }
        Ok(report)
    }
}
