//! Inbound HL7 v2: one message in, one ACK out. The raw message is logged (durably,
//! encrypted) before anything else; a message already answered for this sender and
//! control id gets its original ACK and is not applied again; an accepted message's
//! data, its audit records and its log outcome commit in one transaction, and only
//! then is AA returned.
//!
//! A listener may instead acknowledge from its journal ([`Inbound::journaled`]): an
//! ORU^R01 is decoded, mapped and checked against the FHIR rules (so content errors
//! still get AE before anything is acknowledged), then the raw message, the checked
//! FHIR transaction it mapped to and its AA are committed to the message log with
//! status `queued` — one row, written in a group commit with the other senders' — and
//! AA is returned: the mapped data is durable before the ACK. The applier
//! ([`Inbound::run_applier`]) writes the kept transactions in arrival order, each with
//! its log outcome in one transaction, after a restart too. While messages arrive it
//! takes the share of the single writer's time it needs to keep up (at least a tenth;
//! only that tenth when they arrive faster than it can apply), and catches up when
//! they stop; at 50,000 queued, new messages wait for it (senders slow down to
//! the apply rate). Other message types wait until the queue is applied and are then
//! handled as above, so one patient's messages keep their order.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use lianyi_hl7::{AckCode, Charset, ErrorCode, Hl7Error, Location, Message, ack, decode, encode_text, unreadable};
use lianyi_security::{Caller, SystemTask};
use lianyi_services::FhirService;
use lianyi_services::fhir::ServiceError;
use lianyi_services::identifiers::mrn_system;
use lianyi_store::messages::{Finish, Logged, NewMessage, Queued, QueuedMessage, SideWrite};

use crate::v2_to_fhir::{
    Channel, MapError, Pid3Profile, content_digest, map_message, message_key, pid_field_of, urn_part,
};

/// What is kept encrypted in the log, named for the cipher's associated data.
pub(crate) const PAYLOAD_AAD: &str = "message_log.payload";
pub(crate) const ACK_AAD: &str = "message_log.ack";
const MAPPED_AAD: &str = "message_log.mapped";

/// Messages about the same patient are applied one at a time (conditional creates
/// must not race); others run in parallel.
const LOCKS: usize = 64;
/// Queued messages applied at once (different patients; one patient's in order):
/// their writes share group commits.
const APPLY_CONCURRENCY: usize = 32;
/// While senders are busy, the applier's pause after a group is at most this long.
const APPLY_YIELD: std::time::Duration = std::time::Duration::from_secs(1);
/// The least share of the time the applier takes while senders are busy.
const MIN_SHARE: f64 = 1.0 / 10.0;
/// The longest queue: at this length new messages wait for the applier before they
/// are journaled (senders slow down to the apply rate), and it no longer gives way.
const APPLY_BACKLOG_LIMIT: i64 = 50_000;

/// The message types acknowledged from the journal: their mapping needs no stored
/// data, so a message that maps and validates is applied later without new errors.
fn journalable(kind: &str) -> bool {
    kind == "ORU^R01"
}

/// How the applier shares the one database writer with the senders. While messages
/// arrive, it takes the share of the time it needs to keep up with them (with a
/// quarter to spare), at least a tenth and at most 95 %; when they arrive faster than
/// it can apply them at all (a burst, a backload), only that tenth, so the senders'
/// ACKs come first and the queue is written out behind them. When nothing arrives, all
/// of it. The arrival rate is measured while it pauses, when it does not slow the
/// senders down (measured while it runs, its own share would lower the rate it sees).
#[derive(Debug)]
struct Pace {
    /// Messages journaled at the last group's end.
    seen: u64,
    /// Messages journaled while the applier paused, and for how long, since the last
    /// estimate.
    heard: (u64, std::time::Duration),
    /// Messages journaled per second (smoothed; `None` before the first estimate).
    arrivals: Option<f64>,
    /// Messages applied per second while the applier runs (smoothed).
    applies: Option<f64>,
}

/// The most of the time the applier takes while messages arrive (the rest measures them).
const MAX_SHARE: f64 = 0.95;

