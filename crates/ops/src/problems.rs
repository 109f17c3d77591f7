//! Problems (ITIL problem management): the cause behind one or more incidents. An
//! engineer opens a problem, usually from an incident (its title, item, group and
//! priority carried over), links the other incidents it explains, records the root
//! cause and the workaround — with both it is a known error the desk can point to —
//! and resolves it once the cause is removed.

use lianyi_security::Caller;
use lianyi_security::roles::Capability;
use lianyi_services::FhirService;
use lianyi_store::desk::Ticket;
use lianyi_store::problems::Problem;

use crate::cmdb::{FieldError, GROUPS};
use crate::desk::{DeskError, invalid};

/// Problems still being worked on.
pub const OPEN: [&str; 2] = ["open", "known-error"];

/// A problem as the form gives it.
#[derive(Clone, Debug, Default)]
pub struct ProblemForm {
    pub title: String,
    pub description: String,
    /// The incident it starts from (may be empty).
    pub ticket: String,
    /// `1` … `4` (empty: the incident's, else 3).
    pub priority: String,
    /// Empty: the incident's group, else `application`.
    pub support_group: String,
}

/// What the analysis records.
#[derive(Clone, Debug, Default)]
pub struct Analysis {
    pub root_cause: String,
    pub workaround: String,
    pub known_error: bool,
}

/// A problem with its incidents and item.
#[derive(Clone, Debug)]
pub struct Card {
    pub problem: Problem,
    pub incidents: Vec<Ticket>,
    /// The CI's code and name.
    pub ci: Option<(String, String)>,
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Problems {
    fhir: FhirService,
}

impl Problems {
    pub fn new(fhir: FhirService) -> Problems {
        Problems { fhir }
    }

    fn tables(&self) -> lianyi_store::problems::Problems {
        self.fhir.operations().problems()
    }

    fn work(caller: &Caller) -> Result<(), DeskError> {
        if caller.can(Capability::OperateIt) { Ok(()) } else { Err(DeskError::Forbidden("problems are the IT team's")) }
    }

    async fn audit(&self, caller: &Caller, action: &str, detail: String) -> Result<(), DeskError> {
        let mut e = caller.entry(self.fhir.now_ms(), action, "success");
        e.detail = Some(detail);
        self.fhir.audit_log().record(vec![e]).await.map_err(|e| DeskError::Audit(e.to_string()))
    }

    async fn ticket(&self, field: &str, value: &str) -> Result<Ticket, DeskError> {
        let id = value
            .trim()
            .trim_start_matches('#')
            .parse::<i64>()
            .map_err(|_| invalid(field, "number", "an incident number"))?;
        self.fhir
            .operations()
            .desk()
            .get(id)
            .await?
            .ok_or_else(|| invalid(field, "unknown", format!("no incident #{id}")))
    }

    /// Opens a problem, from an incident when `f.ticket` names one; returns its id.
    pub async fn open(&self, caller: &Caller, f: &ProblemForm) -> Result<i64, DeskError> {
        Self::work(caller)?;
        let from = match f.ticket.trim() {
            "" => None,
            t => Some(self.ticket("ticket", t).await?),
        };
        let title = match f.title.trim() {
            "" => from.as_ref().map(|t| t.title.clone()).unwrap_or_default(),
            t => t.to_string(),
        };
        let mut errors = Vec::new();
        if title.is_empty() || title.chars().count() > 200 {
            errors.push(FieldError {
                row: None,
                field: "title".into(),
                rule: "required",
                detail: "1 to 200 characters".into(),
            });
        }
        let priority = match f.priority.trim() {
            "" => from.as_ref().map_or(3, |t| t.priority),
            p => match p.parse::<i64>() {
                Ok(n) if (1..=4).contains(&n) => n,
                _ => {
                    errors.push(FieldError {
                        row: None,
                        field: "priority".into(),
                        rule: "choice",
                        detail: "1 to 4".into(),
                    });
                    3
                }
            },
        };
        let group = match f.support_group.trim() {
            "" => from.as_ref().map_or_else(|| "application".to_string(), |t| t.support_group.clone()),
            g if GROUPS.contains(&g) => g.to_string(),
            _ => {
                errors.push(FieldError {
                    row: None,
                    field: "support_group".into(),
                    rule: "choice",
                    detail: GROUPS.join(", "),
                });
                String::new()
            }
        };
        if !errors.is_empty() {
            return Err(DeskError::Invalid(errors));
        }
        let now = self.fhir.now_ms();
        let p = Problem {
            title,
            description: match f.description.trim() {
                "" => from.as_ref().map(|t| t.description.clone()).unwrap_or_default(),
                d => d.to_string(),
            },
            status: "open".into(),
            priority,
            ci: from.as_ref().and_then(|t| t.ci),
            support_group: group,
            assignee: Some(caller.actor().to_string()),
            opened_by: caller.actor().to_string(),
            opened_at: now,
            version: 1,
            updated_at: now,
            ..Problem::default()
        };
        let incidents: Vec<i64> = from.iter().map(|t| t.id).collect();
        let id = self.tables().open(&p, &incidents).await?;
        self.audit(caller, "problem-open", format!("problem {id} from {incidents:?}")).await?;
        Ok(id)
    }

