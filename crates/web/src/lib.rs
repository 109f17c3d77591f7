//! The HTTP edge: the FHIR API, the pages, the integration hub and the MLLP
//! listener, `/healthz` and `/metrics`.
//!
//! One folder per area (`fhir/`, `account/`, `audit/`, `clinic/`, `integration/`,
//! `health/`), each with its own `router()`, templates (`templates/<area>/`) and
//! texts (`locales/<area>/`); `ui/` holds what they share (session and its
//! extractor, shell and navigation, languages, errors, layers). Areas import `ui/`
//! and the services, never each other (`scripts/check-layers` checks it);
//! [`routes`] merges them. Handlers parse the request, call one service function and
//! render the result. `App::build` wires the store and services from a config;
//! `App::run` serves on a listener, so tests and benchmarks start the real server on
//! port 0 (STYLE.md habit 3).
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod account;
mod accounts;
mod audit;
mod billing;
mod clinic;
mod fhir;
mod health;
mod imaging;
mod integration;
mod manage;
mod ops;
mod pharmacy;
mod portal;
mod routes;
mod ui;
mod ward;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use lianyi_security::crypto::{CipherAlg, FieldCipher, FileKeys, KeyProvider};
use lianyi_security::users::{SecurityPolicy, UserService};
use lianyi_security::{AuditLog, ChainAlg, ClientService};
use lianyi_services::protect::Protector;
use lianyi_services::{Clock, FhirService, IdSource, SystemClock, UuidIds};
use lianyi_store::Store;
use tokio::net::TcpListener;

pub use health::install_metrics;
pub use imaging::node::serve_dicom;
pub use integration::mllp;
pub use ops::monitor::phrases as monitor_phrases;

/// What the server needs to start; built by the binary from file, environment and
/// command line.
#[derive(Clone, Debug)]
pub struct AppConfig {
    pub database_url: String,
    /// Campus recorded on writes that do not name one.
    pub default_campus: Option<String>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Base URL clients use (`https://his.example.org`); derived from `Host` if unset.
    pub public_url: Option<String>,
    /// Hash function of the audit chain.
    pub audit_hash: ChainAlg,
    /// Lockout and session timeouts.
    pub policy: SecurityPolicy,
    /// Field-encryption key file (created when missing) and the cipher for new keys.
    pub keys_file: std::path::PathBuf,
    pub cipher: CipherAlg,
    /// Serve HTTPS with this certificate chain and key (PEM files).
    pub tls: Option<TlsFiles>,
    /// Login and token requests allowed per client address per minute.
    pub login_rate_per_minute: u32,
    /// Where bulk-export files are written (owner-only).
    pub export_dir: std::path::PathBuf,
    /// Where the DICOM node keeps instances (see [`lianyi_imaging`]).
    pub imaging_dir: std::path::PathBuf,
    /// Days the integration message log keeps finished messages.
    pub message_retention_days: i64,
    /// Days monitoring keeps raw samples before rolling them up.
    pub monitor_raw_days: i64,
    /// The backup schedule (a cron expression, Beijing time) when the server makes
    /// backups: the backup job is then a CI with a probe that alerts when the newest
    /// good backup is older than the schedule allows.
    pub backup_schedule: Option<String>,
    /// The installation's language (`zh-CN` or `en`): what the platform itself writes
    /// into records (monitoring's incidents) is written in it; each page still shows
    /// its user's language.
    pub language: String,
    /// Minutes a critical value waits for its doctor before escalation.
    pub critical_escalation_minutes: i64,
    /// Days before expiry from which the pharmacy flags a batch.
    pub near_expiry_days: i64,
    /// The rules of patients' own bookings (the portal).
    pub booking: lianyi_clinical::scheduling::BookingRules,
    /// The SMTP server the service desk's notifications are mailed through (none: the
    /// inbox in the shell only).
    pub mail: Option<MailConfig>,
    /// The sender of patients' mail (their portal codes), through `mail`'s server.
    pub portal_mail_from: Option<String>,
    /// The SMS gateway patients' codes are sent through (none: no SMS is offered).
    pub sms_gateway: Option<lianyi_portal::courier::SmsGateway>,
    /// A PostgreSQL hot standby that serves reads (see [`lianyi_store::standby`]).
    pub read_database: Option<ReadDatabase>,
    /// PostgreSQL standbys that take the primary's place once promoted, tried in
    /// order when the primary is lost.
    pub failover_databases: Vec<String>,
}

