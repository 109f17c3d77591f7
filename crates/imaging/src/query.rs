//! Queries: C-FIND at the patient, study, series and image levels (patient root and
//! study root), and the Modality Worklist fed by the imaging requests doctors order.
//! An application entity queries as its campus: the studies of its campus, and the
//! whole imaging record of a patient it names by an MRN of its campus (the record
//! across campuses). Unmatched studies are never answered. Every study answered is
//! audited as read by the AE.

use lianyi_dicom::query::{Level, Model, Query};
use lianyi_fhir::search::parse_search;
use lianyi_security::Caller;
use lianyi_security::permit::Search;
use lianyi_services::identifiers::{PLACER_SYSTEM, mrn_system};
use lianyi_store::imaging::{Images, InstanceRow, Study, StudyFilter};
use serde_json::{Map, Value, json};

use crate::ingest::{Sender, image_type};
use crate::matching::matches;
use crate::{Imaging, ImagingError};

/// The most studies one query looks at.
const MAX_STUDIES: i64 = 5_000;

fn single(keys: &Map<String, Value>, tag: &str) -> Option<String> {
    let v = keys.get(tag)?.get("Value")?.as_array()?;
    let s = v.first()?.as_str()?.trim();
    (v.len() == 1 && !s.is_empty() && !s.contains(['*', '?', '\\'])).then(|| s.to_string())
}

fn uid_list(keys: &Map<String, Value>, tag: &str) -> Vec<String> {
    keys.get(tag)
        .and_then(|k| k.get("Value"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).filter(|s| !s.is_empty()).collect())
        .unwrap_or_default()
}

fn object(text: &str) -> Map<String, Value> {
    serde_json::from_str(text).unwrap_or_default()
}

fn put(m: &mut Map<String, Value>, tag: &str, vr: &str, value: Value) {
    m.insert(tag.to_string(), json!({"vr": vr, "Value": [value]}));
}

/// The filter a query's exact keys give, for the index's SQL.
fn filter_of(keys: &Map<String, Value>) -> StudyFilter {
    let mut f = StudyFilter {
        study_uids: uid_list(keys, "0020000D"),
        patient_key: single(keys, "00100020"),
        accession: single(keys, "00080050"),
        matched_only: true,
        ..Default::default()
    };
    if let Some(d) = keys.get("00080020").and_then(|k| k.get("Value")).and_then(|v| v.get(0)).and_then(Value::as_str) {
        let d: String = d.chars().filter(|c| c.is_ascii_digit() || *c == '-').collect();
        match d.split_once('-') {
            Some((a, b)) => {
                f.date_from = (a.len() == 8).then(|| a.to_string());
                f.date_to = (b.len() == 8).then(|| b.to_string());
            }
            None if d.len() == 8 => (f.date_from, f.date_to) = (Some(d.clone()), Some(d)),
            None => {}
        }
    }
    f
}

/// What a query may see: the caller (with a patient's record opened when the query
/// named them by an MRN the caller's campuses know), its view of the index, and that
/// patient (id, the MRN asked by).
struct Seen {
    caller: Caller,
    images: Images,
    patient: Option<(String, String)>,
}

impl Seen {
    /// The index filter and the keys to match: a patient resolved from the asked MRN is
    /// found by their record (their studies carry other campuses' PatientIDs too).
    fn narrowed(&self, keys: &Map<String, Value>) -> (StudyFilter, Map<String, Value>) {
        let mut f = filter_of(keys);
        let mut keys = keys.clone();
        if let Some((id, _)) = &self.patient {
            f.patient = Some(id.clone());
            f.patient_key = None;
            keys.insert("00100020".into(), json!({"vr": "LO"}));
        }
        (f, keys)
    }
}

/// A study's attributes for matching and answering: its kept DICOM JSON and what the
/// index counts.
pub fn study_json(s: &Study, node_ae: &str) -> Map<String, Value> {
    let mut m = object(&s.json);
    let modalities: Vec<Value> = s.modalities.split('\\').filter(|x| !x.is_empty()).map(|x| json!(x)).collect();
    m.insert("00080061".into(), json!({"vr": "CS", "Value": modalities}));
    put(&mut m, "00201206", "IS", json!(s.series_count));
    put(&mut m, "00201208", "IS", json!(s.instance_count));
    put(&mut m, "00080056", "CS", json!("ONLINE"));
    put(&mut m, "00080054", "AE", json!(node_ae));
    m
}