    pub async fn card(&self, caller: &Caller, id: i64) -> Result<Card, DeskError> {
        Self::work(caller)?;
        let problem = self.tables().get(id).await?.ok_or(DeskError::NotFound)?;
        let desk = self.fhir.operations().desk();
        let mut incidents = Vec::new();
        for t in self.tables().incidents(id).await? {
            if let Some(t) = desk.get(t).await? {
                incidents.push(t);
            }
        }
        let ci = match problem.ci {
            Some(c) => self.fhir.operations().cmdb().get(c).await?.map(|c| (c.code, c.name)),
            None => None,
        };
        Ok(Card { problem, incidents, ci })
    }

    /// A page of problems, newest first; `open` only those still being worked on.
    pub async fn list(
        &self,
        caller: &Caller,
        open: bool,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Problem>, DeskError> {
        Self::work(caller)?;
        let statuses: Vec<String> = OPEN.iter().map(|s| s.to_string()).collect();
        Ok(self.tables().list(open.then_some(statuses.as_slice()), before, limit).await?)
    }

    /// The problems an incident is linked to.
    pub async fn of_incident(&self, caller: &Caller, ticket: i64) -> Result<Vec<Problem>, DeskError> {
        Self::work(caller)?;
        let mut out = Vec::new();
        for id in self.tables().of_incident(ticket).await? {
            out.extend(self.tables().get(id).await?);
        }
        Ok(out)
    }

    async fn load(&self, id: i64, version: i64) -> Result<Problem, DeskError> {
        let p = self.tables().get(id).await?.ok_or(DeskError::NotFound)?;
        if p.version != version {
            return Err(DeskError::Changed);
        }
        if !OPEN.contains(&p.status.as_str()) && p.status != "resolved" {
            return Err(invalid("status", "closed", "the problem is closed"));
        }
        Ok(p)
    }

    async fn write(&self, caller: &Caller, mut p: Problem, link: &[i64], what: &str) -> Result<(), DeskError> {
        p.updated_at = self.fhir.now_ms();
        self.tables().change(&p, link).await?;
        self.audit(caller, "problem-update", format!("problem {} {what}", p.id)).await
    }

    /// Links another incident the problem explains.
    pub async fn link(&self, caller: &Caller, id: i64, version: i64, ticket: &str) -> Result<(), DeskError> {
        Self::work(caller)?;
        let p = self.load(id, version).await?;
        let t = self.ticket("ticket", ticket).await?;
        self.write(caller, p, &[t.id], &format!("linked incident {}", t.id)).await
    }

    /// Records the root cause and workaround; a known error needs both.
    pub async fn analyse(&self, caller: &Caller, id: i64, version: i64, a: &Analysis) -> Result<(), DeskError> {
        Self::work(caller)?;
        let mut p = self.load(id, version).await?;
        if p.status == "resolved" {
            return Err(invalid("status", "state", "the problem is resolved"));
        }
        let (cause, workaround) = (a.root_cause.trim(), a.workaround.trim());
        if a.known_error {
            let mut errors = Vec::new();
            for (field, v) in [("root_cause", cause), ("workaround", workaround)] {
                if v.is_empty() {
                    errors.push(FieldError {
                        row: None,
                        field: field.into(),
                        rule: "known-error",
                        detail: "a known error has its root cause and workaround".into(),
                    });
                }
            }
            if !errors.is_empty() {
                return Err(DeskError::Invalid(errors));
            }
        }
        p.root_cause = Some(cause.to_string()).filter(|c| !c.is_empty());
        p.workaround = Some(workaround.to_string()).filter(|w| !w.is_empty());
        p.known_error = a.known_error;
        p.status = if a.known_error { "known-error" } else { "open" }.into();
        self.write(caller, p, &[], "analysed").await
    }

    /// The cause is removed: resolved (it needs its root cause).
    pub async fn resolve(&self, caller: &Caller, id: i64, version: i64) -> Result<(), DeskError> {
        Self::work(caller)?;
        let mut p = self.load(id, version).await?;
        if !OPEN.contains(&p.status.as_str()) {
            return Err(invalid("status", "state", "only an open problem is resolved"));
        }
        if p.root_cause.is_none() {
            return Err(invalid("root_cause", "required", "a problem is resolved once its root cause is known"));
        }
        p.status = "resolved".into();
        p.resolved_at = Some(self.fhir.now_ms());
        self.write(caller, p, &[], "resolved").await
    }

    /// Closes a resolved problem (no incident came back).
    pub async fn close(&self, caller: &Caller, id: i64, version: i64) -> Result<(), DeskError> {
        Self::work(caller)?;
        let mut p = self.load(id, version).await?;
        if p.status != "resolved" {
            return Err(invalid("status", "state", "only a resolved problem is closed"));
        }
        p.status = "closed".into();
        self.write(caller, p, &[], "closed").await
    }
}
