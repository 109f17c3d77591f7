//! The service desk's notifications: each user's inbox (new tickets for their group,
//! their fault taken or resolved, SLA warnings and escalations), where they want the
//! desk's mail; and the mail sender, which renders each notification in its
//! recipient's language and hands it to the SMTP server (rustls on ring), retrying
//! with a growing pause until the server takes it. The notifications themselves are
//! written by [`lianyi_ops::desk`] with the ticket change they tell of.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use lianyi_ops::desk::DeskError;
use lianyi_store::notices::Notice;

use super::desk::{error_rows, may_report};
use super::failed;
use crate::ui::i18n::Tr;
use crate::ui::render::{forbidden, form_value, local_time, page, see_other};
use crate::ui::session::Signed;
use crate::ui::shell::{Shell, shell};
use crate::{AppState, MailConfig};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/ops/notifications", get(inbox_page))
        .route("/ops/notifications/read", post(mark_read))
        .route("/ops/notifications/contact", post(set_contact))
}

#[derive(Template)]
#[template(path = "ops/notifications.html")]
struct InboxPage<'a> {
    t: Tr,
    shell: &'a Shell,
    /// (when, kind, ticket, subject, link, unread)
    rows: Vec<(String, String, Option<i64>, String, String, bool)>,
    unread: i64,
    email: String,
    errors: Vec<(String, String)>,
}

async fn render_inbox(state: &AppState, s: &Signed, email: Option<String>, errors: Vec<(String, String)>) -> Response {
    let (info, t) = (&s.info, s.t);
    let (notices, unread) = match state.desk.inbox(&info.caller, 100).await {
        Ok(x) => x,
        Err(DeskError::Forbidden(_)) => return forbidden(t),
        Err(e) => return failed(t, "notifications", e),
    };
    let email = match email {
        Some(e) => e,
        None => match state.desk.contact(&info.caller).await {
            Ok(c) => c.map(|(e, _)| e).unwrap_or_default(),
            Err(e) => return failed(t, "contact", e),
        },
    };
    let shell = shell(state, info, t, &s.headers).await;
    let rows = notices
        .into_iter()
        .map(|n| (local_time(n.at), n.kind, n.ticket, n.subject, n.link, n.read_at.is_none()))
        .collect();
    page(InboxPage { t, shell: &shell, rows, unread, email, errors }.render())
}

async fn inbox_page(State(state): State<AppState>, s: Signed) -> Response {
    if !may_report(&s.info.caller) {
        return forbidden(s.t);
    }
    render_inbox(&state, &s, None, Vec::new()).await
}

async fn mark_read(State(state): State<AppState>, s: Signed, Form(f): Form<Vec<(String, String)>>) -> Response {
    if !s.csrf_ok(&form_value(&f, "csrf")) {
        return forbidden(s.t);
    }
    match state.desk.mark_read(&s.info.caller).await {
        Ok(()) => see_other("/ops/notifications"),
        Err(DeskError::Forbidden(_)) => forbidden(s.t),
        Err(e) => failed(s.t, "mark read", e),
    }
}

async fn set_contact(State(state): State<AppState>, s: Signed, Form(f): Form<Vec<(String, String)>>) -> Response {
    if !s.csrf_ok(&form_value(&f, "csrf")) {
        return forbidden(s.t);
    }
    let email = form_value(&f, "email");
    match state.desk.set_contact(&s.info.caller, &email, s.t.code()).await {
        Ok(()) => see_other("/ops/notifications"),
        Err(DeskError::Forbidden(_)) => forbidden(s.t),
        Err(e @ DeskError::Invalid(_)) => {
            let errors = error_rows(s.t, &e);
            render_inbox(&state, &s, Some(email), errors).await
        }
        Err(e) => failed(s.t, "contact", e),
    }
}

// ---- Mail ---------------------------------------------------------------------------

