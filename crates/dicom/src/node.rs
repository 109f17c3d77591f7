//! The network node: accepts associations from the application entities the
//! [`Provider`] admits, reassembles each DIMSE message from its P-DATA fragments and
//! answers C-ECHO and C-STORE. dicom-ul negotiates the association; the services
//! above it are ours (the crate has no SCP framework).
//!
//! A C-STORE is answered only after the provider has made the instance durable: the
//! response carries the provider's status, and a failure says why in its Error
//! Comment. Refusals happen before anything is kept: a SOP class outside
//! [`crate::sop::STORAGE`] (0x0122), a data set that cannot be read whole (0xC000), a
//! data set whose UIDs differ from its command (0xA900), an instance larger than the
//! configured limit (0xA700).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dicom_ul::Pdu;
use dicom_ul::ServerAssociationOptions;
use dicom_ul::association::server::{AccessControl, Negotiation};
use dicom_ul::association::{Association, AsyncAssociation, AsyncServerAssociation};
use dicom_ul::pdu::{
    AbortRQServiceProviderReason, AbortRQSource, AssociationRJServiceUserReason, PDataValue, PDataValueType,
    PresentationContextResultReason, RequestorRoles, UserIdentity,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use serde_json::{Map, Value};

use crate::command::{Command, Response, SubOperations, field};
use crate::instance::{self, Instance};
use crate::query::{self, Query};
use crate::sop;

/// What the node is told at start.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Our AE title (callers must call it).
    pub ae_title: String,
    /// The largest PDU we accept (the peer fragments to it).
    pub max_pdu: u32,
    /// The largest instance accepted (0xA700 beyond it).
    pub max_instance_bytes: usize,
    /// An association idle this long is aborted.
    pub idle: Duration,
    /// DICOM over TLS (PS3.15 Annex B): every association starts with this TLS
    /// handshake; `None`: plain TCP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            ae_title: "LIANYI".into(),
            max_pdu: 131_072,
            max_instance_bytes: 1 << 30,
            idle: Duration::from_secs(120),
            tls: None,
        }
    }
}

/// Why an association was refused (logged by the provider, told to the peer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The calling AE title is not in the AE table (or not from that address).
    UnknownCaller,
    /// The called AE title is not ours.
    WrongCalled,
}

/// The application entity on the other end of an admitted association, as the
/// provider described it.
#[derive(Clone, Debug)]
pub struct Peer<T> {
    pub calling_ae: String,
    pub address: SocketAddr,
    /// The provider's own description of the peer (its campus, its settings).
    pub known: T,
}

/// A C-STORE's instance, read and checked: the data set bytes exactly as received.
#[derive(Debug)]
pub struct Received {
    pub instance: Instance,
    pub data_set: Vec<u8>,
}

/// An instance a retrieve sends: its Part 10 file as kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub sop_class: String,
    pub sop_instance: String,
    pub transfer_syntax: String,
    pub path: std::path::PathBuf,
}

/// A DIMSE status with its reason (Error Comment) when it is not success.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub code: u16,
    pub comment: Option<String>,
}

impl Status {
    pub const SUCCESS: Status = Status { code: 0x0000, comment: None };

    pub fn failed(code: u16, comment: impl Into<String>) -> Status {
        Status { code, comment: Some(comment.into()) }
    }
}

