//! Reading images: a patient's studies for their record's pages, a study's series and
//! instances for the viewer, and an instance's frames as native samples or rendered
//! images (WADO-RS and the viewer). Every study opened is audited as read, through
//! [`Imaging::instances_for`]'s rule (the record across campuses).

use lianyi_dicom::pixels::{PixelError, Rendering};
use lianyi_security::Caller;
use lianyi_security::permit::Search;
use lianyi_store::imaging::{InstanceRow, Series, Study, StudyFilter};

use crate::ingest::image_type;
use crate::{Imaging, ImagingError};

/// A study as the viewer opens it: its series in series-number order, each with its
/// instances in instance-number order.
pub struct Opened {
    pub study: Study,
    pub series: Vec<(Series, Vec<InstanceRow>)>,
    /// The ServiceRequest whose placer number is the study's accession number.
    pub request: Option<String>,
}

/// Why an instance's pixels were not given.
#[derive(Debug, thiserror::Error)]
pub enum PixelsRefused {
    #[error(transparent)]
    Imaging(#[from] ImagingError),
    #[error(transparent)]
    Pixels(#[from] PixelError),
}

impl Imaging {
    /// The studies filed under `patient`, newest first, as `caller` may see them (the
    /// record across campuses opens other campuses' studies where it opens the record).
    /// Listing is audited as a search of the studies shown.
    pub async fn studies_of(&self, caller: &Caller, patient: &str) -> Result<Vec<Study>, ImagingError> {
        let caller = self.record.care_caller(caller, patient).await.unwrap_or_else(|_| caller.clone());
        let images = self.fhir.images(&self.fhir.permit::<Search>(&caller, image_type()).await?)?;
        let filter = StudyFilter { patient: Some(patient.to_string()), matched_only: true, ..Default::default() };
        let mut studies = images.studies_matching(&filter, 200).await?;
        studies.sort_by(|a, b| (&b.study_date, &b.study_time).cmp(&(&a.study_date, &a.study_time)));
        let shown: Vec<&Study> = studies.iter().collect();
        self.fhir.audit_images(&caller, "search", &shown).await?;
        Ok(studies)
    }

    /// A study with its series and instances, or `None` when it is not there or not the
    /// caller's to see (the refusal is audited).
    pub async fn open_study(&self, caller: &Caller, study: &str) -> Result<Option<Opened>, ImagingError> {
        let Some((caller, images, s)) = self.study_read(caller, study).await? else { return Ok(None) };
        let rows = images.instances(&s, None).await?;
        let mut series: Vec<(Series, Vec<InstanceRow>)> =
            images.series(&s).await?.into_iter().map(|se| (se, Vec::new())).collect();
        series.sort_by_key(|(se, _)| (se.series_number.unwrap_or(i64::MAX), se.series_uid.clone()));
        for row in rows {
            if let Some((_, list)) = series.iter_mut().find(|(se, _)| se.series_uid == row.series_uid) {
                list.push(row);
            }
        }
        for (_, list) in &mut series {
            list.sort_by_key(|r| (r.instance_number.unwrap_or(i64::MAX), r.sop_uid.clone()));
        }
        // The order the study answers, found as the reader sees orders (a reader who may
        // not see it is shown the images without it).
        let request = self.request_of(&caller, &s.accession).await.unwrap_or_default();
        Ok(Some(Opened { study: s, series, request }))
    }

    /// One instance's stored file, read as `caller` may (audited).
    async fn file_of(
        &self,
        caller: &Caller,
        study: &str,
        series: &str,
        instance: &str,
    ) -> Result<Option<Vec<u8>>, ImagingError> {
        let rows = self.instances_for(caller, study, Some(series), Some(instance)).await?;
        let Some(row) = rows.and_then(|r| r.into_iter().next()) else { return Ok(None) };
        Ok(Some(tokio::fs::read(self.folder.join(&row.file)).await?))
    }

    /// One frame of an instance rendered as an image; `None` when the instance is not
    /// there or not the caller's to see.
    pub async fn rendered(
        &self,
        caller: &Caller,
        (study, series, instance): (&str, &str, &str),
        how: Rendering,
    ) -> Result<Option<Vec<u8>>, PixelsRefused> {
        let Some(file) = self.file_of(caller, study, series, instance).await? else { return Ok(None) };
        let image = tokio::task::spawn_blocking(move || lianyi_dicom::pixels::render(&file, &how))
            .await
            .map_err(|e| ImagingError::Io(std::io::Error::other(e)))??;
        Ok(Some(image))
    }

    /// Frames of an instance (numbered from 1) as native samples; `None` when the
    /// instance is not there or not the caller's to see.
    pub async fn frames(
        &self,
        caller: &Caller,
        (study, series, instance): (&str, &str, &str),
        numbers: Vec<u32>,
    ) -> Result<Option<Vec<Vec<u8>>>, PixelsRefused> {
        let Some(file) = self.file_of(caller, study, series, instance).await? else { return Ok(None) };
        let frames = tokio::task::spawn_blocking(move || lianyi_dicom::pixels::frames(&file, &numbers))
            .await
            .map_err(|e| ImagingError::Io(std::io::Error::other(e)))??;
        Ok(Some(frames))
    }
}