/// A read standby and how far behind it may be before reads go to the primary.
#[derive(Clone, Debug)]
pub struct ReadDatabase {
    pub url: String,
    pub max_lag: std::time::Duration,
}

/// Where the service desk's mail goes.
#[derive(Clone, Debug)]
pub struct MailConfig {
    /// `smtp://host:25`, `smtp://user:password@host:587?tls=required` or
    /// `smtps://host:465` (lettre's URL form).
    pub url: String,
    /// The sender, `运维服务台 <itdesk@hospital.cn>`.
    pub from: String,
}

/// PEM files for HTTPS.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

impl AppConfig {
    pub const DEFAULT_MAX_BODY: usize = 16 * 1024 * 1024;
}

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub fhir: FhirService,
    pub clients: ClientService,
    pub users: UserService,
    pub config: Arc<AppConfig>,
    pub started: Instant,
    /// Each campus's price list.
    pub prices: lianyi_billing::prices::PriceBook,
    /// Orders turned into charges (a watcher while the server runs), and open charges.
    pub charges: lianyi_billing::charges::Charger,
    /// Payments and invoices.
    pub cashier: lianyi_billing::cashier::Cashier,
    /// Deposits (预交金) of inpatient stays.
    pub deposits: lianyi_billing::deposits::Deposits,
    /// The pharmacy's stores and stock.
    pub stock: lianyi_billing::stock::StockRoom,
    /// The pharmacist's queue and dispensing.
    pub dispensary: lianyi_billing::dispensing::Dispensary,
    /// The configuration database of IT operations.
    pub cmdb: lianyi_ops::cmdb::Cmdb,
    /// The IT service desk.
    pub desk: lianyi_ops::desk::Desk,
    /// The support groups' webhooks.
    pub hooks: lianyi_ops::hooks::GroupHooks,
    /// The service desk's problems.
    pub problems: lianyi_ops::problems::Problems,
    /// The service desk's changes and change board.
    pub changes: lianyi_ops::changes::Changes,
    /// The service desk's statistics.
    pub stats: lianyi_ops::stats::Stats,
    /// The IT knowledge base.
    pub kb: lianyi_ops::kb::Kb,
    /// Monitoring: probes, alerts, the incidents they open.
    pub monitor: lianyi_ops::monitor::Monitor,
    /// Runs the central server's probes.
    pub checker: lianyi_monitor::check::Checker,
    /// What the process listens on: (protocol, address), for the IT home page.
    pub listeners: Arc<std::sync::Mutex<Vec<(String, String)>>>,
    /// Per-address budgets for the login and token endpoints.
    pub limits: Arc<ui::layers::RateLimiter>,
    /// Running and finished bulk exports.
    pub exports: lianyi_services::export::ExportJobs,
    /// Outbound channels, the message log, replay.
    pub outbound: lianyi_interop::Outbound,
    /// Registration and the patient index.
    pub registry: lianyi_clinical::registry::Registry,
    /// Schedules, slots, appointments, check-in and queues.
    pub scheduling: lianyi_clinical::scheduling::Scheduling,
    /// Diagnoses and allergies of the encounter workspace.
    pub workspace: lianyi_clinical::encounter::Workspace,
    /// Prescriptions with their safety checks.
    pub prescribing: lianyi_clinical::prescribing::Prescribing,
    /// Laboratory and imaging requests.
    pub ordering: lianyi_clinical::orders::Ordering,
    /// The critical-value loop.
    pub critical: lianyi_clinical::critical::CriticalValues,
    /// The patient's record across campuses, and clinical notes.
    pub record: lianyi_clinical::record::Record,
    /// Results entry, abnormal flags and trends.
    pub results: lianyi_clinical::results::Results,
    /// Imaging: the DICOM node's AE table, instances and studies.
    pub imaging: lianyi_imaging::Imaging,
    /// Rosters (排班): shift types, rules and each department's month.
    pub rosters: lianyi_manage::rosters::Rosters,
    /// Materials (物资): catalogue, stock, requisitions, high-value units.
    pub materials: lianyi_manage::materials::Materials,
    /// Medical equipment (设备): register, lifecycle, repairs.
    pub equipment: lianyi_manage::assets::Equipment,
    /// Inpatient care (住院): admission, the bed boards.
    pub inpatient: lianyi_inpatient::stays::Inpatient,
    /// Announcements with their audience and read receipts.
    pub notices: lianyi_manage::announcements::Notices,
    /// Staff (人事): department tree, titles, licences.
    pub staff: lianyi_manage::staff::StaffService,
    /// The group's and campuses' dashboards, from daily figures.
    pub dashboards: lianyi_manage::dashboards::Dashboards,
    /// The monthly performance sheets, scored by each campus's formula.
    pub sheets: lianyi_manage::sheets::Sheets,
    /// Messages between staff, and their live feed.
    pub messages: lianyi_manage::messages::Messages,
    /// Cancelled when the server starts to stop: long-lived responses (the live
    /// feeds) end, so the graceful shutdown does not wait for them.
    pub closing: tokio_util::sync::CancellationToken,
    /// Patients' feedback and complaints.
    pub feedback: lianyi_manage::feedback::Feedbacks,
    /// Patient portal accounts: the slip's activation code.
    pub portal_accounts: lianyi_portal::accounts::Accounts,
    /// Booking from the portal, across campuses.
    pub booking: lianyi_portal::booking::Booking,
    /// The patient's own record on the portal.
    pub my_record: lianyi_portal::record::MyRecord,
    /// Patients' questions to their care team, and the answers.
    pub care: lianyi_portal::messages::CareMessages,
    /// Guided triage from the portal.
    pub triage: lianyi_portal::triage::Triage,
    /// Patients' satisfaction surveys of their visits.
    pub surveys: lianyi_portal::survey::Surveys,
    /// Each area's pages in the navigation, in order ([`routes::NAV`]).
    nav: Arc<Vec<&'static [ui::shell::NavLink]>>,
}