impl Pace {
    fn new(journaled: u64) -> Pace {
        Pace { seen: journaled, heard: (0, std::time::Duration::ZERO), arrivals: None, applies: None }
    }

    /// After a group of `applied` messages that took `took`, with `journaled` messages
    /// journaled so far: how long to pause (none when no message arrived meanwhile).
    fn after_group(
        &mut self,
        journaled: u64,
        applied: usize,
        took: std::time::Duration,
    ) -> Option<std::time::Duration> {
        let busy = journaled != self.seen;
        self.seen = journaled;
        if applied > 0 && !took.is_zero() {
            let rate = applied as f64 / took.as_secs_f64();
            self.applies = Some(self.applies.map_or(rate, |old| 0.8 * old + 0.2 * rate));
        }
        if !busy {
            return None;
        }
        let need = match (self.arrivals, self.applies) {
            (Some(a), Some(p)) if p > 0.0 => a / p,
            _ => f64::INFINITY,
        };
        let share = if need >= 1.0 { MIN_SHARE } else { (need * 1.25).clamp(MIN_SHARE, MAX_SHARE) };
        Some(took.mul_f64(1.0 / share - 1.0).min(APPLY_YIELD))
    }

    /// The pause ended after `paused`, with `journaled` messages journaled so far.
    fn after_pause(&mut self, journaled: u64, paused: std::time::Duration) {
        self.heard.0 += journaled.saturating_sub(self.seen);
        self.heard.1 += paused;
        self.seen = journaled;
        // An estimate from at least a tenth of a second of pauses.
        if self.heard.1.as_secs_f64() >= 0.1 {
            let rate = self.heard.0 as f64 / self.heard.1.as_secs_f64();
            self.arrivals = Some(self.arrivals.map_or(rate, |old| 0.5 * old + 0.5 * rate));
            self.heard = (0, std::time::Duration::ZERO);
        }
    }
}

/// The journal's shared state (one per listener).
#[derive(Debug, Default)]
struct Journal {
    /// Wakes the applier when a message is queued.
    queued: tokio::sync::Notify,
    /// Wakes those waiting for the queue to be applied.
    drained: tokio::sync::Notify,
    /// Messages journaled so far (the applier's measure of the senders' rate).
    journaled: AtomicU64,
    /// Queued messages not yet applied (set by the applier, raised per new message).
    backlog: AtomicI64,
    /// Wakes senders waiting for the backlog to fall under the limit.
    room: tokio::sync::Notify,
    /// Messages waiting for the queue to be applied (the applier does not yield).
    waiting: AtomicU64,
}