impl Imaging {
    /// The index as `sender`'s campus sees it, with the record of the patient the
    /// query names by an MRN of that campus opened.
    async fn index_for(&self, sender: &Sender, keys: &Map<String, Value>) -> Result<Seen, ImagingError> {
        let mut caller = sender.writer()?;
        let mut patient = None;
        if let Some(mrn) = single(keys, "00100020")
            && let Some(id) = self.match_patient(sender, &mrn).await?
            && let Some(open) = caller.open_record(&id, &[sender.ae.campus.as_str()])
        {
            caller = open;
            patient = Some((id, mrn));
        }
        let permit = self.fhir.permit::<Search>(&caller, image_type()).await?;
        let images = self.fhir.images(&permit)?;
        Ok(Seen { caller, images, patient })
    }

    /// The index as a person or API client sees it (DICOMweb, the viewer), with the
    /// record of the patient the query names by an MRN opened where their grants reach
    /// one of the patient's campuses.
    async fn index_for_caller(&self, caller: &Caller, keys: &Map<String, Value>) -> Result<Seen, ImagingError> {
        let mut caller = caller.clone();
        let mut patient = None;
        if let Some(mrn) = single(keys, "00100020") {
            let system = Caller::task(lianyi_security::SystemTask::DicomInbound("DICOMWEB".into()));
            let req = parse_search(
                crate::ingest::patient_type(),
                &[("identifier".into(), mrn.clone()), ("_count".into(), "2".into())],
            )
            .map_err(|i| crate::invalid("PatientID", "search", i.diagnostics))?;
            let page = self
                .fhir
                .search(&self.fhir.permit::<Search>(&system, crate::ingest::patient_type()).await?, &req)
                .await?;
            if let [p] = page.resources.as_slice()
                && let Ok(open) = self.record.care_caller(&caller, &p.id).await
            {
                caller = open;
                patient = Some((p.id.clone(), mrn));
            }
        }
        let permit = self.fhir.permit::<Search>(&caller, image_type()).await?;
        let images = self.fhir.images(&permit)?;
        Ok(Seen { caller, images, patient })
    }

    /// QIDO-RS: the matches of `q` as `caller` may see them.
    pub async fn search(
        &self,
        caller: &Caller,
        node_ae: &str,
        q: &Query,
    ) -> Result<Vec<Map<String, Value>>, ImagingError> {
        let seen = self.index_for_caller(caller, &q.keys).await?;
        self.find_in(&seen, node_ae, q).await
    }

    /// The instances of a study (of a series, or one instance) for WADO-RS and the
    /// viewer, as `caller` may see them; the study is audited as read. `None` when the
    /// study is not there or not the caller's to see (the refusal is audited).
    pub async fn instances_for(
        &self,
        caller: &Caller,
        study: &str,
        series: Option<&str>,
        instance: Option<&str>,
    ) -> Result<Option<Vec<InstanceRow>>, ImagingError> {
        let Some((_, images, s)) = self.study_read(caller, study).await? else { return Ok(None) };
        let rows: Vec<InstanceRow> = match instance {
            Some(sop) => images
                .instance(&s, sop)
                .await?
                .into_iter()
                .filter(|i| series.is_none_or(|se| i.series_uid == se))
                .collect(),
            None => images.instances(&s, series).await?,
        };
        Ok(Some(rows))
    }

    /// A study read by `caller` (audited), with the caller as it opens (the record
    /// across campuses) and the index as they see it; `None` when it is not there or
    /// not the caller's to see (the refusal is audited).
    pub(crate) async fn study_read(
        &self,
        caller: &Caller,
        study: &str,
    ) -> Result<Option<(Caller, Images, Study)>, ImagingError> {
        let caller = self.opened_for_study(caller, study).await?;
        let images = self.fhir.images(&self.fhir.permit::<Search>(&caller, image_type()).await?)?;
        let Some(s) = images.study(study).await? else {
            self.fhir.audit_images_refused(&caller, "read", study).await?;
            return Ok(None);
        };
        self.fhir.audit_images(&caller, "read", &[&s]).await?;
        Ok(Some((caller, images, s)))
    }

    /// `caller` with the record of the study's patient opened when their grants reach a
    /// campus where the patient holds an MRN (the record across campuses).
    async fn opened_for_study(&self, caller: &Caller, study: &str) -> Result<Caller, ImagingError> {
        let system = Caller::task(lianyi_security::SystemTask::DicomInbound("DICOMWEB".into()));
        let all = self.fhir.images(&self.fhir.permit::<Search>(&system, image_type()).await?)?;
        let Some(patient) = all.study(study).await?.and_then(|s| s.patient) else { return Ok(caller.clone()) };
        // The clinical record's own rule (its reads audited as the caller's); a caller it
        // does not open keeps their own limits, and the study read below refuses.
        Ok(self.record.care_caller(caller, &patient).await.unwrap_or_else(|_| caller.clone()))
    }