/// A built application: database connected and migrated, ready to serve.
pub struct App {
    state: AppState,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("database: {0}")]
    Store(#[from] lianyi_store::StoreError),
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
    #[error("imaging: {0}")]
    Imaging(String),
    #[error("TLS certificate or key: {0}")]
    Tls(String),
    #[error("field-encryption keys: {0}")]
    Keys(#[from] lianyi_security::crypto::CryptoError),
    #[error("the service desk: {0}")]
    Desk(String),
    #[error("monitoring: {0}")]
    Monitor(String),
    #[error("the portal's mail or SMS: {0}")]
    Courier(String),
}

/// The field cipher for a key file.
pub fn field_cipher(
    keys_file: &std::path::Path,
    cipher: CipherAlg,
) -> Result<Arc<FieldCipher<dyn KeyProvider>>, AppError> {
    let keys: Box<dyn KeyProvider> = Box::new(FileKeys::open(keys_file, cipher)?);
    Ok(Arc::new(FieldCipher::new(keys)))
}

/// The TLS configuration of a certificate chain and key (PEM), for MLLP over TLS.
pub async fn tls_server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, AppError> {
    // rustls with the ring provider only (no C toolchain for aws-lc).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&files.cert, &files.key)
        .await
        .map_err(|e| AppError::Tls(e.to_string()))?;
    Ok(tls.get_inner())
}

/// The field protector for a key file.
pub fn protector(keys_file: &std::path::Path, cipher: CipherAlg) -> Result<Protector, AppError> {
    Ok(Protector::new(field_cipher(keys_file, cipher)?))
}

impl App {
    pub async fn build(config: AppConfig) -> Result<App, AppError> {
        let store = Store::connect(&config.database_url).await?;
        store.migrate().await?;
        let store = match &config.read_database {
            Some(r) => store.with_standby(&r.url, r.max_lag)?,
            None => store,
        };
        let store = if config.failover_databases.is_empty() {
            store
        } else {
            store.with_failover(&config.database_url, &config.failover_databases)?
        };
        App::with_store(store, config)
    }

    /// Uses an already connected and migrated store. Must be called on the tokio
    /// runtime (it starts the audit writer).
    pub fn with_store(store: Store, config: AppConfig) -> Result<App, AppError> {
        App::with_clock(store, config, Arc::new(SystemClock::default()))
    }

    /// Like [`App::with_store`] with a given clock (tests control time with it).
    pub fn with_clock(store: Store, config: AppConfig, clock: Arc<dyn Clock>) -> Result<App, AppError> {
        lianyi_fhir::schema::warm_up();
        lianyi_fhir::search_params::warm_up();
        install_metrics();
        let ids: Arc<dyn IdSource> = Arc::new(UuidIds);
        let audit = AuditLog::start(store.clone(), config.audit_hash);
        let clients = ClientService::new(store.clone(), audit.clone(), clock.clone());
        let cipher = field_cipher(&config.keys_file, config.cipher)?;
        let users =
            UserService::new(store.clone(), audit.clone(), clock.clone(), config.policy).with_cipher(cipher.clone());
        let protect = Protector::new(cipher);
        // The clinical rules that need stored data hold on every door into the record.
        let fhir = FhirService::new(store, clock, ids, config.default_campus.clone(), audit, protect)
            .with_rules(lianyi_clinical::rules::all());
        let outbound =
            lianyi_interop::Outbound::new(fhir.clone(), config.default_campus.as_deref().unwrap_or("lianyi"));
        let limits = Arc::new(ui::layers::RateLimiter::new(config.login_rate_per_minute));
        let registry = lianyi_clinical::registry::Registry::new(fhir.clone());
        let prices = lianyi_billing::prices::PriceBook::new(fhir.clone());
        let charges = lianyi_billing::charges::Charger::new(fhir.clone());
        let cashier = lianyi_billing::cashier::Cashier::new(fhir.clone());
        let deposits = lianyi_billing::deposits::Deposits::new(fhir.clone());
        let stock = lianyi_billing::stock::StockRoom::new(fhir.clone()).with_near_expiry_days(config.near_expiry_days);
        let dispensary = lianyi_billing::dispensing::Dispensary::new(fhir.clone());
        let cmdb = lianyi_ops::cmdb::Cmdb::new(fhir.clone());
        let desk = lianyi_ops::desk::Desk::new(fhir.clone()).map_err(|e| AppError::Desk(e.to_string()))?;
        let hooks = lianyi_ops::hooks::GroupHooks::new(fhir.clone());
        let problems = lianyi_ops::problems::Problems::new(fhir.clone());
        let changes = lianyi_ops::changes::Changes::new(fhir.clone());
        let stats = lianyi_ops::stats::Stats::new(fhir.clone(), desk.clone());
        let kb = lianyi_ops::kb::Kb::new(fhir.clone());
        let monitor =
            lianyi_ops::monitor::Monitor::new(fhir.clone(), desk.clone(), ops::monitor::phrases(&config.language))
                .with_raw_days(config.monitor_raw_days)
                .with_backup_schedule(
                    config.backup_schedule.as_deref().and_then(|s| lianyi_ops::cron::Cron::parse(s).ok()).as_ref(),
                );
        let checker = lianyi_monitor::check::Checker::new().map_err(|e| AppError::Monitor(e.to_string()))?;
        let scheduling = lianyi_clinical::scheduling::Scheduling::new(fhir.clone()).with_rules(config.booking);
        let courier = lianyi_portal::courier::Courier::new(
            config.mail.as_ref().map(|m| lianyi_portal::courier::MailChannel {
                url: m.url.clone(),
                from: config.portal_mail_from.clone().unwrap_or_else(|| "联医患者服务 <portal@localhost>".into()),
            }),
            config.sms_gateway.clone(),
        )
        .map_err(AppError::Courier)?;
        let portal_accounts = lianyi_portal::accounts::Accounts::new(fhir.clone(), users.clone(), courier);
        let portal_channels_empty = portal_accounts.channels().is_empty();
        let booking = lianyi_portal::booking::Booking::new(fhir.clone(), scheduling.clone());
        let my_record = lianyi_portal::record::MyRecord::new(fhir.clone());
        let care = lianyi_portal::messages::CareMessages::new(fhir.clone(), scheduling.clone());
        let triage = lianyi_portal::triage::Triage::new(booking.clone());
        let surveys = lianyi_portal::survey::Surveys::new(fhir.clone());
        let workspace = lianyi_clinical::encounter::Workspace::new(fhir.clone());
        let prescribing = lianyi_clinical::prescribing::Prescribing::new(fhir.clone());
        let ordering = lianyi_clinical::orders::Ordering::new(fhir.clone());
        let record = lianyi_clinical::record::Record::new(fhir.clone());
        let results = lianyi_clinical::results::Results::new(fhir.clone());
        let imaging = lianyi_imaging::Imaging::new(fhir.clone(), config.imaging_dir.clone())
            .map_err(|e| AppError::Imaging(e.to_string()))?;
        let rosters = lianyi_manage::rosters::Rosters::new(fhir.clone());
        let materials = lianyi_manage::materials::Materials::new(fhir.clone());
        let equipment = lianyi_manage::assets::Equipment::new(fhir.clone());
        let inpatient = lianyi_inpatient::stays::Inpatient::new(fhir.clone());
        let notices = lianyi_manage::announcements::Notices::new(fhir.clone());
        let staff = lianyi_manage::staff::StaffService::new(fhir.clone());
        let dashboards = lianyi_manage::dashboards::Dashboards::new(fhir.clone());
        let sheets = lianyi_manage::sheets::Sheets::new(fhir.clone());
        let messages = lianyi_manage::messages::Messages::new(fhir.clone());
        let feedback = lianyi_manage::feedback::Feedbacks::new(fhir.clone());
        let critical = lianyi_clinical::critical::CriticalValues::new(
            fhir.clone(),
            config.critical_escalation_minutes.max(1) * 60_000,
        );
        Ok(App {
            state: AppState {
                fhir,
                clients,
                users,
                config: Arc::new(config),
                started: Instant::now(),
                prices,
                charges,
                cashier,
                deposits,
                stock,
                dispensary,
                cmdb,
                desk,
                hooks,
                problems,
                changes,
                stats,
                kb,
                monitor,
                checker,
                listeners: Default::default(),
                limits,
                exports: Default::default(),
                outbound,
                registry,
                scheduling,
                workspace,
                prescribing,
                ordering,
                critical,
                record,
                results,
                imaging,
                rosters,
                materials,
                equipment,
                inpatient,
                notices,
                staff,
                dashboards,
                sheets,
                messages,
                closing: tokio_util::sync::CancellationToken::new(),
                feedback,
                portal_accounts,
                booking,
                my_record,
                care,
                triage,
                surveys,
                nav: Arc::new(routes::nav(!portal_channels_empty)),
            },
        })
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Records a listener (`HTTP`, `MLLP` …) for the IT engineers' home page.
    pub fn note_listener(&self, protocol: &str, addr: impl std::fmt::Display) {
        if let Ok(mut l) = self.state.listeners.lock() {
            l.push((protocol.to_string(), addr.to_string()));
        }
    }

    /// What the running server knows of itself, for the configuration database.
    fn platform(&self) -> lianyi_ops::platform::Platform {
        let listeners = self.state.listeners.lock().map(|l| l.clone()).unwrap_or_default();
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "localhost".into());
        let engine = match self.state.fhir.operations().backend() {
            lianyi_store::Backend::Sqlite => "sqlite",
            lianyi_store::Backend::Postgres => "postgresql",
        };
        lianyi_ops::platform::Platform {
            host,
            http: listeners.iter().find(|(p, _)| p.starts_with("HTTP")).map(|(_, a)| a.clone()).unwrap_or_default(),
            database: engine.to_string(),
            listeners: listeners.into_iter().filter(|(p, _)| p.starts_with("MLLP")).collect(),
            backup_schedule: self.state.config.backup_schedule.clone(),
        }
    }

    /// Registers the platform in its configuration database now (the running server
    /// keeps it current), so its CIs can be given probes before it serves.
    pub async fn register_platform(&self) -> Result<usize, lianyi_ops::cmdb::CmdbError> {
        let n = self.state.cmdb.register(&self.platform()).await?;
        self.watch_backups().await;
        Ok(n)
    }

    /// Gives the backup job its probe when backups are scheduled.
    async fn watch_backups(&self) {
        if self.state.config.backup_schedule.is_some()
            && let Err(e) = self.state.monitor.watch_backups().await
        {
            tracing::warn!(error = %e, "watching the backups");
        }
    }

    pub fn router(&self) -> Router {
        routes::router(self.state.clone())
    }

    /// Serves (HTTPS when the config names certificate files) until `shutdown`
    /// completes, then closes the database pools.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let store = self.state.fhir.operations();
        // Outbound channels deliver while the server runs; undelivered messages wait
        // in the database for the next start.
        let dispatcher = tokio::spawn(lianyi_interop::Dispatcher::new(self.state.outbound.clone()).run());
        // Critical values are checked while the server runs; its cursor survives restarts.
        let watcher = tokio::spawn(self.state.critical.clone().run());
        // Orders are charged while the server runs; its cursor survives restarts.
        let charger = tokio::spawn(self.state.charges.clone().run());
        // The dashboards' daily figures follow the records; their cursor survives restarts.
        let figures = tokio::spawn(self.state.dashboards.clone().run());
        // SLA warnings and escalations, and the desk's mail, while the server runs.
        let sla = tokio::spawn(ops::notices::watch_sla(self.state.clone(), std::time::Duration::from_secs(60)));
        // The central server's probes, checked for due ones every second.
        let prober = tokio::spawn(ops::monitor::run_probes(self.state.clone(), std::time::Duration::from_secs(1)));
        let mailer =
            self.state.config.mail.clone().map(|m| tokio::spawn(ops::notices::send_mail(self.state.clone(), m)));
        // The support groups' webhook posts.
        let poster = tokio::spawn(ops::notices::send_hooks(self.state.clone()));
        // ImagingStudy resources follow the imaging index.
        let settler = tokio::spawn(self.state.imaging.clone().run_settler());
        // Inpatient stays' daily charges, after each Beijing midnight (and now).
        let postings = tokio::spawn(self.state.inpatient.clone().run_postings());
        if let Ok(addr) = listener.local_addr() {
            self.note_listener(if self.state.config.tls.is_some() { "HTTPS" } else { "HTTP" }, addr);
        }
        // The platform in its own configuration database, kept current while it runs.
        let registrar = lianyi_ops::platform::keep_registered(
            self.state.cmdb.clone(),
            self.platform(),
            std::time::Duration::from_secs(60),
        )
        .await;
        self.watch_backups().await;
        let service = self.router().into_make_service_with_connect_info::<std::net::SocketAddr>();
        let closing = self.state.closing.clone();
        let shutdown = async move {
            shutdown.await;
            closing.cancel();
        };
        match self.state.config.tls.clone() {
            None => axum::serve(listener, service).with_graceful_shutdown(shutdown).await?,
            Some(files) => {
                // rustls with the ring provider only (no C toolchain for aws-lc).
                let _ = rustls::crypto::ring::default_provider().install_default();
                let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&files.cert, &files.key)
                    .await
                    .map_err(|e| AppError::Tls(e.to_string()))?;
                let handle = axum_server::Handle::new();
                let stopper = handle.clone();
                tokio::spawn(async move {
                    shutdown.await;
                    stopper.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
                });
                axum_server::from_tcp_rustls(listener.into_std()?, tls)?.handle(handle).serve(service).await?;
            }
        }
        dispatcher.abort();
        registrar.abort();
        watcher.abort();
        charger.abort();
        figures.abort();
        sla.abort();
        prober.abort();
        poster.abort();
        settler.abort();
        postings.abort();
        if let Some(m) = mailer {
            m.abort();
        }
        store.close().await;
        Ok(())
    }
}
