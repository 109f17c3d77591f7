//! Opening an account online, without the slip. The person gives their name,
//! resident ID, phone (and mail address), and the patient index looks for their
//! record. Only a certain match — one record with the same resident ID and name,
//! holding the phone (or mail address) the code is to go to — gets a code at once, by
//! SMS or mail to that contact, good for [`SENT_CODE_MINUTES`]; the code then opens the
//! account as a slip's does. Anything less certain (no record, several, a different
//! phone) waits for the desk, which picks the record or declines; the person is told
//! only that the desk will contact them, never whether a record was found. Without a
//! configured channel there is no online sign-up.

use lianyi_clinical::matching::{Person, Reason, normalize_phone};
use lianyi_clinical::registry::{Candidate, Registry, person_of};
use lianyi_security::{Caller, SystemTask};
use lianyi_services::identifiers::ResidentId;
use lianyi_store::portal::Signup;
use serde_json::{Value, json};

use crate::accounts::{Accounts, DAY_MS, desk_campus, may_issue};
use crate::common::{audit, read};
use crate::courier::{Channel, mask_email, mask_phone};
use crate::{FieldError, PortalError, invalid};

/// Minutes a code sent to an online sign-up is good for.
pub const SENT_CODE_MINUTES: i64 = 30;
/// Minutes after a sign-up's code within which no other is sent to the same record
/// (the per-address limit does not stop many addresses flooding one phone).
pub const RESEND_MINUTES: i64 = 5;
const AAD: &str = "portal_signups.details";

/// What a person types to sign up online.
#[derive(Clone, Debug, Default)]
pub struct SignupForm {
    pub name: String,
    pub resident_id: String,
    pub phone: String,
    pub email: String,
    /// `sms` or `email`: how they want their code.
    pub channel: String,
}

/// A code's message: `{code}` in `body` is replaced by the code.
#[derive(Clone, Debug)]
pub struct Letter {
    pub subject: String,
    pub body: String,
}

/// A waiting sign-up as the desk sees it, with the records that may be the person.
#[derive(Clone, Debug)]
pub struct WaitingSignup {
    pub id: String,
    pub made_at: i64,
    pub name: String,
    pub resident_id: String,
    pub phone: String,
    pub email: String,
    pub channel: String,
    pub candidates: Vec<Candidate>,
}

/// The details typed, as sealed.
#[derive(Clone, Debug, Default)]
struct Details {
    name: String,
    resident_id: String,
    phone: String,
    email: String,
    channel: String,
}

impl Details {
    fn person(&self) -> Person {
        let rid = ResidentId::parse(&self.resident_id).ok();
        Person {
            resident_id: Some(self.resident_id.clone()),
            name: self.name.clone(),
            birth_date: rid.as_ref().map(ResidentId::birth_date),
            gender: rid.as_ref().map(|r| r.gender().to_string()),
            phone: Some(self.phone.clone()),
        }
    }

    fn contact(&self, channel: Channel) -> &str {
        match channel {
            Channel::Sms => &self.phone,
            Channel::Email => &self.email,
        }
    }
}

fn mail_of(p: &Value) -> Option<String> {
    p["telecom"].as_array()?.iter().find(|t| t["system"] == "email")?["value"].as_str().map(str::to_string)
}

fn masked(channel: Channel, to: &str) -> String {
    match channel {
        Channel::Sms => mask_phone(to),
        Channel::Email => mask_email(to),
    }
}

fn same_name(a: &str, b: &str) -> bool {
    let squash = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_lowercase();
    squash(a) == squash(b)
}

