//! Portal accounts. The registrar prints an activation code on the registration slip
//! (or at the desk later); the patient opens their account with it, their resident
//! ID and their phone, as the record holds them, and chooses a login name and a
//! password. A code lives [`CODE_DAYS`] days, opens one account, and is refused after
//! [`MAX_TRIES`] wrong tries; only its keyed hash is kept. Every try, right or wrong, is
//! audited; the web edge also limits tries per address.

use lianyi_clinical::matching::normalize_phone;
use lianyi_clinical::registry::person_of;
use lianyi_security::users::{UserError, UserService};
use lianyi_security::{Caller, Perm, SystemTask};
use lianyi_services::FhirService;
use lianyi_services::identifiers::Mrn;
use lianyi_store::portal::{Activation, Proxy};

use crate::common::{audit, read};

/// The patient of a portal account acting for themselves (not as a proxy).
fn own_patient(caller: &Caller) -> Result<&str, PortalError> {
    match caller.access().patient() {
        Some(p) if caller.role() != Some("proxy") => Ok(p),
        _ => Err(PortalError::Forbidden("only the patient themselves manages their proxies".into())),
    }
}
use crate::{FieldError, PortalError, invalid};

/// Days an activation code is good for.
pub const CODE_DAYS: i64 = 7;
/// Wrong tries (resident ID or phone not matching) after which a code is refused.
pub const MAX_TRIES: i64 = 5;
/// The characters of a code: no 0/O or 1/I to confuse.
const ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
const CODE_LEN: usize = 8;
pub(crate) const DAY_MS: i64 = 86_400_000;

/// What the desk prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slip {
    /// `ABCD-EFGH`.
    pub code: String,
    pub patient: String,
    pub name: String,
    /// The patient's MRN at the issuing campus, when they hold one.
    pub mrn: Option<String>,
    pub campus: String,
    pub expires_at: i64,
}

/// Where a patient stands with the portal, for the desk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Standing {
    /// Their account's login name, when they have one.
    pub account: Option<String>,
    /// Their newest code: when it expires, and whether it was spent.
    pub code: Option<Activation>,
}

/// What a patient types to open their account.
#[derive(Clone, Debug, Default)]
pub struct ActivationForm {
    pub code: String,
    pub resident_id: String,
    pub phone: String,
    pub username: String,
    pub password: String,
    pub confirm: String,
}

/// A code as typed, without spaces and dashes, in capitals; `None` when it is not
/// eight of the code's characters.
pub fn normalize_code(typed: &str) -> Option<String> {
    let c: String = typed.chars().filter(|c| !c.is_whitespace() && *c != '-').collect::<String>().to_ascii_uppercase();
    (c.len() == CODE_LEN && c.bytes().all(|b| ALPHABET.contains(&b))).then_some(c)
}

fn format_code(c: &str) -> String {
    format!("{}-{}", &c[..4], &c[4..])
}

fn new_code() -> Result<String, PortalError> {
    let hex = lianyi_security::secrets::random_hex(CODE_LEN).map_err(|e| PortalError::Users(e.to_string()))?;
    // Each random byte picks one of 32 characters: 256 is a multiple of 32, so evenly.
    Ok((0..CODE_LEN)
        .filter_map(|i| u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).ok())
        .map(|b| char::from(ALPHABET[usize::from(b) % ALPHABET.len()]))
        .collect())
}

/// A code as kept before codes were keyed (plain SHA-256): still looked up, so slips
/// printed before an upgrade open their accounts for the days they have left.
fn legacy_code_hash(code: &str) -> String {
    lianyi_security::secrets::secret_hash(&format!("portal-activation:{code}"))
}

/// How a proxy is related to the patient they act for.
pub const RELATIONS: [&str; 5] = ["parent", "guardian", "carer", "spouse", "child"];

/// A proxy as pages show it: who acts for whom, on what consent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyView {
    pub proxy: Proxy,
    /// The proxy's login name and display name.
    pub username: String,
    pub name: String,
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Accounts {
    pub(crate) fhir: FhirService,
    pub(crate) users: UserService,
    pub(crate) courier: crate::courier::Courier,
}