/// A notification as mail in its recipient's language: (subject, body).
fn render_mail(n: &Notice, public_url: Option<&str>) -> (String, String) {
    let t = Tr::new(if n.language.as_deref() == Some("en") {
        crate::ui::i18n::Lang::En
    } else {
        crate::ui::i18n::Lang::ZhCn
    });
    let what = t.named("ntf", &n.kind);
    let ticket = n.ticket.map(|id| format!("#{id} ")).unwrap_or_default();
    let subject = format!("[{}] {what}: {ticket}{}", t.get("ntf-mail-tag"), n.subject);
    let link = match public_url {
        Some(base) => format!("{}{}", base.trim_end_matches('/'), n.link),
        None => n.link.clone(),
    };
    let body = format!(
        "{what}\n\n{ticket}{}\n{}\n\n{link}\n\n-- \n{}\n",
        n.subject,
        local_time(n.at),
        t.get("ntf-mail-footer")
    );
    (subject, body)
}

/// Sends the notifications' mail while the server runs: due mail every few seconds,
/// each to the SMTP server at `config.url`; a failure waits 1, 2, 4 … 60 minutes and
/// gives up after 10 tries (the inbox keeps the notification).
pub(crate) async fn send_mail(state: AppState, config: MailConfig) {
    use lettre::message::SinglePart;
    use lettre::message::header::{ContentTransferEncoding, ContentType};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let transport = match AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.url) {
        Ok(b) => b.build(),
        Err(e) => {
            tracing::error!(error = %e, "the SMTP URL does not read: no mail is sent");
            return;
        }
    };
    let from = match config.from.parse() {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "the mail sender address does not read: no mail is sent");
            return;
        }
    };
    let notices = state.fhir.operations().notices();
    loop {
        let now = state.fhir.now_ms();
        let due = match notices.due_mail(now, 50).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "reading the mail to send");
                Vec::new()
            }
        };
        for n in &due {
            let (subject, body) = render_mail(n, state.config.public_url.as_deref());
            let sent = match n.email.as_deref().map(str::parse) {
                Some(Ok(to)) => match Message::builder().from(Clone::clone(&from)).to(to).subject(subject).singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .header(ContentTransferEncoding::Base64)
                        .body(body),
                ) {
                    Ok(m) => transport.send(m).await.map(|_| ()).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                },
                _ => Err("the address does not read".to_string()),
            };
            let recorded = match sent {
                Ok(()) => notices.mail_sent(n.id, state.fhir.now_ms()).await,
                Err(error) => {
                    // No address in the log: the notification's id says which.
                    tracing::warn!(notification = n.id, %error, "mail not sent");
                    let next = (n.mail_tries < 9).then(|| now + 60_000 * (1i64 << n.mail_tries.min(6)).min(60));
                    notices.mail_failed(n.id, next, &error).await
                }
            };
            if let Err(e) = recorded {
                tracing::warn!(error = %e, "recording a mail's outcome");
            }
        }
        if due.len() < 50 {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
    }
}

/// Sends the support groups' webhook posts as they fall due, while the server runs.
pub(crate) async fn send_hooks(state: AppState) {
    let hooks = state.hooks.clone();
    loop {
        if let Err(e) = hooks.deliver_due(&state.checker, state.config.public_url.as_deref()).await {
            tracing::warn!(error = %e, "sending the webhook posts");
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

/// Days before a warranty or maintenance contract ends that its group is reminded.
const REMIND_DAYS: i64 = 30;

/// Indexes the tickets and articles missing from their searches (written before the
/// search existed, or copied from another database), then runs the SLA watch
/// every `every` while the server runs, and the warranty and contract reminders every
/// hour.
pub(crate) async fn watch_sla(state: AppState, every: std::time::Duration) {
    let mut reminded: Option<std::time::Instant> = None;
    match state.desk.index_missing().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(tickets = n, "indexed the tickets written before the ticket search"),
        Err(e) => tracing::warn!(error = %e, "indexing earlier tickets"),
    }
    match state.kb.index_missing().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(articles = n, "indexed the knowledge base's articles missing from its search"),
        Err(e) => tracing::warn!(error = %e, "indexing the knowledge base"),
    }
    loop {
        if let Err(e) = state.desk.watch().await {
            tracing::warn!(error = %e, "the SLA watch");
        }
        if reminded.is_none_or(|r| r.elapsed().as_secs() >= 3600) {
            match state.desk.remind(REMIND_DAYS).await {
                Ok(_) => reminded = Some(std::time::Instant::now()),
                Err(e) => tracing::warn!(error = %e, "the warranty reminders"),
            }
        }
        tokio::time::sleep(every).await;
    }
}
