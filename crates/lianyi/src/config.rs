//! Settings: command line, then `LIANYI_*` environment variables, then the config
//! file (TOML), then defaults. Plain types, no macros; secrets are wrapped so that
//! `Debug` and log lines never show them.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A value that must never be printed (database URLs carry passwords).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The config file, every key optional. Example:
/// ```toml
/// listen = "0.0.0.0:8080"
/// data_dir = "/var/lib/lianyi"
/// database_url = "postgres://lianyi:secret@db/lianyi"
/// default_campus = "campus-east"
/// public_url = "https://his.example.org"
/// max_body_bytes = 16777216
/// audit_hash = "sm3"
/// session_idle_secs = 900
/// session_absolute_secs = 43200
/// lockout_attempts = 5
/// lockout_secs = 900
/// keys_file = "/etc/lianyi/keys"
/// cipher = "sm4-gcm"
/// tls_cert = "/etc/lianyi/tls/fullchain.pem"
/// tls_key = "/etc/lianyi/tls/key.pem"
/// login_rate_per_minute = 30
/// message_retention_days = 90
/// monitor_raw_days = 7
/// language = "zh-CN"        # what the platform writes into records: zh-CN or en
/// backup_dir = "/var/backups/lianyi"   # where `lianyi backup` writes (default: backups in the data dir)
/// backup_key_file = "/etc/lianyi/backup.key"   # kept apart from the data keys; LIANYI_BACKUP_KEY wins
/// pg_bin = "/usr/lib/postgresql/15/bin"        # pg_dump and pg_restore
/// backup_schedule = "0 2 * * *"   # cron, Beijing time (default nightly at 02:00); "off" to stop
/// backup_keep = 7                  # backups kept in each folder
/// backup_offsite_dir = "/mnt/nas/lianyi"       # a second folder every backup is copied to
/// critical_escalation_minutes = 10
/// near_expiry_days = 90
/// mllp_ack = "applied"
///
/// [booking]                 # patients' own bookings (the portal); these are the defaults
/// window_days = 14          # how far ahead
/// cutoff_minutes = 30       # online booking closes this long before the start
/// cancel_cutoff_minutes = 120
/// no_show_limit = 3         # missed appointments within no_show_days that close
/// no_show_days = 90         # online booking (0: no limit)
///
/// [mllp_profile]            # how the MLLP sender fills PID-3
/// mrn_type = "PI"           # the identifier type of the MRN (default: MR, else the first)
/// mrn_authority = "EAST"    # and/or its assigning authority
/// campuses = { EAST = "campus-east", WEST = "campus-west" }   # authority → campus
/// ```
/// `[sms_gateway]`: the provider's HTTP request, with `{phone}` and `{text}` filled in
/// (see [`lianyi_portal::courier::SmsGateway`]).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsGatewayFile {
    /// `https://sms.example.cn/send` (may hold `{phone}` and `{text}`).
    pub url: String,
    /// `POST` (default) or `GET`.
    pub method: Option<String>,
    /// `{"mobile":"{phone}","content":"{text}"}`.
    pub body: Option<String>,
    /// Default `application/json`.
    pub content_type: Option<String>,
    /// The provider's credentials, `{ Authorization = "Bearer …" }`.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, Secret>,
}

impl SmsGatewayFile {
    pub fn gateway(&self) -> lianyi_portal::courier::SmsGateway {
        lianyi_portal::courier::SmsGateway {
            url: self.url.clone(),
            method: self.method.clone().unwrap_or_default(),
            body: self.body.clone(),
            content_type: self.content_type.clone().unwrap_or_default(),
            headers: self.headers.iter().map(|(k, v)| (k.clone(), v.expose().to_string())).collect(),
        }
    }
}

/// `[booking]`: each rule, else its default.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookingFile {
    pub window_days: Option<u32>,
    pub cutoff_minutes: Option<u32>,
    pub cancel_cutoff_minutes: Option<u32>,
    pub no_show_limit: Option<u32>,
    pub no_show_days: Option<u32>,
}

