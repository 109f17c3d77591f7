//! Messages between staff (站内消息), across campuses: to one person (their
//! Practitioner) or to a department (everyone holding a role in it). A person's
//! mailbox is what was sent to them, to their departments, and by them; what is newer
//! than the last message they saw is unread. The body may name a patient, so it is
//! sealed with the field cipher and never logged or audited (the audit names who
//! wrote to whom). Open pages learn of a new message at once: [`Messages::subscribe`]
//! wakes when one is sent through this server (another server's are found on the next
//! look, a few seconds later).

use std::sync::Arc;

use lianyi_clinical::names::Names;
use lianyi_clinical::scheduling::Scheduling;
use lianyi_security::Caller;
use lianyi_services::{FhirService, ServiceError};
use lianyi_store::StoreError;
use lianyi_store::staff_messages::{Mailbox, StaffMessage};
use tokio::sync::watch;

use crate::staff::StaffService;

pub use lianyi_clinical::registry::FieldError;

/// The sealed body's associated data.
const AAD: &str = "manage.staff-message";
/// The longest message, in characters.
pub const MAX_CHARS: usize = 2_000;
/// Messages shown in a mailbox.
pub const SHOWN: i64 = 100;

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("{}", .0.iter().map(|e| format!("{}: {}", e.field, e.detail)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the message could not be sealed or opened: {0}")]
    Cipher(String),
    #[error("the caller's departments could not be read: {0}")]
    Directory(String),
    #[error("the audit record could not be written: {0}")]
    Audit(String),
}

fn invalid(field: &'static str, code: &'static str, detail: impl Into<String>) -> MessageError {
    MessageError::Invalid(vec![FieldError { field, code, detail: detail.into() }])
}

/// What a person writes: to a person (a Practitioner id) or a department (an
/// Organization id), not both.
#[derive(Clone, Debug, Default)]
pub struct MessageForm {
    pub to_practitioner: String,
    pub to_department: String,
    pub body: String,
}

/// Who a message went to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipient {
    Person(String),
    Department(String),
}

/// A message as its reader sees it.
#[derive(Clone, Debug)]
pub struct MessageView {
    pub id: i64,
    pub sender_name: String,
    /// The reader sent it.
    pub mine: bool,
    pub to: Recipient,
    /// The recipient's names (empty when it cannot be read).
    pub to_names: Names,
    pub body: String,
    pub sent_at: i64,
    /// Newer than the last message the reader saw, and not theirs.
    pub unread: bool,
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Messages {
    fhir: FhirService,
    scheduling: Scheduling,
    staff: StaffService,
    /// The newest message sent through this server.
    latest: Arc<watch::Sender<i64>>,
}

impl Messages {
    pub fn new(fhir: FhirService) -> Messages {
        Messages {
            scheduling: Scheduling::new(fhir.clone()),
            staff: StaffService::new(fhir.clone()),
            fhir,
            latest: Arc::new(watch::channel(0).0),
        }
    }

    /// Signed-in staff with an account (not patients, not API clients).
    pub fn may_use(caller: &Caller) -> bool {
        caller.is_authenticated()
            && caller.access().patient().is_none()
            && lianyi_clinical::orders::username(caller).is_some()
    }

    fn allowed(caller: &Caller) -> Result<&str, MessageError> {
        match lianyi_clinical::orders::username(caller) {
            Some(user) if Self::may_use(caller) => Ok(user),
            _ => Err(MessageError::Forbidden("messages are between staff with an account")),
        }
    }

    /// Wakes when a message is sent through this server.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.latest.subscribe()
    }

    async fn mailbox(&self, caller: &Caller) -> Result<Mailbox, MessageError> {
        let directory = |e: lianyi_clinical::scheduling::ScheduleError| MessageError::Directory(e.to_string());
        Ok(Mailbox {
            sender: caller.actor().to_string(),
            practitioners: self.scheduling.own_practitioners(caller).await.map_err(directory)?,
            departments: self.scheduling.own_departments(caller).await.map_err(directory)?,
        })
    }