/// The campus a desk caller issues codes for: the one they act at, else their home.
pub(crate) fn desk_campus(caller: &Caller) -> String {
    caller.campus().or_else(|| caller.access().home_campus()).map(|c| c.as_str().to_string()).unwrap_or_default()
}

/// Who may print a code: staff who register patients.
pub fn may_issue(caller: &Caller) -> bool {
    caller.access().patient().is_none() && caller.access().allows("Patient", Perm::Create)
}

impl Accounts {
    pub fn new(fhir: FhirService, users: UserService, courier: crate::courier::Courier) -> Accounts {
        Accounts { fhir, users, courier }
    }

    /// A code as kept: keyed with the installation's blind-index key (HMAC-SHA-256), so
    /// a copy of the database alone cannot try the 40-bit codes offline.
    fn code_hash(&self, code: &str) -> String {
        self.fhir.protector().cipher().blind_index(&format!("portal-activation:{code}"))
    }

    /// The channels codes can be sent by (none: the desk prints them only).
    pub fn channels(&self) -> Vec<crate::courier::Channel> {
        self.courier.channels()
    }

    /// Whether the patient has an account and their newest code, for the desk.
    pub async fn standing(&self, caller: &Caller, patient: &str) -> Result<Standing, PortalError> {
        if !may_issue(caller) {
            return Err(PortalError::Forbidden("the desk prints portal codes".into()));
        }
        read(&self.fhir, caller, "Patient", patient).await?.ok_or(PortalError::NotFound)?;
        let account = self.users.patient_accounts(patient).await.map_err(|e| PortalError::Users(e.to_string()))?;
        let code = self.fhir.operations().portal().latest_of(patient).await?;
        Ok(Standing { account: account.into_iter().find(|u| !u.disabled).map(|u| u.username), code })
    }

    /// Prints a new code for a patient (their unspent codes are withdrawn). Refused
    /// when they already have an account.
    pub async fn issue(&self, caller: &Caller, patient: &str) -> Result<Slip, PortalError> {
        if !may_issue(caller) {
            return Err(PortalError::Forbidden("the desk prints portal codes".into()));
        }
        let (_, p) = read(&self.fhir, caller, "Patient", patient).await?.ok_or(PortalError::NotFound)?;
        let campus = desk_campus(caller);
        let (code, a) = self.new_activation(caller, patient, &campus, CODE_DAYS * DAY_MS).await?;
        self.fhir.operations().portal().issue(&a).await?;
        audit(&self.fhir, caller, "portal-code-issue", "success", Some(patient), format!("campus {campus}")).await?;
        let mrn = lianyi_clinical::registry::mrns_of(&p).into_iter().find(|m: &Mrn| m.campus == campus.as_str());
        Ok(Slip {
            code,
            patient: patient.to_string(),
            name: person_of(&p).name,
            mrn: mrn.map(|m| m.number),
            campus,
            expires_at: a.expires_at,
        })
    }

    /// A new code for a patient without an account, good for `valid_ms`: the code as
    /// printed (`ABCD-EFGH`) and its row, for the caller to keep (replacing the
    /// patient's others at once, or beside them while it is sent).
    pub(crate) async fn new_activation(
        &self,
        caller: &Caller,
        patient: &str,
        campus: &str,
        valid_ms: i64,
    ) -> Result<(String, Activation), PortalError> {
        let accounts = self.users.patient_accounts(patient).await.map_err(|e| PortalError::Users(e.to_string()))?;
        if let Some(u) = accounts.iter().find(|u| !u.disabled) {
            return Err(invalid(
                "patient",
                "account-exists",
                format!("the patient already has a portal account ({})", u.username),
            ));
        }
        let code = new_code()?;
        let now = self.fhir.now_ms();
        let a = Activation {
            code_hash: self.code_hash(&code),
            patient: patient.to_string(),
            campus: campus.to_string(),
            issued_by: caller.actor().to_string(),
            issued_at: now,
            expires_at: now + valid_ms,
            ..Default::default()
        };
        Ok((format_code(&code), a))
    }

