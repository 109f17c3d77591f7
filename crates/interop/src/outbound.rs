//! Outbound channels: committed changes (outbox events) delivered to other systems as
//! generic webhooks, FHIR R4 Subscription rest-hooks, or HL7 v2 over MLLP.
//!
//! - [`Outbound`] is the service: channel management, the message log, replay and
//!   retention (permission-checked and audited), and the fan-out that turns a
//!   channel's new outbox events into queued deliveries.
//! - [`Dispatcher`] runs in the server: it fans out after every commit and runs one
//!   worker per channel that sends the queue, at least once, with an idempotency key,
//!   in order per patient, retrying with exponential backoff until the channel's
//!   attempt limit moves a delivery to the dead letters.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use lianyi_fhir::ResourceType;
use lianyi_fhir::search::parse_search;
use lianyi_security::roles::Capability;
use lianyi_security::{Caller, CampusId, SystemTask};
use lianyi_services::FhirService;
use lianyi_services::fhir::{SHARED_TYPES, ServiceError};
use lianyi_store::audit::AuditEntry;
use lianyi_store::messages::{LoggedMessage, MessageFilter};
use lianyi_store::outbox::{Attempt, ChannelKind, ChannelRow, Delivery, NewDelivery, OutboxEvent};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::fhir_to_v2::{Header, RENDERED_TYPES, render};
use crate::inbound::{ACK_AAD, PAYLOAD_AAD};

const SECRET_AAD: &str = "channels.secret";
/// Outbox events every channel has passed are kept this long (a day), then deleted.
const EVENT_RETENTION_MS: i64 = 86_400_000;
/// Outbox events read per fan-out round.
const FAN_OUT_BATCH: usize = 500;
/// Deliveries a worker looks at per round.
const WORK_BATCH: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("{0}")]
    Forbidden(String),
    /// Bad input: the field and the rule.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] lianyi_store::StoreError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Audit(#[from] lianyi_security::AuditError),
    #[error("encryption failed: {0}")]
    Crypto(String),
}

fn invalid(field: &str, message: impl Into<String>) -> OutboundError {
    OutboundError::Invalid { field: field.to_string(), message: message.into() }
}

pub type Result<T> = std::result::Result<T, OutboundError>;

/// A new channel as an operator describes it.
#[derive(Clone, Debug)]
pub struct ChannelSpec {
    /// Short name used as the id (`lab-adt`): lower-case letters, digits and dashes.
    pub id: String,
    pub name: String,
    /// `webhook` or `mllp`.
    pub kind: String,
    /// `http(s)://host:port/path` for webhooks, `host:port` for MLLP.
    pub endpoint: String,
    /// Resource types (`Patient,Observation`; empty for every type on a webhook) or one
    /// FHIR search (`Observation?code=http://loinc.org|2823-3`).
    pub criteria: String,
    pub campus: Option<String>,
    /// Extra HTTP headers, `Name: value` per line.
    pub headers: Option<String>,
    pub max_attempts: i64,
    pub backoff_ms: i64,
    pub max_backoff_ms: i64,
}

impl ChannelSpec {
    pub const DEFAULT_MAX_ATTEMPTS: i64 = 10;
    pub const DEFAULT_BACKOFF_MS: i64 = 1_000;
    pub const DEFAULT_MAX_BACKOFF_MS: i64 = 300_000;
}

/// What a channel takes from the outbox.
#[derive(Clone, Debug, PartialEq)]
pub enum Criteria {
    /// These types (every type when empty).
    Types(Vec<String>),
    /// Resources of one type matching a FHIR search, evaluated on the resource as it is
    /// when the event is processed.
    Search(ResourceType, Vec<(String, String)>),
}

impl Criteria {
    pub fn parse(raw: &str) -> std::result::Result<Criteria, String> {
        let raw = raw.trim();
        if let Some((t, query)) = raw.split_once('?') {
            let rtype = ResourceType::parse(t.trim())
                .ok_or_else(|| format!("'{t}' is not a FHIR R4 resource type (rule: Type?search)"))?;
            let params: Vec<(String, String)> =
                lianyi_services::fhir::query_pairs(query).into_iter().filter(|(k, _)| !k.is_empty()).collect();
            if let Some((k, _)) = params.iter().find(|(k, _)| k.starts_with('_') && k != "_id" && k != "_tag") {
                return Err(format!("'{k}' is not allowed in criteria (rule: search parameters only)"));
            }
            parse_search(rtype, &params).map_err(|e| e.diagnostics)?;
            return Ok(Criteria::Search(rtype, params));
        }
        let mut types = Vec::new();
        for t in raw.split(',').map(str::trim).filter(|t| !t.is_empty() && *t != "*") {
            let rtype = ResourceType::parse(t).ok_or_else(|| format!("'{t}' is not a FHIR R4 resource type"))?;
            types.push(rtype.as_str().to_string());
        }
        Ok(Criteria::Types(types))
    }

    fn types(&self) -> Vec<String> {
        match self {
            Criteria::Types(t) => t.clone(),
            Criteria::Search(t, _) => vec![t.as_str().to_string()],
        }
    }

    fn takes_type(&self, t: &str) -> bool {
        match self {
            Criteria::Types(list) => list.is_empty() || list.iter().any(|x| x == t),
            Criteria::Search(rt, _) => rt.as_str() == t,
        }
    }
}

fn valid_channel_id(id: &str) -> bool {
    (1..=40).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        // `sub-<id>` names the channel of Subscription <id>.
        && !id.starts_with("sub-")
}

fn http_endpoint_ok(endpoint: &str) -> std::result::Result<(), String> {
    let Some(rest) = endpoint.strip_prefix("https://").or_else(|| endpoint.strip_prefix("http://")) else {
        return Err(format!("'{endpoint}' is not an http:// or https:// URL"));
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("'{endpoint}' has no host"));
    }
    Ok(())
}

fn mllp_endpoint_ok(endpoint: &str) -> std::result::Result<(), String> {
    match endpoint.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => Ok(()),
        _ => Err(format!("'{endpoint}' is not host:port")),
    }
}

/// Texts queued for one websocket connection.
pub type SocketSender = tokio::sync::mpsc::UnboundedSender<String>;

/// The websocket connections bound to each Subscription id, by connection number.
type Sockets = HashMap<String, Vec<(u64, SocketSender)>>;

