//! Moving a stay: to another bed of its ward (转床, the ward's nurse), or to another
//! ward, department or campus (转科、转院区): the doctor's transfer order, the target
//! campus's admission office giving it a bed — the patient registered at that campus
//! if they hold no MRN there, the old bed to cleaning, the new one held — and the new
//! ward receiving the patient. One stay throughout: its Encounter keeps the campus that
//! admitted it, and its `location` keeps every ward and bed with their periods.

use lianyi_clinical::scheduling::local_instant;
use lianyi_security::Caller;
use lianyi_security::scope::Perm;
use lianyi_store::StoredResource;
use serde_json::{Value, json};

use crate::beds::{BedState, BedStep, SNOMED, TRANSFER_CODE, arriving, current, location_entry, next};
use crate::stays::{
    Admitted, Inpatient, InpatientError, OrderForm, PatientLine, Ward, bed_taken, editable, invalid, minute,
    office_order, put, reference_id, requester, stay_number,
};

/// A transfer order waiting for the target campus's admission office.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferOrder {
    pub id: String,
    pub patient: PatientLine,
    pub stay: String,
    /// The stay number (住院号).
    pub number: String,
    /// The ward the patient is on.
    pub from_ward: String,
    /// The ward ordered.
    pub ward: String,
    pub reason: String,
    pub requester: String,
    pub ordered_at: String,
}

impl Inpatient {
    /// Every ward of the group, by campus and name (directory data): where a stay may
    /// be transferred.
    pub async fn all_wards(&self, caller: &Caller) -> Result<Vec<Ward>, InpatientError> {
        self.wards(&caller.group_wide()).await
    }

    /// A doctor's transfer order for a stay on a ward: to another ward of any campus;
    /// returns the ServiceRequest's id.
    pub async fn order_transfer(
        &self,
        caller: &Caller,
        stay: &str,
        form: &OrderForm,
        requester_name: &str,
    ) -> Result<String, InpatientError> {
        if !Self::may_order(caller) {
            return Err(InpatientError::Forbidden("ordering transfers is not among your roles".into()));
        }
        let (_, v, care) = self.stay_for(caller, stay).await?;
        if v["status"] != "in-progress" || arriving(&v) {
            return Err(invalid("stay", "not-on-ward", "the patient is not on a ward (received first)"));
        }
        let (from, _) = current(&v, "wa").ok_or_else(|| invalid("stay", "not-on-ward", "the stay is on no ward"))?;
        let mut errors = Vec::new();
        let reason = form.reason.trim();
        if reason.chars().count() < 2 || reason.chars().count() > 200 {
            errors.push(lianyi_clinical::registry::FieldError {
                field: "reason",
                code: "reason",
                detail: "why the patient moves (2 to 200 characters)".into(),
            });
        }
        let ward = self.all_wards(caller).await?.into_iter().find(|w| w.id == form.ward.trim());
        match &ward {
            Some(w) if w.id == from => errors.push(lianyi_clinical::registry::FieldError {
                field: "ward",
                code: "same-ward",
                detail: "another ward than the one the patient is on (a bed of the same ward: 转床)".into(),
            }),
            Some(_) => {}
            None => errors.push(lianyi_clinical::registry::FieldError {
                field: "ward",
                code: "ward",
                detail: "one of the group's wards".into(),
            }),
        }
        let (Some(ward), true) = (ward, errors.is_empty()) else {
            return Err(InpatientError::Invalid(errors));
        };
        let patient = reference_id(&v["subject"], "Patient").unwrap_or_default().to_string();
        let waiting = self
            .search(
                &care,
                "ServiceRequest",
                &[
                    ("encounter", format!("Encounter/{stay}")),
                    ("code", format!("{SNOMED}|{TRANSFER_CODE}")),
                    ("status", "active".into()),
                ],
            )
            .await?;
        if !waiting.is_empty() {
            return Err(invalid("stay", "transfer-waiting", "a transfer order for this stay is waiting already"));
        }
        let mut request = office_order(
            (TRANSFER_CODE, "Patient transfer", "转科"),
            (&patient, stay),
            &ward,
            (reason, form.note.trim()),
            (self.fhir.now_ms(), lianyi_clinical::orders::username(caller).map(|_| requester(caller, requester_name))),
        );
        request["performer"] = json!([{"reference": format!("Organization/{}", ward.department)}]);
        // The order belongs to the campus of the ward the patient is on.
        let here = self.ward(&care, &from).await?;
        let here = lianyi_security::CampusId::parse(&here.campus)
            .ok()
            .and_then(|c| care.at_campus(&c))
            .ok_or_else(|| InpatientError::Forbidden("ordering at this campus is not among your roles".into()))?;
        let w =
            self.fhir.create(&self.fhir.permit(&here, crate::stays::rtype("ServiceRequest")).await?, request).await?;
        Ok(w.id)
    }