    /// Opens the patient's account; returns its login name. Every field that breaks
    /// a rule is named; a wrong resident ID or phone counts against the code.
    pub async fn activate(&self, form: &ActivationForm, client_addr: Option<String>) -> Result<String, PortalError> {
        let who = Caller::anonymous(client_addr);
        let mut errors = Vec::new();
        let mut err = |field: &'static str, code: &'static str, detail: &str| {
            errors.push(FieldError { field, code, detail: detail.to_string() });
        };
        let code = normalize_code(&form.code);
        if code.is_none() {
            err("code", "format", "the code on the slip: eight letters and digits");
        }
        let resident_id = form.resident_id.trim().to_ascii_uppercase();
        if lianyi_services::identifiers::ResidentId::parse(&resident_id).is_err() {
            err("resident_id", "format", "an 18-character resident ID number");
        }
        let phone = normalize_phone(&form.phone);
        if phone.len() < 7 {
            err("phone", "format", "the phone number given at registration");
        }
        let username = form.username.trim().to_string();
        let name_ok = !username.is_empty()
            && username.len() <= 64
            && username.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !name_ok {
            err("username", "format", "1-64 letters, digits, '-', '_' or '.'");
        }
        if let Err(e) = lianyi_security::password::check_policy(&username, &form.password) {
            err("password", e.key(), &e.to_string());
        } else if form.password != form.confirm {
            err("confirm", "mismatch", "the two passwords differ");
        }
        let Some(code) = code else {
            return self.refuse(&who, None, "bad form", errors).await;
        };
        if !errors.is_empty() {
            return self.refuse(&who, None, "bad form", errors).await;
        }
        let store = self.fhir.operations().portal();
        let now = self.fhir.now_ms();
        let mut hash = self.code_hash(&code);
        let mut found = store.activation(&hash).await?;
        if found.is_none() {
            hash = legacy_code_hash(&code);
            found = store.activation(&hash).await?;
        }
        let Some(a) = found else {
            let e =
                FieldError { field: "code", code: "unknown", detail: "this code is not known; check the slip".into() };
            return self.refuse(&who, None, "unknown code", vec![e]).await;
        };
        let refused = |code: &'static str, detail: &str| FieldError { field: "code", code, detail: detail.into() };
        if a.used_at.is_some() {
            let e = refused("used", "this code has already opened an account; log in instead");
            return self.refuse(&who, Some(&a.patient), "code already used", vec![e]).await;
        }
        if a.expires_at <= now {
            let e = refused("expired", "this code has expired; ask the desk for a new one");
            return self.refuse(&who, Some(&a.patient), "code expired", vec![e]).await;
        }
        if a.attempts >= MAX_TRIES {
            let e = refused("locked", "too many wrong tries with this code; ask the desk for a new one");
            return self.refuse(&who, Some(&a.patient), "code locked", vec![e]).await;
        }
        let portal = Caller::task(SystemTask::Portal);
        let (_, p) = read(&self.fhir, &portal, "Patient", &a.patient).await?.ok_or(PortalError::NotFound)?;
        let person = person_of(&p);
        let id_matches = person.resident_id.as_deref().is_some_and(|r| r.eq_ignore_ascii_case(&resident_id));
        let phone_matches = person.phone.as_deref().map(normalize_phone).is_some_and(|p| !p.is_empty() && p == phone);
        if !(id_matches && phone_matches) {
            let tries = store.wrong_try(&hash).await?;
            let left = (MAX_TRIES - tries).max(0);
            let e = FieldError {
                field: "resident_id",
                code: "mismatch",
                detail: format!("the resident ID and phone do not match the registration ({left} tries left)"),
            };
            return self.refuse(&who, Some(&a.patient), &format!("identity mismatch, try {tries}"), vec![e]).await;
        }
        let made =
            self.users.add_patient_account(&portal, &username, &person.name, &form.password, &a.patient, &hash).await;
        match made {
            Ok(_) => {
                audit(&self.fhir, &who, "portal-activate", "success", Some(&a.patient), format!("account {username}"))
                    .await?;
                Ok(username)
            }
            Err(e) => {
                let fe = match e {
                    UserError::Exists(_) => {
                        FieldError { field: "username", code: "taken", detail: "this login name is taken".into() }
                    }
                    UserError::InvalidCode => refused("used", "this code has already opened an account"),
                    UserError::Policy(p) => FieldError { field: "password", code: p.key(), detail: p.to_string() },
                    UserError::Name => FieldError {
                        field: "username",
                        code: "format",
                        detail: "1-64 letters, digits, '-', '_' or '.'".into(),
                    },
                    other => return Err(PortalError::Users(other.to_string())),
                };
                self.refuse(&who, Some(&a.patient), "account not made", vec![fe]).await
            }
        }
    }