/// Delivery attempts of one channel since the server started (for the error rate).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
    pub attempts: u64,
    pub failures: u64,
}

/// One channel with its queue and health, for the status page and the API.
#[derive(Clone, Debug)]
pub struct ChannelStatus {
    pub channel: ChannelRow,
    pub queue: lianyi_store::outbox::QueueStats,
    pub health: Health,
}

impl ChannelStatus {
    /// Failed attempts per attempt since start (0 with no attempts).
    pub fn error_rate(&self) -> f64 {
        if self.health.attempts == 0 { 0.0 } else { self.health.failures as f64 / self.health.attempts as f64 }
    }
}

/// The outbound service. Cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    fhir: FhirService,
    /// MSH-3/MSH-4 of outbound HL7 messages.
    sending_app: String,
    sending_facility: String,
    /// Finished log rows older than this are deleted (hourly, by the dispatcher).
    retention_days: i64,
    health: Arc<std::sync::Mutex<HashMap<String, Health>>>,
    /// Websocket connections bound to a Subscription (by its id).
    sockets: Arc<std::sync::Mutex<Sockets>>,
    next_socket: Arc<std::sync::atomic::AtomicU64>,
    /// The inbound listeners of this server, for replaying what they received.
    inbound: Arc<std::sync::Mutex<Vec<crate::Inbound>>>,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound").finish_non_exhaustive()
    }
}

impl Outbound {
    pub const DEFAULT_RETENTION_DAYS: i64 = 90;

    pub fn new(fhir: FhirService, sending_facility: &str) -> Outbound {
        Outbound {
            fhir,
            sending_app: "LIANYI".into(),
            sending_facility: sending_facility.to_string(),
            retention_days: Self::DEFAULT_RETENTION_DAYS,
            health: Arc::default(),
            sockets: Arc::default(),
            next_socket: Arc::default(),
            inbound: Arc::default(),
        }
    }

    /// Makes an inbound listener's messages replayable through this service.
    pub fn register_inbound(&self, inbound: crate::Inbound) {
        if let Ok(mut list) = self.inbound.lock() {
            list.push(inbound);
        }
    }

    /// A new websocket connection's id and the queue of texts to send on it.
    pub fn open_socket(
        &self,
    ) -> (u64, tokio::sync::mpsc::UnboundedSender<String>, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (self.next_socket.fetch_add(1, std::sync::atomic::Ordering::Relaxed), tx, rx)
    }

    /// `bind <id>` on a websocket: the caller must be able to read the Subscription
    /// (checked and audited by the FHIR service), and it must be an active websocket
    /// subscription. Returns the text to answer (`bound <id>` or `error <id> <why>`).
    pub async fn bind_socket(
        &self,
        caller: &Caller,
        socket: u64,
        sender: &tokio::sync::mpsc::UnboundedSender<String>,
        id: &str,
    ) -> String {
        let Some(rtype) = ResourceType::parse("Subscription") else { return format!("error {id} unsupported") };
        let found = match self.fhir.reader(caller, rtype).await {
            Ok(reader) => reader.read(id).await,
            Err(e) => Err(e),
        };
        let sub = match found {
            Ok(r) => r,
            Err(ServiceError::Forbidden(_)) => return format!("error {id} forbidden"),
            Err(_) => return format!("error {id} Subscription/{id} is not known"),
        };
        let body: Value = serde_json::from_str(&sub.body).unwrap_or_default();
        if body.pointer("/channel/type").and_then(Value::as_str) != Some("websocket") {
            return format!("error {id} Subscription/{id} is not a websocket subscription");
        }
        if !matches!(body.get("status").and_then(Value::as_str), Some("active" | "requested")) {
            return format!("error {id} Subscription/{id} is not active");
        }
        if let Ok(mut map) = self.sockets.lock() {
            let list = map.entry(id.to_string()).or_default();
            list.retain(|(n, s)| *n != socket && !s.is_closed());
            list.push((socket, sender.clone()));
        }
        // Notifications queued while no client was bound go now.
        self.fhir.operations().changes().notify_one();
        format!("bound {id}")
    }

    /// Forgets a closed websocket connection.
    pub fn close_socket(&self, socket: u64) {
        if let Ok(mut map) = self.sockets.lock() {
            for list in map.values_mut() {
                list.retain(|(n, _)| *n != socket);
            }
            map.retain(|_, l| !l.is_empty());
        }
    }

    /// Sends `text` to every connection bound to Subscription `id`; how many got it.
    fn ping_sockets(&self, id: &str, text: &str) -> usize {
        let Ok(mut map) = self.sockets.lock() else { return 0 };
        let Some(list) = map.get_mut(id) else { return 0 };
        list.retain(|(_, s)| s.send(text.to_string()).is_ok());
        list.len()
    }

    /// Keeps finished log rows for `days` (at least 1).
    pub fn with_retention_days(mut self, days: i64) -> Outbound {
        self.retention_days = days.max(1);
        self
    }

    fn note_attempt(&self, channel: &str, ok: bool) {
        if let Ok(mut h) = self.health.lock() {
            let e = h.entry(channel.to_string()).or_default();
            e.attempts += 1;
            if !ok {
                e.failures += 1;
            }
        }
    }

    /// Every channel with its queue depth, dead letters, last success and error rate.
    pub async fn status(&self, caller: &Caller) -> Result<Vec<ChannelStatus>> {
        self.check(caller, "channel-list").await?;
        let stats = self.fhir.operations().queue_stats().await?;
        let health = self.health.lock().map(|h| h.clone()).unwrap_or_default();
        Ok(self
            .fhir
            .operations()
            .channels()
            .await?
            .into_iter()
            .map(|c| ChannelStatus {
                queue: stats.iter().find(|s| s.channel == c.id).cloned().unwrap_or_else(|| {
                    lianyi_store::outbox::QueueStats { channel: c.id.clone(), ..Default::default() }
                }),
                health: health.get(&c.id).cloned().unwrap_or_default(),
                channel: c,
            })
            .collect())
    }

    pub fn fhir(&self) -> &FhirService {
        &self.fhir
    }

    fn permit(caller: &Caller) -> Result<()> {
        if caller.can(Capability::ManageIntegration) {
            Ok(())
        } else {
            Err(OutboundError::Forbidden(
                "managing integration channels and messages needs the IT engineer or administrator role".into(),
            ))
        }
    }

