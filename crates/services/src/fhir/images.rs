//! The imaging index's door: DICOM studies, series and instances are health data kept
//! outside the resource store (one row per instance, written at C-STORE speed), so
//! they are reached only with a permit for ImagingStudy, through the caller's row
//! limits, and each study touched is audited like a resource read.

use lianyi_security::permit::Interaction;
use lianyi_security::{Caller, Permit};
use lianyi_store::imaging::{Images, Study};

use super::{FhirService, Result, ServiceError};

impl FhirService {
    /// The imaging index as the permit's caller may see it (campus, patients opened
    /// across campuses or by break-the-glass, a patient's own compartment).
    pub fn images<I: Interaction>(&self, permit: &Permit<I>) -> Result<Images> {
        if permit.resource_type() != "ImagingStudy" {
            return Err(ServiceError::Forbidden("the imaging index needs a permit for ImagingStudy".into()));
        }
        Ok(self.store.images(Self::row_scope(permit.caller(), Some("ImagingStudy"), I::PERM)))
    }

    /// Audits `caller`'s `action` (`read`, `search`, `create`, `update`) on the
    /// studies it touched, one entry per study, under the study's ImagingStudy id
    /// (its UID until the resource is written) and patient.
    pub async fn audit_images(&self, caller: &Caller, action: &str, studies: &[&Study]) -> Result<()> {
        let entries = studies
            .iter()
            .map(|s| {
                let id = s.resource.as_deref().unwrap_or(&s.study_uid);
                let mut e = self.entry(caller, action, "success", "ImagingStudy", Some(id));
                e.patient = s.patient.clone();
                e
            })
            .collect::<Vec<_>>();
        if !entries.is_empty() {
            self.audit.record(entries).await?;
        }
        Ok(())
    }

    /// Audits a refused imaging access (a study outside the caller's limits, named by
    /// its UID).
    pub async fn audit_images_refused(&self, caller: &Caller, action: &str, study_uid: &str) -> Result<()> {
        let refused = ServiceError::Forbidden(String::new()).outcome();
        self.audit.record(vec![self.entry(caller, action, refused, "ImagingStudy", Some(study_uid))]).await?;
        Ok(())
    }
}