impl BookingFile {
    pub fn rules(&self) -> lianyi_clinical::scheduling::BookingRules {
        let d = lianyi_clinical::scheduling::BookingRules::default();
        lianyi_clinical::scheduling::BookingRules {
            window_days: self.window_days.unwrap_or(d.window_days).clamp(0, 180),
            cutoff_minutes: self.cutoff_minutes.unwrap_or(d.cutoff_minutes),
            cancel_cutoff_minutes: self.cancel_cutoff_minutes.unwrap_or(d.cancel_cutoff_minutes),
            no_show_limit: self.no_show_limit.unwrap_or(d.no_show_limit),
            no_show_days: self.no_show_days.unwrap_or(d.no_show_days),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<Secret>,
    pub default_campus: Option<String>,
    pub public_url: Option<String>,
    pub max_body_bytes: Option<usize>,
    /// Audit chain hash: "sha256" (default) or "sm3".
    pub audit_hash: Option<String>,
    /// Failed logins before an account locks (default 5).
    pub lockout_attempts: Option<i64>,
    /// How long a lock lasts, in seconds (default 900).
    pub lockout_secs: Option<i64>,
    /// Session idle timeout in seconds (default 900).
    pub session_idle_secs: Option<i64>,
    /// Session absolute timeout in seconds (default 43200).
    pub session_absolute_secs: Option<i64>,
    /// Field-encryption key file (default: `keys` in the data dir; created if missing).
    /// `LIANYI_KEYS` (the file's content) takes precedence.
    pub keys_file: Option<PathBuf>,
    /// Cipher for new field-encryption keys: "aes-256-gcm" (default) or "sm4-gcm".
    pub cipher: Option<String>,
    /// HTTPS certificate chain and private key (PEM).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Login and token requests allowed per client address per minute (default 30).
    pub login_rate_per_minute: Option<u32>,
    /// Days the integration message log keeps finished messages (default 90).
    pub message_retention_days: Option<i64>,
    /// Days monitoring keeps raw samples before rolling them up into 5-minute and
    /// hourly buckets (default 7).
    pub monitor_raw_days: Option<i64>,
    /// The installation's language, `zh-CN` (default) or `en`: the texts the platform
    /// writes into records itself (monitoring's incidents) are in it.
    pub language: Option<String>,
    /// Where `lianyi backup` writes its files (default: `backups` in the data dir).
    pub backup_dir: Option<PathBuf>,
    /// The backup key (default: `backup.key` in the data dir, created on the first
    /// backup). `LIANYI_BACKUP_KEY` (the file's content) takes precedence. Keep a copy
    /// away from the machine: without it no backup restores.
    pub backup_key_file: Option<PathBuf>,
    /// PostgreSQL's client programs, for `pg_dump` and `pg_restore` (default
    /// `/usr/lib/postgresql/15/bin`, or `PG_BIN`).
    pub pg_bin: Option<PathBuf>,
    /// When the server makes its backups: a cron expression in Beijing time (default
    /// `0 2 * * *`, nightly at 02:00), or `off`.
    pub backup_schedule: Option<String>,
    /// How many backups stay in each folder (default 7).
    pub backup_keep: Option<i64>,
    /// A second folder (a mounted NAS) every backup is copied to.
    pub backup_offsite_dir: Option<PathBuf>,
    /// Minutes a critical value may wait for its doctor before it is escalated to the
    /// department heads (default 10).
    pub critical_escalation_minutes: Option<i64>,
    /// Days before its expiry from which the pharmacy flags a batch (default 90).
    pub near_expiry_days: Option<i64>,
    /// The rules of patients' own bookings on the portal.
    pub booking: Option<BookingFile>,
    /// The SMTP server the service desk mails its notifications through, as a URL:
    /// `smtp://host:25`, `smtp://user:password@host:587?tls=required`, `smtps://host`
    /// (none: notifications stay in the shell's inbox).
    pub smtp_url: Option<Secret>,
    /// The desk's sender address (default `Lianyi IT desk <itdesk@localhost>`).
    pub mail_from: Option<String>,
    /// The sender of patients' mail (their portal codes) through `smtp_url` (default
    /// `联医患者服务 <portal@localhost>`).
    pub portal_mail_from: Option<String>,
    /// `[sms_gateway]`: the HTTP request that sends an SMS (patients' portal codes);
    /// none: no SMS is offered.
    pub sms_gateway: Option<SmsGatewayFile>,
    /// When the MLLP listener sends AA for an ORU^R01: "applied" (default: once its
    /// data is written) or "journaled" (once the checked message is committed to the
    /// message log; its data is written moments later, in order, after a restart too).
    pub mllp_ack: Option<String>,
    /// A PostgreSQL hot standby (streaming replication from `database_url`) that
    /// serves searches and reads; see README "A standby for reads".
    pub read_database_url: Option<Secret>,
    /// How far behind (milliseconds) the standby may be before reads go to the
    /// primary (default 5000).
    pub read_max_lag_ms: Option<i64>,
    /// PostgreSQL standbys that take the primary's place once the DBA has promoted
    /// one, tried in order when the primary is lost (README "Failover").
    pub failover_database_urls: Option<Vec<Secret>>,
    /// How the MLLP sender fills PID-3 (which identifier is the MRN, which campus an
    /// assigning authority means).
    pub mllp_profile: Option<MllpProfile>,
    /// Where the DICOM node listens (as `--dicom-listen`).
    pub dicom_listen: Option<String>,
    /// The DICOM node's AE title (default `LIANYI`).
    pub dicom_ae_title: Option<String>,
}

/// `[mllp_profile]`: see [`lianyi_interop::v2_to_fhir::Pid3Profile`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MllpProfile {
    pub mrn_type: Option<String>,
    pub mrn_authority: Option<String>,
    #[serde(default)]
    pub campuses: std::collections::BTreeMap<String, String>,
}

impl MllpProfile {
    pub fn pid3(&self) -> Result<lianyi_interop::v2_to_fhir::Pid3Profile, lianyi_security::InvalidCampus> {
        let mut campuses = std::collections::BTreeMap::new();
        for (authority, campus) in &self.campuses {
            campuses.insert(authority.to_ascii_uppercase(), lianyi_security::CampusId::parse(campus)?);
        }
        Ok(lianyi_interop::v2_to_fhir::Pid3Profile {
            mrn_type: self.mrn_type.clone(),
            mrn_authority: self.mrn_authority.clone(),
            campuses,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config: audit_hash '{0}' is not supported (rule: sha256 or sm3)")]
    AuditHash(String),
    #[error("config: cipher '{0}' is not supported (rule: aes-256-gcm or sm4-gcm)")]
    Cipher(String),
    #[error("config: backup_schedule {0}")]
    BackupSchedule(String),
    #[error("config: backup_keep {0} (rule: 1 or more)")]
    BackupKeep(i64),
    #[error("config: language '{0}' is not supported (rule: zh-CN or en)")]
    Language(String),
    #[error("config: {0}")]
    Invalid(String),
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
}

impl FileConfig {
    pub fn cipher(&self) -> Result<lianyi_security::crypto::CipherAlg, ConfigError> {
        match &self.cipher {
            None => Ok(lianyi_security::crypto::CipherAlg::Aes256Gcm),
            Some(c) => lianyi_security::crypto::CipherAlg::parse(c).ok_or_else(|| ConfigError::Cipher(c.clone())),
        }
    }

    /// `zh-CN` (default) or `en`.
    pub fn language(&self) -> Result<String, ConfigError> {
        match self.language.as_deref().map(str::trim) {
            None => Ok("zh-CN".into()),
            Some(l) if l.eq_ignore_ascii_case("zh-CN") => Ok("zh-CN".into()),
            Some(l) if l.eq_ignore_ascii_case("en") => Ok("en".into()),
            Some(l) => Err(ConfigError::Language(l.to_string())),
        }
    }

    /// The backup schedule (`None`: off).
    pub fn backup_schedule(&self) -> Result<Option<lianyi_ops::cron::Cron>, ConfigError> {
        match self.backup_schedule.as_deref().map(str::trim) {
            Some("off") => Ok(None),
            Some(text) => lianyi_ops::cron::Cron::parse(text).map(Some).map_err(ConfigError::BackupSchedule),
            None => Ok(lianyi_ops::cron::Cron::parse("0 2 * * *").ok()),
        }
    }

    pub fn read_database(&self) -> Result<Option<lianyi_web::ReadDatabase>, ConfigError> {
        let Some(url) = &self.read_database_url else { return Ok(None) };
        let lag = self.read_max_lag_ms.unwrap_or(5_000);
        if !(0..=3_600_000).contains(&lag) {
            return Err(ConfigError::Invalid(format!("read_max_lag_ms = {lag}: from 0 to 3600000 milliseconds")));
        }
        if !url.expose().starts_with("postgres") {
            return Err(ConfigError::Invalid("read_database_url: a postgres:// URL".into()));
        }
        Ok(Some(lianyi_web::ReadDatabase {
            url: url.expose().to_string(),
            max_lag: std::time::Duration::from_millis(lag.unsigned_abs()),
        }))
    }

    pub fn failover_databases(&self) -> Result<Vec<String>, ConfigError> {
        let urls: Vec<String> = self.failover_database_urls.iter().flatten().map(|u| u.expose().to_string()).collect();
        if urls.iter().any(|u| !u.starts_with("postgres")) {
            return Err(ConfigError::Invalid("failover_database_urls: postgres:// URLs".into()));
        }
        Ok(urls)
    }

    pub fn backup_keep(&self) -> Result<usize, ConfigError> {
        match self.backup_keep {
            None => Ok(7),
            Some(n) if n >= 1 => Ok(n as usize),
            Some(n) => Err(ConfigError::BackupKeep(n)),
        }
    }

    pub fn backup_dir(&self, data_dir: &Path) -> PathBuf {
        self.backup_dir.clone().unwrap_or_else(|| data_dir.join("backups"))
    }

    pub fn backup_key_file(&self, data_dir: &Path) -> PathBuf {
        self.backup_key_file.clone().unwrap_or_else(|| data_dir.join("backup.key"))
    }

    pub fn pg_bin(&self) -> PathBuf {
        self.pg_bin
            .clone()
            .or_else(|| std::env::var_os("PG_BIN").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
    }

    pub fn keys_file(&self, data_dir: &Path) -> PathBuf {
        self.keys_file.clone().unwrap_or_else(|| data_dir.join("keys"))
    }

    pub fn policy(&self) -> lianyi_security::users::SecurityPolicy {
        let d = lianyi_security::users::SecurityPolicy::default();
        lianyi_security::users::SecurityPolicy {
            lockout_attempts: self.lockout_attempts.unwrap_or(d.lockout_attempts).max(1),
            lockout_ms: self.lockout_secs.map_or(d.lockout_ms, |s| s.max(1) * 1000),
            idle_timeout_ms: self.session_idle_secs.map_or(d.idle_timeout_ms, |s| s.max(1) * 1000),
            absolute_timeout_ms: self.session_absolute_secs.map_or(d.absolute_timeout_ms, |s| s.max(1) * 1000),
        }
    }

    pub fn audit_hash(&self) -> Result<lianyi_security::ChainAlg, ConfigError> {
        match &self.audit_hash {
            None => Ok(lianyi_security::ChainAlg::default()),
            Some(name) => lianyi_security::ChainAlg::parse(name).ok_or_else(|| ConfigError::AuditHash(name.clone())),
        }
    }

    pub fn load(path: Option<&Path>) -> Result<FileConfig, ConfigError> {
        let Some(path) = path else { return Ok(FileConfig::default()) };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })
    }
}

/// Where the data lives, resolved.
#[derive(Clone, Debug)]
pub struct DataLocation {
    pub data_dir: PathBuf,
    pub database_url: Secret,
}

impl DataLocation {
    /// `--database` wins; otherwise `sqlite://<data dir>/lianyi.db`. The data dir is
    /// created when missing.
    pub fn resolve(
        data_dir: Option<PathBuf>,
        database: Option<Secret>,
        file: &FileConfig,
    ) -> Result<Self, ConfigError> {
        let data_dir = data_dir.or_else(|| file.data_dir.clone()).unwrap_or_else(|| PathBuf::from("lianyi-data"));
        std::fs::create_dir_all(&data_dir).map_err(|source| ConfigError::DataDir { path: data_dir.clone(), source })?;
        let database_url = database
            .or_else(|| file.database_url.clone())
            .unwrap_or_else(|| Secret::new(format!("sqlite://{}", data_dir.join("lianyi.db").display())));
        Ok(DataLocation { data_dir, database_url })
    }

    /// The database URL with any password masked, for messages.
    pub fn display_url(&self) -> String {
        mask_password(self.database_url.expose())
    }
}

/// `postgres://user:pw@host/db` → `postgres://user:***@host/db`.
pub fn mask_password(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((creds, host)) = rest.split_once('@')
        && let Some((user, _)) = creds.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("postgres://u:hunter2@h/db");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(mask_password(s.expose()), "postgres://u:***@h/db");
        assert_eq!(mask_password("sqlite://data/lianyi.db"), "sqlite://data/lianyi.db");
    }

    #[test]
    fn the_sms_gateway_reads_from_the_file_and_its_credentials_do_not_print() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        let text = "[sms_gateway]\nurl = \"https://sms.example.cn/send\"\nbody = '{\"m\":\"{phone}\",\"c\":\"{text}\"}'\n\
                    headers = { Authorization = \"Bearer s3cret\" }\n";
        std::fs::write(&p, text).unwrap();
        let f = FileConfig::load(Some(&p)).unwrap();
        assert!(!format!("{f:?}").contains("s3cret"));
        let g = f.sms_gateway.unwrap().gateway();
        assert_eq!(g.url, "https://sms.example.cn/send");
        assert_eq!(g.body.as_deref(), Some(r#"{"m":"{phone}","c":"{text}"}"#));
        assert_eq!(g.headers, vec![("Authorization".to_string(), "Bearer s3cret".to_string())]);
        std::fs::write(&p, "[sms_gateway]\nurl = \"https://x\"\ntoken = \"t\"\n").unwrap();
        assert!(FileConfig::load(Some(&p)).unwrap_err().to_string().contains("token"));
    }

    #[test]
    fn file_config_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "listen = \"0.0.0.0:1\"\nlisten_port = 3\n").unwrap();
        let e = FileConfig::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("listen_port"), "{e}");
    }