impl Accounts {
    /// See the module documentation. Every field that breaks a rule is named; past
    /// the form, the answer is the same whatever was found (a code sent, the desk to
    /// check, an account already there), so the page tells no one whether a person is
    /// a patient here. A code that could not be sent leaves the sign-up with the desk.
    /// Every sign-up is audited (`portal-signup`), with the record when one was certain.
    pub async fn sign_up(
        &self,
        form: &SignupForm,
        letter: &Letter,
        client_addr: Option<String>,
    ) -> Result<(), PortalError> {
        let who = Caller::anonymous(client_addr);
        let d = self.check_signup(form)?;
        let channel = Channel::parse(&d.channel).unwrap_or(Channel::Sms);
        let portal = Caller::task(SystemTask::Portal);
        let registry = Registry::new(self.fhir.clone());
        let candidates = registry.candidates(&portal, &d.person()).await?;
        // Certain: the same resident ID (not a high score from the rest), one record.
        let same_id: Vec<&Candidate> =
            candidates.iter().filter(|c| c.score.reasons.contains(&Reason::SameResidentId)).collect();
        if let [c] = same_id.as_slice()
            && same_name(&c.name, &d.name)
            && let Some((_, p)) = read(&self.fhir, &portal, "Patient", &c.id).await?
        {
            let on_record = match channel {
                Channel::Sms => person_of(&p).phone.map(|x| normalize_phone(&x)),
                Channel::Email => mail_of(&p).map(|m| m.trim().to_lowercase()),
            };
            let store = self.fhir.operations().portal();
            let just_sent = store.latest_of(&c.id).await?.is_some_and(|a| {
                a.issued_by == who.actor()
                    && a.used_at.is_none()
                    && a.issued_at > self.fhir.now_ms() - RESEND_MINUTES * 60_000
            });
            if just_sent {
                let detail = format!("a code was sent less than {RESEND_MINUTES} minutes ago; none sent");
                audit(&self.fhir, &who, "portal-signup", "failure", Some(&c.id), detail).await?;
                return Ok(());
            }
            if on_record.as_deref() == Some(d.contact(channel)) {
                let campus = lianyi_clinical::registry::mrns_of(&p)
                    .first()
                    .map(|m| m.campus.as_str().to_string())
                    .unwrap_or_default();
                let valid = SENT_CODE_MINUTES * 60_000;
                let sent = self.send_new_code(&who, &c.id, &campus, valid, channel, d.contact(channel), letter).await;
                let (outcome, detail) = match &sent {
                    Ok(()) => ("success", format!("code sent by {}", channel.code())),
                    Err(PortalError::Invalid(_)) => ("failure", "the record already has an account".to_string()),
                    Err(PortalError::Delivery(_)) => ("failure", format!("{} not sent; to the desk", channel.code())),
                    Err(_) => ("failure", "error".to_string()),
                };
                audit(&self.fhir, &who, "portal-signup", outcome, Some(&c.id), detail).await?;
                match sent {
                    Ok(()) | Err(PortalError::Invalid(_)) => return Ok(()),
                    // Not sent: the desk takes it from here.
                    Err(PortalError::Delivery(e)) => tracing::warn!(error = %e, "a sign-up's code was not sent"),
                    Err(e) => return Err(e),
                }
            }
        }
        let sealed = self.seal(&d)?;
        let id =
            format!("su-{}", lianyi_security::secrets::random_hex(8).map_err(|e| PortalError::Users(e.to_string()))?);
        let s = Signup { id: id.clone(), details: sealed, made_at: self.fhir.now_ms(), ..Default::default() };
        self.fhir.operations().portal().add_signup(&s).await?;
        audit(&self.fhir, &who, "portal-signup", "success", None, format!("{id} waits for the desk")).await?;
        Ok(())
    }

