//! The imaging index: studies, series and instances the DICOM node received (health
//! data), and the node's application entities (not health data, see
//! [`crate::Operations::dicom_aes`]).
//!
//! [`Images`] is handed out by the FHIR service only, against a permit for
//! ImagingStudy: its reads take the caller's [`RowScope`], applied in the SQL as for
//! every FHIR search (the study's campus, patients opened across campuses, a patient's
//! own compartment). Each instance is indexed in one transaction with its series and
//! study, after its file is durable: the node acknowledges only after that commit.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::sql::{Arg, Sql};
use crate::{Result, RowScope, Store};

/// An application entity the node knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ae {
    pub ae_title: String,
    pub campus: String,
    /// The address it connects from and is reached at (`None`: any address, and no
    /// C-MOVE to it).
    pub host: Option<String>,
    /// Its own storage SCP port, for C-MOVE.
    pub port: Option<i64>,
    pub description: String,
    /// The character set assumed when its data sets name none.
    pub charset: Option<String>,
    pub created_at: i64,
}

/// The node's AE table.
#[derive(Clone, Debug)]
pub struct DicomAes(pub(crate) Store);

impl DicomAes {
    /// Adds an AE or changes it.
    pub async fn put(&self, ae: &Ae) -> Result<()> {
        sqlx::query(
            "INSERT INTO dicom_aes (ae_title, campus, host, port, description, charset, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (ae_title) DO UPDATE SET campus = excluded.campus, \
             host = excluded.host, port = excluded.port, description = excluded.description, charset = excluded.charset",
        )
        .bind(ae.ae_title.clone())
        .bind(ae.campus.clone())
        .bind(ae.host.clone())
        .bind(ae.port)
        .bind(ae.description.clone())
        .bind(ae.charset.clone())
        .bind(ae.created_at)
        .execute(&self.0.write_pool())
        .await?;
        Ok(())
    }

    /// Removes an AE; whether it was there.
    pub async fn remove(&self, ae_title: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM dicom_aes WHERE ae_title = $1")
            .bind(ae_title.to_string())
            .execute(&self.0.write_pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Every AE, by campus and title.
    pub async fn list(&self) -> Result<Vec<Ae>> {
        let rows = sqlx::query(
            "SELECT ae_title, campus, host, port, description, charset, created_at FROM dicom_aes ORDER BY campus, ae_title",
        )
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Ae {
                    ae_title: r.try_get(0)?,
                    campus: r.try_get(1)?,
                    host: r.try_get(2)?,
                    port: r.try_get(3)?,
                    description: r.try_get(4)?,
                    charset: r.try_get(5)?,
                    created_at: r.try_get(6)?,
                })
            })
            .collect()
    }
}

/// One instance to index, with its study and series attributes.
#[derive(Clone, Debug, Default)]
pub struct NewInstance {
    pub study_uid: String,
    pub series_uid: String,
    pub sop_uid: String,
    pub sop_class: String,
    pub transfer_syntax: String,
    pub campus: String,
    /// The matched Patient id (`None`: to the reconciliation list).
    pub patient: Option<String>,
    pub patient_key: String,
    pub accession: String,
    pub study_date: String,
    pub study_time: String,
    pub study_description: String,
    pub modality: String,
    pub series_number: Option<i64>,
    pub series_description: String,
    pub body_part: String,
    pub instance_number: Option<i64>,
    pub frames: i64,
    /// The file, relative to the imaging folder.
    pub file: String,
    pub bytes: i64,
    pub source_ae: String,
    pub received_at: i64,
    pub study_json: String,
    pub series_json: String,
    pub instance_json: String,
}

/// What a query names exactly (the rest is matched on the studies' DICOM JSON).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StudyFilter {
    pub study_uids: Vec<String>,
    pub patient_key: Option<String>,
    pub patient: Option<String>,
    pub accession: Option<String>,
    /// `YYYYMMDD` bounds of the study date.
    pub date_from: Option<String>,
    pub date_to: Option<String>,
    /// Only studies filed under a patient (never the reconciliation list's).
    pub matched_only: bool,
}