#[derive(Clone)]
pub struct Inbound {
    fhir: FhirService,
    /// Names the listener in the log (`mllp:0.0.0.0:2575`).
    channel: String,
    campus: String,
    utc_offset: String,
    profile: Pid3Profile,
    locks: Arc<Vec<tokio::sync::Mutex<()>>>,
    counter: Arc<AtomicU64>,
    journal: Option<Arc<Journal>>,
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
            profile: Pid3Profile::default(),
            locks: Arc::new((0..LOCKS).map(|_| tokio::sync::Mutex::new(())).collect()),
            counter: Arc::new(AtomicU64::new(0)),
            journal: None,
        }
    }

    /// Acknowledges ORU^R01 from the journal (see the module documentation); run
    /// [`Inbound::run_applier`] beside the listener.
    pub fn journaled(mut self) -> Inbound {
        self.journal = Some(Arc::default());
        self
    }

    /// Reads PID-3 as `profile` says (which repetition is the MRN, which campus an
    /// assigning authority means).
    pub fn with_profile(mut self, profile: Pid3Profile) -> Inbound {
        self.profile = profile;
        self
    }

    pub fn is_journaled(&self) -> bool {
        self.journal.is_some()
    }

    /// The identifier systems of this listener's messages.
    fn channel_for(&self, app: &str) -> Channel {
        Channel {
            mrn_system: mrn_system(&self.campus),
            visit_system: format!("urn:lianyi:sid:visit:{}", self.campus),
            order_system: format!("urn:lianyi:sid:order:{}", urn_part(app)),
            appointment_system: format!("urn:lianyi:sid:appointment:{}", urn_part(app)),
            utc_offset: self.utc_offset.clone(),
            profile: self.profile.clone(),
            now_ms: self.fhir.now_ms(),
        }
    }

    /// The lock of the patient a message is about (PID-3's first identifier).
    fn lock_for(&self, m: &Message) -> &tokio::sync::Mutex<()> {
        let key = Self::patient_of(m);
        let slot = key.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize)) % LOCKS;
        &self.locks[slot]
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

    /// Whether the database fails the messages (it does not answer within 2 s, or
    /// its disk is full): a message that failed then gets no ACK at all, so its
    /// sender sends it again.
    pub async fn database_failing(&self) -> bool {
        self.fhir.operations().failing().await.is_some()
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
        let Some(logged) = self.fhir.operations().message(id).await? else {
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
        let key = MessageKey::of(&m, text);
        let kind = format!("{}^{}", m.message_code(), m.trigger());
        let encode = |a: &Message| encode_text(&a.encode(), charset);
        if let Some(j) = self.journal.clone()
            && !replay
        {
            if journalable(&kind) {
                return self.journal_message(text, &m, &key, charset, peer, received_at, &j).await;
            }
            // Anything else follows what is queued, so one patient's messages keep
            // their order.
            self.wait_applied(&j).await;
        }
        let Some(row) = self.new_message(&m, text, &key, peer, received_at, None) else {
            return self.internal(&m, charset, None, "the message could not be encrypted for the log").await;
        };
        let id = match self.fhir.operations().log_message(row).await {
            Ok(id) => id,
            Err(_) => return self.internal(&m, charset, None, "the message could not be logged").await,
        };
        // Messages about one patient are handled one at a time, so the duplicate check
        // below also covers a sender's retry racing its original.
        let _guard = self.lock_for(&m).lock().await;
        // A resend of a message already answered: logged as a duplicate, answered with
        // the original ACK, nothing applied.
        if !replay
            && let Ok(Some(stored)) = self.fhir.operations().answered("in", &sender, &key.control_id, &key.digest).await
            && let Ok(original) = self.fhir.protector().cipher().decrypt(&stored, ACK_AAD)
        {
            self.finish(id, "duplicate", None, None, None).await;
            return (encode_text(&original, charset), Outcome::Duplicate);
        }
        let channel = self.channel_for(&app);
        let mut mapped = match map_message(&m, &channel) {
            Ok(x) => with_header_warnings(x, &m),
            Err(MapError::Reject(e)) => return self.refuse(&m, charset, id, AckCode::Reject, vec![e]).await,
            Err(MapError::Invalid(errs)) => return self.refuse(&m, charset, id, AckCode::Error, errs).await,
        };
        let caller = Caller::task(SystemTask::Hl7Inbound(sender.clone()));
        if self.keep_stored_state(&caller, &mut mapped.bundle, &mapped.cleared).await.is_err() {
            return self.internal(&m, charset, Some(id), "the stored patient could not be read").await;
        }
        if let Some((system, value)) = mapped.merge.take() {
            match self.merge_entries(&caller, &mut mapped.bundle, &system, &value).await {
                Ok(()) => {}
                // Nothing known here to merge away: the survivor is still updated.
                Err(Some(e)) => mapped.warnings.push(e),
                Err(None) => return self.internal(&m, charset, Some(id), "the merged patient could not be read").await,
            }
        }
        let aa = ack(&m, AckCode::Accept, &self.ack_id(), &self.now_dtm(), &mapped.warnings);
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
            warnings: warnings_text(&mapped.warnings),
        })];
        match self.fhir.process_bundle_with(&caller, mapped.bundle, true, &side).await {
            Ok(_) => (encode(&aa), Outcome::Accepted),
            Err(ServiceError::Invalid(outcome)) => {
                let e = rule_error(&outcome);
                self.refuse(&m, charset, id, AckCode::Error, vec![e]).await
            }
            Err(other) => self.internal(&m, charset, Some(id), &other.to_string()).await,
        }
    }

    /// The log row of an inbound message (payload encrypted; queued when `queued` is
    /// given).
    fn new_message(
        &self,
        m: &Message,
        text: &str,
        key: &MessageKey,
        peer: Option<String>,
        received_at: i64,
        queued: Option<Queued>,
    ) -> Option<NewMessage> {
        let (app, facility) = m.sender();
        Some(NewMessage {
            direction: "in".into(),
            channel: self.channel.clone(),
            peer,
            sender: format!("{app}^{facility}"),
            control_id: key.control_id.clone(),
            message_type: format!("{}^{}", m.message_code(), m.trigger()),
            received_at,
            payload: self.seal(text, PAYLOAD_AAD)?,
            digest: Some(key.digest.clone()),
            queued,
            campus: Some(self.campus.clone()),
        })
    }

    /// Acknowledges a message from the journal: mapped and checked first (content
    /// errors get AE, logged, nothing queued), then queued with its AA in the log —
    /// unless it is a resend of a message answered before, which gets that ACK.
    #[allow(clippy::too_many_arguments)]
    async fn journal_message(
        &self,
        text: &str,
        m: &Message,
        key: &MessageKey,
        charset: Charset,
        peer: Option<String>,
        received_at: i64,
        journal: &Journal,
    ) -> (Vec<u8>, Outcome) {
        let (app, _) = m.sender();
        let peer_for_refusal = peer.clone();
        let refused = |code: AckCode, errors: Vec<Hl7Error>| async move {
            let logged = match self.new_message(m, text, key, peer_for_refusal, received_at, None) {
                Some(row) => self.fhir.operations().log_message(row).await.ok(),
                None => None,
            };
            match logged {
                Some(id) => self.refuse(m, charset, id, code, errors).await,
                None => self.internal(m, charset, None, "the message could not be logged").await,
            }
        };
        let mapped = match map_message(m, &self.channel_for(&app)) {
            Ok(x) => with_header_warnings(x, m),
            Err(MapError::Reject(e)) => return refused(AckCode::Reject, vec![e]).await,
            Err(MapError::Invalid(errs)) => return refused(AckCode::Error, errs).await,
        };
        if let Err(ServiceError::Invalid(outcome)) = self.fhir.validate_writes(&mapped.bundle) {
            return refused(AckCode::Error, vec![rule_error(&outcome)]).await;
        }
        let aa = ack(m, AckCode::Accept, &self.ack_id(), &self.now_dtm(), &mapped.warnings);
        let aa_text = aa.encode();
        // The checked mapping is kept with the message: durable before the AA, and
        // what the applier writes.
        let queued = match (self.seal(&aa_text, ACK_AAD), self.seal(&mapped.bundle.to_string(), MAPPED_AAD)) {
            (Some(ack), Some(kept)) => {
                Some(Queued { ack, mapped: kept, summary: mapped.summary, warnings: warnings_text(&mapped.warnings) })
            }
            _ => None,
        };
        let Some(row) = queued.and_then(|q| self.new_message(m, text, key, peer, received_at, Some(q))) else {
            return self.internal(m, charset, None, "the message could not be encrypted for the log").await;
        };
        // A full queue: wait for the applier (AA is not sent before the row is durable
        // anyway; senders now go at the apply rate).
        while journal.backlog.load(Ordering::Relaxed) >= APPLY_BACKLOG_LIMIT {
            let room = journal.room.notified();
            journal.queued.notify_one();
            let _ = tokio::time::timeout(std::time::Duration::from_millis(100), room).await;
        }
        let logged = self.fhir.operations().journal_message(row).await;
        match logged {
            Ok(Logged::New(_)) => {
                journal.journaled.fetch_add(1, Ordering::Relaxed);
                journal.backlog.fetch_add(1, Ordering::Relaxed);
                journal.queued.notify_one();
                (encode_text(&aa_text, charset), Outcome::Accepted)
            }
            // A resend of a message answered before: its ACK, nothing queued.
            Ok(Logged::Duplicate { ack, .. }) => match self.fhir.protector().cipher().decrypt(&ack, ACK_AAD) {
                Ok(original) => (encode_text(&original, charset), Outcome::Duplicate),
                Err(_) => self.internal(m, charset, None, "the original ACK could not be decrypted").await,
            },
            Err(_) => self.internal(m, charset, None, "the message could not be logged").await,
        }
    }

    /// Waits until every message queued for this listener's campus is applied.
    async fn wait_applied(&self, journal: &Journal) {
        journal.waiting.fetch_add(1, Ordering::SeqCst);
        journal.queued.notify_one();
        loop {
            let drained = journal.drained.notified();
            match self.fhir.operations().queued_count(&self.campus).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let _ = tokio::time::timeout(std::time::Duration::from_millis(100), drained).await;
                }
            }
        }
        journal.waiting.fetch_sub(1, Ordering::SeqCst);
    }

    /// Applies the queued messages of this listener's campus (whichever listener
    /// received them, before a restart too), oldest first, until the task is dropped
    /// (a no-op for a listener that does not journal). Messages about
    /// different patients are applied together (their writes share commits); one
    /// patient's in arrival order.
    pub async fn run_applier(self) {
        let Some(journal) = self.journal.clone() else { return };
        let mut pace = Pace::new(journal.journaled.load(Ordering::Relaxed));
        loop {
            let woken = journal.queued.notified();
            let rows = match self.fhir.operations().queued_messages(&self.campus, 256).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the message queue failed");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            if rows.is_empty() {
                journal.backlog.store(0, Ordering::Relaxed);
                journal.room.notify_waiters();
                journal.drained.notify_waiters();
                let _ = tokio::time::timeout(std::time::Duration::from_secs(1), woken).await;
                continue;
            }
            let backlog = if rows.len() < 256 {
                rows.len() as i64
            } else {
                self.fhir.operations().queued_count(&self.campus).await.unwrap_or_default()
            };
            journal.backlog.store(backlog, Ordering::Relaxed);
            if backlog < APPLY_BACKLOG_LIMIT {
                journal.room.notify_waiters();
            }
            tracing::debug!(backlog, "applying queued messages");
            let mut running = tokio::task::JoinSet::new();
            let mut keys: Vec<String> = Vec::new();
            let mut group_started = std::time::Instant::now();
            for row in rows {
                // Decrypted and parsed once: for the patient's place in the order, and
                // to apply (when it was queued without its mapping).
                let opened = self.open_row(&row.message);
                let key = opened.as_ref().map(Self::patient_of).unwrap_or_default();
                if keys.contains(&key) || running.len() >= APPLY_CONCURRENCY {
                    while running.join_next().await.is_some() {}
                    self.give_way(&journal, &mut pace, keys.len(), group_started.elapsed(), backlog).await;
                    keys.clear();
                    group_started = std::time::Instant::now();
                }
                keys.push(key);
                let me = self.clone();
                running.spawn(async move { me.apply_queued(row, opened).await });
            }
            while running.join_next().await.is_some() {}
            self.give_way(&journal, &mut pace, keys.len(), group_started.elapsed(), backlog).await;
        }
    }

    /// After a group: the pause [`Pace`] asks for, unless someone waits for the queue
    /// or it is full.
    async fn give_way(
        &self,
        journal: &Journal,
        pace: &mut Pace,
        applied: usize,
        took: std::time::Duration,
        backlog: i64,
    ) {
        let pause = pace.after_group(journal.journaled.load(Ordering::Relaxed), applied, took);
        tracing::debug!(applied, took_ms = took.as_millis() as u64, ?pause, arrivals = ?pace.arrivals, applies = ?pace.applies, backlog, "applier pace");
        if let Some(pause) = pause
            && journal.waiting.load(Ordering::SeqCst) == 0
            && backlog < APPLY_BACKLOG_LIMIT
        {
            let started = std::time::Instant::now();
            tokio::time::sleep(pause).await;
            pace.after_pause(journal.journaled.load(Ordering::Relaxed), started.elapsed());
        }
    }

    /// A queued message as logged: decrypted and parsed, or why it cannot be.
    fn open_row(&self, row: &lianyi_store::messages::LoggedMessage) -> Result<Message, String> {
        let text = self
            .fhir
            .protector()
            .cipher()
            .decrypt(&row.payload, PAYLOAD_AAD)
            .map_err(|e| format!("the logged message could not be decrypted: {e}"))?;
        Message::parse(&text).map_err(|e| e.to_string())
    }

    /// The patient a message is about (PID-3's first identifier).
    fn patient_of(m: &Message) -> String {
        m.segment("PID").map(|p| p.component(3, 1)).unwrap_or_default()
    }

    /// Writes one queued message's data with its log outcome. A message that cannot
    /// be applied (AA was sent) is logged `failed` with the reason, for replay.
    async fn apply_queued(&self, queued: QueuedMessage, opened: Result<Message, String>) {
        let row = &queued.message;
        let failed = |why: String| {
            let f = Finish {
                id: row.id,
                status: "failed".into(),
                finished_at: self.fhir.now_ms(),
                ack: row.ack.clone(),
                error: Some(format!("acknowledged, then not applied: {why}")),
                summary: None,
                warnings: None,
            };
            async move {
                let _ = self.fhir.operations().finish_queued(f).await;
            }
        };
        // The mapping kept with the message; mapped again only for a message queued
        // before mappings were kept.
        let (mut bundle, summary, cleared) = match &queued.mapped {
            Some(sealed) => {
                let kept = self.fhir.protector().cipher().decrypt(sealed, MAPPED_AAD);
                match kept.ok().and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok()) {
                    Some(bundle) => (bundle, row.summary.clone(), Vec::new()),
                    None => return failed("the kept mapping could not be decrypted".into()).await,
                }
            }
            None => {
                let m = match opened {
                    Ok(m) => m,
                    Err(why) => return failed(why).await,
                };
                match map_message(&m, &self.channel_for(&m.sender().0)) {
                    Ok(x) => (x.bundle, Some(x.summary), x.cleared),
                    Err(_) => return failed("the message no longer maps".into()).await,
                }
            }
        };
        let caller = Caller::task(SystemTask::Hl7Inbound(row.sender.clone()));
        if self.keep_stored_state(&caller, &mut bundle, &cleared).await.is_err() {
            return failed("the stored patient could not be read".into()).await;
        }
        let side = [SideWrite::FinishQueued(Finish {
            id: row.id,
            status: "accepted".into(),
            finished_at: self.fhir.now_ms(),
            ack: row.ack.clone(),
            error: None,
            summary,
            warnings: None,
        })];
        match self.fhir.process_bundle_with(&caller, bundle, true, &side).await {
            Ok(_) => tracing::debug!(message = row.id, "queued message applied"),
            // Another applier (a second server on the same database) was first.
            Err(ServiceError::Store(lianyi_store::StoreError::NotQueued(_))) => {}
            Err(e) => {
                tracing::warn!(message = row.id, error = %e, "a queued message could not be applied");
                failed(e.to_string()).await;
            }
        }
    }

    /// An ADT message updates the Patient it names with what it sends: elements it
    /// does not send (an empty field means "not sent" in HL7) are carried over from the
    /// stored record, except those it deletes with the HL7 null (`cleared`);
    /// identifiers of other systems (another campus's MRN, a resident ID number it
    /// does not repeat) are kept. So is the merge state the message knows nothing of:
    /// the stored `link`s and a merged record's `active: false`, so a later ADT neither
    /// undoes a merge nor revives a merged-away record.
    async fn keep_stored_state(
        &self,
        caller: &Caller,
        bundle: &mut serde_json::Value,
        cleared: &[&str],
    ) -> Result<(), ()> {
        use serde_json::Value;
        let Some(entry) = bundle.pointer_mut("/entry/0") else { return Ok(()) };
        let url = entry.pointer("/request/url").and_then(Value::as_str).unwrap_or_default().to_string();
        let is_put = entry.pointer("/request/method").and_then(Value::as_str) == Some("PUT");
        let Some(query) = url.strip_prefix("Patient?").filter(|_| is_put) else { return Ok(()) };
        let params = lianyi_services::fhir::query_pairs(query);
        let Some(stored) = self.stored_patient(caller, &params).await? else { return Ok(()) };
        let Ok(Value::Object(stored)) = serde_json::from_str::<Value>(&stored.body) else { return Err(()) };
        let Some(incoming) = entry.get_mut("resource").and_then(Value::as_object_mut) else { return Ok(()) };
        carry_over(incoming, stored, cleared);
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
        let permit = self.fhir.permit(caller, rtype).await.map_err(|_| ())?;
        let page = self.fhir.search(&permit, &req).await.map_err(|_| ())?;
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
                message: "MRG-1 names no patient known here: nothing was merged, the surviving patient was updated"
                    .into(),
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
        let f =
            Finish { id, status: status.into(), finished_at: self.fhir.now_ms(), ack, error, summary, warnings: None };
        let _ = self.fhir.operations().finish_message(&f).await;
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
                .operations()
                .log_message(NewMessage {
                    direction: "in".into(),
                    channel: self.channel.clone(),
                    peer,
                    sender: String::new(),
                    control_id: String::new(),
                    message_type: String::new(),
                    received_at,
                    payload,
                    digest: None,
                    queued: None,
                    campus: Some(self.campus.clone()),
                })
                .await
        {
            self.finish(id, "rejected", self.seal(&a.encode(), ACK_AAD), Some(e.to_string()), None).await;
        }
        (a.encode().into_bytes(), Outcome::Rejected)
    }
}

