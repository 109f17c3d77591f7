//! Each study's ImagingStudy resource, written from the index after the association
//! that changed it ends (and at start, for studies a crash left behind), so the study
//! appears in the patient's record linked to its patient, its ServiceRequest (by the
//! accession number, which is the order's placer number) and its sending campus. And
//! the registrar's reconciliation list of studies whose patient was not matched.

use std::time::Duration;

use lianyi_fhir::search::parse_search;
use lianyi_security::{Caller, CampusId, SystemTask};
use lianyi_services::identifiers::PLACER_SYSTEM;
use lianyi_store::imaging::{InstanceRow, Series, Study};
use serde_json::{Value, json};

use crate::ingest::{image_type, patient_type};
use crate::{Imaging, ImagingError};

/// The DICOM UID identifier system (RFC 3986 URN form for OIDs).
pub const UID_SYSTEM: &str = "urn:dicom:uid";
const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";

/// `YYYYMMDD` + `HHMMSS.frac` → FHIR dateTime in `tz` (date only without a time).
pub fn started(date: &str, time: &str, tz: &str) -> Option<String> {
    let d = date.trim();
    if d.len() != 8 {
        return None;
    }
    // To the minute or the second (a bare hour is not a start time); no fraction.
    let t: String = time.trim().chars().take_while(|c| c.is_ascii_digit()).take(6).collect();
    let t = if t.len() < 4 { "" } else { &t[..t.len() - t.len() % 2] };
    lianyi_fhir::datetime::from_dtm(&format!("{d}{t}"), tz)
}

/// The ImagingStudy of a study as indexed.
pub fn imaging_study(
    s: &Study,
    series: &[Series],
    instances: &[InstanceRow],
    request: Option<&str>,
    tz: &str,
) -> Value {
    let mut identifiers = vec![json!({"system": UID_SYSTEM, "value": format!("urn:oid:{}", s.study_uid)})];
    if !s.accession.is_empty() {
        identifiers.push(json!({
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]},
            "value": s.accession}));
    }
    let mut v = json!({
        "resourceType": "ImagingStudy",
        "status": "available",
        "identifier": identifiers,
        "subject": {"reference": format!("Patient/{}", s.patient.as_deref().unwrap_or_default())},
        "numberOfSeries": s.series_count,
        "numberOfInstances": s.instance_count,
    });
    let modalities: Vec<Value> =
        s.modalities.split('\\').filter(|m| !m.is_empty()).map(|m| json!({"system": DCM, "code": m})).collect();
    if !modalities.is_empty() {
        v["modality"] = Value::Array(modalities);
    }
    if let Some(t) = started(&s.study_date, &s.study_time, tz) {
        v["started"] = json!(t);
    }
    if !s.description.is_empty() {
        v["description"] = json!(s.description);
    }
    if let Some(r) = request {
        v["basedOn"] = json!([{"reference": format!("ServiceRequest/{r}")}]);
    }
    let series: Vec<Value> = series
        .iter()
        .map(|se| {
            let mut j = json!({
                "uid": se.series_uid,
                "modality": {"system": DCM, "code": if se.modality.is_empty() { "OT" } else { &se.modality }},
                "numberOfInstances": se.instance_count,
            });
            if let Some(n) = se.series_number.filter(|n| *n >= 0) {
                j["number"] = json!(n);
            }
            if !se.description.is_empty() {
                j["description"] = json!(se.description);
            }
            let inst: Vec<Value> = instances
                .iter()
                .filter(|i| i.series_uid == se.series_uid)
                .map(|i| {
                    let mut k = json!({"uid": i.sop_uid,
                        "sopClass": {"system": "urn:ietf:rfc:3986", "code": format!("urn:oid:{}", i.sop_class)}});
                    if let Some(n) = i.instance_number.filter(|n| *n >= 0) {
                        k["number"] = json!(n);
                    }
                    k
                })
                .collect();
            if !inst.is_empty() {
                j["instance"] = Value::Array(inst);
            }
            j
        })
        .collect();
    if !series.is_empty() {
        v["series"] = Value::Array(series);
    }
    v
}

impl Imaging {
    fn settler() -> Caller {
        Caller::task(SystemTask::DicomInbound("settle".into()))
    }

    /// Asks the background writer to bring the ImagingStudy resources up to date.
    pub fn settle_soon(&self) {
        self.settle_now.notify_one();
    }

