//! SMART on FHIR scopes: `context/Type.perms`, v2 (`system/Patient.rs`,
//! `user/*.cruds`) and v1 (`patient/*.read`, `user/Observation.write`).

use std::fmt;

/// The five interactions a v2 scope can grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Perm {
    Create,
    Read,
    Update,
    Delete,
    Search,
}

impl Perm {
    /// The interaction's name ("read").
    pub fn name(self) -> &'static str {
        match self {
            Perm::Create => "create",
            Perm::Read => "read",
            Perm::Update => "update",
            Perm::Delete => "delete",
            Perm::Search => "search",
        }
    }

    fn letter(self) -> char {
        match self {
            Perm::Create => 'c',
            Perm::Read => 'r',
            Perm::Update => 'u',
            Perm::Delete => 'd',
            Perm::Search => 's',
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    Patient,
    User,
    System,
}

/// One parsed scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    pub context: Context,
    /// `None` for `*`.
    pub resource_type: Option<String>,
    /// Granted interactions as v2 letters in `cruds` order.
    pub perms: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("'{scope}' is not a SMART scope (rule: patient|user|system/Type|*.[cruds] or .read/.write/.*)")]
pub struct ScopeError {
    pub scope: String,
}

impl Scope {
    pub fn parse(s: &str) -> Result<Scope, ScopeError> {
        let err = || ScopeError { scope: s.to_string() };
        let (ctx, rest) = s.split_once('/').ok_or_else(err)?;
        let context = match ctx {
            "patient" => Context::Patient,
            "user" => Context::User,
            "system" => Context::System,
            _ => return Err(err()),
        };
        let (rtype, perms) = rest.split_once('.').ok_or_else(err)?;
        let resource_type = match rtype {
            "*" => None,
            t if !t.is_empty()
                && t.bytes().all(|b| b.is_ascii_alphabetic())
                && t.as_bytes()[0].is_ascii_uppercase() =>
            {
                Some(t.to_string())
            }
            _ => return Err(err()),
        };
        let perms = match perms {
            "read" => "rs".to_string(),
            "write" => "cud".to_string(),
            "*" => "cruds".to_string(),
            p => {
                // v2: a non-empty subsequence of "cruds", in order.
                let mut last = None;
                for ch in p.chars() {
                    let pos = "cruds".find(ch).ok_or_else(err)?;
                    if last.is_some_and(|l| pos <= l) {
                        return Err(err());
                    }
                    last = Some(pos);
                }
                if p.is_empty() {
                    return Err(err());
                }
                p.to_string()
            }
        };
        Ok(Scope { context, resource_type, perms })
    }

    pub fn allows(&self, resource_type: &str, perm: Perm) -> bool {
        self.resource_type.as_deref().is_none_or(|t| t == resource_type) && self.perms.contains(perm.letter())
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ctx = match self.context {
            Context::Patient => "patient",
            Context::User => "user",
            Context::System => "system",
        };
        write!(f, "{ctx}/{}.{}", self.resource_type.as_deref().unwrap_or("*"), self.perms)
    }
}

/// The scopes a token carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeSet(pub Vec<Scope>);

impl ScopeSet {
    /// Parses a space-separated list; unknown words (`openid`, `launch`) are ignored,
    /// malformed resource scopes are errors.
    pub fn parse(s: &str) -> Result<ScopeSet, ScopeError> {
        let mut out = Vec::new();
        for word in s.split_whitespace() {
            if word.contains('/') {
                out.push(Scope::parse(word)?);
            }
        }
        Ok(ScopeSet(out))
    }

    pub fn allows(&self, resource_type: &str, perm: Perm) -> bool {
        self.0.iter().any(|s| s.allows(resource_type, perm))
    }

    /// Whether a scope names `resource_type` explicitly (not through `*`) with `perm`:
    /// for data that a wildcard should not reach, such as the audit log.
    pub fn names(&self, resource_type: &str, perm: Perm) -> bool {
        self.0.iter().any(|s| s.resource_type.as_deref() == Some(resource_type) && s.perms.contains(perm.letter()))
    }

    /// Whether every scope of `other` is covered by a scope here (for narrowing a
    /// client's scopes when it asks for a token).
    pub fn covers(&self, other: &ScopeSet) -> bool {
        other.0.iter().all(|o| {
            self.0.iter().any(|s| {
                s.context == o.context
                    && (s.resource_type.is_none() || s.resource_type == o.resource_type)
                    && o.perms.chars().all(|c| s.perms.contains(c))
            })
        })
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<String> = self.0.iter().map(Scope::to_string).collect();
        f.write_str(&words.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v1_and_v2() {
        let s = Scope::parse("system/Patient.rs").unwrap();
        assert!(s.allows("Patient", Perm::Read) && s.allows("Patient", Perm::Search));
        assert!(!s.allows("Patient", Perm::Create) && !s.allows("Observation", Perm::Read));
        let all = Scope::parse("system/*.cruds").unwrap();
        assert!(all.allows("Encounter", Perm::Delete));
        assert_eq!(Scope::parse("patient/*.read").unwrap().perms, "rs");
        assert_eq!(Scope::parse("user/Observation.write").unwrap().perms, "cud");
        assert_eq!(Scope::parse("user/Observation.r").unwrap().to_string(), "user/Observation.r");
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["system/Patient", "admin/*.r", "system/patient.r", "system/*.rc", "system/*.x", "system/*."] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
        let set = ScopeSet::parse("openid system/Patient.rs launch").unwrap();
        assert_eq!(set.0.len(), 1);
    }

    #[test]
    fn covers_subsets_only() {
        let have = ScopeSet::parse("system/*.rs system/Observation.cruds").unwrap();
        assert!(have.covers(&ScopeSet::parse("system/Patient.r").unwrap()));
        assert!(have.covers(&ScopeSet::parse("system/Observation.c").unwrap()));
        assert!(!have.covers(&ScopeSet::parse("system/Patient.c").unwrap()));
        assert!(!have.covers(&ScopeSet::parse("user/Patient.r").unwrap()));
    }
}