    /// Answers a C-FIND of the patient-root or study-root model: the DICOM JSON of each
    /// match (every attribute the index keeps; the node answers only the keys asked).
    pub async fn find(
        &self,
        sender: &Sender,
        node_ae: &str,
        q: &Query,
    ) -> Result<Vec<Map<String, Value>>, ImagingError> {
        if q.model == Model::Worklist {
            return self.worklist(sender, q).await;
        }
        let seen = self.index_for(sender, &q.keys).await?;
        self.find_in(&seen, node_ae, q).await
    }

    async fn find_in(&self, seen: &Seen, node_ae: &str, q: &Query) -> Result<Vec<Map<String, Value>>, ImagingError> {
        let (caller, images) = (&seen.caller, &seen.images);
        let (filter, keys) = seen.narrowed(&q.keys);
        let q = &Query { keys, ..q.clone() };
        let studies = images.studies_matching(&filter, MAX_STUDIES).await?;
        let level = q.level.unwrap_or(Level::Study);
        let mut out = Vec::new();
        let mut touched: Vec<&Study> = Vec::new();
        match level {
            Level::Patient => {
                let mut groups: Vec<(String, usize)> = Vec::new();
                for s in &studies {
                    let key = s.patient.clone().unwrap_or_else(|| s.patient_key.clone());
                    if let Some((_, at)) = groups.iter().find(|(k, _)| *k == key) {
                        let at = *at;
                        let m: &mut Map<String, Value> = &mut out[at];
                        let n = m["00201200"]["Value"][0].as_i64().unwrap_or(0) + 1;
                        put(m, "00201200", "IS", json!(n));
                        continue;
                    }
                    let mut m = study_json(s, node_ae);
                    put(&mut m, "00201200", "IS", json!(1));
                    groups.push((key, out.len()));
                    out.push(m);
                }
                out.retain(|m| matches(&q.keys, m));
                touched.extend(studies.iter().filter(|s| {
                    seen.patient.is_some() || out.iter().any(|m| m.get("00100020") == object(&s.json).get("00100020"))
                }));
            }
            Level::Study => {
                for s in &studies {
                    let m = study_json(s, node_ae);
                    if matches(&q.keys, &m) {
                        out.push(m);
                        touched.push(s);
                    }
                }
            }
            Level::Series | Level::Image => {
                for s in &studies {
                    let base = study_json(s, node_ae);
                    // Study-level keys narrow the studies first.
                    let study_keys: Map<String, Value> = q
                        .keys
                        .iter()
                        .filter(|(t, _)| base.contains_key(*t))
                        .map(|(t, v)| (t.clone(), v.clone()))
                        .collect();
                    if !matches(&study_keys, &base) {
                        continue;
                    }
                    let mut any = false;
                    let series = images.series(s).await?;
                    for se in &series {
                        let mut m = base.clone();
                        m.extend(object(&se.json));
                        put(&mut m, "00201209", "IS", json!(se.instance_count));
                        if level == Level::Series {
                            if matches(&q.keys, &m) {
                                out.push(m);
                                any = true;
                            }
                            continue;
                        }
                        let series_keys: Map<String, Value> = q
                            .keys
                            .iter()
                            .filter(|(t, _)| m.contains_key(*t))
                            .map(|(t, v)| (t.clone(), v.clone()))
                            .collect();
                        if !matches(&series_keys, &m) {
                            continue;
                        }
                        for i in images.instances(s, Some(&se.series_uid)).await? {
                            let mut im = m.clone();
                            im.extend(object(&i.json));
                            put(&mut im, "00080056", "CS", json!("ONLINE"));
                            if matches(&q.keys, &im) {
                                out.push(im);
                                any = true;
                            }
                        }
                    }
                    if any {
                        touched.push(s);
                    }
                }
            }
        }
        self.fhir.audit_images(caller, "search", &touched).await?;
        // The patient as the querier knows them: the MRN it asked by.
        if let Some((_, mrn)) = &seen.patient {
            for m in &mut out {
                put(m, "00100020", "LO", json!(mrn));
            }
        }
        Ok(out)
    }

