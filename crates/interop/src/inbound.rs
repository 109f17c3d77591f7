//! Inbound HL7 v2: one message in, one ACK out. The raw message is logged (durably,
//! encrypted) before anything else; a message already answered for this sender and
//! control id gets its original ACK and is not applied again; an accepted message's
//! data, its audit records and its log outcome commit in one transaction, and only
//! then is AA returned.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use lianyi_hl7::{AckCode, Charset, ErrorCode, Hl7Error, Location, Message, ack, decode, encode_text, unreadable};
use lianyi_security::Caller;
use lianyi_services::FhirService;
use lianyi_services::fhir::ServiceError;
use lianyi_services::identifiers::mrn_system;
use lianyi_store::messages::{Finish, NewMessage, SideWrite};

use crate::v2_to_fhir::{Channel, MapError, map_message};

/// What is kept encrypted in the log, named for the cipher's associated data.
pub(crate) const PAYLOAD_AAD: &str = "message_log.payload";
pub(crate) const ACK_AAD: &str = "message_log.ack";

/// Messages about the same patient are applied one at a time (conditional creates
/// must not race); others run in parallel.
const LOCKS: usize = 64;

#[derive(Clone)]
pub struct Inbound {
    fhir: FhirService,
    /// Names the listener in the log (`mllp:0.0.0.0:2575`).
    channel: String,
    campus: String,
    utc_offset: String,
    locks: Arc<Vec<tokio::sync::Mutex<()>>>,
    counter: Arc<AtomicU64>,
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound").field("channel", &self.channel).field("campus", &self.campus).finish()
    }
}

/// The outcome of one message, for the listener's metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Duplicate,
    Error,
    Rejected,
    Failed,
}

impl Inbound {
    pub fn new(fhir: FhirService, channel: &str, campus: &str, utc_offset: &str) -> Inbound {
        Inbound {
            fhir,
            channel: channel.to_string(),
            campus: campus.to_string(),
            utc_offset: utc_offset.to_string(),
            locks: Arc::new((0..LOCKS).map(|_| tokio::sync::Mutex::new(())).collect()),
            counter: Arc::new(AtomicU64::new(0)),
        }
    }

    fn ack_id(&self) -> String {
        format!("L{}{:04}", self.fhir.now_ms(), self.counter.fetch_add(1, Ordering::Relaxed) % 10_000)
    }

    fn now_dtm(&self) -> String {
        let ms = self.fhir.now_ms();
        let iso = lianyi_fhir::datetime::format_instant(ms);
        iso.chars().filter(|c| c.is_ascii_digit()).take(14).collect()
    }

    fn seal(&self, text: &str, aad: &str) -> Option<String> {
        self.fhir.protector().cipher().encrypt(text, aad).ok()
    }

    /// Handles one message (the bytes inside an MLLP frame) and returns the ACK bytes.
    pub async fn receive(&self, bytes: &[u8], peer: Option<String>) -> (Vec<u8>, Outcome) {
        let received_at = self.fhir.now_ms();
        let (text, charset) = match decode(bytes) {
            Ok(x) => x,
            Err(e) => {
                let text = String::from_utf8_lossy(bytes).to_string();
                return self.unreadable(&text, peer, received_at, e).await;
            }
        };
        let m = match Message::parse(&text) {
            Ok(m) => m,
            Err(e) => return self.unreadable(&text, peer, received_at, e).await,
        };
        self.handle(&text, m, charset, peer, received_at, false).await
    }