    async fn audit(&self, caller: &Caller, action: &str, outcome: &str, detail: String) -> Result<()> {
        let mut e = caller.entry(self.fhir.now_ms(), action, outcome);
        e.detail = Some(detail);
        self.fhir.audit_log().record(vec![e]).await?;
        Ok(())
    }

    /// Checks permission, auditing a refusal.
    async fn check(&self, caller: &Caller, action: &str) -> Result<()> {
        if let Err(e) = Self::permit(caller) {
            self.audit(caller, action, "forbidden", String::new()).await?;
            return Err(e);
        }
        Ok(())
    }

    /// Adds a webhook or HL7 v2 (MLLP) channel. Returns the channel and, for a
    /// webhook, its signing secret (shown once; stored encrypted).
    pub async fn add_channel(&self, caller: &Caller, spec: ChannelSpec) -> Result<(ChannelRow, Option<String>)> {
        self.check(caller, "channel-add").await?;
        if !valid_channel_id(&spec.id) {
            return Err(invalid(
                "id",
                format!("'{}' must be 1-40 lower-case letters, digits or dashes, not starting with sub-", spec.id),
            ));
        }
        let criteria = Criteria::parse(&spec.criteria).map_err(|m| invalid("criteria", m))?;
        let kind = match ChannelKind::parse(&spec.kind) {
            Some(k @ (ChannelKind::Webhook | ChannelKind::Mllp)) => k,
            _ => {
                return Err(invalid(
                    "kind",
                    format!(
                        "'{}' is not a channel kind (rule: webhook or mllp; FHIR rest-hooks are Subscription resources)",
                        spec.kind
                    ),
                ));
            }
        };
        match kind {
            ChannelKind::Webhook => http_endpoint_ok(&spec.endpoint).map_err(|m| invalid("endpoint", m))?,
            ChannelKind::Mllp => {
                mllp_endpoint_ok(&spec.endpoint).map_err(|m| invalid("endpoint", m))?;
                let types = criteria.types();
                if types.is_empty() {
                    return Err(invalid(
                        "criteria",
                        format!("an HL7 v2 channel must name its types (one or more of {})", RENDERED_TYPES.join(", ")),
                    ));
                }
                if let Some(t) = types.iter().find(|t| !RENDERED_TYPES.contains(&t.as_str())) {
                    return Err(invalid(
                        "criteria",
                        format!("{t} has no HL7 v2 rendering (rule: one or more of {})", RENDERED_TYPES.join(", ")),
                    ));
                }
            }
            ChannelKind::RestHook | ChannelKind::Websocket => {}
        }
        if !(1..=1000).contains(&spec.max_attempts) {
            return Err(invalid("max_attempts", "must be from 1 to 1000"));
        }
        if !(10..=3_600_000).contains(&spec.backoff_ms)
            || spec.max_backoff_ms < spec.backoff_ms
            || spec.max_backoff_ms > 86_400_000
        {
            return Err(invalid(
                "backoff_ms",
                "must be from 10 ms to 1 hour, and max_backoff_ms from backoff_ms to 1 day",
            ));
        }
        let secret = if kind == ChannelKind::Webhook {
            Some(lianyi_security::secrets::random_hex(32).map_err(|e| OutboundError::Crypto(e.to_string()))?)
        } else {
            None
        };
        let sealed = match &secret {
            Some(s) => Some(
                self.fhir
                    .protector()
                    .cipher()
                    .encrypt(s, SECRET_AAD)
                    .map_err(|e| OutboundError::Crypto(e.to_string()))?,
            ),
            None => None,
        };
        let row = ChannelRow {
            id: spec.id.clone(),
            name: if spec.name.is_empty() { spec.id.clone() } else { spec.name },
            kind,
            endpoint: spec.endpoint,
            criteria: spec.criteria.trim().to_string(),
            campus: spec.campus,
            payload: None,
            headers: spec.headers,
            secret: sealed,
            max_attempts: spec.max_attempts,
            backoff_ms: spec.backoff_ms,
            max_backoff_ms: spec.max_backoff_ms,
            enabled: true,
            cursor: 0,
            created_at: self.fhir.now_ms(),
            subscription: None,
        };
        let row = match self.fhir.operations().create_channel(&row).await {
            Ok(r) => r,
            Err(lianyi_store::StoreError::AlreadyExists { .. }) => {
                return Err(invalid("id", format!("a channel named '{}' already exists", spec.id)));
            }
            Err(e) => return Err(e.into()),
        };
        self.audit(caller, "channel-add", "success", format!("{} {} {}", row.id, row.kind, row.endpoint)).await?;
        Ok((row, secret))
    }

    pub async fn channels(&self, caller: &Caller) -> Result<Vec<ChannelRow>> {
        self.check(caller, "channel-list").await?;
        Ok(self.fhir.operations().channels().await?)
    }

    /// Pauses or resumes a channel; while paused its events wait in the outbox.
    pub async fn set_enabled(&self, caller: &Caller, id: &str, enabled: bool) -> Result<()> {
        self.check(caller, "channel-enable").await?;
        if !self.fhir.operations().set_channel_enabled(id, enabled).await? {
            return Err(OutboundError::NotFound(format!("channel '{id}'")));
        }
        self.audit(caller, "channel-enable", "success", format!("{id} enabled={enabled}")).await?;
        Ok(())
    }

    /// Searches the message log (payloads stay encrypted; see [`Outbound::message`]).
    pub async fn messages(&self, caller: &Caller, filter: &MessageFilter) -> Result<Vec<LoggedMessage>> {
        self.check(caller, "message-search").await?;
        let found = self.fhir.operations().find_messages(filter).await?;
        self.audit(caller, "message-search", "success", format!("{} messages", found.len())).await?;
        Ok(found)
    }

    /// One logged message with its payload and ACK (or response) in clear.
    pub async fn message(&self, caller: &Caller, id: i64) -> Result<(LoggedMessage, String, Option<String>)> {
        self.check(caller, "message-read").await?;
        let Some(m) = self.fhir.operations().message(id).await? else {
            return Err(OutboundError::NotFound(format!("message {id}")));
        };
        let cipher = self.fhir.protector().cipher();
        let payload = cipher.decrypt(&m.payload, PAYLOAD_AAD).map_err(|e| OutboundError::Crypto(e.to_string()))?;
        let ack = match &m.ack {
            Some(a) => Some(cipher.decrypt(a, ACK_AAD).map_err(|e| OutboundError::Crypto(e.to_string()))?),
            None => None,
        };
        self.audit(caller, "message-read", "success", format!("message {id} ({} {})", m.direction, m.message_type))
            .await?;
        Ok((m, payload, ack))
    }

