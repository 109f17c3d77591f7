//! Sending a patient their code: by mail through the hospital's SMTP server, and by
//! SMS through the hospital's SMS gateway, whose HTTP request is configured as a
//! template (most Chinese SMS providers take a POST of JSON or a form). A channel that
//! is not configured is not offered anywhere. A code is sent at once, never queued, so
//! only its hash is ever stored; the patient sees whether it went.

use std::sync::Arc;

/// How a code reaches a patient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Sms,
    Email,
}

impl Channel {
    pub fn code(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Email => "email",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "sms" => Some(Channel::Sms),
            "email" => Some(Channel::Email),
            _ => None,
        }
    }
}

/// The SMS gateway's request. In `url` the placeholders `{phone}` and `{text}` are
/// URL-encoded; in `body`, JSON-escaped when `content_type` is JSON, else
/// form-encoded. Any 2xx answer means the gateway took the message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SmsGateway {
    pub url: String,
    /// `POST` (default) or `GET`.
    pub method: String,
    /// The request body (none for a GET).
    pub body: Option<String>,
    /// Default `application/json`.
    pub content_type: String,
    /// Extra headers (the provider's credentials), `(name, value)`.
    pub headers: Vec<(String, String)>,
}

/// The SMTP server and the sender address of patients' mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailChannel {
    /// lettre's URL form: `smtp://host:25`, `smtps://user:password@host`.
    pub url: String,
    pub from: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CourierError {
    #[error("no {0} channel is configured")]
    NotConfigured(&'static str),
    #[error("the address does not read")]
    Address,
    #[error("the mail server refused or could not be reached: {0}")]
    Mail(String),
    #[error("the SMS gateway refused or could not be reached: {0}")]
    Sms(String),
}

struct Mail {
    transport: lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
    from: lettre::message::Mailbox,
}

/// See the module documentation. Cheap to clone.
#[derive(Clone, Default)]
pub struct Courier {
    mail: Option<Arc<Mail>>,
    sms: Option<Arc<SmsGateway>>,
    http: Option<reqwest::Client>,
}

impl std::fmt::Debug for Courier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Courier").field("mail", &self.mail.is_some()).field("sms", &self.sms.is_some()).finish()
    }
}

impl Courier {
    /// Checks the configuration: an SMTP URL or sender that does not read, or an SMS
    /// gateway URL that is not http(s), is an error at start-up.
    pub fn new(mail: Option<MailChannel>, sms: Option<SmsGateway>) -> Result<Courier, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mail = match mail {
            Some(m) => {
                let transport = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(&m.url)
                    .map_err(|e| format!("smtp_url: {e}"))?
                    .build();
                let from = m.from.parse().map_err(|e| format!("portal_mail_from: {e}"))?;
                Some(Arc::new(Mail { transport, from }))
            }
            None => None,
        };
        let (sms, http) = match sms {
            Some(mut g) => {
                if !(g.url.starts_with("http://") || g.url.starts_with("https://")) {
                    return Err("sms_gateway.url: an http:// or https:// URL".into());
                }
                g.method = if g.method.is_empty() { "POST".into() } else { g.method.to_ascii_uppercase() };
                if g.method != "POST" && g.method != "GET" {
                    return Err("sms_gateway.method: POST or GET".into());
                }
                if g.content_type.is_empty() {
                    g.content_type = "application/json".into();
                }
                let http = reqwest::Client::builder()
                    .timeout(std::time::Duration::from_secs(10))
                    .build()
                    .map_err(|e| format!("sms_gateway: {e}"))?;
                (Some(Arc::new(g)), Some(http))
            }
            None => (None, None),
        };
        Ok(Courier { mail, sms, http })
    }

    /// The channels configured, SMS first.
    pub fn channels(&self) -> Vec<Channel> {
        let mut out = Vec::new();
        if self.sms.is_some() {
            out.push(Channel::Sms);
        }
        if self.mail.is_some() {
            out.push(Channel::Email);
        }
        out
    }

    pub fn offers(&self, channel: Channel) -> bool {
        self.channels().contains(&channel)
    }

    /// Sends `text` (and `subject`, for mail) to `to`, a phone number or a mail
    /// address; returns once the server or gateway has taken it.
    pub async fn send(&self, channel: Channel, to: &str, subject: &str, text: &str) -> Result<(), CourierError> {
        match channel {
            Channel::Email => self.send_mail(to, subject, text).await,
            Channel::Sms => self.send_sms(to, text).await,
        }
    }

    async fn send_mail(&self, to: &str, subject: &str, text: &str) -> Result<(), CourierError> {
        use lettre::AsyncTransport;
        use lettre::message::SinglePart;
        use lettre::message::header::{ContentTransferEncoding, ContentType};
        let mail = self.mail.as_ref().ok_or(CourierError::NotConfigured("mail"))?;
        let to = to.parse().map_err(|_| CourierError::Address)?;
        let message = lettre::Message::builder()
            .from(mail.from.clone())
            .to(to)
            .subject(subject)
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .header(ContentTransferEncoding::Base64)
                    .body(text.to_string()),
            )
            .map_err(|_| CourierError::Address)?;
        // Only the server's reply code: its text often repeats the address.
        mail.transport.send(message).await.map(|_| ()).map_err(|e| {
            CourierError::Mail(match e.status() {
                Some(code) => format!("SMTP {code}"),
                None if e.is_timeout() => "timed out".into(),
                None => "not reached or refused the connection".into(),
            })
        })
    }

    async fn send_sms(&self, phone: &str, text: &str) -> Result<(), CourierError> {
        let (Some(g), Some(http)) = (self.sms.as_ref(), self.http.as_ref()) else {
            return Err(CourierError::NotConfigured("SMS"));
        };
        let url = fill(&g.url, phone, text, Escape::Url);
        let mut req = if g.method == "GET" { http.get(&url) } else { http.post(&url) };
        for (name, value) in &g.headers {
            req = req.header(name.as_str(), value.as_str());
        }
        if let Some(body) = &g.body {
            let escape = if g.content_type.contains("json") { Escape::Json } else { Escape::Url };
            req = req.header("content-type", g.content_type.as_str()).body(fill(body, phone, text, escape));
        }
        let answer = req.send().await.map_err(|e| CourierError::Sms(e.without_url().to_string()))?;
        if answer.status().is_success() {
            Ok(())
        } else {
            Err(CourierError::Sms(format!("HTTP {}", answer.status().as_u16())))
        }
    }
}