/// What a resend is recognised by: the sender's control id (or the message's key when
/// MSH-10 is empty) and the digest of its content. Worked out once per message.
struct MessageKey {
    control_id: String,
    digest: String,
}

impl MessageKey {
    fn of(m: &Message, text: &str) -> MessageKey {
        MessageKey { control_id: message_key(m), digest: content_digest(text) }
    }
}

/// The warnings about the header the listener reads (MSH-10) before the mapping's own.
fn with_header_warnings(mut mapped: crate::Mapped, m: &Message) -> crate::Mapped {
    let declared = m.msh().map(|h| h.value(18, 1, 1, 1)).unwrap_or_default();
    if !declared.trim().is_empty() && lianyi_hl7::Charset::from_msh18(&declared).is_none() {
        mapped.warnings.insert(
            0,
            Hl7Error {
                code: ErrorCode::DataType,
                location: Some(Location::field("MSH", 1, 18)),
                message: "MSH-18 names a character set this hub does not know: the message was read as UTF-8 \
                          (GB18030 where it is not UTF-8)"
                    .into(),
            },
        );
    }
    if m.control_id().is_empty() {
        mapped.warnings.insert(
            0,
            Hl7Error {
                code: ErrorCode::RequiredFieldMissing,
                location: Some(Location::field("MSH", 1, 10)),
                message: "MSH-10 (message control id) is empty: a resend is recognised by its content".into(),
            },
        );
    }
    mapped
}