    /// Sends outbound messages again: dead letters, or delivered ones (with the same
    /// idempotency key, so a receiver that already applied one ignores it).
    pub async fn replay(&self, caller: &Caller, ids: &[i64]) -> Result<u64> {
        self.check(caller, "message-replay").await?;
        // Inbound messages go back through the listener that received them.
        let mut outbound_ids = Vec::with_capacity(ids.len());
        let mut inbound_done = 0u64;
        for &id in ids {
            match self.fhir.operations().message(id).await? {
                Some(m) if m.direction == "in" => {
                    let listener =
                        self.inbound.lock().ok().and_then(|l| l.iter().find(|i| i.channel() == m.channel).cloned());
                    let Some(listener) = listener else {
                        return Err(invalid(
                            "id",
                            format!("message {id} came in on {}, which is not running in this server", m.channel),
                        ));
                    };
                    listener.replay(caller, id).await?;
                    inbound_done += 1;
                }
                Some(_) => outbound_ids.push(id),
                None => return Err(OutboundError::NotFound(format!("message {id}"))),
            }
        }
        Ok(self.requeue(caller, &outbound_ids).await? + inbound_done)
    }

    /// Replays every dead letter of a channel, oldest first.
    pub async fn replay_dead(&self, caller: &Caller, channel: &str) -> Result<u64> {
        self.check(caller, "message-replay").await?;
        let ids = self.fhir.operations().dead_letters(channel).await?;
        self.requeue(caller, &ids).await
    }

    /// Queues outbound messages again (the caller is checked); audited.
    async fn requeue(&self, caller: &Caller, ids: &[i64]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let n = self.fhir.operations().requeue(ids, self.fhir.now_ms()).await?;
        self.audit(caller, "message-replay", "success", format!("{n} of {} messages queued again", ids.len())).await?;
        if n > 0 {
            self.fhir.operations().changes().notify_one();
        }
        Ok(n)
    }

    /// Retention: drops finished log rows older than `keep_days` and outbox events
    /// every channel has passed.
    pub async fn prune(&self, caller: &Caller, keep_days: i64) -> Result<(u64, u64)> {
        self.check(caller, "message-prune").await?;
        let before = self.fhir.now_ms() - keep_days.max(0) * 86_400_000;
        let (m, e) = self.fhir.operations().prune_log(before, self.fhir.now_ms() - EVENT_RETENTION_MS).await?;
        self.audit(
            caller,
            "message-prune",
            "success",
            format!("{m} messages and {e} events older than {keep_days} days"),
        )
        .await?;
        Ok((m, e))
    }

    /// The retention policy, run by the dispatcher: audited when it deleted something.
    async fn retention(&self) -> Result<()> {
        let keep = self.retention_days;
        let before = self.fhir.now_ms() - keep * 86_400_000;
        let (m, e) = self.fhir.operations().prune_log(before, self.fhir.now_ms() - EVENT_RETENTION_MS).await?;
        if m + e > 0 {
            let detail = format!("{m} messages and {e} events older than {keep} days");
            self.audit(&Caller::task(SystemTask::MessageRetention), "message-prune", "success", detail).await?;
        }
        Ok(())
    }

