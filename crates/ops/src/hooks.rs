//! The support groups' webhooks: a group's chat robot or paging system gets every
//! notification about the group's tickets — a monitoring incident opened on one of
//! its CIs, its SLA warning and its escalation when nobody takes it, its resolution —
//! as a JSON post signed with the group's secret (`X-Lianyi-Signature: sha256=` the
//! HMAC-SHA256 of the body, as the outbound webhook channels sign). The posts are
//! written with the ticket change (nothing is lost when the receiver is down) and
//! sent by the server, retried with a growing pause until accepted (ten tries).

use lianyi_monitor::check::Checker;
use lianyi_security::Caller;
use lianyi_security::roles::Capability;
use lianyi_services::FhirService;
use lianyi_store::notices::{Hook, HookDelivery};
use serde_json::json;

use crate::desk::{Desk, DeskError, invalid};

/// The associated data the secrets are sealed with.
const SECRET_AAD: &str = "ops.group-hook.secret";
/// Tries before a post is given up.
const TRIES: i64 = 10;

/// A group's webhook as the pages show it (never its secret), with its latest posts.
#[derive(Clone, Debug)]
pub struct GroupHook {
    pub support_group: String,
    pub url: String,
    pub updated_at: i64,
    pub updated_by: String,
    pub recent: Vec<HookDelivery>,
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct GroupHooks {
    fhir: FhirService,
}

impl GroupHooks {
    pub fn new(fhir: FhirService) -> GroupHooks {
        GroupHooks { fhir }
    }

    fn manage(caller: &Caller) -> Result<(), DeskError> {
        if caller.can(Capability::ManageIt) {
            Ok(())
        } else {
            Err(DeskError::Forbidden("the groups are kept by the IT manager"))
        }
    }

    async fn audit(&self, caller: &Caller, action: &str, detail: String) -> Result<(), DeskError> {
        let mut e = caller.entry(self.fhir.now_ms(), action, "success");
        e.detail = Some(detail);
        self.fhir.audit_log().record(vec![e]).await.map_err(|e| DeskError::Audit(e.to_string()))
    }

    /// Sets a group's webhook: an `http(s)` URL and a signing secret of at least 16
    /// characters (an empty secret keeps the one the group has).
    pub async fn set(&self, caller: &Caller, group: &str, url: &str, secret: &str) -> Result<(), DeskError> {
        Self::manage(caller)?;
        if !crate::cmdb::GROUPS.contains(&group) {
            return Err(invalid("support_group", "choice", crate::cmdb::GROUPS.join(", ")));
        }
        let url = url.trim();
        let well_formed = (url.starts_with("https://") || url.starts_with("http://"))
            && url.len() <= 500
            && !url.contains(char::is_whitespace)
            && url.split("://").nth(1).is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
        if !well_formed {
            return Err(invalid("url", "url", "an http:// or https:// address of at most 500 characters"));
        }
        let hooks = self.fhir.operations().hooks();
        let sealed = if secret.is_empty() {
            match hooks.list().await?.into_iter().find(|h| h.support_group == group) {
                Some(h) => h.secret,
                None => return Err(invalid("secret", "required", "the secret the receiver checks signatures with")),
            }
        } else if secret.chars().count() < 16 || secret.len() > 200 {
            return Err(invalid("secret", "length", "16 to 200 characters"));
        } else {
            self.fhir.protector().cipher().encrypt(secret, SECRET_AAD).map_err(|e| DeskError::Audit(e.to_string()))?
        };
        let at = self.fhir.now_ms();
        hooks
            .set(&Hook {
                support_group: group.into(),
                url: url.into(),
                secret: sealed,
                updated_at: at,
                updated_by: caller.actor().to_string(),
            })
            .await?;
        // The host only: a URL may carry a token.
        let host = url.split("://").nth(1).and_then(|r| r.split(['/', '?']).next()).unwrap_or_default();
        self.audit(caller, "group-hook", format!("{group} posts to {host}")).await
    }