    /// A directory resource's names, if `caller` may read it.
    async fn names(&self, caller: &Caller, rtype: &str, id: &str) -> Result<Option<Names>, MessageError> {
        Ok(crate::common::names_of(&self.fhir, caller, rtype, id).await?)
    }

    /// Whom the caller may write to (see [`StaffService::directory`]).
    #[allow(clippy::type_complexity)]
    pub async fn directory(
        &self,
        caller: &Caller,
    ) -> Result<(Vec<(String, Names, String)>, Vec<(String, Names)>), MessageError> {
        Self::allowed(caller)?;
        self.staff.directory(caller).await.map_err(|e| MessageError::Directory(e.to_string()))
    }

    /// Sends a message; returns its id.
    pub async fn send(&self, caller: &Caller, form: &MessageForm) -> Result<i64, MessageError> {
        let user = Self::allowed(caller)?;
        let (person, department) = (form.to_practitioner.trim(), form.to_department.trim());
        let body = form.body.trim();
        let mut errors = Vec::new();
        let to = match (person.is_empty(), department.is_empty()) {
            (false, true) => Some(Recipient::Person(person.to_string())),
            (true, false) => Some(Recipient::Department(department.to_string())),
            (true, true) => {
                errors.push(FieldError { field: "to", code: "required", detail: "a person or a department".into() });
                None
            }
            (false, false) => {
                errors.push(FieldError {
                    field: "to",
                    code: "one",
                    detail: "a person or a department, not both".into(),
                });
                None
            }
        };
        if body.is_empty() {
            errors.push(FieldError { field: "body", code: "required", detail: "the message".into() });
        } else if body.chars().count() > MAX_CHARS {
            errors.push(FieldError {
                field: "body",
                code: "length",
                detail: format!("at most {MAX_CHARS} characters"),
            });
        }
        let Some(to) = to.filter(|_| errors.is_empty()) else { return Err(MessageError::Invalid(errors)) };
        let (rtype, id) = match &to {
            Recipient::Person(p) => ("Practitioner", p.as_str()),
            Recipient::Department(d) => ("Organization", d.as_str()),
        };
        if self.names(caller, rtype, id).await?.is_none() {
            return Err(invalid("to", "unknown", format!("no {rtype} {id}")));
        }
        let mine =
            self.scheduling.own_practitioners(caller).await.map_err(|e| MessageError::Directory(e.to_string()))?;
        let mut sender_name = user.to_string();
        if let Some(p) = mine.first()
            && let Some(n) = self.names(caller, "Practitioner", p).await?
        {
            sender_name = if n.zh.is_empty() { n.en } else { n.zh };
        }
        let sealed =
            self.fhir.protector().cipher().encrypt(body, AAD).map_err(|e| MessageError::Cipher(e.to_string()))?;
        let (to_practitioner, to_department) = match &to {
            Recipient::Person(p) => (Some(p.clone()), None),
            Recipient::Department(d) => (None, Some(d.clone())),
        };
        let m = StaffMessage {
            id: 0,
            sender: caller.actor().to_string(),
            sender_name,
            to_practitioner,
            to_department,
            body: sealed,
            sent_at: self.fhir.now_ms(),
        };
        let id_sent = self.fhir.operations().staff_messages().send(&m).await?;
        crate::common::audit(&self.fhir, caller, "message-send", format!("message {id_sent} to {rtype}/{id}"))
            .await
            .map_err(MessageError::Audit)?;
        self.latest.send_replace(id_sent);
        Ok(id_sent)
    }

