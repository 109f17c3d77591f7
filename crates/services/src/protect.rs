//! Which fields are encrypted at rest, and how search keeps working on them.
//!
//! Protected: a person's resident ID number (identifier with the resident-ID system or
//! type NNCHN), phone numbers (telecom `phone`/`sms`) and address lines (`line`,
//! `text`) on Patient and RelatedPerson. They are encrypted before the store sees the
//! resource (so bodies, history and every page of the database file hold only
//! ciphertext), their token index rows hold a keyed blind index instead of the value
//! (so `identifier=` and `telecom=` exact searches still work), and the address lines
//! are left out of the string index (a line cannot be searched by prefix once
//! encrypted; city, district and postal code still can).

use std::sync::Arc;

use lianyi_fhir::search::{Criterion, SearchRequest, TokenValue};
use lianyi_fhir::search_params::IndexRows;
use lianyi_security::crypto::{CryptoError, FieldCipher, KeyProvider, PREFIX};
use serde_json::Value;

use crate::identifiers::RESIDENT_ID_SYSTEM;

const PROTECTED_TYPES: &[&str] = &["Patient", "RelatedPerson"];
const TOKEN_PARAMS: &[&str] = &["identifier", "telecom", "phone"];

/// Encrypts and decrypts the protected fields of resources.
#[derive(Clone, Debug)]
pub struct Protector {
    cipher: Arc<FieldCipher<dyn KeyProvider>>,
}

fn is_resident_id(identifier: &Value) -> bool {
    identifier.get("system").and_then(Value::as_str) == Some(RESIDENT_ID_SYSTEM)
        || identifier
            .pointer("/type/coding")
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(|c| c.get("code").and_then(Value::as_str) == Some("NNCHN")))
}

fn is_phone(contact: &Value) -> bool {
    matches!(contact.get("system").and_then(Value::as_str), Some("phone" | "sms"))
}

/// Applies `f(value, field name)` to every protected string of a resource.
fn for_each_protected(
    rtype: &str,
    resource: &mut Value,
    f: &mut dyn FnMut(&mut Value, &str) -> Result<(), CryptoError>,
) -> Result<(), CryptoError> {
    if !PROTECTED_TYPES.contains(&rtype) {
        return Ok(());
    }
    if let Some(ids) = resource.get_mut("identifier").and_then(Value::as_array_mut) {
        for id in ids.iter_mut().filter(|i| is_resident_id(i)) {
            if let Some(v) = id.get_mut("value") {
                f(v, &format!("{rtype}.identifier"))?;
            }
        }
    }
    if let Some(telecom) = resource.get_mut("telecom").and_then(Value::as_array_mut) {
        for t in telecom.iter_mut().filter(|t| is_phone(t)) {
            if let Some(v) = t.get_mut("value") {
                f(v, &format!("{rtype}.telecom"))?;
            }
        }
    }
    if let Some(addresses) = resource.get_mut("address").and_then(Value::as_array_mut) {
        for a in addresses.iter_mut() {
            if let Some(lines) = a.get_mut("line").and_then(Value::as_array_mut) {
                for l in lines.iter_mut() {
                    f(l, &format!("{rtype}.address.line"))?;
                }
            }
            if let Some(text) = a.get_mut("text") {
                f(text, &format!("{rtype}.address.text"))?;
            }
        }
    }
    Ok(())
}

impl Protector {
    pub fn new(cipher: Arc<FieldCipher<dyn KeyProvider>>) -> Self {
        Protector { cipher }
    }

    pub fn cipher(&self) -> &FieldCipher<dyn KeyProvider> {
        &self.cipher
    }

    /// The protected plaintext values of a resource (before encryption).
    fn protected_values(rtype: &str, resource: &Value) -> (Vec<String>, Vec<String>) {
        let mut tokens = Vec::new();
        let mut lines = Vec::new();
        let mut copy = resource.clone();
        let _ = for_each_protected(rtype, &mut copy, &mut |v, field| {
            if let Some(s) = v.as_str() {
                if field.ends_with("identifier") || field.ends_with("telecom") {
                    tokens.push(s.to_string());
                } else {
                    lines.push(s.to_string());
                }
            }
            Ok(())
        });
        (tokens, lines)
    }