    #[test]
    fn backups_run_nightly_unless_scheduled_otherwise_or_off() {
        let with = |s: Option<&str>| FileConfig { backup_schedule: s.map(str::to_string), ..FileConfig::default() };
        assert_eq!(with(None).backup_schedule().unwrap().unwrap().text(), "0 2 * * *");
        assert!(with(Some("off")).backup_schedule().unwrap().is_none());
        assert_eq!(with(Some("30 1 * * 0")).backup_schedule().unwrap().unwrap().text(), "30 1 * * 0");
        let e = with(Some("0 25 * * *")).backup_schedule().unwrap_err().to_string();
        assert!(e.contains("backup_schedule") && e.contains("hour '25'"), "{e}");
        let e = FileConfig { backup_keep: Some(0), ..FileConfig::default() }.backup_keep().unwrap_err().to_string();
        assert!(e.contains("backup_keep 0"), "{e}");
    }

    #[test]
    fn the_installation_language_is_chinese_unless_english_and_nothing_else() {
        let with = |l: Option<&str>| FileConfig { language: l.map(str::to_string), ..FileConfig::default() }.language();
        assert_eq!(with(None).unwrap(), "zh-CN");
        assert_eq!(with(Some("en")).unwrap(), "en");
        assert_eq!(with(Some("zh-cn")).unwrap(), "zh-CN");
        let e = with(Some("fr")).unwrap_err().to_string();
        assert!(e.contains("language 'fr'") && e.contains("zh-CN or en"), "{e}");
    }
}