    /// The transfer orders waiting for a bed at `campus`, oldest first: orders to any
    /// of its wards, from any campus (read group-wide by the admission office, limited
    /// to its departments).
    pub async fn transfer_orders(&self, caller: &Caller, campus: &str) -> Result<Vec<TransferOrder>, InpatientError> {
        let desk = self.desk(caller, campus)?;
        let wards: Vec<Ward> = self.wards(&desk).await?.into_iter().filter(|w| w.campus == campus).collect();
        if wards.is_empty() {
            return Ok(Vec::new());
        }
        let mut departments: Vec<String> = wards.iter().map(|w| format!("Organization/{}", w.department)).collect();
        departments.sort();
        departments.dedup();
        let rows = self
            .search(
                &desk.group_wide(),
                "ServiceRequest",
                &[
                    ("code", format!("{SNOMED}|{TRANSFER_CODE}")),
                    ("status", "active".into()),
                    ("performer", departments.join(",")),
                    ("_sort", "authored".into()),
                    ("_count", "200".into()),
                ],
            )
            .await?;
        let ids: Vec<&str> = rows.iter().filter_map(|r| reference_id(&r["subject"], "Patient")).collect();
        // The patients as the index holds them: the office registers them here when it
        // gives the bed, so the record need not be open to it yet.
        let patients = self.patients_in_index(caller, &ids).await?;
        let mut out = Vec::new();
        for r in &rows {
            let Some(ward) = r["locationReference"][0]["reference"].as_str().and_then(|l| l.strip_prefix("Location/"))
            else {
                continue;
            };
            if !wards.iter().any(|w| w.id == ward) {
                continue;
            }
            let Some(line) = reference_id(&r["subject"], "Patient").and_then(|p| patients.get(p)) else { continue };
            let stay = reference_id(&r["encounter"], "Encounter").unwrap_or_default().to_string();
            let stay_v = match self.read(&desk.group_wide(), "Encounter", &stay).await {
                Ok(s) => editable(&s)?,
                Err(_) => continue,
            };
            out.push(TransferOrder {
                id: r["id"].as_str().unwrap_or_default().to_string(),
                patient: line.clone(),
                number: stay_number(&stay_v),
                from_ward: current(&stay_v, "wa").map(|(w, _)| w).unwrap_or_default(),
                stay,
                ward: ward.to_string(),
                reason: r["reasonCode"][0]["text"].as_str().unwrap_or_default().to_string(),
                requester: r["requester"]["display"].as_str().unwrap_or_default().to_string(),
                ordered_at: r["authoredOn"].as_str().map(minute).unwrap_or_default(),
            });
        }
        Ok(out)
    }