/// The services behind the node.
pub trait Provider: Send + Sync + 'static {
    /// The provider's description of an admitted peer.
    type Known: Clone + Send + Sync + 'static;

    /// May `calling_ae` at `ip` open an association that calls `called_ae`? Called while
    /// negotiating, so it answers from memory. A refusal is logged by the provider.
    fn admit(&self, calling_ae: &str, called_ae: &str, ip: IpAddr) -> Result<Self::Known, Refused>;

    /// The character set assumed for the peer's data sets that name none.
    fn default_charset(&self, known: &Self::Known) -> Option<String>;

    /// Keeps an instance; answers once it is durable.
    fn store(&self, peer: &Peer<Self::Known>, received: Received) -> impl Future<Output = Status> + Send;

    /// Answers a C-FIND: the DICOM JSON of each match (the node answers the keys asked).
    fn find(
        &self,
        peer: &Peer<Self::Known>,
        query: Query,
    ) -> impl Future<Output = Result<Vec<Map<String, Value>>, Status>> + Send;

    /// The instances a C-MOVE or C-GET asks for, as the peer may see them.
    fn retrieve(
        &self,
        peer: &Peer<Self::Known>,
        query: Query,
    ) -> impl Future<Output = Result<Vec<Outgoing>, Status>> + Send;

    /// Where a C-MOVE destination AE is reached (`None`: not a known destination).
    fn destination(&self, peer: &Peer<Self::Known>, ae_title: &str) -> Option<SocketAddr>;

    /// The association ended (released, aborted or broken).
    fn ended(&self, peer: &Peer<Self::Known>) -> impl Future<Output = ()> + Send;
}

/// Accepts the SCP role a C-GET requestor proposes for the storage SOP classes (it
/// receives the instances on the same association).
struct Roles;

impl Negotiation for Roles {
    fn negotiate_roles(&self, sop_class_uid: &str, scu_role: bool, scp_role: bool) -> Option<RequestorRoles> {
        sop::storage_name(sop_class_uid.trim_end_matches('\0')).map(|_| RequestorRoles { scu: scu_role, scp: scp_role })
    }
}

struct Door<P: Provider> {
    provider: Arc<P>,
    ip: IpAddr,
    admitted: Arc<Mutex<Option<P::Known>>>,
}

impl<P: Provider> AccessControl for Door<P> {
    fn check_access(
        &self,
        this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        let _ = this_ae_title;
        match self.provider.admit(calling_ae_title.trim(), called_ae_title.trim(), self.ip) {
            Ok(known) => {
                if let Ok(mut slot) = self.admitted.lock() {
                    *slot = Some(known);
                }
                Ok(())
            }
            Err(Refused::UnknownCaller) => Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized),
            Err(Refused::WrongCalled) => Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized),
        }
    }
}

/// Accepts associations on `listener` until the task is dropped.
pub async fn serve<P: Provider>(listener: TcpListener, config: NodeConfig, provider: Arc<P>) {
    let config = Arc::new(config);
    loop {
        let (socket, address) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "DICOM accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (config, provider) = (config.clone(), provider.clone());
        tokio::spawn(async move {
            if let Err(e) = associate(socket, address, &config, provider).await {
                tracing::info!(peer = %address, error = %e, "DICOM association ended with an error");
            }
        });
    }
}

async fn associate<P: Provider>(
    socket: TcpStream,
    address: SocketAddr,
    config: &NodeConfig,
    provider: Arc<P>,
) -> Result<(), crate::DicomError> {
    let _ = socket.set_nodelay(true);
    let admitted = Arc::new(Mutex::new(None));
    let door = Door { provider: provider.clone(), ip: address.ip(), admitted: admitted.clone() };
    let mut options = ServerAssociationOptions::new()
        .ae_access_control(door)
        .with_negotiation(Roles)
        .ae_title(config.ae_title.clone())
        .max_pdu_length(config.max_pdu)
        .read_timeout(config.idle)
        .write_timeout(Duration::from_secs(60))
        .with_abstract_syntax(sop::VERIFICATION);
    for (uid, _) in sop::STORAGE {
        options = options.with_abstract_syntax(*uid);
    }
    for (uid, _) in query::FIND {
        options = options.with_abstract_syntax(*uid);
    }
    for (uid, _, _) in query::RETRIEVE {
        options = options.with_abstract_syntax(*uid);
    }
    for ts in sop::TRANSFER_SYNTAXES {
        options = options.with_transfer_syntax(*ts);
    }
    let refused = |e: dicom_ul::association::Error| crate::DicomError::Association(e.to_string());
    match &config.tls {
        Some(tls) => {
            let assoc = options.tls_config(tls.clone()).establish_tls_async(socket).await.map_err(refused)?;
            converse(assoc, address, config, provider, &admitted).await
        }
        None => {
            let assoc = options.establish_async(socket).await.map_err(refused)?;
            converse(assoc, address, config, provider, &admitted).await
        }
    }
}