/// A study as indexed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Study {
    pub study_uid: String,
    pub campus: String,
    pub patient: Option<String>,
    pub patient_key: String,
    pub accession: String,
    pub study_date: String,
    pub study_time: String,
    pub description: String,
    pub modalities: String,
    pub series_count: i64,
    pub instance_count: i64,
    pub source_ae: String,
    pub received_at: i64,
    pub updated_at: i64,
    pub resource: Option<String>,
    pub settled: bool,
    pub json: String,
}

/// A series as indexed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Series {
    pub series_uid: String,
    pub study_uid: String,
    pub modality: String,
    pub series_number: Option<i64>,
    pub description: String,
    pub body_part: String,
    pub instance_count: i64,
    pub json: String,
}

/// An instance as indexed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceRow {
    pub sop_uid: String,
    pub series_uid: String,
    pub study_uid: String,
    pub sop_class: String,
    pub transfer_syntax: String,
    pub instance_number: Option<i64>,
    pub frames: i64,
    pub file: String,
    pub bytes: i64,
    pub received_at: i64,
    pub json: String,
}

const STUDY_COLS: &str = "s.study_uid, s.campus, s.patient, s.patient_key, s.accession, s.study_date, s.study_time, \
     s.description, s.modalities, s.series_count, s.instance_count, s.source_ae, s.received_at, s.updated_at, \
     s.resource, s.settled, s.json";

fn study_from(r: &AnyRow) -> Result<Study> {
    Ok(Study {
        study_uid: r.try_get(0)?,
        campus: r.try_get(1)?,
        patient: r.try_get(2)?,
        patient_key: r.try_get(3)?,
        accession: r.try_get(4)?,
        study_date: r.try_get(5)?,
        study_time: r.try_get(6)?,
        description: r.try_get(7)?,
        modalities: r.try_get(8)?,
        series_count: r.try_get(9)?,
        instance_count: r.try_get(10)?,
        source_ae: r.try_get(11)?,
        received_at: r.try_get(12)?,
        updated_at: r.try_get(13)?,
        resource: r.try_get(14)?,
        settled: r.try_get::<i64, _>(15)? != 0,
        json: r.try_get(16)?,
    })
}

fn series_from(r: &AnyRow) -> Result<Series> {
    Ok(Series {
        series_uid: r.try_get(0)?,
        study_uid: r.try_get(1)?,
        modality: r.try_get(2)?,
        series_number: r.try_get(3)?,
        description: r.try_get(4)?,
        body_part: r.try_get(5)?,
        instance_count: r.try_get(6)?,
        json: r.try_get(7)?,
    })
}

fn instance_from(r: &AnyRow) -> Result<InstanceRow> {
    Ok(InstanceRow {
        sop_uid: r.try_get(0)?,
        series_uid: r.try_get(1)?,
        study_uid: r.try_get(2)?,
        sop_class: r.try_get(3)?,
        transfer_syntax: r.try_get(4)?,
        instance_number: r.try_get(5)?,
        frames: r.try_get(6)?,
        file: r.try_get(7)?,
        bytes: r.try_get(8)?,
        received_at: r.try_get(9)?,
        json: r.try_get(10)?,
    })
}

/// The imaging index, for one caller's limits (see the module documentation).
#[derive(Clone, Debug)]
pub struct Images {
    store: Store,
    scope: RowScope,
}

impl Store {
    /// The imaging index seen through `scope` (the FHIR service hands it out).
    pub fn images(&self, scope: RowScope) -> Images {
        Images { store: self.clone(), scope }
    }
}