/// The warnings of an accepted message as one text for the log (`None`: none).
fn warnings_text(warnings: &[Hl7Error]) -> Option<String> {
    (!warnings.is_empty()).then(|| warnings.iter().map(|w| w.message.as_str()).collect::<Vec<_>>().join("; "))
}

/// A platform rule the mapped data breaks (the FHIR check every door shares), as an
/// ERR naming the HL7 field where the resource element comes from.
fn rule_error(outcome: &lianyi_fhir::OperationOutcome) -> Hl7Error {
    let issue = outcome.issues.first();
    let text = issue.map(|i| i.diagnostics.clone()).unwrap_or_default();
    let location = issue
        .and_then(|i| i.expression.as_deref())
        .and_then(pid_field_of)
        .map(|(field, _)| Location::field("PID", 1, field));
    Hl7Error { code: ErrorCode::DataType, location, message: text }
}

/// Fills `incoming` (a Patient an ADT message sends) with what it does not say from
/// `stored`: every element it lacks, unless `cleared`; and the stored identifiers of
/// systems it does not send.
fn carry_over(
    incoming: &mut serde_json::Map<String, serde_json::Value>,
    stored: serde_json::Map<String, serde_json::Value>,
    cleared: &[&str],
) {
    use serde_json::Value;
    for (key, value) in stored {
        if matches!(key.as_str(), "id" | "meta" | "text") || cleared.contains(&key.as_str()) {
            continue;
        }
        match incoming.get_mut(&key) {
            None => {
                incoming.insert(key, value);
            }
            Some(Value::Array(sent)) if key == "identifier" => {
                let systems: Vec<Value> = sent.iter().map(|i| i["system"].clone()).collect();
                if let Value::Array(kept) = value {
                    sent.extend(kept.into_iter().filter(|i| !systems.contains(&i["system"])));
                }
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Groups of `applied` messages taking 10 ms each, while messages arrive at `rate`
    /// per second; the applier's share of the time over the last fifty groups.
    fn share_at(pace: &mut Pace, journaled: &mut f64, rate: f64, applied: usize) -> f64 {
        let took = Duration::from_millis(10);
        let (mut busy, mut all) = (Duration::ZERO, Duration::ZERO);
        for round in 0..300 {
            *journaled += rate * took.as_secs_f64();
            let pause = pace.after_group(*journaled as u64, applied, took).unwrap_or_default();
            *journaled += rate * pause.as_secs_f64();
            pace.after_pause(*journaled as u64, pause);
            if round >= 250 {
                busy += took;
                all += took + pause;
            }
        }
        busy.as_secs_f64() / all.as_secs_f64()
    }

    #[test]
    fn a_resend_stamped_anew_is_the_same_message_and_a_reused_control_id_is_not() {
        let m = "MSH|^~\\&|LIS|EAST|LIANYI|GROUP|20261122093000||ORU^R01|C1|P|2.5\rPID|1||E1\r";
        let restamped = m.replace("20261122093000", "20261122093500");
        assert_eq!(content_digest(m), content_digest(&restamped));
        assert_ne!(content_digest(m), content_digest(&m.replace("PID|1||E1", "PID|1||E2")));
        assert_ne!(content_digest(m), content_digest(&m.replace("|C1|", "|C2|")));
    }

    #[test]
    fn the_applier_keeps_up_with_a_feed_gives_way_to_a_burst_and_drains_when_it_ends() {
        let mut journaled = 0.0;
        let mut pace = Pace::new(0);
        // It applies 600 messages/s while it runs (6 per 10 ms group).
        // A steady feed of 200/s needs a third of the time: it takes that and a quarter more.
        let share = share_at(&mut pace, &mut journaled, 200.0, 6);
        assert!((0.36..0.48).contains(&share), "{share}");
        // A feed it keeps up with only by running almost all the time: it does.
        let share = share_at(&mut pace, &mut journaled, 550.0, 6);
        assert!((0.93..0.96).contains(&share), "{share}");
        // A burst faster than it can apply: the senders get nine tenths.
        let share = share_at(&mut pace, &mut journaled, 6_000.0, 6);
        assert!((MIN_SHARE - 0.01..MIN_SHARE + 0.01).contains(&share), "{share}");
        // Back to the steady feed: it takes its share again.
        let share = share_at(&mut pace, &mut journaled, 200.0, 6);
        assert!((0.36..0.48).contains(&share), "{share}");
        // A trickle: never less than a tenth.
        let share = share_at(&mut pace, &mut journaled, 5.0, 6);
        assert!(share >= MIN_SHARE - 0.01, "{share}");
        // Nothing arrives: no pause at all.
        assert_eq!(pace.after_group(journaled as u64, 6, Duration::from_millis(10)), None);
    }
}