/// The association's messages until it ends, over TCP or TLS.
async fn converse<P: Provider, S: AsyncRead + AsyncWrite + Unpin + Send>(
    mut assoc: AsyncServerAssociation<S>,
    address: SocketAddr,
    config: &NodeConfig,
    provider: Arc<P>,
    admitted: &Mutex<Option<P::Known>>,
) -> Result<(), crate::DicomError> {
    let known = admitted.lock().ok().and_then(|mut k| k.take());
    let Some(known) = known else {
        let _ = assoc.abort().await;
        return Err(crate::DicomError::Association("admitted without a peer description".into()));
    };
    let peer = Peer { calling_ae: assoc.peer_ae_title().trim().to_string(), address, known };
    let result = Session { config, provider: &*provider, peer: &peer, pending: Vec::new() }.run(&mut assoc).await;
    provider.ended(&peer).await;
    result
}

/// A DIMSE message being reassembled on one presentation context.
struct Pending {
    context: u8,
    command: Vec<u8>,
    parsed: Option<Command>,
    data: Vec<u8>,
    too_large: bool,
}

struct Session<'a, P: Provider> {
    config: &'a NodeConfig,
    provider: &'a P,
    peer: &'a Peer<P::Known>,
    pending: Vec<Pending>,
}

impl<P: Provider> Session<'_, P> {
    async fn run<S: AsyncRead + AsyncWrite + Unpin + Send>(
        mut self,
        assoc: &mut AsyncServerAssociation<S>,
    ) -> Result<(), crate::DicomError> {
        loop {
            let pdu = assoc.receive().await.map_err(|e| crate::DicomError::Association(e.to_string()))?;
            match pdu {
                Pdu::PData { data } => {
                    for pdv in data {
                        if let Some((pending, command)) = self.take(pdv)? {
                            self.answer(assoc, pending, command).await?;
                        }
                    }
                }
                Pdu::ReleaseRQ => {
                    let _ = assoc.send(&Pdu::ReleaseRP).await;
                    return Ok(());
                }
                Pdu::AbortRQ { .. } => return Ok(()),
                other => {
                    let _ = assoc
                        .send(&Pdu::AbortRQ {
                            source: AbortRQSource::ServiceProvider(AbortRQServiceProviderReason::UnexpectedPdu),
                        })
                        .await;
                    return Err(crate::DicomError::Association(format!("unexpected PDU {:?}", pdu_kind(&other))));
                }
            }
        }
    }

    /// Adds a fragment; returns a message once its command (and data set, if any) is whole.
    fn take(&mut self, pdv: PDataValue) -> Result<Option<(Pending, Command)>, crate::DicomError> {
        let at = match self.pending.iter().position(|p| p.context == pdv.presentation_context_id) {
            Some(i) => i,
            None => {
                self.pending.push(Pending {
                    context: pdv.presentation_context_id,
                    command: Vec::new(),
                    parsed: None,
                    data: Vec::new(),
                    too_large: false,
                });
                self.pending.len() - 1
            }
        };
        let p = &mut self.pending[at];
        match pdv.value_type {
            PDataValueType::Command => {
                if p.command.len() + pdv.data.len() > 65_536 {
                    return Err(crate::DicomError::Malformed("command set over 64 KiB".into()));
                }
                p.command.extend_from_slice(&pdv.data);
                if pdv.is_last {
                    let c = Command::read(&p.command)?;
                    if !c.has_data_set {
                        let p = self.pending.swap_remove(at);
                        return Ok(Some((p, c)));
                    }
                    p.parsed = Some(c);
                }
            }
            PDataValueType::Data => {
                if p.parsed.is_none() {
                    return Err(crate::DicomError::Malformed("data set fragment before its command".into()));
                }
                if p.data.len() + pdv.data.len() > self.config.max_instance_bytes {
                    p.too_large = true;
                    p.data = Vec::new();
                } else if !p.too_large {
                    p.data.extend_from_slice(&pdv.data);
                }
                if pdv.is_last {
                    let mut p = self.pending.swap_remove(at);
                    let c = p.parsed.take().unwrap_or_default();
                    return Ok(Some((p, c)));
                }
            }
        }
        Ok(None)
    }

    async fn answer<S: AsyncRead + AsyncWrite + Unpin + Send>(
        &mut self,
        assoc: &mut AsyncServerAssociation<S>,
        pending: Pending,
        command: Command,
    ) -> Result<(), crate::DicomError> {
        let context = assoc.presentation_contexts().iter().find(|c| c.id == pending.context).cloned();
        let Some(context) = context.filter(|c| c.reason == PresentationContextResultReason::Acceptance) else {
            return Err(crate::DicomError::Malformed(format!(
                "message on presentation context {} which was not accepted",
                pending.context
            )));
        };
        if command.field == field::C_FIND_RQ {
            return self.find(assoc, &context, &command, pending).await;
        }
        if command.field == field::C_MOVE_RQ || command.field == field::C_GET_RQ {
            return self.retrieve(assoc, &context, &command, pending).await;
        }
        let (response_field, status) = match command.field {
            field::C_ECHO_RQ => (field::C_ECHO_RSP, Status::SUCCESS),
            field::C_STORE_RQ => (field::C_STORE_RSP, self.store(&command, &context.transfer_syntax, pending).await),
            other => {
                tracing::info!(peer = %self.peer.address, field = other, "DIMSE command not served");
                (other | 0x8000, Status::failed(0x0211, "unrecognised operation"))
            }
        };
        if status.code != 0 {
            tracing::info!(
                peer = %self.peer.address, ae = %self.peer.calling_ae, status = format!("{:#06x}", status.code),
                reason = status.comment.as_deref().unwrap_or(""), "DIMSE request refused"
            );
        }
        let sop_class = if command.affected_sop_class.is_empty() {
            context.abstract_syntax.as_str()
        } else {
            &command.affected_sop_class
        };
        let bytes = Response {
            field: response_field,
            responding_to: command.message_id,
            sop_class,
            sop_instance: (!command.affected_sop_instance.is_empty()).then_some(command.affected_sop_instance.as_str()),
            status: status.code,
            comment: status.comment,
            ..Default::default()
        }
        .encode();
        assoc
            .send(&Pdu::PData {
                data: vec![PDataValue {
                    presentation_context_id: context.id,
                    value_type: PDataValueType::Command,
                    is_last: true,
                    data: bytes,
                }],
            })
            .await
            .map_err(|e| crate::DicomError::Association(e.to_string()))
    }

    /// A C-FIND: one pending response (0xFF00) with its identifier per match, then the
    /// final one; a query that cannot be read or answered gets one failure that says why.
    async fn find<S: AsyncRead + AsyncWrite + Unpin + Send>(
        &mut self,
        assoc: &mut AsyncServerAssociation<S>,
        context: &dicom_ul::pdu::PresentationContextNegotiated,
        command: &Command,
        pending: Pending,
    ) -> Result<(), crate::DicomError> {
        let respond = |status: u16, comment: Option<String>, has_data_set: bool| {
            Response {
                field: field::C_FIND_RSP,
                responding_to: command.message_id,
                sop_class: &context.abstract_syntax,
                status,
                has_data_set,
                comment,
                ..Default::default()
            }
            .encode()
        };
        let Some(model) = query::model_of(&context.abstract_syntax) else {
            return send_message(
                assoc,
                context.id,
                respond(0x0122, Some("not a query model served here".into()), false),
                None,
            )
            .await;
        };
        let q = match query::read_query(model, &pending.data, &context.transfer_syntax) {
            Ok(q) => q,
            Err(r) => {
                tracing::info!(peer = %self.peer.address, reason = %r.reason, "C-FIND refused");
                return send_message(assoc, context.id, respond(r.status, Some(r.reason), false), None).await;
            }
        };
        let matches = match self.provider.find(self.peer, q.clone()).await {
            Ok(m) => m,
            Err(status) => {
                return send_message(assoc, context.id, respond(status.code, status.comment, false), None).await;
            }
        };
        for m in &matches {
            match query::response(&q, m, &context.transfer_syntax) {
                Ok(identifier) => {
                    send_message(assoc, context.id, respond(0xFF00, None, true), Some(identifier)).await?;
                }
                Err(r) => {
                    return send_message(assoc, context.id, respond(0xC000, Some(r.reason), false), None).await;
                }
            }
        }
        send_message(assoc, context.id, respond(0x0000, None, false), None).await
    }

    /// A C-MOVE (to a known AE, on a new association) or C-GET (back on this one): a
    /// C-STORE sub-operation per instance, a pending response with the counts after
    /// each, then the final one (0xB000 when some failed).
    async fn retrieve<S: AsyncRead + AsyncWrite + Unpin + Send>(
        &mut self,
        assoc: &mut AsyncServerAssociation<S>,
        context: &dicom_ul::pdu::PresentationContextNegotiated,
        command: &Command,
        pending: Pending,
    ) -> Result<(), crate::DicomError> {
        let rsp = if command.field == field::C_MOVE_RQ { field::C_MOVE_RSP } else { field::C_GET_RSP };
        let respond = |status: u16, comment: Option<String>, counts: Option<SubOperations>| {
            Response {
                field: rsp,
                responding_to: command.message_id,
                sop_class: &context.abstract_syntax,
                status,
                comment,
                sub_operations: counts,
                ..Default::default()
            }
            .encode()
        };
        let Some((model, kind)) = query::retrieve_of(&context.abstract_syntax) else {
            return send_message(
                assoc,
                context.id,
                respond(0x0122, Some("not a retrieve model served here".into()), None),
                None,
            )
            .await;
        };
        let q = match query::read_query(model, &pending.data, &context.transfer_syntax) {
            Ok(q) => q,
            Err(r) => return send_message(assoc, context.id, respond(r.status, Some(r.reason), None), None).await,
        };
        let destination = if kind == query::Retrieve::Move {
            match self.provider.destination(self.peer, &command.move_destination) {
                Some(addr) => Some(addr),
                None => {
                    let why =
                        format!("Move Destination {} is not a known AE with an address", command.move_destination);
                    return send_message(assoc, context.id, respond(0xA801, Some(why), None), None).await;
                }
            }
        } else {
            None
        };
        let items = match self.provider.retrieve(self.peer, q).await {
            Ok(items) => items,
            Err(status) => {
                return send_message(assoc, context.id, respond(status.code, status.comment, None), None).await;
            }
        };
        let mut counts =
            SubOperations { remaining: items.len().min(usize::from(u16::MAX)) as u16, ..Default::default() };
        let originator = (self.peer.calling_ae.clone(), command.message_id);
        let mut client = match destination {
            None => None,
            Some(addr) => match self.connect(addr, &command.move_destination, &items).await {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::info!(destination = %command.move_destination, error = %e, "C-MOVE destination unreachable");
                    let why = format!("Move Destination {} could not be reached", command.move_destination);
                    return send_message(assoc, context.id, respond(0xA801, Some(why), None), None).await;
                }
            },
        };
        for (n, item) in items.iter().enumerate() {
            let message_id = (n % usize::from(u16::MAX)) as u16 + 1;
            let status = match client.as_mut() {
                Some(c) => {
                    let pc = accepted_context(c.presentation_contexts(), item);
                    store_to(c, pc, message_id, item, Some((&originator.0, originator.1))).await
                }
                None => {
                    let pc = accepted_context(assoc.presentation_contexts(), item);
                    store_to(assoc, pc, message_id, item, None).await
                }
            };
            counts.remaining = counts.remaining.saturating_sub(1);
            match status {
                Ok(0x0000) => counts.completed += 1,
                Ok(s) if s & 0xF000 == 0xB000 => counts.warning += 1,
                Ok(s) => {
                    tracing::info!(status = format!("{s:#06x}"), "a retrieve sub-operation failed");
                    counts.failed += 1;
                }
                Err(e) => {
                    tracing::info!(error = %e, "a retrieve sub-operation failed");
                    counts.failed += 1;
                    if matches!(e, crate::DicomError::Association(_)) && client.is_none() {
                        return Err(e);
                    }
                }
            }
            if counts.remaining > 0 {
                send_message(assoc, context.id, respond(0xFF00, None, Some(counts)), None).await?;
            }
        }
        if let Some(c) = client {
            let _ = c.release().await;
        }
        let (status, comment) = if counts.failed + counts.warning == 0 {
            (0x0000, None)
        } else {
            (0xB000, Some(format!("{} of {} sub-operations failed", counts.failed, items.len())))
        };
        send_message(assoc, context.id, respond(status, comment, Some(counts)), None).await
    }

    /// An association to a C-MOVE destination proposing what the instances need.
    async fn connect(
        &self,
        addr: SocketAddr,
        called: &str,
        items: &[Outgoing],
    ) -> Result<dicom_ul::association::AsyncClientAssociation<TcpStream>, crate::DicomError> {
        let mut options = dicom_ul::ClientAssociationOptions::new()
            .calling_ae_title(self.config.ae_title.clone())
            .called_ae_title(called.to_string())
            .max_pdu_length(self.config.max_pdu);
        let mut proposed: Vec<(String, String)> = Vec::new();
        for i in items {
            let pair = (i.sop_class.clone(), i.transfer_syntax.clone());
            if !proposed.contains(&pair) && proposed.len() < 120 {
                proposed.push(pair);
            }
        }
        for (class, ts) in &proposed {
            options = options.with_presentation_context(class.clone(), vec![ts.clone()]);
        }
        tokio::time::timeout(Duration::from_secs(20), options.establish_async(addr))
            .await
            .map_err(|_| crate::DicomError::Association("association timed out".into()))?
            .map_err(|e| crate::DicomError::Association(e.to_string()))
    }

    async fn store(&self, command: &Command, ts: &str, pending: Pending) -> Status {
        if sop::storage_name(&command.affected_sop_class).is_none() {
            return Status::failed(0x0122, format!("SOP class {} is not stored here", command.affected_sop_class));
        }
        if pending.too_large {
            return Status::failed(0xA700, format!("instance over the {} byte limit", self.config.max_instance_bytes));
        }
        let data_set = pending.data;
        let ts_owned = ts.to_string();
        let charset = self.provider.default_charset(&self.peer.known);
        let read = tokio::task::spawn_blocking(move || {
            let r = instance::read(&data_set, &ts_owned, charset.as_deref());
            (r, data_set)
        })
        .await;
        let (read, data_set) = match read {
            Ok(r) => r,
            Err(_) => return Status::failed(0xC000, "the data set could not be read"),
        };
        let instance = match read {
            Ok(i) => i,
            Err(r) => return Status::failed(r.status, r.reason),
        };
        if instance.sop_class != command.affected_sop_class || instance.sop_instance != command.affected_sop_instance {
            return Status::failed(0xA900, "data set SOP class or instance UID differs from the command's");
        }
        self.provider.store(self.peer, Received { instance, data_set }).await
    }
}