    /// Keeps a new code beside the patient's others and sends it; only once it was
    /// taken are the older ones withdrawn (a printed slip survives a failed send, and a
    /// stranger's sign-up cannot take it away without the code reaching the patient).
    #[allow(clippy::too_many_arguments)]
    async fn send_new_code(
        &self,
        caller: &Caller,
        patient: &str,
        campus: &str,
        valid_ms: i64,
        channel: Channel,
        to: &str,
        letter: &Letter,
    ) -> Result<(), PortalError> {
        let (code, a) = self.new_activation(caller, patient, campus, valid_ms).await?;
        let store = self.fhir.operations().portal();
        store.add_code(&a).await?;
        let body = letter.body.replace("{code}", &code);
        if let Err(e) = self.courier.send(channel, to, &letter.subject, &body).await {
            store.withdraw(&a.code_hash).await?;
            return Err(e.into());
        }
        store.withdraw_others(patient, &a.code_hash).await?;
        Ok(())
    }

    fn check_signup(&self, form: &SignupForm) -> Result<Details, PortalError> {
        let mut errors = Vec::new();
        let mut err = |field: &'static str, code: &'static str, detail: &str| {
            errors.push(FieldError { field, code, detail: detail.to_string() });
        };
        let name = form.name.trim().to_string();
        if name.is_empty() || name.chars().count() > 40 {
            err("name", "required", "your name as on your resident ID card (up to 40 characters)");
        }
        let resident_id = form.resident_id.trim().to_ascii_uppercase();
        if ResidentId::parse(&resident_id).is_err() {
            err("resident_id", "format", "an 18-character resident ID number");
        }
        let phone = normalize_phone(&form.phone);
        if phone.len() < 7 {
            err("phone", "format", "your mobile phone number");
        }
        let email = form.email.trim().to_lowercase();
        if !email.is_empty() && !lianyi_services::identifiers::plausible_email(&email) {
            err("email", "format", "a mail address such as name@example.com");
        }
        match Channel::parse(&form.channel) {
            Some(c) if self.courier.offers(c) => {
                if c == Channel::Email && email.is_empty() {
                    err("email", "required", "the mail address the code is to go to");
                }
            }
            _ => err("channel", "channel", "how the code is to reach you: one of the ways offered"),
        }
        if !errors.is_empty() {
            return Err(PortalError::Invalid(errors));
        }
        Ok(Details { name, resident_id, phone, email, channel: form.channel.clone() })
    }

    fn seal(&self, d: &Details) -> Result<String, PortalError> {
        let text = json!({
            "name": d.name, "resident_id": d.resident_id, "phone": d.phone, "email": d.email, "channel": d.channel,
        })
        .to_string();
        self.fhir.protector().cipher().encrypt(&text, AAD).map_err(|e| PortalError::Cipher(e.to_string()))
    }

    fn unseal(&self, sealed: &str) -> Result<Details, PortalError> {
        let text =
            self.fhir.protector().cipher().decrypt(sealed, AAD).map_err(|e| PortalError::Cipher(e.to_string()))?;
        let v: Value = serde_json::from_str(&text).unwrap_or_default();
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        Ok(Details {
            name: s("name"),
            resident_id: s("resident_id"),
            phone: s("phone"),
            email: s("email"),
            channel: s("channel"),
        })
    }

    /// The sign-ups waiting for the desk, oldest first, each with the records (as
    /// far as the caller may search) that may be the person.
    pub async fn waiting_signups(&self, caller: &Caller) -> Result<Vec<WaitingSignup>, PortalError> {
        if !may_issue(caller) {
            return Err(PortalError::Forbidden("the desk handles sign-ups".into()));
        }
        let registry = Registry::new(self.fhir.clone());
        let mut out = Vec::new();
        for s in self.fhir.operations().portal().waiting_signups(100).await? {
            let d = self.unseal(&s.details)?;
            let mut candidates = registry.candidates(caller, &d.person()).await?;
            candidates.retain(|c| c.score.score >= lianyi_clinical::matching::POSSIBLE);
            out.push(WaitingSignup {
                id: s.id,
                made_at: s.made_at,
                name: d.name,
                resident_id: d.resident_id,
                phone: d.phone,
                email: d.email,
                channel: d.channel,
                candidates,
            });
        }
        Ok(out)
    }