    /// Writes the ImagingStudy of every matched study whose resource lags the index;
    /// returns how many were written. One writer at a time.
    pub async fn settle(&self) -> Result<usize, ImagingError> {
        let _one = self.settling.lock().await;
        let caller = Self::settler();
        let images =
            self.fhir.images(&self.fhir.permit::<lianyi_security::permit::Search>(&caller, image_type()).await?)?;
        let mut written = 0;
        // A study that fails is retried on the next pass, not before the others.
        let mut failed: Vec<String> = Vec::new();
        let mut last = None;
        loop {
            let batch: Vec<_> = images
                .unsettled(50 + failed.len() as i64)
                .await?
                .into_iter()
                .filter(|s| !failed.contains(&s.study_uid))
                .collect();
            if batch.is_empty() {
                return match last {
                    Some(e) => Err(e),
                    None => Ok(written),
                };
            }
            for s in &batch {
                match self.write_study(&caller, s).await {
                    Ok(()) => written += 1,
                    Err(e) => {
                        tracing::warn!(error = %e, "an ImagingStudy could not be written; retried later");
                        failed.push(s.study_uid.clone());
                        last = Some(e);
                    }
                }
            }
        }
    }

    async fn write_study(&self, caller: &Caller, s: &Study) -> Result<(), ImagingError> {
        let permit = self.fhir.permit::<lianyi_security::permit::Search>(caller, image_type()).await?;
        let images = self.fhir.images(&permit)?;
        let series = images.series(s).await?;
        let instances = images.instances(s, None).await?;
        let request = self.request_of(caller, &s.accession).await?;
        let mut resource = imaging_study(s, &series, &instances, request.as_deref(), &self.time_zone);
        let campus = CampusId::parse(&s.campus)
            .map_err(|_| ImagingError::Forbidden(format!("study campus {} is not valid", s.campus)))?;
        let writer = Caller::task_at(SystemTask::DicomInbound(s.source_ae.clone()), campus);
        let id = match &s.resource {
            Some(id) => {
                resource["id"] = json!(id);
                let permit = self.fhir.permit(&writer, image_type()).await?;
                self.fhir.update(&permit, id, resource, None).await?.id
            }
            None => self.fhir.create(&self.fhir.permit(&writer, image_type()).await?, resource).await?.id,
        };
        images.settle(&s.study_uid, &id, s.updated_at).await?;
        Ok(())
    }

    /// The ServiceRequest whose placer number is the accession number.
    pub(crate) async fn request_of(&self, caller: &Caller, accession: &str) -> Result<Option<String>, ImagingError> {
        if accession.is_empty() {
            return Ok(None);
        }
        let t = crate::ingest::request_type();
        let req = parse_search(t, &[("identifier".into(), format!("{PLACER_SYSTEM}|{accession}"))])
            .map_err(|i| crate::invalid("accession", "search", i.diagnostics))?;
        let page = self.fhir.search(&self.fhir.permit(caller, t).await?, &req).await?;
        Ok(page.resources.first().map(|r| r.id.clone()))
    }

    /// Keeps the ImagingStudy resources up to date: at start, after each association
    /// (see [`Imaging::settle_soon`]), and every minute for what failed before.
    pub async fn run_settler(self) {
        loop {
            if let Err(e) = self.settle().await {
                tracing::warn!(error = %e, "imaging studies not settled yet");
            }
            let _ = tokio::time::timeout(Duration::from_secs(60), self.settle_now.notified()).await;
        }
    }

    /// Studies waiting for their patient, as `caller` may see them (the registrar's
    /// reconciliation list), newest first.
    pub async fn unmatched(&self, caller: &Caller) -> Result<Vec<Study>, ImagingError> {
        let permit = self.fhir.permit::<lianyi_security::permit::Search>(caller, image_type()).await?;
        let list = self.fhir.images(&permit)?.unmatched(200).await?;
        self.fhir.audit_images(caller, "search", &list.iter().collect::<Vec<_>>()).await?;
        Ok(list)
    }

    /// Files an unmatched study under `patient` (the registrar has checked who it is);
    /// its ImagingStudy follows.
    pub async fn reconcile(&self, caller: &Caller, study_uid: &str, patient: &str) -> Result<(), ImagingError> {
        // The patient must be one the registrar may read.
        self.fhir.reader(caller, patient_type()).await?.read(patient).await?;
        let permit = self.fhir.permit::<lianyi_security::permit::Update>(caller, image_type()).await?;
        let images = self.fhir.images(&permit)?;
        let Some(study) = images.study(study_uid).await?.filter(|s| s.patient.is_none()) else {
            return Err(ImagingError::NotFound("no unmatched study with this UID that you may see".into()));
        };
        if !images.assign(study_uid, patient, self.fhir.now_ms()).await? {
            return Err(ImagingError::NotFound("the study was matched meanwhile".into()));
        }
        let mut filed = study.clone();
        filed.patient = Some(patient.to_string());
        self.fhir.audit_images(caller, "update", &[&filed]).await?;
        self.settle_soon();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn study_date_and_time_become_a_date_time() {
        assert_eq!(started("20261206", "093015.123", "+08:00").as_deref(), Some("2026-12-06T09:30:15+08:00"));
        assert_eq!(started("20261206", "0930", "+08:00").as_deref(), Some("2026-12-06T09:30:00+08:00"));
        assert_eq!(started("20261206", "", "+08:00").as_deref(), Some("2026-12-06"));
        assert_eq!(started("2026", "0930", "+08:00"), None);
    }
}