/// Sends a command and its data set, the data set in fragments the peer accepts.
async fn send_message<S: AsyncRead + AsyncWrite + Unpin + Send, A: AsyncAssociation<S> + Send>(
    assoc: &mut A,
    context: u8,
    command: Vec<u8>,
    data: Option<Vec<u8>>,
) -> Result<(), crate::DicomError> {
    let wire = |e: dicom_ul::association::Error| crate::DicomError::Association(e.to_string());
    AsyncAssociation::send(
        assoc,
        &Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: context,
                value_type: PDataValueType::Command,
                is_last: true,
                data: command,
            }],
        },
    )
    .await
    .map_err(wire)?;
    let Some(data) = data else { return Ok(()) };
    let max = match Association::peer_max_pdu_length(assoc) {
        0 => 65_536,
        n => n as usize,
    };
    let chunk = max.saturating_sub(12).max(1024);
    let mut parts = data.chunks(chunk).peekable();
    while let Some(part) = parts.next() {
        let is_last = parts.peek().is_none();
        AsyncAssociation::send(
            assoc,
            &Pdu::PData {
                data: vec![PDataValue {
                    presentation_context_id: context,
                    value_type: PDataValueType::Data,
                    is_last,
                    data: part.to_vec(),
                }],
            },
        )
        .await
        .map_err(wire)?;
    }
    Ok(())
}