#[derive(Clone, Copy)]
enum Escape {
    Url,
    Json,
}

fn escaped(s: &str, how: Escape) -> String {
    match how {
        Escape::Json => {
            let quoted = serde_json::Value::String(s.to_string()).to_string();
            quoted[1..quoted.len() - 1].to_string()
        }
        Escape::Url => s
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(b).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect(),
    }
}

/// The template with `{phone}` and `{text}` filled in, escaped.
fn fill(template: &str, phone: &str, text: &str, how: Escape) -> String {
    template.replace("{phone}", &escaped(phone, how)).replace("{text}", &escaped(text, how))
}

/// A phone number as shown back to its owner: `138****5678`.
pub fn mask_phone(p: &str) -> String {
    let chars: Vec<char> = p.chars().collect();
    if chars.len() < 7 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

/// A mail address as shown back: `w***@example.com`.
pub fn mask_email(e: &str) -> String {
    match e.split_once('@') {
        Some((user, domain)) => format!("{}***@{domain}", user.chars().next().map(String::from).unwrap_or_default()),
        None => "***".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_escape_for_where_they_go() {
        assert_eq!(
            fill(r#"{"to":"{phone}","msg":"{text}"}"#, "13800138000", "码 \"AB\"\n", Escape::Json),
            r#"{"to":"13800138000","msg":"码 \"AB\"\n"}"#
        );
        assert_eq!(
            fill("https://g/send?m={phone}&t={text}", "+86 138", "a&b=码", Escape::Url),
            "https://g/send?m=%2B86%20138&t=a%26b%3D%E7%A0%81"
        );
    }

    #[test]
    fn contacts_are_masked() {
        assert_eq!(mask_phone("13800138000"), "138****8000");
        assert_eq!(mask_email("wang@example.com"), "w***@example.com");
    }

    #[test]
    fn an_unconfigured_channel_is_not_offered_and_a_bad_gateway_is_refused() {
        assert!(Courier::new(None, None).unwrap().channels().is_empty());
        let g = SmsGateway { url: "ftp://x".into(), ..Default::default() };
        assert!(Courier::new(None, Some(g)).is_err());
        let g = SmsGateway { url: "http://127.0.0.1:9/send".into(), ..Default::default() };
        assert_eq!(Courier::new(None, Some(g)).unwrap().channels(), vec![Channel::Sms]);
    }
}