    /// Processes a logged inbound message again (after the cause of its AE, AR or
    /// internal failure was fixed): logged as a new message, applied without the
    /// duplicate check, with the same rules and ACK otherwise. Needs the integration
    /// role; audited.
    pub async fn replay(&self, caller: &Caller, id: i64) -> Result<Outcome, crate::OutboundError> {
        use crate::OutboundError;
        if !caller.can(lianyi_security::roles::Capability::ManageIntegration) {
            return Err(OutboundError::Forbidden(
                "replaying messages needs the IT engineer or administrator role".into(),
            ));
        }
        let Some(logged) = self.fhir.store().message(id).await? else {
            return Err(OutboundError::NotFound(format!("message {id}")));
        };
        if logged.direction != "in" || logged.channel != self.channel {
            return Err(OutboundError::Invalid {
                field: "id".into(),
                message: format!("message {id} was not received on {}", self.channel),
            });
        }
        if !matches!(logged.status.as_str(), "error" | "rejected" | "failed") {
            return Err(OutboundError::Invalid {
                field: "id".into(),
                message: format!(
                    "message {id} is {}; only error, rejected or failed messages are replayed",
                    logged.status
                ),
            });
        }
        let text = self
            .fhir
            .protector()
            .cipher()
            .decrypt(&logged.payload, PAYLOAD_AAD)
            .map_err(|e| OutboundError::Crypto(e.to_string()))?;
        let m = Message::parse(&text)
            .map_err(|e| OutboundError::Invalid { field: "payload".into(), message: e.to_string() })?;
        let (_, outcome) = self.handle(&text, m, Charset::Utf8, logged.peer.clone(), self.fhir.now_ms(), true).await;
        let mut e = caller.entry(self.fhir.now_ms(), "message-replay", "success");
        e.detail = Some(format!("inbound message {id} processed again: {outcome:?}"));
        self.fhir.audit_log().record(vec![e]).await?;
        Ok(outcome)
    }

    /// The name of the listener this handles messages for (`mllp:0.0.0.0:2575`).
    pub fn channel(&self) -> &str {
        &self.channel
    }