/// The accepted presentation context that carries `item` as kept.
fn accepted_context(contexts: &[dicom_ul::pdu::PresentationContextNegotiated], item: &Outgoing) -> Option<u8> {
    contexts
        .iter()
        .find(|c| {
            c.reason == PresentationContextResultReason::Acceptance
                && c.abstract_syntax.trim_end_matches('\0') == item.sop_class
                && c.transfer_syntax.trim_end_matches('\0') == item.transfer_syntax
        })
        .map(|c| c.id)
}

/// One C-STORE sub-operation: the file's data set as kept, then the peer's status.
async fn store_to<S: AsyncRead + AsyncWrite + Unpin + Send, A: AsyncAssociation<S> + Send>(
    assoc: &mut A,
    context: Option<u8>,
    message_id: u16,
    item: &Outgoing,
    originator: Option<(&str, u16)>,
) -> Result<u16, crate::DicomError> {
    let Some(context) = context else {
        return Ok(0xA702); // no accepted context for its SOP class and transfer syntax
    };
    let file =
        tokio::fs::read(&item.path).await.map_err(|e| crate::DicomError::Malformed(format!("file: {}", e.kind())))?;
    let (_, _, _, start) = instance::split_file(&file).map_err(|r| crate::DicomError::Malformed(r.reason))?;
    let command = crate::command::store_request(message_id, &item.sop_class, &item.sop_instance, originator);
    send_message(assoc, context, command, Some(file[start..].to_vec())).await?;
    let mut buf = Vec::new();
    loop {
        match AsyncAssociation::receive(assoc).await.map_err(|e| crate::DicomError::Association(e.to_string()))? {
            Pdu::PData { data } => {
                for pdv in data {
                    if pdv.value_type == PDataValueType::Command {
                        buf.extend_from_slice(&pdv.data);
                        if pdv.is_last {
                            let c = Command::read(&buf)?;
                            if c.field == field::C_STORE_RSP {
                                return Ok(c.status.unwrap_or(0xC000));
                            }
                            buf.clear();
                        }
                    }
                }
            }
            other => {
                return Err(crate::DicomError::Association(format!("{} during a sub-operation", pdu_kind(&other))));
            }
        }
    }
}

fn pdu_kind(p: &Pdu) -> &'static str {
    match p {
        Pdu::AssociationRQ(_) => "A-ASSOCIATE-RQ",
        Pdu::AssociationAC(_) => "A-ASSOCIATE-AC",
        Pdu::AssociationRJ(_) => "A-ASSOCIATE-RJ",
        Pdu::PData { .. } => "P-DATA-TF",
        Pdu::ReleaseRQ => "A-RELEASE-RQ",
        Pdu::ReleaseRP => "A-RELEASE-RP",
        Pdu::AbortRQ { .. } => "A-ABORT",
        Pdu::Unknown { .. } => "unknown",
    }
}