    /// The desk has found the person's record: a code (good for the slip's days) goes
    /// to the contact they gave; returns it masked.
    pub async fn send_signup_code(
        &self,
        caller: &Caller,
        id: &str,
        patient: &str,
        letter: &Letter,
    ) -> Result<String, PortalError> {
        if !may_issue(caller) {
            return Err(PortalError::Forbidden("the desk handles sign-ups".into()));
        }
        let store = self.fhir.operations().portal();
        let s = store.signup(id).await?.filter(|s| s.status == "waiting").ok_or(PortalError::NotFound)?;
        if patient.trim().is_empty() {
            return Err(invalid("patient", "required", "pick the record that is this person"));
        }
        read(&self.fhir, caller, "Patient", patient).await?.ok_or(PortalError::NotFound)?;
        let d = self.unseal(&s.details)?;
        let channel = Channel::parse(&d.channel).filter(|c| self.courier.offers(*c)).ok_or_else(|| {
            invalid("channel", "channel", "the way the person chose is no longer configured; print a slip instead")
        })?;
        let campus = desk_campus(caller);
        // Claimed first: two clerks (or a send and a decline) cannot both act on it.
        if !store.decide_signup(id, "sent", caller.actor(), self.fhir.now_ms(), Some(patient), None).await? {
            return Err(PortalError::NotFound);
        }
        let valid = crate::accounts::CODE_DAYS * DAY_MS;
        if let Err(e) = self.send_new_code(caller, patient, &campus, valid, channel, d.contact(channel), letter).await {
            store.reopen_signup(id).await?;
            return Err(e);
        }
        audit(
            &self.fhir,
            caller,
            "portal-signup-match",
            "success",
            Some(patient),
            format!("{id}: code sent by {}", channel.code()),
        )
        .await?;
        Ok(masked(channel, d.contact(channel)))
    }

    /// The desk sends a patient's code to the phone (or mail address) their record
    /// holds, instead of printing it; returns the contact, masked.
    pub async fn send_code(
        &self,
        caller: &Caller,
        patient: &str,
        channel: Channel,
        letter: &Letter,
    ) -> Result<String, PortalError> {
        if !may_issue(caller) {
            return Err(PortalError::Forbidden("the desk sends portal codes".into()));
        }
        if !self.courier.offers(channel) {
            return Err(invalid("channel", "channel", "this way of sending is not configured"));
        }
        let (_, p) = read(&self.fhir, caller, "Patient", patient).await?.ok_or(PortalError::NotFound)?;
        let to = match channel {
            Channel::Sms => person_of(&p).phone.map(|x| normalize_phone(&x)).filter(|x| x.len() >= 7),
            Channel::Email => mail_of(&p),
        }
        .ok_or_else(|| invalid("channel", "no-contact", "the record holds no such contact; print the slip instead"))?;
        let campus = desk_campus(caller);
        self.send_new_code(caller, patient, &campus, crate::accounts::CODE_DAYS * DAY_MS, channel, &to, letter).await?;
        audit(&self.fhir, caller, "portal-code-send", "success", Some(patient), format!("by {}", channel.code()))
            .await?;
        Ok(masked(channel, &to))
    }

    /// The desk declines a sign-up (no record is this person, or it does not trust
    /// it), with its reason.
    pub async fn decline_signup(&self, caller: &Caller, id: &str, note: &str) -> Result<(), PortalError> {
        if !may_issue(caller) {
            return Err(PortalError::Forbidden("the desk handles sign-ups".into()));
        }
        let note = note.trim();
        if note.chars().count() < 2 {
            return Err(invalid("note", "required", "say why (at least 2 characters)"));
        }
        let store = self.fhir.operations().portal();
        if !store.decide_signup(id, "declined", caller.actor(), self.fhir.now_ms(), None, Some(note)).await? {
            return Err(PortalError::NotFound);
        }
        audit(&self.fhir, caller, "portal-signup-match", "success", None, format!("{id}: declined")).await
    }
}