    /// Replaces index rows that would hold protected values: tokens become blind
    /// indexes, address-line strings are dropped.
    pub fn adjust_index(&self, rtype: &str, resource: &Value, rows: &mut IndexRows) {
        if !PROTECTED_TYPES.contains(&rtype) {
            return;
        }
        let (tokens, lines) = Self::protected_values(rtype, resource);
        for t in rows.tokens.iter_mut() {
            if TOKEN_PARAMS.contains(&t.param) && tokens.contains(&t.code) {
                t.code = self.cipher.blind_index(&t.code);
            }
        }
        rows.strings
            .retain(|s| !lines.iter().any(|l| lianyi_fhir::search_params::normalize(l) == s.norm || *l == s.exact));
    }

    /// Encrypts the protected fields in place (values already encrypted stay as they are).
    pub fn protect(&self, rtype: &str, resource: &mut Value) -> Result<(), CryptoError> {
        for_each_protected(rtype, resource, &mut |v, field| {
            if let Some(s) = v.as_str().filter(|s| !s.starts_with(PREFIX)) {
                *v = Value::String(self.cipher.encrypt(s, field)?);
            }
            Ok(())
        })
    }

    /// Decrypts the protected fields in place.
    pub fn reveal(&self, rtype: &str, resource: &mut Value) -> Result<(), CryptoError> {
        for_each_protected(rtype, resource, &mut |v, field| {
            if let Some(s) = v.as_str().filter(|s| s.starts_with(PREFIX)) {
                *v = Value::String(self.cipher.decrypt(s, field)?);
            }
            Ok(())
        })
    }

    /// The stored JSON with protected fields decrypted (untouched when it has none).
    pub fn reveal_body(&self, rtype: &str, body: &str) -> Result<String, CryptoError> {
        if !PROTECTED_TYPES.contains(&rtype) || !body.contains(PREFIX) {
            return Ok(body.to_string());
        }
        let mut v: Value = serde_json::from_str(body).map_err(|_| CryptoError::Decrypt)?;
        self.reveal(rtype, &mut v)?;
        serde_json::to_string(&v).map_err(|_| CryptoError::Decrypt)
    }

    /// Re-encrypts a stored body with the current key (for key rotation).
    pub fn reencrypt_body(&self, rtype: &str, body: &str) -> Result<Option<String>, CryptoError> {
        if !PROTECTED_TYPES.contains(&rtype) || body.is_empty() {
            return Ok(None);
        }
        let mut v: Value = serde_json::from_str(body).map_err(|_| CryptoError::Decrypt)?;
        self.reveal(rtype, &mut v)?;
        self.protect(rtype, &mut v)?;
        serde_json::to_string(&v).map(Some).map_err(|_| CryptoError::Encrypt)
    }

    /// Adds the blind-index form of every value searched on a protected token
    /// parameter (also inside chains and reverse chains), so exact searches match
    /// encrypted values too.
    pub fn search_variants(&self, req: &mut SearchRequest) {
        let t = req.resource_type.as_str();
        for c in req.criteria.iter_mut() {
            self.criterion_variants(t, c);
        }
    }

    fn criterion_variants(&self, rtype: &str, c: &mut Criterion) {
        match c {
            Criterion::Token { param, values, negate: _ }
                if PROTECTED_TYPES.contains(&rtype) && TOKEN_PARAMS.contains(param) =>
            {
                let extra: Vec<TokenValue> = values
                    .iter()
                    .filter_map(|v| {
                        v.code.as_ref().map(|code| TokenValue {
                            system: v.system.clone(),
                            code: Some(self.cipher.blind_index(code)),
                        })
                    })
                    .collect();
                values.extend(extra);
            }
            Criterion::Chain { target, inner, .. } => self.criterion_variants(target.as_str(), inner),
            Criterion::Has { source, inner, .. } => self.criterion_variants(source.as_str(), inner),
            _ => {}
        }
    }
}