    /// Brings the channels of FHIR Subscriptions in line with the Subscription
    /// resources: `requested` ones are checked and set `active` (or `error` with the
    /// reason), `off`/`error`/deleted ones stop.
    pub async fn sync_subscriptions(&self) -> Result<()> {
        let store = self.fhir.operations();
        let system = Caller::task(SystemTask::OutboundDelivery);
        let Some(sub_type) = ResourceType::parse("Subscription") else { return Ok(()) };
        let mut live: HashSet<String> = HashSet::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.fhir.subscriptions_after(after.as_deref(), 200).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            for r in &page {
                let Ok(mut sub) = serde_json::from_str::<Value>(&r.body) else { continue };
                let status = sub.get("status").and_then(Value::as_str).unwrap_or("").to_string();
                let channel_id = format!("sub-{}", r.id);
                if status != "requested" && status != "active" {
                    continue;
                }
                let problem = subscription_problem(&sub);
                if let Some(reason) = problem {
                    sub["status"] = json!("error");
                    sub["error"] = json!(reason);
                    let _ = self
                        .fhir
                        .update(&self.fhir.permit(&system, sub_type).await?, &r.id, sub, Some(r.version))
                        .await;
                    continue;
                }
                let ch = ChannelRow {
                    id: channel_id.clone(),
                    name: format!("Subscription/{}", r.id),
                    kind: sub
                        .pointer("/channel/type")
                        .and_then(Value::as_str)
                        .and_then(ChannelKind::parse)
                        .unwrap_or(ChannelKind::RestHook),
                    endpoint: sub.pointer("/channel/endpoint").and_then(Value::as_str).unwrap_or("").to_string(),
                    criteria: sub.get("criteria").and_then(Value::as_str).unwrap_or("").to_string(),
                    campus: r.campus.clone(),
                    payload: sub.pointer("/channel/payload").and_then(Value::as_str).map(str::to_string),
                    headers: sub
                        .pointer("/channel/header")
                        .and_then(Value::as_array)
                        .map(|h| h.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("\n")),
                    secret: None,
                    max_attempts: ChannelSpec::DEFAULT_MAX_ATTEMPTS,
                    backoff_ms: ChannelSpec::DEFAULT_BACKOFF_MS,
                    max_backoff_ms: ChannelSpec::DEFAULT_MAX_BACKOFF_MS,
                    enabled: true,
                    cursor: 0,
                    created_at: r.last_updated,
                    subscription: Some(r.id.clone()),
                };
                // Where a new (or switched back on) channel starts: after the
                // Subscription's own write, or at the head once that event is pruned.
                let from = match store.channel(&channel_id).await? {
                    Some(existing) if existing.enabled => existing.cursor,
                    _ => match store.outbox_seq_of("Subscription", &r.id).await? {
                        0 => store.outbox_head().await?,
                        seq => seq,
                    },
                };
                store.upsert_subscription_channel(&ch, from).await?;
                live.insert(channel_id);
                if status == "requested" {
                    sub["status"] = json!("active");
                    let _ = self
                        .fhir
                        .update(&self.fhir.permit(&system, sub_type).await?, &r.id, sub, Some(r.version))
                        .await;
                }
            }
        }
        for ch in store.channels().await? {
            if ch.subscription.is_some() && ch.enabled && !live.contains(&ch.id) {
                store.set_channel_enabled(&ch.id, false).await?;
            }
        }
        Ok(())
    }

    /// Turns the channel's new outbox events into queued deliveries (at most one round
    /// of [`FAN_OUT_BATCH`]). Returns how many events were consumed.
    pub async fn fan_out(&self, ch: &ChannelRow) -> Result<usize> {
        let store = self.fhir.operations();
        let events = store.outbox_after(ch.cursor, FAN_OUT_BATCH).await?;
        let Some(last) = events.last() else { return Ok(0) };
        let to = last.seq;
        let criteria = Criteria::parse(&ch.criteria).map_err(|m| invalid("criteria", m))?;
        let wanted: Vec<&OutboxEvent> = events
            .iter()
            .filter(|e| criteria.takes_type(&e.resource_type))
            .filter(|e| match &ch.campus {
                None => true,
                Some(c) => e.campus.as_deref() == Some(c.as_str()) || SHARED_TYPES.contains(&e.resource_type.as_str()),
            })
            // FHIR Subscriptions and HL7 feeds carry creations and updates; webhooks
            // also carry deletions.
            .filter(|e| e.method != "DELETE" || ch.kind == ChannelKind::Webhook)
            .collect();
        let matching = self.matching(ch, &criteria, &wanted).await?;
        let mut deliveries = Vec::new();
        let mut patients: HashMap<String, usize> = HashMap::new();
        let mut patient_cache: HashMap<String, Option<Value>> = HashMap::new();
        for e in wanted {
            if !matching.contains(&(e.resource_type.clone(), e.id.clone())) {
                continue;
            }
            let d = match self.render(ch, e, &mut patient_cache).await {
                Ok(Some(d)) => d,
                Ok(None) => continue,
                Err(err) => {
                    // One unreadable event (e.g. a body that no longer decrypts) must
                    // not stop the channel: it is counted and named in the log by seq.
                    tracing::error!(channel = %ch.id, seq = e.seq, error = %err, "event not deliverable; skipped");
                    metrics::counter!("lianyi_channel_skipped_events_total", "channel" => ch.id.clone()).increment(1);
                    continue;
                }
            };
            if let Some(p) = &e.patient {
                *patients.entry(p.clone()).or_default() += 1;
            }
            deliveries.push(d);
        }
        let n = deliveries.len();
        if store.enqueue(ch, ch.cursor, to, &deliveries, self.fhir.now_ms()).await? && n > 0 {
            // Handing patient data to another system is a disclosure: one audit
            // record per patient per round.
            let system = Caller::task(SystemTask::OutboundDelivery);
            let now = self.fhir.now_ms();
            let mut entries: Vec<AuditEntry> = patients
                .into_iter()
                .map(|(p, k)| {
                    let mut e = system.entry(now, "disclose", "success");
                    e.patient = Some(p);
                    e.detail = Some(format!("{k} changes queued for channel {}", ch.id));
                    e
                })
                .collect();
            if entries.is_empty() {
                let mut e = system.entry(now, "disclose", "success");
                e.detail = Some(format!("{n} changes queued for channel {}", ch.id));
                entries.push(e);
            }
            self.fhir.audit_log().record(entries).await?;
        }
        Ok(events.len())
    }

    /// The (type, id) of `events` the criteria select. A search is run once per round
    /// with the ids, limited to the channel's campus.
    async fn matching(
        &self,
        ch: &ChannelRow,
        criteria: &Criteria,
        events: &[&OutboxEvent],
    ) -> Result<HashSet<(String, String)>> {
        let Criteria::Search(rtype, params) = criteria else {
            return Ok(events.iter().map(|e| (e.resource_type.clone(), e.id.clone())).collect());
        };
        let mut ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut out = HashSet::new();
        for chunk in ids.chunks(100) {
            let mut p = params.clone();
            p.push(("_id".into(), chunk.join(",")));
            p.push(("_count".into(), chunk.len().to_string()));
            p.push(("_total".into(), "none".into()));
            let Ok(req) = parse_search(*rtype, &p) else { continue };
            // Limited to the channel's campus; read as the delivery task (audited).
            let page = self.fhir.search(&self.fhir.permit(&delivery_task(ch), req.resource_type).await?, &req).await?;
            out.extend(page.resources.into_iter().map(|r| (r.resource_type, r.id)));
        }
        Ok(out)
    }

    /// The resource a change made (that version), read as the delivery task of `ch`
    /// (audited under that purpose); `None` when it is gone.
    async fn clear_body(&self, ch: &ChannelRow, rtype: &str, id: &str, version: Option<i64>) -> Result<Option<Value>> {
        let Some(t) = ResourceType::parse(rtype) else { return Ok(None) };
        let task = delivery_task(ch);
        let found = match version {
            Some(v) => self.fhir.reader(&task, t).await?.vread(id, v).await,
            None => self.fhir.reader(&task, t).await?.read(id).await,
        };
        match found {
            Ok(r) if !r.deleted && !r.body.is_empty() => Ok(serde_json::from_str(&r.body).ok()),
            Ok(_) | Err(ServiceError::NotFound { .. } | ServiceError::Gone { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn render(
        &self,
        ch: &ChannelRow,
        e: &OutboxEvent,
        patients: &mut HashMap<String, Option<Value>>,
    ) -> Result<Option<NewDelivery>> {
        let action = match e.method.as_str() {
            "POST" => "create",
            "DELETE" => "delete",
            _ => "update",
        };
        let resource = if e.method == "DELETE" {
            None
        } else {
            self.clear_body(ch, &e.resource_type, &e.id, Some(e.version)).await?
        };
        if e.method != "DELETE" && resource.is_none() {
            return Ok(None);
        }
        let (message_type, control_id, text) = match ch.kind {
            ChannelKind::Mllp => {
                let Some(res) = &resource else { return Ok(None) };
                let patient = match &e.patient {
                    Some(p) if e.resource_type != "Patient" => {
                        if !patients.contains_key(p) {
                            let v = self.clear_body(ch, "Patient", p, None).await?;
                            patients.insert(p.clone(), v);
                        }
                        patients.get(p).cloned().flatten()
                    }
                    _ => None,
                };
                let header = Header {
                    sending_app: self.sending_app.clone(),
                    sending_facility: e.campus.clone().unwrap_or_else(|| self.sending_facility.clone()),
                    receiving_app: ch.name.clone(),
                    receiving_facility: String::new(),
                };
                let control_id = format!("LY{}", e.seq);
                let now = lianyi_fhir::datetime::format_instant(self.fhir.now_ms());
                let now: String = now.chars().filter(char::is_ascii_digit).take(14).collect();
                // An Encounter update is told apart (transfer, discharge) by the version
                // it replaced.
                let previous = if e.resource_type == "Encounter" && e.method != "POST" && e.version > 1 {
                    self.clear_body(ch, &e.resource_type, &e.id, Some(e.version - 1)).await?
                } else {
                    None
                };
                let Some(m) = render(res, &e.method, patient.as_ref(), previous.as_ref(), &header, (&control_id, &now))
                else {
                    return Ok(None);
                };
                (format!("{}^{}", m.message_code(), m.trigger()), control_id, m.encode())
            }
            ChannelKind::Websocket => {
                let control_id = format!("{}-{}", ch.id, e.seq);
                let sub = ch.subscription.clone().unwrap_or_default();
                (format!("{}.{action}", e.resource_type), control_id, format!("ping {sub}"))
            }
            ChannelKind::RestHook => {
                let control_id = format!("{}-{}", ch.id, e.seq);
                let with_body = ch.payload.as_deref().is_some_and(|p| !p.is_empty());
                let text = match (&resource, with_body) {
                    (Some(r), true) => format!("PUT {}/{}\n{}", e.resource_type, e.id, r),
                    _ => "POST\n".to_string(),
                };
                (format!("{}.{action}", e.resource_type), control_id, text)
            }
            ChannelKind::Webhook => {
                let control_id = format!("{}-{}", ch.id, e.seq);
                let mut event = json!({
                    "id": control_id,
                    "seq": e.seq,
                    "type": action,
                    "resourceType": e.resource_type,
                    "resourceId": e.id,
                    "versionId": e.version.to_string(),
                    "occurredAt": lianyi_fhir::datetime::format_instant(e.at),
                });
                if let Some(p) = &e.patient {
                    event["patient"] = json!(format!("Patient/{p}"));
                }
                if let Some(c) = &e.campus {
                    event["campus"] = json!(c);
                }
                if let Some(r) = resource {
                    event["resource"] = r;
                }
                (format!("{}.{action}", e.resource_type), control_id, format!("POST\n{event}"))
            }
        };
        let payload = self
            .fhir
            .protector()
            .cipher()
            .encrypt(&text, PAYLOAD_AAD)
            .map_err(|e| OutboundError::Crypto(e.to_string()))?;
        Ok(Some(NewDelivery {
            seq: e.seq,
            order_key: e.patient.clone().unwrap_or_else(|| format!("{}/{}", e.resource_type, e.id)),
            control_id,
            message_type,
            payload,
            summary: Some(format!("{}/{}/_history/{}", e.resource_type, e.id, e.version)),
        }))
    }
}

/// Why a requested Subscription cannot be served, if it cannot.
fn subscription_problem(sub: &Value) -> Option<String> {
    let kind = sub.pointer("/channel/type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "rest-hook" => {
            let endpoint = sub.pointer("/channel/endpoint").and_then(Value::as_str).unwrap_or("");
            if let Err(m) = http_endpoint_ok(endpoint) {
                return Some(format!("channel.endpoint: {m}"));
            }
        }
        "websocket" => {}
        _ => {
            return Some(format!(
                "channel.type '{kind}' is not supported by this server (rule: rest-hook or websocket)"
            ));
        }
    }
    let criteria = sub.get("criteria").and_then(Value::as_str).unwrap_or("");
    match Criteria::parse(criteria) {
        Ok(Criteria::Search(..)) => {}
        Ok(Criteria::Types(t)) if t.len() == 1 && !criteria.contains(',') => {}
        Ok(_) => return Some(format!("criteria '{criteria}' must be one resource type with an optional search")),
        Err(m) => return Some(format!("criteria: {m}")),
    }
    if let Some(p) = sub.pointer("/channel/payload").and_then(Value::as_str)
        && !p.is_empty()
        && p != "application/fhir+json"
        && p != "application/json"
    {
        return Some(format!("channel.payload '{p}' is not supported (rule: application/fhir+json or none)"));
    }
    None
}

/// How an attempt went, before it is recorded.
enum Sent {
    Ok(Option<String>),
    /// Worth retrying (the receiver is down, busy, or timed out).
    Retry(String, Option<String>),
    /// The receiver refused the content: retrying the same message will not help.
    Refused(String, Option<String>),
}

/// Runs the outbound side of the server.
pub struct Dispatcher {
    outbound: Outbound,
    http: reqwest::Client,
    /// Names this dispatcher in the channel leases.
    holder: String,
}

/// How long a channel lease lasts unless renewed (the dispatcher renews it every
/// round, at least every second).
const LEASE_MS: i64 = 10_000;

impl Dispatcher {
    pub fn new(outbound: Outbound) -> Dispatcher {
        // HTTPS receivers are verified against the system's trust store (add a
        // hospital CA there, or point SSL_CERT_FILE at a bundle); rustls with the ring
        // provider only.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            // A receiver's redirect is not followed: deliveries go where the channel says.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        // Which server holds a channel's lease: the process and a random tag, unique
        // across restarts and machines.
        let tag = lianyi_security::secrets::random_hex(6).unwrap_or_default();
        Dispatcher { outbound, http, holder: format!("{}-{tag}", std::process::id()) }
    }

    /// Fans out after every commit (and at least every second) and keeps one worker
    /// per enabled channel whose lease this dispatcher holds (servers sharing a
    /// database deliver each channel once). Runs until the task is dropped.
    pub async fn run(self) {
        let store = self.outbound.fhir.operations();
        let changes = store.changes();
        let mut workers: HashMap<String, (Arc<tokio::sync::Notify>, tokio::task::JoinHandle<()>)> = HashMap::new();
        let mut sub_cursor = match store.outbox_head().await {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "outbound dispatcher cannot start");
                return;
            }
        };
        if let Err(e) = self.outbound.sync_subscriptions().await {
            tracing::warn!(error = %e, "subscription sync failed");
        }
        let this = Arc::new(self);
        let mut pruned_at: Option<std::time::Instant> = None;
        loop {
            let woken = changes.notified();
            if pruned_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
                pruned_at = Some(std::time::Instant::now());
                if let Err(e) = this.outbound.retention().await {
                    tracing::warn!(error = %e, "message log retention failed");
                }
            }
            // Subscriptions created, changed or deleted since the last round.
            if let Ok((head, changed)) = store.outbox_scan("Subscription", sub_cursor).await {
                sub_cursor = head;
                if changed && let Err(e) = this.outbound.sync_subscriptions().await {
                    tracing::warn!(error = %e, "subscription sync failed");
                }
            }
            let channels = match store.channels().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "channels could not be read");
                    Vec::new()
                }
            };
            let mut enabled = HashSet::new();
            for mut ch in channels.into_iter().filter(|c| c.enabled) {
                // One server delivers a channel: the one holding its lease.
                let now = this.outbound.fhir.now_ms();
                match store.lease_channel(&ch.id, &this.holder, now, LEASE_MS).await {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::warn!(channel = %ch.id, error = %e, "the channel lease could not be taken");
                        continue;
                    }
                }
                enabled.insert(ch.id.clone());
                loop {
                    match this.outbound.fan_out(&ch).await {
                        Ok(0) => break,
                        Ok(_) => match store.channel(&ch.id).await {
                            Ok(Some(fresh)) => ch = fresh,
                            _ => break,
                        },
                        Err(e) => {
                            tracing::warn!(channel = %ch.id, error = %e, "fan-out failed");
                            break;
                        }
                    }
                }
                let entry = workers.entry(ch.id.clone()).or_insert_with(|| {
                    let wake = Arc::new(tokio::sync::Notify::new());
                    let handle = tokio::spawn(worker(this.clone(), ch.id.clone(), wake.clone()));
                    (wake, handle)
                });
                if entry.1.is_finished() {
                    let wake = Arc::new(tokio::sync::Notify::new());
                    *entry = (wake.clone(), tokio::spawn(worker(this.clone(), ch.id.clone(), wake)));
                }
                entry.0.notify_one();
            }
            workers.retain(|id, (_, handle)| {
                let keep = enabled.contains(id);
                if !keep {
                    handle.abort();
                }
                keep
            });
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    async fn send(&self, ch: &ChannelRow, d: &Delivery, text: &str, conn: &mut Option<TcpStream>) -> Sent {
        if ch.kind == ChannelKind::Mllp {
            return send_mllp(&ch.endpoint, &d.control_id, text, conn).await;
        }
        if ch.kind == ChannelKind::Websocket {
            let sub = ch.subscription.as_deref().unwrap_or_default();
            return match self.outbound.ping_sockets(sub, text) {
                0 => Sent::Retry(format!("no websocket client is bound to Subscription/{sub}"), None),
                n => Sent::Ok(Some(format!("{text} sent to {n} client(s)"))),
            };
        }
        let (line, body) = text.split_once('\n').unwrap_or((text, ""));
        let (method, url) = match line.strip_prefix("PUT ") {
            Some(path) => (reqwest::Method::PUT, format!("{}/{path}", ch.endpoint.trim_end_matches('/'))),
            None => (reqwest::Method::POST, ch.endpoint.clone()),
        };
        let mut req = self.http.request(method, &url).header("Idempotency-Key", &d.control_id);
        if !body.is_empty() {
            let content_type =
                if ch.kind == ChannelKind::RestHook { "application/fhir+json" } else { "application/json" };
            req = req.header("Content-Type", content_type).body(body.to_string());
        }
        if ch.kind == ChannelKind::Webhook {
            req = req.header("X-Lianyi-Event", &d.message_type);
            if let Some(sealed) = &ch.secret {
                // Never unsigned: a secret that does not decrypt fails the attempt.
                let Ok(secret) = self.outbound.fhir.protector().cipher().decrypt(sealed, SECRET_AAD) else {
                    return Sent::Retry("the channel's signing secret cannot be decrypted".into(), None);
                };
                let sig = lianyi_security::secrets::hmac_sha256_hex(secret.as_bytes(), body.as_bytes());
                req = req.header("X-Lianyi-Signature", format!("sha256={sig}"));
            }
        }
        for h in ch.headers.iter().flat_map(|h| h.lines()) {
            if let Some((k, v)) = h.split_once(':') {
                req = req.header(k.trim(), v.trim());
            }
        }
        match req.send().await {
            Ok(mut resp) => {
                let status = resp.status();
                // Only the start of the answer is kept (for the log): at most 4 KiB is read.
                let mut head: Vec<u8> = Vec::new();
                while head.len() < 4096 {
                    match resp.chunk().await {
                        Ok(Some(chunk)) => head.extend_from_slice(&chunk[..chunk.len().min(4096 - head.len())]),
                        _ => break,
                    }
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let summary = format!(
                    "HTTP {}{}{}",
                    status.as_u16(),
                    if text.is_empty() { "" } else { " " },
                    text.chars().take(500).collect::<String>()
                );
                if status.is_success() {
                    Sent::Ok(Some(summary))
                } else if status.is_client_error() && ![408, 409, 425, 429].contains(&status.as_u16()) {
                    Sent::Refused(format!("the receiver refused the message: HTTP {}", status.as_u16()), Some(summary))
                } else {
                    Sent::Retry(format!("the receiver answered HTTP {}", status.as_u16()), Some(summary))
                }
            }
            Err(e) => Sent::Retry(format!("could not deliver to {url}: {}", error_chain(&e)), None),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Sends one HL7 message over a kept-open MLLP connection and reads its ACK.
async fn send_mllp(endpoint: &str, control_id: &str, text: &str, conn: &mut Option<TcpStream>) -> Sent {
    let attempt = async {
        if conn.is_none() {
            let s = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(endpoint))
                .await
                .map_err(|_| "connect timed out".to_string())?
                .map_err(|e| e.to_string())?;
            let _ = s.set_nodelay(true);
            *conn = Some(s);
        }
        let Some(stream) = conn.as_mut() else { return Err("no connection".to_string()) };
        let mut frame = Vec::with_capacity(text.len() + 3);
        frame.push(0x0b);
        frame.extend_from_slice(text.as_bytes());
        frame.extend_from_slice(&[0x1c, 0x0d]);
        stream.write_all(&frame).await.map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let read = async {
            let mut chunk = [0u8; 4096];
            loop {
                let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("the receiver closed the connection before acknowledging".to_string());
                }
                buf.extend_from_slice(&chunk[..n]);
                if buf.windows(2).any(|w| w == [0x1c, 0x0d]) {
                    return Ok(());
                }
                if buf.len() > 1 << 20 {
                    return Err("the acknowledgement is larger than 1 MiB".to_string());
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .map_err(|_| "no acknowledgement within 30 s".to_string())??;
        let start = buf.iter().position(|b| *b == 0x0b).map_or(0, |i| i + 1);
        let end = buf.windows(2).position(|w| w == [0x1c, 0x0d]).unwrap_or(buf.len());
        Ok(String::from_utf8_lossy(&buf[start..end.max(start)]).into_owned())
    };
    match attempt.await {
        Err(e) => {
            *conn = None;
            Sent::Retry(format!("MLLP {endpoint}: {e}"), None)
        }
        Ok(ack_text) => {
            let Ok(ack) = lianyi_hl7::Message::parse(&ack_text) else {
                *conn = None;
                return Sent::Retry("the acknowledgement is not an HL7 message".into(), Some(ack_text));
            };
            let msa = ack.segment("MSA");
            let code = msa.map(|s| s.first(1)).unwrap_or_default();
            let acked = msa.map(|s| s.first(2)).unwrap_or_default();
            if acked != control_id {
                *conn = None;
                return Sent::Retry(
                    format!("the acknowledgement is for '{acked}', not '{control_id}'"),
                    Some(ack_text),
                );
            }
            let why = msa.map(|s| s.first(3)).unwrap_or_default();
            match code.as_str() {
                "AA" | "CA" => Sent::Ok(Some(ack_text)),
                "AE" | "CE" => Sent::Refused(format!("the receiver answered {code}: {why}"), Some(ack_text)),
                _ => Sent::Retry(format!("the receiver answered {code}: {why}"), Some(ack_text)),
            }
        }
    }
}

/// Delivers one channel's queue: oldest first, one patient's deliveries strictly in
/// order (a failing one holds back the later ones of the same patient only).
async fn worker(d: Arc<Dispatcher>, channel: String, wake: Arc<tokio::sync::Notify>) {
    let store = d.outbound.fhir.operations();
    let cipher = d.outbound.fhir.protector().clone();
    let mut conn: Option<TcpStream> = None;
    loop {
        let woken = wake.notified();
        let ch = match store.channel(&channel).await {
            Ok(Some(c)) if c.enabled => c,
            Ok(_) => return,
            Err(_) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let pending = store.pending_deliveries(&channel, WORK_BATCH).await.unwrap_or_default();
        let mut blocked: HashSet<String> = HashSet::new();
        let mut next_due: Option<i64> = None;
        let mut progressed = false;
        for delivery in &pending {
            if blocked.contains(&delivery.order_key) {
                continue;
            }
            let now = d.outbound.fhir.now_ms();
            if delivery.next_at > now {
                blocked.insert(delivery.order_key.clone());
                next_due = Some(next_due.map_or(delivery.next_at, |n| n.min(delivery.next_at)));
                continue;
            }
            let text = match cipher.cipher().decrypt(&delivery.payload, PAYLOAD_AAD) {
                Ok(t) => t,
                Err(e) => {
                    let a = Attempt::Failed {
                        error: format!("the payload cannot be decrypted: {e}"),
                        response: None,
                        next_at: now,
                        dead: true,
                    };
                    let _ = store.record_attempt(delivery.id, now, &a).await;
                    continue;
                }
            };
            let sent = d.send(&ch, delivery, &text, &mut conn).await;
            let now = d.outbound.fhir.now_ms();
            let seal = |r: Option<String>| r.and_then(|t| cipher.cipher().encrypt(&t, ACK_AAD).ok());
            let attempts = delivery.attempts + 1;
            let (attempt, outcome) = match sent {
                Sent::Ok(r) => (Attempt::Delivered { response: seal(r) }, "delivered"),
                Sent::Refused(error, r) => {
                    (Attempt::Failed { error, response: seal(r), next_at: now, dead: true }, "dead")
                }
                Sent::Retry(error, r) => {
                    let dead = attempts >= ch.max_attempts;
                    let shift = (attempts - 1).clamp(0, 30) as u32;
                    let wait = ch.backoff_ms.saturating_mul(1i64 << shift).min(ch.max_backoff_ms);
                    (
                        Attempt::Failed { error, response: seal(r), next_at: now + wait, dead },
                        if dead { "dead" } else { "failed" },
                    )
                }
            };
            if let Attempt::Failed { next_at, dead: false, .. } = &attempt {
                blocked.insert(delivery.order_key.clone());
                next_due = Some(next_due.map_or(*next_at, |n| n.min(*next_at)));
            } else {
                progressed = true;
            }
            if let Err(e) = store.record_attempt(delivery.id, now, &attempt).await {
                tracing::warn!(channel = %channel, error = %e, "delivery outcome could not be recorded");
                blocked.insert(delivery.order_key.clone());
            }
            d.outbound.note_attempt(&channel, outcome == "delivered");
            metrics::counter!("lianyi_channel_attempts_total", "channel" => channel.clone(), "outcome" => outcome)
                .increment(1);
        }
        if progressed && pending.len() == WORK_BATCH {
            continue;
        }
        let wait = match next_due {
            Some(t) => Duration::from_millis((t - d.outbound.fhir.now_ms()).clamp(1, 5_000) as u64),
            None => Duration::from_secs(5),
        };
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
/// The platform delivering a channel's changes: limited to the channel's campus when
/// it has one; what it reads is audited under this purpose.
fn delivery_task(ch: &ChannelRow) -> Caller {
    match &ch.campus {
        Some(c) => Caller::task_at(SystemTask::OutboundDelivery, CampusId::stored(c)),
        None => Caller::task(SystemTask::OutboundDelivery),
    }
}