    async fn views(
        &self,
        caller: &Caller,
        list: Vec<StaffMessage>,
        seen: i64,
    ) -> Result<Vec<MessageView>, MessageError> {
        let cipher = self.fhir.protector().cipher();
        let me = caller.actor();
        let mut names: std::collections::HashMap<(bool, String), Names> = std::collections::HashMap::new();
        let mut out = Vec::with_capacity(list.len());
        for m in list {
            let to = match (m.to_practitioner, m.to_department) {
                (Some(p), _) => Recipient::Person(p),
                (None, Some(d)) => Recipient::Department(d),
                (None, None) => continue,
            };
            let key = match &to {
                Recipient::Person(p) => (false, p.clone()),
                Recipient::Department(d) => (true, d.clone()),
            };
            if !names.contains_key(&key) {
                let rtype = if key.0 { "Organization" } else { "Practitioner" };
                let found = self.names(caller, rtype, &key.1).await?.unwrap_or_default();
                names.insert(key.clone(), found);
            }
            let mine = m.sender == me;
            out.push(MessageView {
                id: m.id,
                sender_name: m.sender_name,
                mine,
                to_names: names.get(&key).cloned().unwrap_or_default(),
                to,
                body: cipher.decrypt(&m.body, AAD).map_err(|e| MessageError::Cipher(e.to_string()))?,
                sent_at: m.sent_at,
                unread: !mine && m.id > seen,
            });
        }
        Ok(out)
    }

    /// The caller's mailbox, newest first (at most [`SHOWN`]), and how many are unread.
    pub async fn mailbox_of(&self, caller: &Caller) -> Result<(Vec<MessageView>, usize), MessageError> {
        let user = Self::allowed(caller)?;
        let store = self.fhir.operations().staff_messages();
        let seen = store.seen(user).await?;
        let list = store.list(&self.mailbox(caller).await?, 0, SHOWN).await?;
        let views = self.views(caller, list, seen).await?;
        let unread = views.iter().filter(|v| v.unread).count();
        Ok((views, unread))
    }

    /// How many messages to the caller's `mailbox` (see [`Messages::feed`]) are
    /// unread (at most [`SHOWN`]).
    pub async fn unread(&self, caller: &Caller, mailbox: &Mailbox) -> Result<usize, MessageError> {
        let user = Self::allowed(caller)?;
        let seen = self.fhir.operations().staff_messages().seen(user).await?;
        self.unread_after(caller, mailbox, seen).await
    }

    async fn unread_after(&self, caller: &Caller, mailbox: &Mailbox, seen: i64) -> Result<usize, MessageError> {
        let list = self.fhir.operations().staff_messages().list(mailbox, seen, SHOWN).await?;
        Ok(list.iter().filter(|m| m.sender != caller.actor()).count())
    }

    /// The caller's mailbox for a live feed: whom the caller is (their Practitioners
    /// and departments), looked up once for the feed's life.
    pub async fn feed(&self, caller: &Caller) -> Result<Mailbox, MessageError> {
        Self::allowed(caller)?;
        self.mailbox(caller).await
    }

    /// What came to the caller's `mailbox` (see [`Messages::feed`]) after message
    /// `after` (not what they sent), oldest first, and how many are unread in all.
    pub async fn since(
        &self,
        caller: &Caller,
        mailbox: &Mailbox,
        after: i64,
    ) -> Result<(Vec<MessageView>, usize), MessageError> {
        let user = Self::allowed(caller)?;
        let store = self.fhir.operations().staff_messages();
        let seen = store.seen(user).await?;
        let unread = self.unread_after(caller, mailbox, seen).await?;
        let mut list: Vec<StaffMessage> =
            store.list(mailbox, after, SHOWN).await?.into_iter().filter(|m| m.sender != caller.actor()).collect();
        list.reverse();
        Ok((self.views(caller, list, seen).await?, unread))
    }

    /// The newest message in the caller's mailbox (0: none).
    pub async fn newest(&self, caller: &Caller, mailbox: &Mailbox) -> Result<i64, MessageError> {
        Self::allowed(caller)?;
        let list = self.fhir.operations().staff_messages().list(mailbox, 0, 1).await?;
        Ok(list.first().map_or(0, |m| m.id))
    }

    /// Marks the caller's mailbox read up to message `up_to`.
    pub async fn mark_seen(&self, caller: &Caller, up_to: i64) -> Result<(), MessageError> {
        let user = Self::allowed(caller)?;
        Ok(self.fhir.operations().staff_messages().mark_seen(user, up_to).await?)
    }
}