    /// Patients by id from the group's index, as the admission office finds them
    /// (audited as its reads).
    async fn patients_in_index(
        &self,
        caller: &Caller,
        ids: &[&str],
    ) -> Result<std::collections::HashMap<String, PatientLine>, InpatientError> {
        let mut out = std::collections::HashMap::new();
        if ids.is_empty() || !caller.access().allows("Patient", Perm::Search) {
            return Ok(out);
        }
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        for p in self
            .search(&caller.group_wide(), "Patient", &[("_id", ids.join(",")), ("_count", ids.len().to_string())])
            .await?
        {
            let id = p["id"].as_str().unwrap_or_default().to_string();
            out.insert(id.clone(), crate::stays::patient_line(&id, &p));
        }
        Ok(out)
    }

    /// The admission office gives a transferred stay its bed at this campus: the
    /// patient registered here (an MRN) if needed, the stay leaving its ward and bed
    /// (the bed to cleaning) and held on the new bed, on its way there, the order
    /// completed; one transaction.
    pub(crate) async fn transfer_in(
        &self,
        caller: &Caller,
        desk: &Caller,
        (order_stored, mut order_v): (StoredResource, Value),
        (bed_stored, bed_v): (StoredResource, Value),
        ward: &Ward,
    ) -> Result<Admitted, InpatientError> {
        if order_v["status"] != "active" {
            return Err(invalid("order", "admitted", "this order was admitted or cancelled already"));
        }
        let ordered_ward =
            order_v["locationReference"][0]["reference"].as_str().and_then(|l| l.strip_prefix("Location/"));
        let Some(ordered_ward) = ordered_ward else {
            return Err(invalid("order", "order", "a transfer order to this campus"));
        };
        if self.ward(desk, ordered_ward).await.map(|w| w.campus != ward.campus).unwrap_or(true) {
            return Err(invalid("order", "order", "a transfer order to this campus"));
        }
        let state = BedState::of(&bed_v);
        let Some(held) = next(state, BedStep::Reserve) else {
            return Err(bed_taken(state));
        };
        let patient = reference_id(&order_v["subject"], "Patient")
            .ok_or_else(|| invalid("order", "stored", "the order names no patient"))?
            .to_string();
        let campus = lianyi_security::CampusId::parse(&ward.campus)
            .map_err(|_| invalid("ward", "ward", "a ward of a campus"))?;
        self.registry.register_here(caller, &patient, &campus).await?;
        let stay_id = reference_id(&order_v["encounter"], "Encounter").unwrap_or_default().to_string();
        let (stay_stored, mut stay_v, care) = self.stay_for(caller, &stay_id).await?;
        if stay_v["status"] != "in-progress" || arriving(&stay_v) {
            return Err(invalid("stay", "not-on-ward", "the patient is not on a ward (received first)"));
        }
        let writer = desk
            .open_record(&patient, &[ward.campus.as_str()])
            .ok_or_else(|| InpatientError::Forbidden("the patient's record is not open here".into()))?;
        let mut entries = Vec::new();
        if let Some((old_bed, _)) = current(&stay_v, "bd") {
            let old = self.read(&care, "Location", &old_bed).await?;
            let mut old_v = editable(&old)?;
            let state = BedState::of(&old_v);
            let cleaning = next(state, BedStep::Vacate).ok_or_else(|| bed_taken(state))?;
            old_v["operationalStatus"] = cleaning.coding();
            entries.push(put(old_v, &old));
        }
        let now = local_instant(self.fhir.now_ms());
        leave_current(&mut stay_v, &now);
        if let Some(ls) = stay_v["location"].as_array_mut() {
            ls.push(location_entry(&ward.id, &ward.names.zh, "wa", "planned"));
            ls.push(location_entry(&bed_stored.id, bed_v["name"].as_str().unwrap_or_default(), "bd", "reserved"));
        }
        stay_v["serviceProvider"] = json!({"reference": format!("Organization/{}", ward.department)});
        let number = stay_number(&stay_v);
        let mut new_bed = bed_v;
        new_bed["operationalStatus"] = held.coding();
        order_v["status"] = json!("completed");
        entries.push(put(stay_v, &stay_stored));
        entries.push(put(new_bed, &bed_stored));
        entries.push(put(order_v, &order_stored));
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
        match self.fhir.process_bundle(&writer, bundle, true).await {
            Ok(_) => Ok(Admitted { stay: stay_id, number, ward: ward.id.clone(), bed: bed_stored.id }),
            Err(e) if e.is_conflict() => Err(self.conflict(caller, &bed_stored.id).await),
            Err(e) => Err(e.into()),
        }
    }