    /// The instances a C-MOVE or C-GET names (by PatientID, study, series or instance
    /// UIDs), as `sender` may see them; each study is audited as read.
    pub async fn retrieve(&self, sender: &Sender, q: &Query) -> Result<Vec<InstanceRow>, ImagingError> {
        if single(&q.keys, "00100020").is_none() && uid_list(&q.keys, "0020000D").is_empty() {
            return Err(crate::invalid(
                "identifier",
                "unique-key",
                "a retrieve names its Patient ID or Study Instance UID(s)",
            ));
        }
        let seen = self.index_for(sender, &q.keys).await?;
        let (caller, images) = (&seen.caller, &seen.images);
        let (filter, _) = seen.narrowed(&q.keys);
        let studies = images.studies_matching(&filter, MAX_STUDIES).await?;
        let (series_uids, sop_uids) = (uid_list(&q.keys, "0020000E"), uid_list(&q.keys, "00080018"));
        let mut out = Vec::new();
        let mut touched = Vec::new();
        for s in &studies {
            let rows = images.instances(s, None).await?;
            let before = out.len();
            out.extend(rows.into_iter().filter(|i| {
                (series_uids.is_empty() || series_uids.contains(&i.series_uid))
                    && (sop_uids.is_empty() || sop_uids.contains(&i.sop_uid))
            }));
            if out.len() > before {
                touched.push(s);
            }
        }
        self.fhir.audit_images(caller, "read", &touched).await?;
        Ok(out)
    }

    /// Where a C-MOVE destination is reached: an AE of the table with an address and
    /// a port.
    pub fn destination(&self, ae_title: &str) -> Option<std::net::SocketAddr> {
        let aes = self.aes.read().ok()?;
        let ae = aes.iter().find(|a| a.ae_title == ae_title.trim())?;
        let ip: std::net::IpAddr = ae.host.as_deref()?.parse().ok()?;
        Some(std::net::SocketAddr::new(ip, u16::try_from(ae.port?).ok()?))
    }

    /// The Modality Worklist: the active imaging requests of the AE's campus, each with
    /// its patient (their MRN at that campus), accession number (the placer number)
    /// and procedure, matched against the query's keys.
    async fn worklist(&self, sender: &Sender, q: &Query) -> Result<Vec<Map<String, Value>>, ImagingError> {
        let caller = sender.writer()?;
        let t = crate::ingest::request_type();
        let req = parse_search(
            t,
            &[
                ("category".into(), "http://snomed.info/sct|363679005".into()),
                ("status".into(), "active".into()),
                ("_count".into(), "500".into()),
            ],
        )
        .map_err(|i| crate::invalid("worklist", "search", i.diagnostics))?;
        let page = self.fhir.search(&self.fhir.permit::<Search>(&caller, t).await?, &req).await?;
        let mut patients = std::collections::HashMap::new();
        let mut requests = Vec::new();
        for r in &page.resources {
            let Ok(v) = serde_json::from_str::<Value>(&r.body) else { continue };
            if r.resource_type == "Patient" {
                patients.insert(r.id.clone(), v);
            } else {
                requests.push(v);
            }
        }
        // Their patients (a patient of the campus may have been registered elsewhere).
        let reader = self
            .fhir
            .reader(
                &Caller::task(lianyi_security::SystemTask::DicomInbound(sender.ae.ae_title.clone())),
                crate::ingest::patient_type(),
            )
            .await?;
        for sr in &requests {
            if let Some(pid) = sr["subject"]["reference"].as_str().and_then(|r| r.strip_prefix("Patient/"))
                && !patients.contains_key(pid)
                && let Ok(p) = reader.read(pid).await
                && let Ok(v) = serde_json::from_str::<Value>(&p.body)
            {
                patients.insert(pid.to_string(), v);
            }
        }
        let mrn_system = mrn_system(&sender.ae.campus);
        let mut out = Vec::new();
        for sr in requests {
            let Some(pid) = sr["subject"]["reference"].as_str().and_then(|r| r.strip_prefix("Patient/")) else {
                continue;
            };
            let Some(p) = patients.get(pid) else { continue };
            let mrn = p["identifier"]
                .as_array()
                .and_then(|ids| ids.iter().find(|i| i["system"] == mrn_system.as_str()))
                .and_then(|i| i["value"].as_str());
            let Some(mrn) = mrn else { continue };
            let placer = sr["identifier"]
                .as_array()
                .and_then(|ids| ids.iter().find(|i| i["system"] == PLACER_SYSTEM))
                .and_then(|i| i["value"].as_str())
                .unwrap_or_default();
            if placer.is_empty() {
                continue;
            }
            out.push(worklist_item(&sr, p, mrn, placer, &sender.ae.ae_title));
        }
        out.retain(|m| matches(&q.keys, m));
        Ok(out)
    }
}