impl Images {
    /// Indexes one instance (a re-sent instance replaces its row) and marks its study
    /// for the ImagingStudy writer; one transaction.
    pub async fn index(&self, i: &NewInstance) -> Result<()> {
        let mut tx = self.store.write_pool().begin_with(self.store.backend.begin_write()).await?;
        // A new instance adds one to its series and study counts (no recount of a
        // growing series per instance); a re-sent one adds nothing, unless it moved to
        // another series or study (a correction at the modality): the one it leaves is
        // recounted below.
        let before: Option<(String, String)> =
            sqlx::query_as("SELECT study_uid, series_uid FROM imaging_instances WHERE sop_uid = $1")
                .bind(i.sop_uid.clone())
                .fetch_optional(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO imaging_instances (sop_uid, series_uid, study_uid, sop_class, transfer_syntax, \
             instance_number, frames, file, bytes, received_at, json) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (sop_uid) DO UPDATE SET series_uid = excluded.series_uid, study_uid = excluded.study_uid, \
             sop_class = excluded.sop_class, transfer_syntax = excluded.transfer_syntax, \
             instance_number = excluded.instance_number, frames = excluded.frames, file = excluded.file, \
             bytes = excluded.bytes, received_at = excluded.received_at, json = excluded.json",
        )
        .bind(i.sop_uid.clone())
        .bind(i.series_uid.clone())
        .bind(i.study_uid.clone())
        .bind(i.sop_class.clone())
        .bind(i.transfer_syntax.clone())
        .bind(i.instance_number)
        .bind(i.frames)
        .bind(i.file.clone())
        .bind(i.bytes)
        .bind(i.received_at)
        .bind(i.instance_json.clone())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO imaging_series (series_uid, study_uid, modality, series_number, description, body_part, \
             instance_count, json) VALUES ($1, $2, $3, $4, $5, $6, 1, $7) \
             ON CONFLICT (series_uid) DO UPDATE SET study_uid = excluded.study_uid, \
             instance_count = imaging_series.instance_count + $8",
        )
        .bind(i.series_uid.clone())
        .bind(i.study_uid.clone())
        .bind(i.modality.clone())
        .bind(i.series_number)
        .bind(i.series_description.clone())
        .bind(i.body_part.clone())
        .bind(i.series_json.clone())
        .bind(i64::from(before.as_ref().is_none_or(|(_, se)| *se != i.series_uid)))
        .execute(&mut *tx)
        .await?;
        let modalities: Vec<String> =
            sqlx::query("SELECT DISTINCT modality FROM imaging_series WHERE study_uid = $1 ORDER BY modality")
                .bind(i.study_uid.clone())
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>(0))
                .collect::<std::result::Result<_, _>>()?;
        let modalities = modalities.into_iter().filter(|m| !m.is_empty()).collect::<Vec<_>>().join("\\");
        sqlx::query(
            "INSERT INTO imaging_studies (study_uid, campus, patient, patient_key, accession, study_date, study_time, \
             description, modalities, series_count, instance_count, source_ae, received_at, updated_at, resource, \
             settled, json) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
             (SELECT count(*) FROM imaging_series WHERE study_uid = $1), 1, $10, $11, $11, NULL, 0, $12) \
             ON CONFLICT (study_uid) DO UPDATE SET modalities = excluded.modalities, \
             series_count = excluded.series_count, instance_count = imaging_studies.instance_count + $13, \
             updated_at = excluded.updated_at, settled = 0",
        )
        .bind(i.study_uid.clone())
        .bind(i.campus.clone())
        .bind(i.patient.clone())
        .bind(i.patient_key.clone())
        .bind(i.accession.clone())
        .bind(i.study_date.clone())
        .bind(i.study_time.clone())
        .bind(i.study_description.clone())
        .bind(modalities)
        .bind(i.source_ae.clone())
        .bind(i.received_at)
        .bind(i.study_json.clone())
        .bind(i64::from(before.as_ref().is_none_or(|(st, _)| *st != i.study_uid)))
        .execute(&mut *tx)
        .await?;
        if let Some((study, series)) = before.filter(|(st, se)| *st != i.study_uid || *se != i.series_uid) {
            sqlx::query(
                "UPDATE imaging_series SET instance_count = \
                 (SELECT count(*) FROM imaging_instances WHERE series_uid = $1) WHERE series_uid = $1",
            )
            .bind(series.clone())
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM imaging_series WHERE series_uid = $1 AND instance_count = 0")
                .bind(series)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE imaging_studies SET series_count = (SELECT count(*) FROM imaging_series WHERE study_uid = $1), \
                 instance_count = (SELECT count(*) FROM imaging_instances WHERE study_uid = $1), settled = 0, \
                 updated_at = $2 WHERE study_uid = $1",
            )
            .bind(study)
            .bind(i.received_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    fn scoped(&self, sql: &mut Sql) {
        self.scope.push_conditions_for_type(sql, "s", "ImagingStudy");
    }

    /// Studies the caller's limits show, narrowed by what the filter names, newest
    /// first, at most `limit`.
    pub async fn studies_matching(&self, f: &StudyFilter, limit: i64) -> Result<Vec<Study>> {
        let mut sql = Sql::new(&format!("SELECT {STUDY_COLS} FROM imaging_studies s WHERE 1 = 1"));
        if !f.study_uids.is_empty() {
            sql.push(" AND ");
            sql.push_in("s.study_uid", &f.study_uids);
        }
        for (col, value) in
            [("s.patient_key", &f.patient_key), ("s.accession", &f.accession), ("s.patient", &f.patient)]
        {
            if let Some(v) = value {
                sql.push(&format!(" AND {col} = "));
                sql.push_bind(Arg::Text(v.clone()));
            }
        }
        if let Some(from) = &f.date_from {
            sql.push(" AND s.study_date >= ");
            sql.push_bind(Arg::Text(from.clone()));
        }
        if let Some(to) = &f.date_to {
            sql.push(" AND s.study_date <= ");
            sql.push_bind(Arg::Text(to.clone()));
        }
        if f.matched_only {
            sql.push(" AND s.patient IS NOT NULL");
        }
        self.listed(sql, "s.study_date DESC, s.study_time DESC, s.study_uid", limit).await
    }

    /// The studies of `sql` (a `SELECT … WHERE …` of [`STUDY_COLS`]) within the
    /// caller's limits, in `order`, at most `limit`.
    async fn listed(&self, mut sql: Sql, order: &str, limit: i64) -> Result<Vec<Study>> {
        self.scoped(&mut sql);
        sql.push(&format!(" ORDER BY {order} LIMIT "));
        sql.push_bind(Arg::Int(limit));
        let rows = sql.query(self.store.backend).fetch_all(&self.store.read_pool()).await?;
        rows.iter().map(study_from).collect()
    }

    /// A study, if the caller's limits show it.
    pub async fn study(&self, study_uid: &str) -> Result<Option<Study>> {
        let mut sql = Sql::new(&format!("SELECT {STUDY_COLS} FROM imaging_studies s WHERE s.study_uid = "));
        sql.push_bind(Arg::Text(study_uid.to_string()));
        self.scoped(&mut sql);
        let row = sql.query(self.store.backend).fetch_optional(&self.store.read_pool()).await?;
        row.as_ref().map(study_from).transpose()
    }

    /// Matched studies whose ImagingStudy lags the index, oldest change first.
    pub async fn unsettled(&self, limit: i64) -> Result<Vec<Study>> {
        let sql = Sql::new(&format!(
            "SELECT {STUDY_COLS} FROM imaging_studies s WHERE s.settled = 0 AND s.patient IS NOT NULL"
        ));
        self.listed(sql, "s.updated_at", limit).await
    }

    /// Studies waiting for their patient (reconciliation), newest first.
    pub async fn unmatched(&self, limit: i64) -> Result<Vec<Study>> {
        let sql = Sql::new(&format!("SELECT {STUDY_COLS} FROM imaging_studies s WHERE s.patient IS NULL"));
        self.listed(sql, "s.received_at DESC", limit).await
    }

    /// Records the ImagingStudy written for a study as of `updated_at`; a study changed
    /// since stays unsettled. Whether it settled.
    pub async fn settle(&self, study_uid: &str, resource: &str, updated_at: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE imaging_studies SET resource = $2, settled = CASE WHEN updated_at = $3 THEN 1 ELSE 0 END \
             WHERE study_uid = $1",
        )
        .bind(study_uid.to_string())
        .bind(resource.to_string())
        .bind(updated_at)
        .execute(&self.store.write_pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Gives an unmatched study its patient (the registrar's reconciliation); whether
    /// it was unmatched and visible.
    pub async fn assign(&self, study_uid: &str, patient: &str, at: i64) -> Result<bool> {
        if self.study(study_uid).await?.is_none_or(|s| s.patient.is_some()) {
            return Ok(false);
        }
        let r = sqlx::query(
            "UPDATE imaging_studies SET patient = $2, settled = 0, updated_at = $3 WHERE study_uid = $1 AND patient IS NULL",
        )
        .bind(study_uid.to_string())
        .bind(patient.to_string())
        .bind(at)
        .execute(&self.store.write_pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// A study's series, by number. The study was read through these limits, so its
    /// series are not checked again.
    pub async fn series(&self, study: &Study) -> Result<Vec<Series>> {
        let study_uid = &study.study_uid;
        let rows = sqlx::query(
            "SELECT series_uid, study_uid, modality, series_number, description, body_part, instance_count, json \
             FROM imaging_series WHERE study_uid = $1 ORDER BY series_number, series_uid",
        )
        .bind(study_uid.to_string())
        .fetch_all(&self.store.read_pool())
        .await?;
        rows.iter().map(series_from).collect()
    }

    /// A study's instances (of one series when given), by series and number; as
    /// [`Images::series`], of a study read through these limits.
    pub async fn instances(&self, study: &Study, series_uid: Option<&str>) -> Result<Vec<InstanceRow>> {
        let study_uid = &study.study_uid;
        let rows = sqlx::query(
            "SELECT sop_uid, series_uid, study_uid, sop_class, transfer_syntax, instance_number, frames, file, bytes, \
             received_at, json FROM imaging_instances WHERE study_uid = $1 AND ($2 = '' OR series_uid = $2) \
             ORDER BY series_uid, instance_number, sop_uid",
        )
        .bind(study_uid.to_string())
        .bind(series_uid.unwrap_or_default().to_string())
        .fetch_all(&self.store.read_pool())
        .await?;
        rows.iter().map(instance_from).collect()
    }

    /// One instance of a study read through these limits (WADO-RS of one instance, a
    /// rendered frame: one row, not the series').
    pub async fn instance(&self, study: &Study, sop_uid: &str) -> Result<Option<InstanceRow>> {
        let row = sqlx::query(
            "SELECT sop_uid, series_uid, study_uid, sop_class, transfer_syntax, instance_number, frames, file, bytes, \
             received_at, json FROM imaging_instances WHERE study_uid = $1 AND sop_uid = $2",
        )
        .bind(study.study_uid.clone())
        .bind(sop_uid.to_string())
        .fetch_optional(&self.store.read_pool())
        .await?;
        row.as_ref().map(instance_from).transpose()
    }
}

/// The imaging folder's size as the index counts it (for monitoring and backups).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImagingTotals {
    pub studies: i64,
    pub instances: i64,
    pub bytes: i64,
    pub unmatched: i64,
}

impl DicomAes {
    /// How many studies each AE title of `campus` sent in `[from, to)` (milliseconds;
    /// counts only, for the equipment's use), by title.
    pub async fn studies_by_ae(&self, campus: &str, from: i64, to: i64) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT source_ae, count(*) FROM imaging_studies WHERE campus = $1 AND received_at >= $2 \
             AND received_at < $3 GROUP BY source_ae ORDER BY source_ae",
        )
        .bind(campus.to_string())
        .bind(from)
        .bind(to)
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// How much the index holds (no health data: counts only).
    pub async fn totals(&self) -> Result<ImagingTotals> {
        let r = sqlx::query(
            "SELECT (SELECT count(*) FROM imaging_studies), (SELECT count(*) FROM imaging_instances), \
             CAST((SELECT COALESCE(sum(bytes), 0) FROM imaging_instances) AS BIGINT), \
             (SELECT count(*) FROM imaging_studies WHERE patient IS NULL)",
        )
        .fetch_one(&self.0.read_pool())
        .await?;
        Ok(ImagingTotals {
            studies: r.try_get(0)?,
            instances: r.try_get(1)?,
            bytes: r.try_get(2)?,
            unmatched: r.try_get(3)?,
        })
    }
}