    /// The ward's nurse moves a patient to another free bed of the same ward (转床):
    /// the old bed to cleaning, the new one occupied; one transaction.
    pub async fn move_bed(&self, caller: &Caller, stay: &str, bed: &str) -> Result<(), InpatientError> {
        if !Self::may_keep_ward(caller) {
            return Err(InpatientError::Forbidden("working on a ward is not among your roles".into()));
        }
        let (stored, mut v, care) = self.stay_for(caller, stay).await?;
        if v["status"] != "in-progress" || arriving(&v) {
            return Err(invalid("stay", "not-on-ward", "the patient is not on a ward (received first)"));
        }
        let (Some((ward, _)), Some((old_bed, _))) = (current(&v, "wa"), current(&v, "bd")) else {
            return Err(invalid("stay", "not-on-ward", "the stay is on no ward"));
        };
        let target = match self.read(caller, "Location", bed.trim()).await {
            Ok(b) => b,
            Err(InpatientError::NotFound(_)) => return Err(invalid("bed", "bed-same-ward", "a bed of the same ward")),
            Err(e) => return Err(e),
        };
        let mut target_v = editable(&target)?;
        if reference_id(&target_v["partOf"], "Location") != Some(ward.as_str()) || target.id == old_bed {
            return Err(invalid(
                "bed",
                "bed-same-ward",
                "another bed of the same ward (another ward: a transfer order)",
            ));
        }
        let ward = self.ward(caller, &ward).await?;
        let writer = self.ward_caller(&care, &ward.campus)?;
        let state = BedState::of(&target_v);
        let occupied =
            next(state, BedStep::Occupy).filter(|_| state == BedState::Free).ok_or_else(|| bed_taken(state))?;
        let old = self.read(caller, "Location", &old_bed).await?;
        let mut old_v = editable(&old)?;
        let old_state = BedState::of(&old_v);
        old_v["operationalStatus"] = next(old_state, BedStep::Vacate).ok_or_else(|| bed_taken(old_state))?.coding();
        target_v["operationalStatus"] = occupied.coding();
        let now = local_instant(self.fhir.now_ms());
        if let Some(ls) = v["location"].as_array_mut() {
            for l in
                ls.iter_mut().filter(|l| l["status"] != "completed" && l["physicalType"]["coding"][0]["code"] == "bd")
            {
                l["status"] = json!("completed");
                l["period"]["end"] = json!(now);
            }
            let mut entry = location_entry(&target.id, target_v["name"].as_str().unwrap_or_default(), "bd", "active");
            entry["period"] = json!({"start": now});
            ls.push(entry);
        }
        let bundle = json!({"resourceType": "Bundle", "type": "transaction",
                            "entry": [put(v, &stored), put(old_v, &old), put(target_v, &target)]});
        match self.fhir.process_bundle(&writer, bundle, true).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_conflict() => Err(self.conflict(caller, &target.id).await),
            Err(e) => Err(e.into()),
        }
    }
}

/// Ends every current entry of a stay's `location` at `now`.
pub(crate) fn leave_current(stay: &mut Value, now: &str) {
    if let Some(ls) = stay["location"].as_array_mut() {
        for l in ls.iter_mut().filter(|l| l["status"] != "completed") {
            l["status"] = json!("completed");
            l["period"]["end"] = json!(now);
        }
    }
}