    /// Records that the account `username` acts for `patient` (a parent for a
    /// child, a carer), on the consent the desk saw (`consent`: what was shown or
    /// signed). Desk staff only; audited.
    pub async fn add_proxy_at_desk(
        &self,
        caller: &Caller,
        patient: &str,
        username: &str,
        relation: &str,
        consent: &str,
    ) -> Result<Proxy, PortalError> {
        if !may_issue(caller) {
            return Err(PortalError::Forbidden("the desk records proxies".into()));
        }
        read(&self.fhir, caller, "Patient", patient).await?.ok_or(PortalError::NotFound)?;
        let consent = consent.trim();
        if consent.chars().count() < 4 {
            return Err(invalid("consent", "required", "say what consent was shown or signed (at least 4 characters)"));
        }
        self.add_proxy(caller, patient, username, relation, consent).await
    }

    /// A patient lets the account `username` act for them (their consent, given
    /// online); audited.
    pub async fn grant_proxy(&self, caller: &Caller, username: &str, relation: &str) -> Result<Proxy, PortalError> {
        let patient = own_patient(caller)?.to_string();
        self.add_proxy(caller, &patient, username, relation, "the patient, online").await
    }

    async fn add_proxy(
        &self,
        caller: &Caller,
        patient: &str,
        username: &str,
        relation: &str,
        consent: &str,
    ) -> Result<Proxy, PortalError> {
        if !RELATIONS.contains(&relation) {
            return Err(invalid("relation", "unknown", format!("one of {}", RELATIONS.join(", "))));
        }
        let account = self
            .users
            .patient_account_named(username.trim())
            .await
            .map_err(|e| PortalError::Users(e.to_string()))?
            .ok_or_else(|| invalid("username", "unknown", "no patient portal account has this login name"))?;
        if account.patient.as_deref() == Some(patient) {
            return Err(invalid("username", "self", "a patient does not act for themselves"));
        }
        let store = self.fhir.operations().portal();
        if store.active_proxy(&account.id, patient).await?.is_some() {
            return Err(invalid("username", "exists", "this account already acts for the patient"));
        }
        let now = self.fhir.now_ms();
        let proxy = Proxy {
            id: format!(
                "px-{}",
                lianyi_security::secrets::random_hex(8).map_err(|e| PortalError::Users(e.to_string()))?
            ),
            user_id: account.id.clone(),
            patient: patient.to_string(),
            relation: relation.to_string(),
            consent: consent.chars().take(200).collect(),
            granted_by: caller.actor().to_string(),
            granted_at: now,
            revoked_at: None,
            revoked_by: None,
        };
        store.add_proxy(&proxy).await?;
        audit(
            &self.fhir,
            caller,
            "proxy-grant",
            "success",
            Some(patient),
            format!("{} acts for the patient as {relation}; consent: {}", account.username, proxy.consent),
        )
        .await?;
        Ok(proxy)
    }

    /// The proxies of the caller's own patient (revoked ones too), with names.
    pub async fn proxies_of_mine(&self, caller: &Caller) -> Result<Vec<ProxyView>, PortalError> {
        let patient = own_patient(caller)?.to_string();
        self.views(self.fhir.operations().portal().proxies_of_patient(&patient).await?).await
    }

    /// A patient's proxies, for the desk.
    pub async fn proxies_at_desk(&self, caller: &Caller, patient: &str) -> Result<Vec<ProxyView>, PortalError> {
        if !may_issue(caller) {
            return Err(PortalError::Forbidden("the desk records proxies".into()));
        }
        self.views(self.fhir.operations().portal().proxies_of_patient(patient).await?).await
    }