    /// Removes a group's webhook.
    pub async fn remove(&self, caller: &Caller, group: &str) -> Result<(), DeskError> {
        Self::manage(caller)?;
        if !self.fhir.operations().hooks().remove(group).await? {
            return Err(DeskError::NotFound);
        }
        self.audit(caller, "group-hook-remove", format!("{group} posts nowhere")).await
    }

    /// Every group's webhook with its ten latest posts (IT staff).
    pub async fn list(&self, caller: &Caller) -> Result<Vec<GroupHook>, DeskError> {
        if !Desk::may_work(caller) {
            return Err(DeskError::Forbidden("IT staff only"));
        }
        let hooks = self.fhir.operations().hooks();
        let mut out = Vec::new();
        for h in hooks.list().await? {
            let recent = hooks.recent(&h.support_group, 10).await?;
            out.push(GroupHook {
                support_group: h.support_group,
                url: h.url,
                updated_at: h.updated_at,
                updated_by: h.updated_by,
                recent,
            });
        }
        Ok(out)
    }

    /// Sends the posts that are due (the server calls this every few seconds);
    /// returns how many were accepted. `public_url` makes the ticket's link absolute.
    pub async fn deliver_due(&self, checker: &Checker, public_url: Option<&str>) -> Result<usize, DeskError> {
        let ops = self.fhir.operations();
        let now = self.fhir.now_ms();
        let due = ops.hooks().due(now, 50).await?;
        if due.is_empty() {
            return Ok(0);
        }
        let hooks = ops.hooks().list().await?;
        let mut accepted = 0;
        for d in due {
            let Some(hook) = hooks.iter().find(|h| h.support_group == d.support_group) else {
                ops.hooks().failed(d.id, None, "the group has no webhook").await?;
                continue;
            };
            let Some(t) = ops.desk().get(d.ticket).await? else {
                ops.hooks().failed(d.id, None, "the ticket is gone").await?;
                continue;
            };
            let link = format!("{}/ops/tickets/{}", public_url.unwrap_or_default().trim_end_matches('/'), t.id);
            let body = json!({
                "event": d.kind,
                "group": d.support_group,
                "at": lianyi_fhir::datetime::format_instant(d.at),
                "delivery": d.id,
                "ticket": {
                    "id": t.id, "category": t.category, "title": t.title, "priority": t.priority, "status": t.status,
                    "channel": t.channel, "ci": t.ci, "assignee": t.assignee, "link": link,
                },
            })
            .to_string();
            // Never unsigned: a secret that does not decrypt fails the post.
            let sent = match self.fhir.protector().cipher().decrypt(&hook.secret, SECRET_AAD) {
                Ok(secret) => {
                    let signature = lianyi_security::secrets::hmac_sha256_hex(secret.as_bytes(), body.as_bytes());
                    let headers = [
                        ("x-lianyi-event", d.kind.clone()),
                        ("x-lianyi-signature", format!("sha256={signature}")),
                        ("idempotency-key", format!("group-hook-{}", d.id)),
                    ];
                    match checker.post_json(&hook.url, &headers, body).await {
                        Ok(status) if (200..300).contains(&status) => Ok(()),
                        Ok(status) => Err(format!("HTTP {status}")),
                        Err(e) => Err(e),
                    }
                }
                Err(_) => Err("the group's signing secret cannot be decrypted".to_string()),
            };
            match sent {
                Ok(()) => {
                    ops.hooks().sent(d.id, self.fhir.now_ms()).await?;
                    accepted += 1;
                }
                Err(error) => {
                    // The group and the delivery's id say which; no ticket text in the log.
                    tracing::warn!(group = %d.support_group, delivery = d.id, %error, "webhook post not accepted");
                    let next = (d.tries + 1 < TRIES).then(|| now + 15_000 * (1_i64 << d.tries.clamp(0, 8)));
                    ops.hooks().failed(d.id, next, &error).await?;
                }
            }
        }
        Ok(accepted)
    }
}