/// The modality a request's code implies (LOINC's radiology displays start with it).
pub fn modality_of(sr: &Value) -> &'static str {
    let display = sr["code"]["coding"]
        .as_array()
        .and_then(|c| c.iter().find_map(|c| c["display"].as_str().filter(|_| c["system"] == "http://loinc.org")))
        .unwrap_or_default();
    match display.split_whitespace().next().unwrap_or_default() {
        "XR" => "DX",
        "CT" => "CT",
        "MR" => "MR",
        "US" => "US",
        "MG" => "MG",
        "NM" => "NM",
        "PT" => "PT",
        "RF" => "RF",
        _ => "OT",
    }
}

/// The study UID a request's images will carry (2.25 and the request id's UUID form,
/// so the modality and the order agree without a table).
pub fn study_uid_for(request_id: &str) -> String {
    // FNV-1a 128-bit of the id: stable, and as a 2.25 UID it stays within 64 characters.
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for b in request_id.bytes() {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000000001000000000000000000013B);
    }
    format!("2.25.{}", h >> 1)
}

fn worklist_item(sr: &Value, p: &Value, mrn: &str, placer: &str, ae_title: &str) -> Map<String, Value> {
    let mut m = Map::new();
    let name = p["name"].as_array().and_then(|n| n.first()).cloned().unwrap_or(Value::Null);
    let text = name["text"].as_str().map(str::to_string).unwrap_or_else(|| {
        format!(
            "{}^{}",
            name["family"].as_str().unwrap_or_default(),
            name["given"].as_array().and_then(|g| g.first()).and_then(Value::as_str).unwrap_or_default()
        )
    });
    m.insert("00100010".into(), json!({"vr": "PN", "Value": [{"Alphabetic": text}]}));
    put(&mut m, "00100020", "LO", json!(mrn));
    if let Some(b) = p["birthDate"].as_str() {
        put(&mut m, "00100030", "DA", json!(b.replace('-', "")));
    }
    let sex = match p["gender"].as_str() {
        Some("male") => "M",
        Some("female") => "F",
        Some(_) => "O",
        None => "",
    };
    if !sex.is_empty() {
        put(&mut m, "00100040", "CS", json!(sex));
    }
    put(&mut m, "00080050", "SH", json!(placer));
    put(&mut m, "00401001", "SH", json!(placer));
    let procedure = sr["code"]["text"].as_str().unwrap_or_default();
    put(&mut m, "00321060", "LO", json!(procedure));
    put(&mut m, "0020000D", "UI", json!(study_uid_for(sr["id"].as_str().unwrap_or_default())));
    if let Some(d) = sr["requester"]["display"].as_str() {
        m.insert("00080090".into(), json!({"vr": "PN", "Value": [{"Alphabetic": d}]}));
    }
    let authored = sr["authoredOn"].as_str().unwrap_or_default();
    let date: String = authored.chars().take(10).filter(char::is_ascii_digit).collect();
    let time: String = authored.chars().skip(11).take(8).filter(char::is_ascii_digit).collect();
    let mut step = Map::new();
    put(&mut step, "00080060", "CS", json!(modality_of(sr)));
    put(&mut step, "00400001", "AE", json!(ae_title));
    if date.len() == 8 {
        put(&mut step, "00400002", "DA", json!(date));
    }
    if time.len() >= 4 {
        put(&mut step, "00400003", "TM", json!(time));
    }
    put(&mut step, "00400007", "LO", json!(procedure));
    put(&mut step, "00400009", "SH", json!(placer));
    m.insert("00400100".into(), json!({"vr": "SQ", "Value": [Value::Object(step)]}));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_study_uids_are_valid_and_stable() {
        let a = study_uid_for("sr-1");
        assert_eq!(a, study_uid_for("sr-1"));
        assert_ne!(a, study_uid_for("sr-2"));
        assert!(lianyi_dicom::instance::valid_uid(&a), "{a}");
    }

    #[test]
    fn the_modality_follows_the_loinc_display() {
        let sr = json!({"code": {"coding": [{"system": "http://loinc.org", "display": "CT Head"}]}});
        assert_eq!(modality_of(&sr), "CT");
        let sr = json!({"code": {"coding": [{"system": "http://loinc.org", "display": "XR Chest 2 Views"}]}});
        assert_eq!(modality_of(&sr), "DX");
    }
}