    async fn views(&self, list: Vec<Proxy>) -> Result<Vec<ProxyView>, PortalError> {
        let mut out = Vec::with_capacity(list.len());
        for proxy in list {
            let user = self.users.account_by_id(&proxy.user_id).await.map_err(|e| PortalError::Users(e.to_string()))?;
            let (username, name) = user.map(|u| (u.username, u.display_name)).unwrap_or_default();
            out.push(ProxyView { proxy, username, name });
        }
        Ok(out)
    }

    /// The patients the signed-in account acts for (live proxies): (patient id,
    /// relation).
    pub async fn acting_for_whom(&self, user_id: &str) -> Result<Vec<Proxy>, PortalError> {
        Ok(self.fhir.operations().portal().proxies_of_user(user_id).await?)
    }

    /// Ends a proxy: the patient it acts for, the proxy themselves, or the desk may;
    /// audited. `NotFound` for anyone else's.
    pub async fn revoke_proxy(&self, caller: &Caller, user_id: &str, id: &str) -> Result<(), PortalError> {
        let store = self.fhir.operations().portal();
        let Some(patient) = caller.access().patient() else { return Err(PortalError::NotFound) };
        // The patient's own proxies (not while acting as someone's proxy), or the
        // account's own proxying.
        let of_mine = if caller.role() == Some("proxy") {
            None
        } else {
            store.proxies_of_patient(patient).await?.into_iter().find(|x| x.id == id)
        };
        let mine = match of_mine {
            Some(x) => Some(x),
            None => store.proxies_of_user(user_id).await?.into_iter().find(|x| x.id == id),
        };
        let Some(proxy) = mine else { return Err(PortalError::NotFound) };
        if !store.revoke_proxy(&proxy.id, self.fhir.now_ms(), caller.actor()).await? {
            return Err(invalid("proxy", "revoked", "this proxy has already ended"));
        }
        audit(&self.fhir, caller, "proxy-revoke", "success", Some(&proxy.patient), format!("proxy {}", proxy.id)).await
    }

    /// The desk ends one of a patient's proxies; audited.
    pub async fn revoke_at_desk(&self, caller: &Caller, patient: &str, id: &str) -> Result<(), PortalError> {
        if !may_issue(caller) {
            return Err(PortalError::Forbidden("the desk records proxies".into()));
        }
        read(&self.fhir, caller, "Patient", patient).await?.ok_or(PortalError::NotFound)?;
        let store = self.fhir.operations().portal();
        let Some(proxy) = store.proxies_of_patient(patient).await?.into_iter().find(|x| x.id == id) else {
            return Err(PortalError::NotFound);
        };
        if !store.revoke_proxy(&proxy.id, self.fhir.now_ms(), caller.actor()).await? {
            return Err(invalid("proxy", "revoked", "this proxy has already ended"));
        }
        audit(&self.fhir, caller, "proxy-revoke", "success", Some(patient), format!("proxy {}", proxy.id)).await
    }

    async fn refuse<T>(
        &self,
        who: &Caller,
        patient: Option<&str>,
        why: &str,
        errors: Vec<FieldError>,
    ) -> Result<T, PortalError> {
        audit(&self.fhir, who, "portal-activate", "failure", patient, why.to_string()).await?;
        Err(PortalError::Invalid(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_eight_unambiguous_characters_typed_any_way() {
        let c = new_code().unwrap();
        assert_eq!(c.len(), 8);
        assert!(c.bytes().all(|b| ALPHABET.contains(&b)));
        assert_eq!(normalize_code(&format_code(&c).to_lowercase()), Some(c.clone()));
        assert_eq!(normalize_code(" abcd efgh "), Some("ABCDEFGH".into()));
        assert_eq!(normalize_code("ABCD-EFG0"), None, "0 is not a code character");
        assert_eq!(normalize_code("ABCDEFG"), None);
        assert_ne!(new_code().unwrap(), new_code().unwrap());
    }
}