    async fn handle(
        &self,
        text: &str,
        m: Message,
        charset: Charset,
        peer: Option<String>,
        received_at: i64,
        replay: bool,
    ) -> (Vec<u8>, Outcome) {
        let (app, facility) = m.sender();
        let sender = format!("{app}^{facility}");
        let control_id = m.control_id();
        let kind = format!("{}^{}", m.message_code(), m.trigger());
        let encode = |a: &Message| encode_text(&a.encode(), charset);
        if control_id.is_empty() {
            let e = Hl7Error {
                code: ErrorCode::RequiredFieldMissing,
                location: Some(Location::field("MSH", 1, 10)),
                message: "MSH-10 (message control id) is required".into(),
            };
            let a = ack(&m, AckCode::Reject, &self.ack_id(), &self.now_dtm(), &[e]);
            return (encode(&a), Outcome::Rejected);
        }
        let Some(payload) = self.seal(text, PAYLOAD_AAD) else {
            return self.internal(&m, charset, None, "the message could not be encrypted for the log").await;
        };
        let logged = self
            .fhir
            .store()
            .log_message(&NewMessage {
                direction: "in".into(),
                channel: self.channel.clone(),
                peer,
                sender: sender.clone(),
                control_id: control_id.clone(),
                message_type: kind.clone(),
                received_at,
                payload,
            })
            .await;
        let id = match logged {
            Ok(id) => id,
            Err(_) => return self.internal(&m, charset, None, "the message could not be logged").await,
        };
        // Messages about one patient are handled one at a time, so the duplicate check
        // below also covers a sender's retry racing its original.
        let key = m.segment("PID").map(|p| p.component(3, 1)).unwrap_or_default();
        let slot = key.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize)) % LOCKS;
        let _guard = self.locks[slot].lock().await;
        // A resend of a message already answered: logged as a duplicate, answered with
        // the original ACK, nothing applied.
        if !replay
            && let Ok(Some(stored)) = self.fhir.store().answered("in", &sender, &control_id).await
            && let Ok(original) = self.fhir.protector().cipher().decrypt(&stored, ACK_AAD)
        {
            self.finish(id, "duplicate", None, None, None).await;
            return (encode_text(&original, charset), Outcome::Duplicate);
        }
        let channel = Channel {
            mrn_system: mrn_system(&self.campus),
            visit_system: format!("urn:lianyi:sid:visit:{}", self.campus),
            order_system: format!("urn:lianyi:sid:order:{}", app.to_ascii_lowercase()),
            appointment_system: format!("urn:lianyi:sid:appointment:{}", app.to_ascii_lowercase()),
            utc_offset: self.utc_offset.clone(),
        };
        let mut mapped = match map_message(&m, &channel) {
            Ok(x) => x,
            Err(MapError::Reject(e)) => return self.refuse(&m, charset, id, AckCode::Reject, vec![e]).await,
            Err(MapError::Invalid(errs)) => return self.refuse(&m, charset, id, AckCode::Error, errs).await,
        };
        let caller = Caller::system(&format!("hl7:{sender}"));
        if self.keep_merge_state(&caller, &mut mapped.bundle).await.is_err() {
            return self.internal(&m, charset, Some(id), "the stored patient could not be read").await;
        }
        if let Some((system, value)) = mapped.merge.take() {
            match self.merge_entries(&caller, &mut mapped.bundle, &system, &value).await {
                Ok(()) => {}
                Err(Some(e)) => return self.refuse(&m, charset, id, AckCode::Error, vec![e]).await,
                Err(None) => return self.internal(&m, charset, Some(id), "the merged patient could not be read").await,
            }
        }
        let aa = ack(&m, AckCode::Accept, &self.ack_id(), &self.now_dtm(), &[]);
        let Some(sealed_ack) = self.seal(&aa.encode(), ACK_AAD) else {
            return self.internal(&m, charset, Some(id), "the ACK could not be encrypted for the log").await;
        };
        let side = [SideWrite::FinishMessage(Finish {
            id,
            status: "accepted".into(),
            finished_at: self.fhir.now_ms(),
            ack: Some(sealed_ack),
            error: None,
            summary: Some(mapped.summary.clone()),
        })];
        match self.fhir.process_bundle_with(&caller, mapped.bundle, true, &side).await {
            Ok(_) => (encode(&aa), Outcome::Accepted),
            Err(ServiceError::Invalid(outcome)) => {
                let text = outcome.issues.first().map(|i| i.diagnostics.clone()).unwrap_or_default();
                let e = Hl7Error { code: ErrorCode::DataType, location: None, message: text };
                self.refuse(&m, charset, id, AckCode::Error, vec![e]).await
            }
            Err(other) => self.internal(&m, charset, Some(id), &other.to_string()).await,
        }
    }

    /// An ADT message replaces the Patient it names, but not the merge state the
    /// message knows nothing of: the stored record's `link`s and a merged record's
    /// `active: false` are carried over, so a later ADT neither undoes a merge nor
    /// revives a merged-away record.
    async fn keep_merge_state(&self, caller: &Caller, bundle: &mut serde_json::Value) -> Result<(), ()> {
        use serde_json::Value;
        let Some(entry) = bundle.pointer_mut("/entry/0") else { return Ok(()) };
        let url = entry.pointer("/request/url").and_then(Value::as_str).unwrap_or_default().to_string();
        let is_put = entry.pointer("/request/method").and_then(Value::as_str) == Some("PUT");
        let Some(query) = url.strip_prefix("Patient?").filter(|_| is_put) else { return Ok(()) };
        let params = lianyi_services::fhir::query_pairs(query);
        let Some(stored) = self.stored_patient(caller, &params).await? else { return Ok(()) };
        let stored: Value = serde_json::from_str(&stored.body).map_err(|_| ())?;
        let Some(links) = stored.get("link").filter(|l| l.as_array().is_some_and(|a| !a.is_empty())) else {
            return Ok(());
        };
        entry["resource"]["link"] = links.clone();
        if stored.get("active") == Some(&Value::Bool(false)) {
            entry["resource"]["active"] = Value::Bool(false);
        }
        Ok(())
    }

    /// The stored Patient a search (an identifier) finds, decrypted; `Err` when the
    /// search cannot run.
    async fn stored_patient(
        &self,
        caller: &Caller,
        params: &[(String, String)],
    ) -> Result<Option<lianyi_store::StoredResource>, ()> {
        let rtype = lianyi_fhir::ResourceType::parse("Patient").ok_or(())?;
        let req = lianyi_fhir::search::parse_search(rtype, params).map_err(|_| ())?;
        let page = self.fhir.search(caller, &req).await.map_err(|_| ())?;
        Ok(page.resources.into_iter().next())
    }

    /// ADT^A40: the merged-away patient (found by its MRN) is marked inactive with a
    /// `replaced-by` link to the survivor, and the survivor gets a `replaces` link,
    /// both in the message's transaction (the retired record's update is guarded by
    /// its version). `Err(Some)` is an AE for the sender, `Err(None)` an internal error.
    async fn merge_entries(
        &self,
        caller: &Caller,
        bundle: &mut serde_json::Value,
        system: &str,
        value: &str,
    ) -> Result<(), Option<Hl7Error>> {
        use serde_json::{Value, json};
        let unknown = || {
            Some(Hl7Error {
                code: ErrorCode::UnknownKey,
                location: Some(Location::field("MRG", 1, 1)),
                message: format!("MRG-1 '{value}' names no known patient"),
            })
        };
        let params = vec![("identifier".to_string(), format!("{system}|{value}"))];
        let Some(old) = self.stored_patient(caller, &params).await.map_err(|_| None)? else { return Err(unknown()) };
        let mut retired: Value = serde_json::from_str(&old.body).map_err(|_| None)?;
        let Some(survivor) = bundle.pointer_mut("/entry/0") else { return Err(None) };
        let survivor_url = survivor["fullUrl"].clone();
        let mut links = survivor["resource"]["link"].as_array().cloned().unwrap_or_default();
        links.push(json!({"other": {"reference": format!("Patient/{}", old.id)}, "type": "replaces"}));
        survivor["resource"]["link"] = json!(links);
        retired["active"] = json!(false);
        let mut links = retired["link"].as_array().cloned().unwrap_or_default();
        links.push(json!({"other": {"reference": survivor_url}, "type": "replaced-by"}));
        retired["link"] = json!(links);
        if let Some(meta) = retired.as_object_mut() {
            meta.remove("meta");
        }
        let entry = json!({
            "fullUrl": format!("urn:uuid:00000000-0000-4000-9000-{:012x}", 1),
            "resource": retired,
            "request": {"method": "PUT", "url": format!("Patient/{}", old.id), "ifMatch": format!("W/\"{}\"", old.version)}
        });
        match bundle.get_mut("entry").and_then(Value::as_array_mut) {
            Some(entries) => entries.push(entry),
            None => return Err(None),
        }
        Ok(())
    }

    /// Records a message's outcome on its own (nothing else was written).
    async fn finish(&self, id: i64, status: &str, ack: Option<String>, error: Option<String>, summary: Option<String>) {
        let f = Finish { id, status: status.into(), finished_at: self.fhir.now_ms(), ack, error, summary };
        let _ = self.fhir.store().finish_message(&f).await;
    }

    /// AE or AR for the content; logged as answered, so a resend gets the same ACK.
    async fn refuse(
        &self,
        m: &Message,
        charset: Charset,
        id: i64,
        code: AckCode,
        errors: Vec<Hl7Error>,
    ) -> (Vec<u8>, Outcome) {
        let a = ack(m, code, &self.ack_id(), &self.now_dtm(), &errors);
        let text = errors.iter().map(|e| e.message.clone()).collect::<Vec<_>>().join("; ");
        let status = if code == AckCode::Reject { "rejected" } else { "error" };
        self.finish(id, status, self.seal(&a.encode(), ACK_AAD), Some(text), None).await;
        (encode_text(&a.encode(), charset), if code == AckCode::Reject { Outcome::Rejected } else { Outcome::Error })
    }

    /// AE 207: nothing was applied and a resend will be processed again.
    async fn internal(&self, m: &Message, charset: Charset, id: Option<i64>, why: &str) -> (Vec<u8>, Outcome) {
        let e = Hl7Error {
            code: ErrorCode::ApplicationInternal,
            location: None,
            message: "internal error; nothing was stored, please resend".into(),
        };
        let a = ack(m, AckCode::Error, &self.ack_id(), &self.now_dtm(), &[e]);
        if let Some(id) = id {
            self.finish(id, "failed", None, Some(why.to_string()), None).await;
        }
        (encode_text(&a.encode(), charset), Outcome::Failed)
    }

    /// AR for bytes that are not a readable message; logged with what could be read.
    async fn unreadable(
        &self,
        text: &str,
        peer: Option<String>,
        received_at: i64,
        e: lianyi_hl7::ParseError,
    ) -> (Vec<u8>, Outcome) {
        let err = Hl7Error { code: ErrorCode::SegmentSequence, location: e.location(), message: e.to_string() };
        let bare = Message::parse(text).unwrap_or_else(|_| unreadable());
        let a = ack(&bare, AckCode::Reject, &self.ack_id(), &self.now_dtm(), &[err]);
        if let Some(payload) = self.seal(text, PAYLOAD_AAD)
            && let Ok(id) = self
                .fhir
                .store()
                .log_message(&NewMessage {
                    direction: "in".into(),
                    channel: self.channel.clone(),
                    peer,
                    sender: String::new(),
                    control_id: String::new(),
                    message_type: String::new(),
                    received_at,
                    payload,
                })
                .await
        {
            self.finish(id, "rejected", self.seal(&a.encode(), ACK_AAD), Some(e.to_string()), None).await;
        }
        (a.encode().into_bytes(), Outcome::Rejected)
    }
}
