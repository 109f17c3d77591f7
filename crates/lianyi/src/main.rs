//! `lianyi`: the one binary. Parses the command line and configuration, then hands
//! over to the services and the HTTP edge.
#![forbid(unsafe_code)]

mod backup;
mod collector;
mod config;
mod copy;
mod demo_billing;
mod demo_equipment;
mod demo_imaging;
mod demo_materials;
mod demo_notices;
mod demo_ops;
mod demo_rosters;
mod demo_staff;
mod demo_wards;

/// mimalloc: glibc's malloc took a third of the server's CPU under many small,
/// short-lived allocations across threads (measured: BENCHMARKS.md, MLLP ingest).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use lianyi_security::{AuditLog, Caller, Clock, ManualClock, SystemTask};
use lianyi_services::import::{Progress, import_ndjson};
use lianyi_services::{FhirService, SystemClock, UuidIds, demo};
use lianyi_store::Store;
use lianyi_store::audit::ChainStatus;
use lianyi_web::{App, AppConfig};
use tokio::net::TcpListener;

use crate::config::{DataLocation, FileConfig, Secret};

#[derive(Parser)]
#[command(name = "lianyi", version, about = "Lianyi (联医) hospital information platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the data lives; the same options on every command that touches data.
#[derive(Args, Clone, Debug)]
struct DataArgs {
    /// Folder for the embedded database and other files.
    #[arg(long, env = "LIANYI_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER:PASSWORD@HOST/DB (default: SQLite in the data dir).
    #[arg(long, env = "LIANYI_DATABASE_URL", hide_env_values = true)]
    database: Option<String>,
    /// TOML config file; command-line options and LIANYI_* variables override it.
    #[arg(long, env = "LIANYI_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the platform.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "LIANYI_LISTEN")]
        listen: Option<String>,
        /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// Private key (PEM) of --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Also accept HL7 v2 over MLLP on this address (e.g. 0.0.0.0:2575).
        #[arg(long, env = "LIANYI_MLLP_LISTEN")]
        mllp_listen: Option<String>,
        /// The campus whose MRNs and visits the MLLP messages carry (default: the
        /// configured default campus).
        #[arg(long)]
        mllp_campus: Option<String>,
        /// Require TLS on the MLLP port, with the HTTPS certificate (--tls-cert/--tls-key
        /// or the config's tls_cert/tls_key).
        #[arg(long, requires = "mllp_listen")]
        mllp_tls: bool,
        /// Also run the DICOM node on this address (e.g. 0.0.0.0:11112): C-ECHO,
        /// C-STORE, C-FIND, C-MOVE, C-GET and the worklist for the application entities
        /// of the AE table (`lianyi ae`).
        #[arg(long, env = "LIANYI_DICOM_LISTEN")]
        dicom_listen: Option<String>,
        /// The DICOM node's AE title (callers must call it; default LIANYI).
        #[arg(long, env = "LIANYI_DICOM_AE_TITLE")]
        dicom_ae_title: Option<String>,
        /// DICOM over TLS on the node's port, with the HTTPS certificate (--tls-cert/--tls-key
        /// or the config's tls_cert/tls_key).
        #[arg(long)]
        dicom_tls: bool,
        /// A PostgreSQL hot standby of the database that serves searches and reads
        /// (the config's read_database_url).
        #[arg(long, env = "LIANYI_READ_DATABASE_URL", hide_env_values = true)]
        read_database: Option<String>,
        /// A PostgreSQL standby that becomes the database once promoted, when the
        /// primary is lost (repeat for several, tried in order; the config's
        /// failover_database_urls).
        #[arg(long = "failover-database")]
        failover_databases: Vec<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Serve a fresh SQLite database filled with the demo hospital group.
    Demo {
        #[arg(long, env = "LIANYI_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Folder for the demo database (recreated on every start).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Where the demo's HL7 v2 (MLLP) listener for East Campus listens.
        #[arg(long, default_value = "127.0.0.1:2575")]
        mllp_listen: String,
        /// Where the demo's DICOM node (AE title LIANYI) listens.
        #[arg(long, default_value = "127.0.0.1:11112")]
        dicom_listen: String,
        /// Days of past outpatient visits (charged, paid, dispensed) to replay before
        /// today, 0 to 730.
        #[arg(long, default_value_t = 30)]
        history_days: i64,
    },
    /// Apply pending database migrations.
    Migrate {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Rebuild the search-index rows of every stored resource (after an upgrade that
    /// changed the indexing rules; `serve` also does it at start when needed).
    Reindex {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Load FHIR NDJSON files (a folder of *.ndjson or one file), keeping ids and references.
    Import {
        /// Folder or file to import.
        path: PathBuf,
        /// Campus that owns the imported resources.
        #[arg(long)]
        campus: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// People who log in.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// The DICOM node's application entities: who may send and query, for which campus.
    Ae {
        #[command(subcommand)]
        command: AeCommand,
    },
    /// API clients (OAuth2 client credentials).
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// Field-encryption keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Make an encrypted, verifiable backup while the server runs (SQLite through
    /// VACUUM INTO, PostgreSQL through pg_dump); the last line printed is the file.
    #[command(args_conflicts_with_subcommands = true)]
    Backup {
        #[command(subcommand)]
        command: Option<BackupCommand>,
        /// The folder to write to (default: the config's backup_dir, else `backups`
        /// in the data dir).
        #[arg(long)]
        to: Option<PathBuf>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Restore a backup into an empty target: a data dir (SQLite) or an empty
    /// PostgreSQL database (--database); refuses to overwrite anything.
    Restore {
        /// The backup file.
        file: PathBuf,
        /// Where the data key file is written (default: the config's keys_file, else
        /// `keys` in the data dir).
        #[arg(long)]
        keys_to: Option<PathBuf>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Copy a whole installation into another, empty database (SQLite to PostgreSQL,
    /// or back), then check every table against the source and verify the audit
    /// chain; run it again to resume an interrupted copy. Stop the source's server
    /// first.
    Copy {
        /// The installation's database: sqlite://PATH, postgres://…, or a data folder.
        #[arg(long)]
        from: String,
        /// The empty database to copy into (the same forms).
        #[arg(long)]
        to: String,
        /// TOML config file (the audit chain's hash, the data key file).
        #[arg(long, env = "LIANYI_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Outbound channels: webhooks and HL7 v2 feeds (FHIR rest-hooks are Subscription
    /// resources).
    Channel {
        #[command(subcommand)]
        command: ChannelCommand,
    },
    /// The integration message log (inbound and outbound).
    Messages {
        #[command(subcommand)]
        command: MessagesCommand,
    },
    /// Run a campus's collector: the probes the central server assigns to its campus,
    /// near the devices, with results spooled on disk while the server is unreachable.
    Collector {
        /// The central server, e.g. https://lianyi.hospital.cn
        #[arg(long, env = "LIANYI_SERVER")]
        server: String,
        /// CLIENT_ID:CLIENT_SECRET of an API client with the lianyi:ops scope, bound to
        /// the collector's campus (`lianyi client add campus-west-collector --scope
        /// lianyi:ops --campus campus-west`).
        #[arg(long, env = "LIANYI_COLLECTOR_TOKEN", hide_env_values = true)]
        token: String,
        /// Where results wait until the server has stored them.
        #[arg(long, default_value = "collector-spool")]
        spool: PathBuf,
        /// Seconds between fetches of the probe assignments.
        #[arg(long, default_value_t = 60)]
        refresh: u64,
    },
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum BackupCommand {
    /// A restore drill: backup, verify, restore into a scratch target and compare,
    /// each step timed (the recovery time of a continuity plan).
    Drill {
        /// The folder the drill's backup is written to.
        #[arg(long)]
        to: Option<PathBuf>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Decrypt a backup, restore it into a scratch database, check every table against
    /// its manifest and verify the audit chain.
    Verify {
        file: PathBuf,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand)]
enum ChannelCommand {
    /// Add a channel; it delivers changes committed from now on. A webhook's signing
    /// secret is printed once.
    Add {
        /// Short name: lower-case letters, digits, dashes ("lab-adt").
        id: String,
        /// webhook (HTTP POST of a JSON event) or mllp (HL7 v2).
        #[arg(long)]
        kind: String,
        /// http(s)://host:port/path for webhooks, host:port for MLLP.
        #[arg(long)]
        endpoint: String,
        /// Resource types ("Patient,Observation"; empty: all, webhooks only) or one FHIR
        /// search ("Observation?code=http://loinc.org|2823-3").
        #[arg(long, default_value = "")]
        criteria: String,
        /// Only changes owned by this campus (and shared directory data).
        #[arg(long)]
        campus: Option<String>,
        /// Extra HTTP header "Name: value" (repeat for several).
        #[arg(long = "header")]
        headers: Vec<String>,
        /// Attempts before a delivery becomes a dead letter.
        #[arg(long, default_value_t = lianyi_interop::ChannelSpec::DEFAULT_MAX_ATTEMPTS)]
        max_attempts: i64,
        /// First retry delay; doubled after each failed attempt.
        #[arg(long, default_value_t = lianyi_interop::ChannelSpec::DEFAULT_BACKOFF_MS)]
        backoff_ms: i64,
        /// Longest retry delay.
        #[arg(long, default_value_t = lianyi_interop::ChannelSpec::DEFAULT_MAX_BACKOFF_MS)]
        max_backoff_ms: i64,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List channels with their queue depth, dead letters and last success.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Pause a channel (its changes wait in the outbox).
    Disable {
        id: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Resume a paused channel.
    Enable {
        id: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Queue every dead letter of a channel again.
    ReplayDead {
        id: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand)]
enum MessagesCommand {
    /// Newest messages first.
    List {
        /// in or out.
        #[arg(long)]
        direction: Option<String>,
        /// received, accepted, error, rejected, duplicate, failed, pending, delivered, dead.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        channel: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[command(flatten)]
        data: DataArgs,
    },
    /// One message with its payload and ACK or response.
    Show {
        id: i64,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Send outbound messages again (same idempotency key).
    Replay {
        #[arg(required = true)]
        ids: Vec<i64>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Delete finished messages older than the retention period.
    Prune {
        #[arg(long, default_value_t = 90)]
        keep_days: i64,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account; prints a one-time initial password that must be changed,
    /// and a second factor is enrolled, at first login.
    Add {
        username: String,
        /// Name shown on pages and printouts.
        #[arg(long)]
        name: String,
        /// ROLE@CAMPUS (campus `*` for every campus); repeat for several. Roles:
        /// registrar, doctor, nurse, pharmacist, lab-technician, radiologist, cashier, stock-keeper,
        /// manager, it-engineer, it-manager, administrator, privacy-officer, patient.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// For patient accounts: their Patient id.
        #[arg(long)]
        patient: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List accounts with their roles and state.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Disable an account and end its sessions.
    Disable {
        username: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Remove an account's second factor; it enrols again at next login.
    ResetMfa {
        username: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand)]
enum AeCommand {
    /// Add an application entity, or change it.
    Put {
        /// Its AE title (what it calls itself).
        title: String,
        /// The campus what it sends belongs to (its PatientIDs are that campus's MRNs).
        #[arg(long)]
        campus: String,
        /// The IP address it connects from and is reached at (default: any address).
        #[arg(long, default_value = "")]
        host: String,
        /// Its own storage port (for C-MOVE to it).
        #[arg(long, default_value = "")]
        port: String,
        #[arg(long, default_value = "")]
        description: String,
        /// The character set of its data sets when they name none (GB18030, GBK …).
        #[arg(long, default_value = "")]
        charset: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List the application entities.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Remove an application entity.
    Remove {
        title: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register a client; prints its id and secret as JSON (the secret is shown only now).
    Add {
        /// A name for people: which system this is ("lab-interface").
        name: String,
        /// Space-separated SMART scopes, e.g. "system/Patient.rs system/Observation.cruds".
        #[arg(long)]
        scope: String,
        /// Campus whose data the client may touch (repeat for several; default: all).
        #[arg(long = "campus")]
        campuses: Vec<String>,
        /// Limit the client to one patient's compartment.
        #[arg(long)]
        patient: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List clients (never their secrets).
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Disable a client and revoke its tokens.
    Disable {
        name: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Add a new data key and re-encrypt every protected field with it, while the
    /// server keeps running (it learns the new key on first sight).
    Rotate {
        /// Cipher of the new key: aes-256-gcm or sm4-gcm (default: the config's).
        #[arg(long)]
        cipher: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Re-compute the audit hash chain; exits 1 naming the first record that was
    /// changed, deleted or reordered.
    Verify {
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    App(#[from] lianyi_web::AppError),
    #[error(transparent)]
    Store(#[from] lianyi_store::StoreError),
    #[error(transparent)]
    Import(#[from] lianyi_services::import::ImportError),
    #[error(transparent)]
    Service(#[from] lianyi_services::fhir::ServiceError),
    #[error(transparent)]
    Cmdb(#[from] lianyi_ops::cmdb::CmdbError),
    #[error("monitoring: {0}")]
    Monitor(#[from] lianyi_ops::monitor::MonitorError),
    #[error("the collector: {0}")]
    Collector(#[from] collector::CollectorError),
    #[error(transparent)]
    Desk(#[from] lianyi_ops::desk::DeskError),
    #[error(transparent)]
    Kb(#[from] lianyi_ops::kb::KbError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error(transparent)]
    Client(#[from] lianyi_security::clients::ClientError),
    #[error(transparent)]
    User(#[from] lianyi_security::users::UserError),
    #[error(transparent)]
    Outbound(#[from] lianyi_interop::OutboundError),
    #[error("backup: {0}")]
    Backup(#[from] backup::BackupError),
    #[error("{0}")]
    Usage(String),
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("LIANYI_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let json = std::env::var("LIANYI_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

/// What the backup commands need, from the data options and the config file. The
/// backup key is created on first use only when `create_key` (a backup, not a
/// restore).
fn backup_setup(data: DataArgs, create_key: bool) -> Result<(backup::Setup, DataLocation, FileConfig), CliError> {
    let file = FileConfig::load(data.config.as_deref())?;
    let loc = location(data, &file)?;
    let key_file = file.backup_key_file(&loc.data_dir);
    if !create_key && !key_file.exists() && std::env::var_os("LIANYI_BACKUP_KEY").is_none() {
        return Err(CliError::Usage(format!(
            "no backup key: put the key the backup was made with in {} or LIANYI_BACKUP_KEY",
            key_file.display()
        )));
    }
    let (backup_key, created) = backup::backup_key(&key_file, file.cipher()?)?;
    if created {
        eprintln!(
            "created the backup key {} — keep a copy away from this machine: without it no backup restores",
            key_file.display()
        );
    }
    let setup = backup::Setup {
        database_url: loc.database_url.expose().to_string(),
        keys_file: file.keys_file(&loc.data_dir),
        backup_key,
        hash: file.audit_hash()?,
        pg_bin: file.pg_bin(),
        imaging_dir: loc.data_dir.join("imaging"),
    };
    Ok((setup, loc, file))
}

/// Records a backup in the audit chain, as the operator's.
async fn audit_backup(
    setup: &backup::Setup,
    file: &FileConfig,
    action: &str,
    path: &std::path::Path,
) -> Result<(), CliError> {
    let detail = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    audit_operator(&setup.database_url, file.audit_hash()?, action, detail).await
}

/// Records a successful `action` of the operator's in the audit chain of `url`.
async fn audit_operator(
    url: &str,
    hash: lianyi_security::ChainAlg,
    action: &str,
    detail: String,
) -> Result<(), CliError> {
    let store = Store::connect(url).await?;
    let audit = AuditLog::start(store.clone(), hash);
    let mut e = cli_caller().entry(Clock::now_ms(&SystemClock::default()), action, "success");
    e.detail = Some(detail);
    audit.record(vec![e]).await.map_err(|e| CliError::Usage(format!("the audit record: {e}")))?;
    store.close().await;
    Ok(())
}

fn location(data: DataArgs, file: &FileConfig) -> Result<DataLocation, CliError> {
    Ok(DataLocation::resolve(data.data_dir, data.database.map(Secret::new), file)?)
}

async fn bind(addr: &str) -> Result<(TcpListener, SocketAddr), CliError> {
    let listener = TcpListener::bind(addr).await.map_err(|source| CliError::Listen { addr: addr.into(), source })?;
    let local = listener.local_addr().map_err(|source| CliError::Listen { addr: addr.into(), source })?;
    Ok((listener, local))
}

/// Starts the HL7 v2 listener on `addr` for `campus` (acknowledging from the journal
/// when `journaled`), registered with the outbound side for replays; returns the
/// address it listens on.
async fn start_mllp(
    app: &App,
    addr: &str,
    campus: &str,
    journaled: bool,
    tls: Option<Arc<rustls::ServerConfig>>,
    profile: lianyi_interop::v2_to_fhir::Pid3Profile,
) -> Result<SocketAddr, CliError> {
    let (listener, local) = bind(addr).await?;
    let mut inbound =
        lianyi_interop::Inbound::new(app.state().fhir.clone(), &format!("mllp:{local}"), campus, "+08:00")
            .with_profile(profile);
    if journaled {
        inbound = inbound.journaled();
        tokio::spawn(inbound.clone().run_applier());
    }
    app.state().outbound.register_inbound(inbound.clone());
    app.note_listener(if tls.is_some() { "MLLP/TLS" } else { "MLLP" }, local);
    tokio::spawn(lianyi_web::mllp::serve_mllp(listener, inbound, Default::default(), tls));
    Ok(local)
}

async fn start_dicom(
    app: &App,
    addr: &str,
    ae_title: &str,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<SocketAddr, CliError> {
    if !lianyi_imaging::aes::valid_ae_title(ae_title) {
        return Err(CliError::Usage(format!(
            "DICOM AE title {ae_title:?}: 1 to 16 printable ASCII characters, no backslash"
        )));
    }
    let (listener, local) = bind(addr).await?;
    app.note_listener("DICOM", local);
    let config = lianyi_dicom::node::NodeConfig { ae_title: ae_title.trim().to_string(), tls, ..Default::default() };
    tokio::spawn(lianyi_web::serve_dicom(listener, app.state().imaging.clone(), config));
    Ok(local)
}

async fn ae_command(command: AeCommand) -> Result<ExitCode, CliError> {
    let data = match &command {
        AeCommand::Put { data, .. } | AeCommand::List { data } | AeCommand::Remove { data, .. } => data.clone(),
    };
    let file = FileConfig::load(data.config.as_deref())?;
    let loc = location(data, &file)?;
    let app = App::build(app_config(&loc, &file)?).await?;
    let imaging = &app.state().imaging;
    imaging.reload_aes().await.map_err(|e| CliError::Usage(e.to_string()))?;
    let code = match command {
        AeCommand::Put { title, campus, host, port, description, charset, .. } => {
            let draft = lianyi_imaging::aes::AeDraft { ae_title: title, campus, host, port, description, charset };
            let ae = imaging.put_ae(&cli_caller(), &draft).await.map_err(|e| CliError::Usage(e.to_string()))?;
            println!("AE {} saved for campus {}", ae.ae_title, ae.campus);
            ExitCode::SUCCESS
        }
        AeCommand::List { .. } => {
            println!("{:<16} {:<16} {:<40} {:<6} {:<10} description", "ae_title", "campus", "host", "port", "charset");
            for a in imaging.aes() {
                println!(
                    "{:<16} {:<16} {:<40} {:<6} {:<10} {}",
                    a.ae_title,
                    a.campus,
                    a.host.as_deref().unwrap_or("*"),
                    a.port.map(|p| p.to_string()).unwrap_or_default(),
                    a.charset.as_deref().unwrap_or(""),
                    a.description
                );
            }
            ExitCode::SUCCESS
        }
        AeCommand::Remove { title, .. } => {
            if imaging.remove_ae(&cli_caller(), &title).await.map_err(|e| CliError::Usage(e.to_string()))? {
                println!("AE {title} removed");
                ExitCode::SUCCESS
            } else {
                println!("no AE {title}");
                ExitCode::FAILURE
            }
        }
    };
    app.state().fhir.operations().close().await;
    Ok(code)
}

fn app_config(loc: &DataLocation, file: &FileConfig) -> Result<AppConfig, CliError> {
    Ok(AppConfig {
        database_url: loc.database_url.expose().to_string(),
        default_campus: file.default_campus.clone(),
        max_body_bytes: file.max_body_bytes.unwrap_or(AppConfig::DEFAULT_MAX_BODY),
        public_url: file.public_url.clone(),
        audit_hash: file.audit_hash()?,
        policy: file.policy(),
        keys_file: file.keys_file(&loc.data_dir),
        cipher: file.cipher()?,
        tls: match (&file.tls_cert, &file.tls_key) {
            (Some(cert), Some(key)) => Some(lianyi_web::TlsFiles { cert: cert.clone(), key: key.clone() }),
            (None, None) => None,
            _ => return Err(CliError::Usage("tls_cert and tls_key go together".into())),
        },
        login_rate_per_minute: file.login_rate_per_minute.unwrap_or(30),
        message_retention_days: file.message_retention_days.unwrap_or(lianyi_interop::Outbound::DEFAULT_RETENTION_DAYS),
        monitor_raw_days: file.monitor_raw_days.unwrap_or(lianyi_ops::monitor::DEFAULT_RAW_DAYS),
        language: file.language()?,
        backup_schedule: file.backup_schedule()?.map(|c| c.text().to_string()),
        critical_escalation_minutes: file.critical_escalation_minutes.unwrap_or(10),
        near_expiry_days: file.near_expiry_days.unwrap_or(lianyi_billing::stock::NEAR_EXPIRY_DAYS),
        booking: file.booking.clone().unwrap_or_default().rules(),
        mail: match (file.smtp_url.clone(), file.mail_from.clone()) {
            (Some(url), from) => Some(lianyi_web::MailConfig {
                url: url.expose().to_string(),
                from: from.unwrap_or_else(|| "Lianyi IT desk <itdesk@localhost>".into()),
            }),
            (None, _) => None,
        },
        portal_mail_from: file.portal_mail_from.clone(),
        sms_gateway: file.sms_gateway.as_ref().map(config::SmsGatewayFile::gateway),
        export_dir: loc.data_dir.join("exports"),
        imaging_dir: loc.data_dir.join("imaging"),
        read_database: file.read_database()?,
        failover_databases: file.failover_databases()?,
    })
}

async fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Version => {
            println!("lianyi {} (FHIR R4 4.0.1)", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Collector { server, token, spool, refresh } => {
            tokio::select! {
                r = collector::run(&server, &token, &spool, std::time::Duration::from_secs(refresh.max(1))) => r?,
                () = shutdown_signal() => {}
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate { data } => {
            let file = FileConfig::load(data.config.as_deref())?;
            let loc = location(data, &file)?;
            let store = Store::connect(loc.database_url.expose()).await?;
            let n = store.migrate().await?;
            println!("{}: {n} migration(s) applied", loc.display_url());
            store.close().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve {
            listen,
            tls_cert,
            tls_key,
            mllp_listen,
            mllp_campus,
            mllp_tls,
            dicom_listen,
            dicom_ae_title,
            dicom_tls,
            read_database,
            failover_databases,
            data,
        } => {
            let mut file = FileConfig::load(data.config.as_deref())?;
            if let Some(url) = read_database {
                file.read_database_url = Some(Secret::new(url));
            }
            if !failover_databases.is_empty() {
                file.failover_database_urls = Some(failover_databases.into_iter().map(Secret::new).collect());
            }
            if tls_cert.is_some() {
                file.tls_cert = tls_cert;
                file.tls_key = tls_key;
            }
            let listen = listen.or_else(|| file.listen.clone()).unwrap_or_else(|| "127.0.0.1:8080".into());
            let loc = location(data, &file)?;
            let started = Instant::now();
            let app = App::build(app_config(&loc, &file)?).await?;
            // The knowledge base's dictionary loads while the server starts, not on the first search.
            lianyi_ops::words::warm_up();
            reindex_if_stale(&app.state().fhir).await?;
            let (listener, addr) = bind(&listen).await?;

            tracing::info!(%addr, database = %loc.display_url(), ms = started.elapsed().as_millis() as u64, "serving");
            let scheme = if file.tls_cert.is_some() { "https" } else { "http" };
            println!(
                "Lianyi is serving FHIR R4 at {scheme}://{addr}/fhir (data dir: {}, database: {})",
                loc.data_dir.display(),
                loc.display_url()
            );
            // After the serving line (scripts read the URL from the first line).
            if let Some(mllp) = mllp_listen {
                let campus = mllp_campus.or_else(|| file.default_campus.clone()).unwrap_or_else(|| "default".into());
                let tls = match (&app.state().config.tls, mllp_tls) {
                    (_, false) => None,
                    (Some(files), true) => Some(lianyi_web::tls_server_config(files).await?),
                    (None, true) => {
                        return Err(CliError::Usage("--mllp-tls needs a certificate: --tls-cert and --tls-key".into()));
                    }
                };
                let journaled = match file.mllp_ack.as_deref() {
                    None | Some("applied") => false,
                    Some("journaled") => true,
                    Some(other) => {
                        return Err(CliError::Usage(format!(
                            "mllp_ack = \"{other}\" in the config file: it must be \"applied\" or \"journaled\""
                        )));
                    }
                };
                let kind = if tls.is_some() { "MLLP+TLS" } else { "MLLP" };
                let profile = match file.mllp_profile.as_ref().map(config::MllpProfile::pid3).transpose() {
                    Ok(p) => p.unwrap_or_default(),
                    Err(e) => return Err(CliError::Usage(format!("[mllp_profile] campuses in the config file: {e}"))),
                };
                let mllp_addr = start_mllp(&app, &mllp, &campus, journaled, tls, profile).await?;
                println!("HL7 v2 ({kind}) is listening on {mllp_addr} for campus {campus}");
            }
            if let Some(dicom) = dicom_listen.or_else(|| file.dicom_listen.clone()) {
                let ae_title =
                    dicom_ae_title.or_else(|| file.dicom_ae_title.clone()).unwrap_or_else(|| "LIANYI".into());
                let tls = match (&app.state().config.tls, dicom_tls) {
                    (_, false) => None,
                    (Some(files), true) => Some(lianyi_web::tls_server_config(files).await?),
                    (None, true) => {
                        return Err(CliError::Usage(
                            "--dicom-tls needs a certificate: --tls-cert and --tls-key".into(),
                        ));
                    }
                };
                let kind = if tls.is_some() { "DICOM over TLS" } else { "DICOM" };
                let dicom_addr = start_dicom(&app, &dicom, &ae_title, tls).await?;
                println!("{kind} is listening on {dicom_addr} as AE title {ae_title}");
            }
            if let Some(schedule) = backup_schedule(&file, &loc)? {
                tracing::info!(schedule = schedule.cron.text(), dir = %schedule.keeping.dir.display(), "backups scheduled");
                tokio::spawn(schedule.run());
            }
            app.run(listener, shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Reindex { data } => {
            let file = FileConfig::load(data.config.as_deref())?;
            let loc = location(data, &file)?;
            let app = App::build(app_config(&loc, &file)?).await?;
            let started = Instant::now();
            let n = app.state().fhir.reindex(&cli_caller(), |_| {}).await?;
            app.state().fhir.operations().close().await;
            println!("{}: {n} resources reindexed in {:.1} s", loc.display_url(), started.elapsed().as_secs_f64());
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { listen, data_dir, mllp_listen, dicom_listen, history_days } => {
            demo_command(&listen, data_dir, &mllp_listen, &dicom_listen, history_days.clamp(0, 730)).await
        }
        Command::Ae { command } => ae_command(command).await,
        Command::Client { command } => client_command(command).await,
        Command::Channel { command } => channel_command(command).await,
        Command::Messages { command } => messages_command(command).await,
        Command::User { command } => user_command(command).await,
        Command::Keys { command: KeysCommand::Rotate { cipher, data } } => rotate_keys(cipher, data).await,
        Command::Backup { command: None, to, data } => {
            let (setup, loc, file) = backup_setup(data, true)?;
            let keeping = keeping(&file, &loc, to)?;
            let now = Clock::now_ms(&SystemClock::default());
            let (made, offsite) = backup::run_recorded(&setup, &keeping, "manual", &cli_actor(), now).await?;
            audit_backup(&setup, &file, "backup", &made.path).await?;
            if let Some(copy) = offsite {
                eprintln!("copied off-site to {}", copy.display());
            }
            println!("{}", made.path.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup { command: Some(BackupCommand::Drill { to, data }), .. } => {
            let (setup, loc, file) = backup_setup(data, true)?;
            let keeping = keeping(&file, &loc, to)?;
            let d = backup::drill(&setup, &keeping, &cli_actor(), Clock::now_ms(&SystemClock::default())).await?;
            audit_backup(&setup, &file, "backup-drill", &d.file).await?;
            let secs = |t: std::time::Duration| format!("{:.1} s", t.as_secs_f64());
            println!("restore drill of {} ({:.1} MB)", d.file.display(), d.bytes as f64 / 1e6);
            println!("  backup   {}", secs(d.backup));
            println!("  verify   {}", secs(d.verify));
            println!("  restore  {}", secs(d.restore));
            println!("  compare  {}", secs(d.compare));
            println!("  recovery time (restore + compare): {}", secs(d.restore + d.compare));
            println!("{}", if d.passed { "drill passed" } else { "drill FAILED" });
            Ok(if d.passed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Backup { command: Some(BackupCommand::Verify { file: backup_file, data }), .. } => {
            let (setup, _, _) = backup_setup(data, false)?;
            let ok = backup::verify(&setup, &backup_file).await?;
            println!("{}", if ok { "backup verified" } else { "backup does NOT verify" });
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Restore { file: backup_file, keys_to, data } => {
            let (setup, loc, file) = backup_setup(data, false)?;
            let target = backup::Target::of_url(&setup.database_url);
            let keys = keys_to.unwrap_or_else(|| file.keys_file(&loc.data_dir));
            let ok = backup::restore(&setup, &backup_file, target, &keys).await?;
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Copy { from, to, config } => {
            let file = FileConfig::load(config.as_deref())?;
            let folder = |given: &str| (!given.contains(':')).then(|| PathBuf::from(given));
            let (from_dir, to_dir) = (folder(&from), folder(&to));
            let (from, to) = (copy::database_url(&from), copy::database_url(&to));
            let hash = file.audit_hash()?;
            let done = copy::copy(&from, &to, hash).await?;
            let (shown_from, shown_to) = (config::mask_password(&from), config::mask_password(&to));
            println!(
                "copied {} tables, {} rows from {shown_from} into {shown_to}{} in {:.1} s; checked in {:.1} s",
                done.tables,
                done.rows,
                if done.resumed { " (resumed)" } else { "" },
                done.copy.as_secs_f64(),
                done.check.as_secs_f64()
            );
            println!("search indexes rebuilt: {} tickets, {} knowledge-base articles", done.tickets, done.articles);
            if !done.passed {
                println!("copy FAILED its check");
                return Ok(ExitCode::FAILURE);
            }
            let source = if from.starts_with("sqlite") { "sqlite" } else { "postgres" };
            audit_operator(&to, hash, "copy", format!("from {source}")).await?;
            let home = file.data_dir.clone().unwrap_or_else(|| PathBuf::from("lianyi-data"));
            let keys = file.keys_file(from_dir.as_deref().unwrap_or(&home));
            match to_dir.map(|d| file.keys_file(&d)) {
                Some(there) if !there.exists() && keys.exists() => {
                    backup::write_private(&there, &std::fs::read(&keys).map_err(backup::BackupError::from)?)
                        .map_err(backup::BackupError::from)?;
                    println!("data keys copied to {}", there.display());
                }
                _ => println!(
                    "the copy's encrypted fields need the source's data keys: serve it with keys_file = {}",
                    keys.display()
                ),
            }
            println!("copy passed");
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit { command: AuditCommand::Verify { data } } => {
            let file = FileConfig::load(data.config.as_deref())?;
            let loc = location(data, &file)?;
            let store = Store::connect(loc.database_url.expose()).await?;
            store.migrate().await?;
            let status = store.verify_audit(&file.audit_hash()?).await?;
            store.close().await;
            match status {
                ChainStatus::Intact { records } => {
                    println!("audit chain intact: {records} records verified");
                    Ok(ExitCode::SUCCESS)
                }
                ChainStatus::Broken { seq, reason } => {
                    println!("audit chain BROKEN at record {seq}: {reason}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Import { path, campus, data } => {
            let file = FileConfig::load(data.config.as_deref())?;
            let loc = location(data, &file)?;
            let store = Store::connect(loc.database_url.expose()).await?;
            store.migrate().await?;
            let audit = AuditLog::start(store.clone(), file.audit_hash()?);
            let protect = lianyi_web::protector(&file.keys_file(&loc.data_dir), file.cipher()?)?;
            let service = FhirService::new(
                store.clone(),
                Arc::new(SystemClock::default()),
                Arc::new(UuidIds),
                campus.clone(),
                audit,
                protect,
            )
            .with_rules(lianyi_clinical::rules::all());
            let started = Instant::now();
            let mut bar = Bar(None);
            let summary = import_ndjson(&service, &Caller::task(SystemTask::Import), &path, campus, &mut bar).await?;
            if let Some(b) = bar.0 {
                b.finish_and_clear();
            }
            store.refresh_statistics().await?;
            store.close().await;
            let secs = started.elapsed().as_secs_f64();
            println!("Imported {} resources in {secs:.1} s into {}:", summary.stored(), loc.display_url());
            for (t, n) in &summary.stored_by_type {
                println!("  {t:<28} {n:>8}");
            }
            for f in &summary.skipped_files {
                println!("Skipped {f}: not FHIR NDJSON (no resourceType)");
            }
            if summary.rejected.is_empty() {
                Ok(ExitCode::SUCCESS)
            } else {
                println!("Rejected {} line(s):", summary.rejected.len());
                for r in summary.rejected.iter().take(20) {
                    println!("  {r}");
                }
                Ok(ExitCode::from(2))
            }
        }
    }
}

/// The operator at the terminal, as the audit log names them.
fn cli_caller() -> Caller {
    Caller::task(SystemTask::Operator(cli_actor()))
}

fn cli_actor() -> String {
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

/// The server's backup schedule from the config (`None` when off).
fn backup_schedule(file: &FileConfig, loc: &DataLocation) -> Result<Option<backup::Schedule>, CliError> {
    let Some(cron) = file.backup_schedule()? else { return Ok(None) };
    Ok(Some(backup::Schedule {
        cron,
        database_url: loc.database_url.expose().to_string(),
        keys_file: file.keys_file(&loc.data_dir),
        key_file: file.backup_key_file(&loc.data_dir),
        cipher: file.cipher()?,
        hash: file.audit_hash()?,
        pg_bin: file.pg_bin(),
        imaging_dir: loc.data_dir.join("imaging"),
        keeping: keeping(file, loc, None)?,
    }))
}

/// Where backups go (`--to` wins over the config) and how many stay.
fn keeping(file: &FileConfig, loc: &DataLocation, to: Option<PathBuf>) -> Result<backup::Keeping, CliError> {
    Ok(backup::Keeping {
        dir: to.unwrap_or_else(|| file.backup_dir(&loc.data_dir)),
        offsite: file.backup_offsite_dir.clone(),
        keep: file.backup_keep()?,
    })
}

async fn client_service(data: DataArgs) -> Result<(lianyi_security::ClientService, Store), CliError> {
    let file = FileConfig::load(data.config.as_deref())?;
    let loc = location(data, &file)?;
    let store = Store::connect(loc.database_url.expose()).await?;
    store.migrate().await?;
    let audit = AuditLog::start(store.clone(), file.audit_hash()?);
    Ok((lianyi_security::ClientService::new(store.clone(), audit, Arc::new(SystemClock::default())), store))
}

/// Rebuilds index rows written by older indexing rules before serving, so searches
/// never silently miss stored data.
async fn reindex_if_stale(fhir: &FhirService) -> Result<(), CliError> {
    if fhir.index_is_stale().await? {
        println!("The search index was built by an older version; rebuilding it before serving...");
        let started = Instant::now();
        let n = fhir.reindex(&Caller::task(SystemTask::Reindex), |_| {}).await?;
        println!("Reindexed {n} resources in {:.1} s", started.elapsed().as_secs_f64());
    }
    Ok(())
}

async fn rotate_keys(cipher: Option<String>, data: DataArgs) -> Result<ExitCode, CliError> {
    use lianyi_security::crypto::{CipherAlg, FieldCipher, FileKeys, KeyProvider};
    let file = FileConfig::load(data.config.as_deref())?;
    let loc = location(data, &file)?;
    let alg = match cipher {
        Some(c) => CipherAlg::parse(&c).ok_or(config::ConfigError::Cipher(c))?,
        None => file.cipher()?,
    };
    let keys = FileKeys::open(&file.keys_file(&loc.data_dir), alg).map_err(lianyi_web::AppError::from)?;
    let id = keys.add_key(alg).map_err(lianyi_web::AppError::from)?;
    let keys: Box<dyn KeyProvider> = Box::new(keys);
    let protect = lianyi_services::protect::Protector::new(Arc::new(FieldCipher::new(keys)));
    let store = Store::connect(loc.database_url.expose()).await?;
    store.migrate().await?;
    let mut changed = 0u64;
    // Every stored version, the current ones included, lives in resource_history.
    for table in ["resource_history"] {
        let mut after = None;
        loop {
            let rows = store.scan_bodies(table, &["Patient", "RelatedPerson"], after.clone(), 500).await?;
            let Some(last) = rows.last() else { break };
            after = Some((last.resource_type.clone(), last.id.clone(), last.version));
            let mut out = Vec::with_capacity(rows.len());
            for mut r in rows {
                match protect.reencrypt_body(&r.resource_type, &r.body) {
                    Ok(Some(b)) => {
                        r.body = b;
                        out.push(r);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        return Err(CliError::Usage(format!(
                            "{}/{} version {}: {e}",
                            r.resource_type, r.id, r.version
                        )));
                    }
                }
            }
            changed += store.replace_bodies(&out).await?;
        }
    }
    let audit = AuditLog::start(store.clone(), file.audit_hash()?);
    let mut e = cli_caller().entry(lianyi_security::Clock::now_ms(&SystemClock::default()), "keys-rotate", "success");
    e.detail = Some(format!("new key {id} ({}), {changed} stored versions re-encrypted", alg.name()));
    audit.record(vec![e]).await.map_err(|e| CliError::Usage(e.to_string()))?;
    store.close().await;
    println!("new data key {id} ({}) is current; {changed} stored versions re-encrypted", alg.name());
    Ok(ExitCode::SUCCESS)
}

async fn user_service(data: DataArgs) -> Result<(lianyi_security::users::UserService, Store), CliError> {
    let file = FileConfig::load(data.config.as_deref())?;
    let loc = location(data, &file)?;
    let store = Store::connect(loc.database_url.expose()).await?;
    store.migrate().await?;
    let audit = AuditLog::start(store.clone(), file.audit_hash()?);
    let users =
        lianyi_security::users::UserService::new(store.clone(), audit, Arc::new(SystemClock::default()), file.policy());
    Ok((users, store))
}

async fn user_command(command: UserCommand) -> Result<ExitCode, CliError> {
    match command {
        UserCommand::Add { username, name, roles, patient, data } => {
            let mut grants = Vec::new();
            for r in &roles {
                let (role, campus) = r.split_once('@').unwrap_or((r.as_str(), "*"));
                grants.push((role.to_string(), campus.to_string()));
            }
            let initial = lianyi_security::secrets::random_hex(8).map_err(|e| CliError::Usage(e.to_string()))?;
            let (users, store) = user_service(data).await?;
            let new = lianyi_security::users::NewUser {
                username: username.clone(),
                display_name: name,
                password: format!("Ly-{initial}"),
                grants,
                patient,
                must_change_password: true,
            };
            let result = users.add_user(&cli_caller(), new).await;
            store.close().await;
            result?;
            println!("user {username} created; initial password: Ly-{initial}");
            println!("(it must be changed, and an authenticator app enrolled, at first login)");
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::List { data } => {
            let (users, store) = user_service(data).await?;
            let list = users.list_users().await?;
            store.close().await;
            let now = lianyi_security::Clock::now_ms(&SystemClock::default());
            println!("{:<20} {:<10} {:<6} roles", "username", "state", "mfa");
            for (u, grants) in list {
                let state = if u.disabled {
                    "disabled"
                } else if u.locked_until > now {
                    "locked"
                } else {
                    "active"
                };
                let roles: Vec<String> = grants.iter().map(|g| format!("{}@{}", g.role, g.campus)).collect();
                println!(
                    "{:<20} {:<10} {:<6} {}",
                    u.username,
                    state,
                    if u.totp_enabled { "yes" } else { "no" },
                    roles.join(" ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::Disable { username, data } => {
            let (users, store) = user_service(data).await?;
            let r = users.disable_user(&cli_caller(), &username).await;
            store.close().await;
            r?;
            println!("user {username} disabled; sessions ended");
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::ResetMfa { username, data } => {
            let (users, store) = user_service(data).await?;
            let r = users.reset_mfa(&cli_caller(), &username).await;
            store.close().await;
            r?;
            println!("second factor of {username} removed; they enrol again at next login");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn client_command(command: ClientCommand) -> Result<ExitCode, CliError> {
    match command {
        ClientCommand::Add { name, scope, campuses, patient, data } => {
            let (clients, store) = client_service(data).await?;
            let campuses = if campuses.is_empty() { "*".to_string() } else { campuses.join(" ") };
            let c = clients.add(&cli_caller(), &name, &scope, &campuses, patient).await?;
            store.close().await;
            let out = serde_json::json!({
                "name": c.name, "client_id": c.client_id, "client_secret": c.client_secret,
                "scopes": c.scopes, "campuses": c.campuses, "patient": c.patient, "token_endpoint": "/oauth/token",
            });
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::List { data } => {
            let (clients, store) = client_service(data).await?;
            let list = clients.list().await?;
            store.close().await;
            println!("{:<24} {:<38} {:<9} {:<24} scopes", "name", "client_id", "state", "campuses");
            for c in list {
                let state = if c.disabled { "disabled" } else { "active" };
                println!("{:<24} {:<38} {:<9} {:<24} {}", c.name, c.id, state, c.campuses, c.scopes);
            }
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::Disable { name, data } => {
            let (clients, store) = client_service(data).await?;
            let done = clients.disable(&cli_caller(), &name).await?;
            store.close().await;
            if done {
                println!("client {name} disabled; its tokens are revoked");
                Ok(ExitCode::SUCCESS)
            } else {
                println!("no client named {name}");
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

async fn outbound_service(data: DataArgs) -> Result<lianyi_interop::Outbound, CliError> {
    let file = FileConfig::load(data.config.as_deref())?;
    let loc = location(data, &file)?;
    let app = App::build(app_config(&loc, &file)?).await?;
    Ok(app.state().outbound.clone())
}

fn when(ms: Option<i64>) -> String {
    ms.map(lianyi_fhir::datetime::format_instant).unwrap_or_else(|| "-".into())
}

async fn channel_command(command: ChannelCommand) -> Result<ExitCode, CliError> {
    let caller = cli_caller();
    let enable = matches!(command, ChannelCommand::Enable { .. });
    match command {
        ChannelCommand::Add {
            id,
            kind,
            endpoint,
            criteria,
            campus,
            headers,
            max_attempts,
            backoff_ms,
            max_backoff_ms,
            data,
        } => {
            let out = outbound_service(data).await?;
            let spec = lianyi_interop::ChannelSpec {
                id: id.clone(),
                name: id,
                kind,
                endpoint,
                criteria,
                campus,
                headers: if headers.is_empty() { None } else { Some(headers.join("\n")) },
                max_attempts,
                backoff_ms,
                max_backoff_ms,
            };
            let (ch, secret) = out.add_channel(&caller, spec).await?;
            out.fhir().operations().close().await;
            println!(
                "channel {} ({} to {}) added; it delivers changes committed from now on",
                ch.id, ch.kind, ch.endpoint
            );
            if let Some(s) = secret {
                println!("signing secret (X-Lianyi-Signature: sha256=HMAC-SHA256(secret, body)); shown only now:\n{s}");
            }
            Ok(ExitCode::SUCCESS)
        }
        ChannelCommand::List { data } => {
            let out = outbound_service(data).await?;
            let channels = out.channels(&caller).await?;
            let stats = out.fhir().operations().queue_stats().await?;
            out.fhir().operations().close().await;
            println!(
                "{:<20} {:<9} {:<8} {:>8} {:>6} {:>10} {:<24} endpoint",
                "channel", "kind", "state", "pending", "dead", "delivered", "last success"
            );
            for c in channels {
                let s = stats.iter().find(|s| s.channel == c.id).cloned().unwrap_or_default();
                let state = if c.enabled { "active" } else { "paused" };
                println!(
                    "{:<20} {:<9} {:<8} {:>8} {:>6} {:>10} {:<24} {}",
                    c.id,
                    c.kind,
                    state,
                    s.pending,
                    s.dead,
                    s.delivered,
                    when(s.last_success),
                    c.endpoint
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ChannelCommand::Disable { id, data } | ChannelCommand::Enable { id, data } => {
            let out = outbound_service(data).await?;
            out.set_enabled(&caller, &id, enable).await?;
            out.fhir().operations().close().await;
            if enable {
                println!("channel {id} resumed");
            } else {
                println!("channel {id} paused; its changes wait in the outbox");
            }
            Ok(ExitCode::SUCCESS)
        }
        ChannelCommand::ReplayDead { id, data } => {
            let out = outbound_service(data).await?;
            let n = out.replay_dead(&caller, &id).await?;
            out.fhir().operations().close().await;
            println!("{n} dead letters of channel {id} queued again");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn messages_command(command: MessagesCommand) -> Result<ExitCode, CliError> {
    let caller = cli_caller();
    match command {
        MessagesCommand::List { direction, status, channel, limit, data } => {
            let out = outbound_service(data).await?;
            let filter =
                lianyi_store::messages::MessageFilter { direction, status, channel, limit, ..Default::default() };
            let list = out.messages(&caller, &filter).await?;
            out.fhir().operations().close().await;
            println!(
                "{:>8} {:<3} {:<10} {:<24} {:<22} {:<14} {:>3} {:<24} error or warnings",
                "id", "dir", "status", "channel", "control id", "type", "try", "received"
            );
            for m in list {
                println!(
                    "{:>8} {:<3} {:<10} {:<24} {:<22} {:<14} {:>3} {:<24} {}",
                    m.id,
                    m.direction,
                    m.status,
                    m.channel,
                    m.control_id,
                    m.message_type,
                    m.attempts,
                    when(Some(m.received_at)),
                    m.error.or(m.warnings.map(|w| format!("warnings: {w}"))).unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        MessagesCommand::Show { id, data } => {
            let out = outbound_service(data).await?;
            let (m, payload, ack) = out.message(&caller, id).await?;
            out.fhir().operations().close().await;
            println!(
                "message {} ({} {} on {}): {} after {} attempt(s)",
                m.id, m.direction, m.message_type, m.channel, m.status, m.attempts
            );
            println!("received {}  finished {}", when(Some(m.received_at)), when(m.finished_at));
            if let Some(e) = m.error {
                println!("error: {e}");
            }
            if let Some(w) = m.warnings {
                println!("warnings (accepted; for the sender to fix): {w}");
            }
            println!("--- payload\n{}", payload.replace('\r', "\n"));
            if let Some(a) = ack {
                println!("--- ack/response\n{}", a.replace('\r', "\n"));
            }
            Ok(ExitCode::SUCCESS)
        }
        MessagesCommand::Replay { ids, data } => {
            let out = outbound_service(data).await?;
            let n = out.replay(&caller, &ids).await?;
            out.fhir().operations().close().await;
            println!("{n} of {} messages queued again (outbound dead letters and delivered messages only)", ids.len());
            Ok(ExitCode::SUCCESS)
        }
        MessagesCommand::Prune { keep_days, data } => {
            let out = outbound_service(data).await?;
            let (m, e) = out.prune(&caller, keep_days).await?;
            out.fhir().operations().close().await;
            println!("{m} messages and {e} outbox events older than {keep_days} days deleted");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// indicatif progress by bytes read.
struct Bar(Option<ProgressBar>);

impl Progress for Bar {
    fn start(&mut self, total_bytes: u64) {
        let b = ProgressBar::new(total_bytes);
        if let Ok(style) = ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}") {
            b.set_style(style);
        }
        self.0 = Some(b);
    }

    fn advance(&mut self, bytes: u64) {
        if let Some(b) = &self.0 {
            b.inc(bytes);
        }
    }
}

const DEMO_MARKER: &str = "LIANYI-DEMO";
/// The demo's backup schedule: nightly at 02:00.
const DEMO_BACKUPS: &str = "0 2 * * *";

/// One demo account per role: user name, display name, role, campus, patient.
const DEMO_USERS: &[(&str, &str, &str, &str, Option<&str>)] = &[
    ("registrar.east", "挂号员 王芳", "registrar", "campus-east", None),
    ("doctor.east", "内科 李明医生", "doctor", "campus-east", None),
    ("doctor.west", "外科 陈静医生", "doctor", "campus-west", None),
    ("head.east", "内科主任 张华", "department-head", "campus-east", None),
    ("nurse.east", "护士 赵娜", "nurse", "campus-east", None),
    ("pharmacist.east", "药师 周强", "pharmacist", "campus-east", None),
    ("labtech.east", "检验技师 吴磊", "lab-technician", "campus-east", None),
    ("radiologist.south", "放射科 孙杰医生", "radiologist", "campus-south", None),
    ("cashier.east", "收费员 马丽", "cashier", "campus-east", None),
    ("stock.east", "药库 钱进", "stock-keeper", "campus-east", None),
    ("stock.west", "药库 冯涛", "stock-keeper", "campus-west", None),
    ("materials.east", "物资科 刘洋", "materials-keeper", "campus-east", None),
    ("equipment.east", "设备科 邓伟", "equipment-engineer", "campus-east", None),
    ("hr", "人事处 韩梅", "human-resources", "*", None),
    ("manager", "院长办公室 高华", "manager", "*", None),
    ("it.engineer", "信息科 罗刚", "it-engineer", "*", None),
    ("it.manager", "信息科主任 许可", "it-manager", "*", None),
    ("admin", "系统管理员 林平", "administrator", "*", None),
    ("privacy.officer", "隐私审计 何秀", "privacy-officer", "*", None),
    ("patient.0001", "患者（pat-0001）", "patient", "*", Some("pat-0001")),
];
const DEMO_PASSWORD: &str = "Lianyi-Demo-2026";
/// The campus whose systems the demo's MLLP listener stands for.
const DEMO_MLLP_CAMPUS: &str = "campus-east";
/// The demo's modality at East Campus, in the DICOM node's AE table.
const DEMO_MODALITY: &str = "DEMO-CT";

/// Each campus's price list for the demo: registration by clinic type, every drug of
/// the catalogue per unit, every test and imaging order, three services; priced from
/// today, and the East Campus's expert registration rising next month (a future price
/// the list shows in its history). Returns the number of items per campus.
async fn demo_prices(
    prices: &lianyi_billing::prices::PriceBook,
    caller: &Caller,
    today: &str,
) -> Result<usize, CliError> {
    use lianyi_billing::prices::ItemForm;
    // Deterministic prices: from the code's bytes, within a range (fen).
    let spread = |code: &str, low: u64, high: u64| {
        let h = code.bytes().fold(17u64, |a, b| a.wrapping_mul(31).wrapping_add(u64::from(b)));
        low + h % (high - low + 1)
    };
    let yuan = |fen: u64| format!("{}.{:02}", fen / 100, fen % 100);
    let mut items: Vec<(ItemForm, u64)> = vec![
        (
            item(
                "REG-GEN",
                "registration",
                "registration",
                "general",
                "普通门诊挂号",
                "General clinic registration",
                "次",
            ),
            1_000,
        ),
        (
            item(
                "REG-EXP",
                "registration",
                "registration",
                "expert",
                "专家门诊挂号",
                "Expert clinic registration",
                "次",
            ),
            5_000,
        ),
        (item("S-INJ", "treatment", "service", "injection", "肌内注射", "Intramuscular injection", "次"), 500),
        (item("S-IVD", "treatment", "service", "infusion", "静脉输液", "Intravenous infusion", "次"), 1_500),
        (item("S-DRS", "treatment", "service", "dressing", "换药", "Wound dressing", "次"), 2_000),
        // A stay's days (charged after each midnight; see lianyi_inpatient::charging).
        (item("BED-STD", "bed", "service", "bed-day", "普通病房床位费", "Ward bed (per day)", "日"), 4_500),
        (
            item("NURS-S", "nursing", "service", "nursing-special", "特级护理", "Special nursing (per day)", "日"),
            12_000,
        ),
        (item("NURS-1", "nursing", "service", "nursing-1", "一级护理", "First-level nursing (per day)", "日"), 3_200),
        (item("NURS-2", "nursing", "service", "nursing-2", "二级护理", "Second-level nursing (per day)", "日"), 1_900),
        (item("NURS-3", "nursing", "service", "nursing-3", "三级护理", "Third-level nursing (per day)", "日"), 1_000),
    ];
    for d in lianyi_clinical::prescribing::catalogue() {
        let unit = match d.form {
            "capsule" => "粒",
            "vial" => "支",
            "bag" => "袋",
            _ => "片",
        };
        let name_zh = format!("{} {}", d.zh, d.strength);
        let name_en = format!("{} {}", d.en, d.strength);
        let form = item(&format!("D-{}", d.code), "western-drug", "drug", d.code, &name_zh, &name_en, unit);
        items.push((form, spread(d.code, 15, 480)));
    }
    for (code, zh, en, unit, kind, _, price) in demo_materials::ITEMS {
        if kind == "high-value" {
            let form = item(&format!("M-{code}"), "material", "material", code, zh, en, unit);
            items.push((form, u64::try_from(price).unwrap_or(0)));
        }
    }
    for o in lianyi_clinical::orders::catalogue() {
        let (category, low, high) = if o.category == "imaging" { ("exam", 6_000, 48_000) } else { ("lab", 500, 6_000) };
        let form = item(&format!("O-{}", o.code), category, "order", o.code, o.zh, o.en, "次");
        items.push((form, spread(o.code, low, high)));
    }
    for campus in ["campus-east", "campus-west", "campus-south"] {
        for (form, fen) in &items {
            let form = ItemForm { campus: campus.into(), ..form.clone() };
            let failed = |e: lianyi_billing::prices::PriceError| CliError::Usage(format!("demo prices: {e}"));
            prices.put_item(caller, &form).await.map_err(failed)?;
            prices.set_price(caller, campus, &form.code, &yuan(*fen), today).await.map_err(failed)?;
        }
    }
    let next_month = lianyi_clinical::scheduling::local_date(
        lianyi_security::Clock::now_ms(&SystemClock::default()) + 31 * 86_400_000,
    );
    prices
        .set_price(caller, "campus-east", "REG-EXP", "60.00", &next_month)
        .await
        .map_err(|e| CliError::Usage(format!("demo prices: {e}")))?;
    Ok(items.len())
}

fn item(
    code: &str,
    category: &str,
    kind: &str,
    reference: &str,
    name_zh: &str,
    name_en: &str,
    unit: &str,
) -> lianyi_billing::prices::ItemForm {
    lianyi_billing::prices::ItemForm {
        campus: String::new(),
        code: code.into(),
        national_code: String::new(),
        category: category.into(),
        kind: kind.into(),
        reference: reference.into(),
        name_zh: name_zh.into(),
        name_en: name_en.into(),
        unit: unit.into(),
    }
}

/// A lab result for the first East Campus demo patient, as the laboratory system would
/// send it (ORU^R01, segments on lines of their own): a potassium of 4.1 mmol/L; with
/// the patient's resource id.
fn demo_oru(data: &[demo::DemoResource]) -> Option<(String, String)> {
    let mrn_system = lianyi_services::identifiers::mrn_system(DEMO_MLLP_CAMPUS);
    let patient = data.iter().map(|r| &r.resource).find(|r| {
        r["resourceType"] == "Patient"
            && r["identifier"].as_array().is_some_and(|ids| ids.iter().any(|i| i["system"] == mrn_system.as_str()))
    })?;
    let mrn =
        patient["identifier"].as_array()?.iter().find(|i| i["system"] == mrn_system.as_str())?["value"].as_str()?;
    let name = patient["name"].get(0)?;
    let family = name["family"].as_str().unwrap_or_default();
    let given = name["given"].get(0).and_then(serde_json::Value::as_str).unwrap_or_default();
    let birth = patient["birthDate"].as_str().unwrap_or_default().replace('-', "");
    let sex = if patient["gender"] == "male" { "M" } else { "F" };
    let id = patient["id"].as_str()?;
    let now = lianyi_fhir::datetime::format_instant(lianyi_security::Clock::now_ms(&SystemClock::default()));
    let ts: String = now.chars().filter(char::is_ascii_digit).take(14).collect();
    Some((
        format!(
            "MSH|^~\\&|LIS|EAST|LIANYI|GROUP|{ts}||ORU^R01^ORU_R01|DEMO-{ts}|P|2.5.1||||||UNICODE UTF-8\n\
         PID|1||{mrn}^^^EAST^MR||{family}^{given}||{birth}|{sex}\n\
         OBR|1||DEMO-LAB-{ts}|2823-3^Potassium^LN|||{ts}||||||||||||||{ts}|||F\n\
         OBX|1|NM|2823-3^Potassium [Moles/volume] in Serum or Plasma^LN||4.1|mmol/L^mmol/L^UCUM|3.5-5.3|N|||F|||{ts}||||CHEM-E1\n\
"
        ),
        id.to_string(),
    ))
}

/// A question from pat-0001 to doctor.east (prac-001) about their latest visit at
/// East Campus, waiting in the doctor's inbox of patients' questions. Returns whether
/// there was a visit to ask about.
async fn demo_question(service: &FhirService) -> Result<bool, CliError> {
    use lianyi_fhir::ResourceType;
    let demo = Caller::task(SystemTask::Demo);
    let rt = ResourceType::parse("Encounter").ok_or_else(|| CliError::Usage("no Encounter type".into()))?;
    let params = [
        ("patient".to_string(), "Patient/pat-0001".to_string()),
        ("_sort".to_string(), "-date".to_string()),
        ("_count".to_string(), "1".to_string()),
    ];
    let req = lianyi_fhir::search::parse_search(rt, &params).map_err(|e| CliError::Usage(e.diagnostics))?;
    let found = service.search(&service.permit(&demo, rt).await?, &req).await?;
    let Some(visit) = found.resources.first() else { return Ok(false) };
    let campus = lianyi_security::CampusId::parse(visit.campus.as_deref().unwrap_or(DEMO_MLLP_CAMPUS))
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let at = lianyi_clinical::scheduling::local_instant(service.now_ms() - 3 * 3_600_000);
    let question = serde_json::json!({"resourceType": "Communication", "status": "in-progress",
        "category": [{"coding": [{"system": "urn:lianyi:communication-category", "code": "patient-question"}]}],
        "subject": {"reference": "Patient/pat-0001"}, "encounter": {"reference": format!("Encounter/{}", visit.id)},
        "sender": {"reference": "Patient/pat-0001"}, "recipient": [{"reference": "Practitioner/prac-001"}],
        "sent": at, "payload": [{"contentString": "医生您好，药吃了三天，咳嗽好些了，还需要继续吃吗？"}]});
    let writer = Caller::task_at(SystemTask::Demo, campus);
    let rt = ResourceType::parse("Communication").ok_or_else(|| CliError::Usage("no Communication type".into()))?;
    service.create(&service.permit(&writer, rt).await?, question).await?;
    Ok(true)
}

/// Templates for every demo doctor (mornings 08:00–12:00 and afternoons 14:00–17:00
/// in 15-minute slots Monday to Friday, weekend clinics on Saturday and Sunday
/// mornings) and their slots for the next 14 days from today; returns how many
/// slots were made.
async fn demo_schedules(service: &FhirService, caller: &Caller, roles: &[String]) -> Result<usize, CliError> {
    use lianyi_clinical::scheduling::{Scheduling, Session};
    let scheduling = Scheduling::new(service.clone());
    let mut sessions = Vec::new();
    for weekday in 1..=5 {
        sessions.push(Session { weekday, start: "08:00".into(), end: "12:00".into(), slot_minutes: 15 });
        sessions.push(Session { weekday, start: "14:00".into(), end: "17:00".into(), slot_minutes: 15 });
    }
    for weekday in 6..=7 {
        sessions.push(Session { weekday, start: "08:00".into(), end: "12:00".into(), slot_minutes: 15 });
    }
    let today = scheduling.today();
    let mut made = 0;
    for role in roles {
        let schedule = scheduling
            .set_template(caller, role, &sessions)
            .await
            .map_err(|e| CliError::Usage(format!("demo schedule for {role}: {e}")))?;
        made += scheduling
            .generate_slots(caller, &schedule, &today, 14)
            .await
            .map_err(|e| CliError::Usage(format!("demo slots for {role}: {e}")))?;
    }
    Ok(made)
}

async fn demo_command(
    listen: &str,
    data_dir: Option<PathBuf>,
    mllp_listen: &str,
    dicom_listen: &str,
    history_days: i64,
) -> Result<ExitCode, CliError> {
    let started = Instant::now();
    let dir = data_dir.unwrap_or_else(|| std::env::temp_dir().join("lianyi-demo"));
    let db = dir.join("lianyi.db");
    if db.exists() && !dir.join(DEMO_MARKER).exists() {
        return Err(CliError::Usage(format!(
            "{} holds a database that the demo did not create; the demo recreates its database on every start, so give it an empty folder",
            dir.display()
        )));
    }
    std::fs::create_dir_all(&dir).map_err(|source| config::ConfigError::DataDir { path: dir.clone(), source })?;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("lianyi.db{suffix}")));
    }
    let _ = std::fs::write(
        dir.join(DEMO_MARKER),
        "This folder holds the Lianyi demo database; `lianyi demo` recreates it.\n",
    );

    let (listener, addr) = bind(listen).await?;
    let url = format!("sqlite://{}", db.display());
    let store = Store::connect(&url).await?;
    store.migrate().await?;
    let audit = AuditLog::start(store.clone(), lianyi_security::ChainAlg::default());
    let keys_file = dir.join("keys");
    let _ = std::fs::remove_file(&keys_file);
    let cipher = lianyi_security::crypto::CipherAlg::Aes256Gcm;
    let protect = lianyi_web::protector(&keys_file, cipher)?;
    let service =
        FhirService::new(store.clone(), Arc::new(SystemClock::default()), Arc::new(UuidIds), None, audit, protect)
            .with_rules(lianyi_clinical::rules::all());
    let caller = Caller::task(SystemTask::Demo);
    let data = demo::generate();
    let total = data.len();
    let sample_oru = demo_oru(&data);
    // Doctors' roles get weekly templates (and slots) once the data is in.
    let doctor_roles: Vec<String> = data
        .iter()
        .filter(|r| {
            r.resource["resourceType"] == "PractitionerRole" && r.resource["code"][0]["coding"][0]["code"] == "doctor"
        })
        .filter_map(|r| r.resource["id"].as_str().map(str::to_string))
        .collect();
    // The directory the replayed visits need (patients, doctors' roles).
    let directory: Vec<demo::DemoResource> = data
        .iter()
        .filter(|r| matches!(r.resource["resourceType"].as_str(), Some("Patient" | "PractitionerRole")))
        .map(|r| demo::DemoResource { campus: r.campus.clone(), resource: r.resource.clone() })
        .collect();
    // The clinic visits the demo's wards admit patients from.
    let visits: Vec<demo::DemoResource> = data
        .iter()
        .filter(|r| r.resource["resourceType"] == "Encounter" && r.resource["class"]["code"] == "AMB")
        .map(|r| demo::DemoResource { campus: r.campus.clone(), resource: r.resource.clone() })
        .collect();
    let mut batch = Vec::with_capacity(2000);
    for r in data {
        batch.push((r.resource, Some(r.campus)));
        if batch.len() == 2000 {
            let rep = service.load_batch(&caller, std::mem::take(&mut batch)).await?;
            if !rep.rejected.is_empty() {
                return Err(CliError::Usage(format!("demo data rejected: {:?}", rep.rejected.first())));
            }
        }
    }
    let rep = service.load_batch(&caller, batch).await?;
    if !rep.rejected.is_empty() {
        return Err(CliError::Usage(format!("demo data rejected: {:?}", rep.rejected.first())));
    }
    let slots = demo_schedules(&service, &caller, &doctor_roles).await?;
    // Prices and stock from the first replayed day, the days replayed, today's stock.
    let clock = ManualClock::new(demo_billing::history_start(history_days));
    let past = service.with_clock(clock.clone());
    let first_day = lianyi_clinical::scheduling::local_date(clock.now_ms());
    let priced = demo_prices(&lianyi_billing::prices::PriceBook::new(past.clone()), &caller, &first_day).await?;
    let stock_then = lianyi_billing::stock::StockRoom::new(past.clone());
    let start_batches = demo_billing::stock_at_start(&stock_then, &caller, history_days).await?;
    let history = demo_billing::replay(&past, &clock, history_days, &directory).await?;
    let stock_now = lianyi_billing::stock::StockRoom::new(service.clone());
    let stocked = demo_billing::stock_today(&stock_now, &caller, start_batches).await?;
    let counts = store.count_by_type().await?;
    let clients = lianyi_security::ClientService::new(
        store.clone(),
        service.audit_log().clone(),
        Arc::new(SystemClock::default()),
    );
    let demo_caller = Caller::task(SystemTask::Demo);
    let admin = clients.add(&demo_caller, "demo-admin", "system/*.cruds", "*", None).await?;
    let east = clients.add(&demo_caller, "demo-east-readonly", "system/*.rs", "campus-east", None).await?;
    let ops = clients.add(&demo_caller, "demo-ops", lianyi_security::clients::OPS_SCOPE, "*", None).await?;
    let users = lianyi_security::users::UserService::new(
        store.clone(),
        service.audit_log().clone(),
        Arc::new(SystemClock::default()),
        lianyi_security::users::SecurityPolicy::default(),
    );
    for (username, name, role, campus, patient) in DEMO_USERS {
        users
            .add_user(
                &demo_caller,
                lianyi_security::users::NewUser {
                    username: username.to_string(),
                    display_name: name.to_string(),
                    password: DEMO_PASSWORD.to_string(),
                    grants: vec![(role.to_string(), campus.to_string())],
                    patient: patient.map(str::to_string),
                    must_change_password: false,
                },
            )
            .await?;
    }
    let app = App::with_store(
        store,
        AppConfig {
            database_url: url,
            default_campus: None,
            max_body_bytes: AppConfig::DEFAULT_MAX_BODY,
            public_url: None,
            audit_hash: lianyi_security::ChainAlg::default(),
            policy: lianyi_security::users::SecurityPolicy::default(),
            keys_file,
            cipher,
            tls: None,
            login_rate_per_minute: 30,
            message_retention_days: lianyi_interop::Outbound::DEFAULT_RETENTION_DAYS,
            monitor_raw_days: lianyi_ops::monitor::DEFAULT_RAW_DAYS,
            language: "zh-CN".into(),
            backup_schedule: Some(DEMO_BACKUPS.into()),
            critical_escalation_minutes: 10,
            near_expiry_days: lianyi_billing::stock::NEAR_EXPIRY_DAYS,
            portal_mail_from: None,
            sms_gateway: None,
            booking: Default::default(),
            mail: None,
            read_database: None,
            failover_databases: Vec::new(),
            export_dir: dir.join("exports"),
            imaging_dir: dir.join("imaging"),
        },
    )?;
    let cmdb = demo_ops::load(&app.state().cmdb, &demo_caller).await?;
    let tickets = demo_ops::desk(&app.state().desk, &demo_caller).await?;
    let changes = demo_ops::changes(
        &app.state().changes,
        &app.state().problems,
        &demo_caller,
        app.state().fhir.now_ms(),
        [tickets[0], tickets[1]],
    )
    .await?;
    let resolved = demo_ops::resolved_call(&app.state().desk, &demo_caller).await?;
    let articles = demo_ops::kb(&app.state().kb, &demo_caller, resolved).await?;
    let mllp_addr = start_mllp(&app, mllp_listen, DEMO_MLLP_CAMPUS, false, None, Default::default()).await?;
    let demo_ct = lianyi_imaging::aes::AeDraft {
        ae_title: DEMO_MODALITY.into(),
        campus: DEMO_MLLP_CAMPUS.into(),
        host: "127.0.0.1".into(),
        description: "东院区 CT (demo modality)".into(),
        ..Default::default()
    };
    app.state().imaging.put_ae(&demo_caller, &demo_ct).await.map_err(|e| CliError::Usage(e.to_string()))?;
    let dicom_addr = start_dicom(&app, dicom_listen, "LIANYI", None).await?;
    let patients: Vec<serde_json::Value> =
        directory.iter().filter(|r| r.resource["resourceType"] == "Patient").map(|r| r.resource.clone()).collect();
    let study = demo_imaging::load(
        &app.state().fhir,
        &app.state().imaging,
        &patients,
        (DEMO_MLLP_CAMPUS, "campus-south"),
        DEMO_MODALITY,
    )
    .await?;
    app.register_platform().await?;
    let campuses: Vec<&str> = demo::CAMPUSES.iter().map(|c| c.0).collect();
    let rostered = demo_rosters::load(&app.state().rosters, &campuses, app.state().fhir.now_ms()).await?;
    let materials =
        demo_materials::load(&app.state().materials, &campuses, app.state().fhir.now_ms(), "pat-0001").await?;
    let equipment_clock = ManualClock::new(app.state().fhir.now_ms());
    let equipment = lianyi_manage::assets::Equipment::new(app.state().fhir.with_clock(equipment_clock.clone()));
    let registered = demo_equipment::load(&equipment, &equipment_clock, &campuses, DEMO_MODALITY).await?;
    let published = demo_notices::load(&app.state().notices).await?;
    let complaints = demo_notices::feedback(&app.state().feedback).await?;
    let licences = demo_staff::load(&app.state().staff, app.state().fhir.now_ms()).await?;
    let wards = demo_wards::load(&app.state().inpatient, &app.state().deposits, &visits).await?;
    // A patient without a portal account, and the code their registration slip carries.
    let desk = Caller::task_at(
        SystemTask::Demo,
        lianyi_security::CampusId::parse(DEMO_MLLP_CAMPUS).map_err(|e| CliError::Usage(e.to_string()))?,
    );
    let east_mrn = lianyi_services::identifiers::mrn_system(DEMO_MLLP_CAMPUS);
    let slip_patient = patients
        .iter()
        .filter(|p| p["id"] != "pat-0001")
        .find(|p| p["identifier"].as_array().is_some_and(|ids| ids.iter().any(|i| i["system"] == east_mrn.as_str())))
        .ok_or_else(|| CliError::Usage("the demo has no second patient at East Campus".into()))?;
    let slip_id = slip_patient["id"].as_str().unwrap_or_default().to_string();
    let slip = app
        .state()
        .portal_accounts
        .issue(&desk, &slip_id)
        .await
        .map_err(|e| CliError::Usage(format!("demo portal code: {e}")))?;
    let slip_person = lianyi_clinical::registry::person_of(slip_patient);
    let asked = demo_question(&app.state().fhir).await?;
    let probes = demo_ops::monitoring(&app.state().monitor, &demo_caller, addr, mllp_addr).await?;
    // A first backup now, and the nightly schedule.
    let schedule = backup::Schedule {
        cron: lianyi_ops::cron::Cron::parse(DEMO_BACKUPS).map_err(CliError::Usage)?,
        database_url: format!("sqlite://{}", db.display()),
        keys_file: app.state().config.keys_file.clone(),
        key_file: dir.join("backup.key"),
        cipher: app.state().config.cipher,
        hash: app.state().config.audit_hash,
        pg_bin: PathBuf::new(),
        imaging_dir: dir.join("imaging"),
        keeping: backup::Keeping { dir: dir.join("backups"), offsite: None, keep: 7 },
    };
    let first_backup = schedule.now("demo").await?;
    tokio::spawn(schedule.run());
    let oru_file = dir.join("oru_r01.hl7");
    std::fs::write(&oru_file, sample_oru.as_ref().map_or("", |(m, _)| m.as_str()))
        .map_err(|source| config::ConfigError::DataDir { path: oru_file.clone(), source })?;
    println!(
        "Lianyi demo: a hospital group with 3 campuses, {} practitioners and {} patients ({total} resources; ready in {} ms).",
        demo::PRACTITIONERS,
        demo::PATIENTS,
        started.elapsed().as_millis()
    );
    println!("  Outpatient schedules: {} doctors, {slots} free slots over the next 14 days.", doctor_roles.len());
    println!(
        "  Rosters: shift types at each campus; East internal medicine rostered for this month and the next ({} shifts, {} clinic Slots from its Saturday sessions, {} clock punches so far).",
        rostered.shifts, rostered.slots, rostered.punches
    );
    println!(
        "  Materials: {} items in the catalogue, {} batches in the 3 campus warehouses (East's first gauze lot near expiry, South short of masks); East internal medicine: {} requisitions (one issued, one waiting) and a coronary stent used on pat-0001 and charged.",
        demo_materials::ITEMS.len(),
        materials.batches,
        materials.requisitions
    );
    println!(
        "  Equipment: {} assets registered and accepted at the 3 campuses (maintenance due, East's ultrasound calibrated again within 20 days); East internal medicine: {} repairs (one done, one just reported) and an old monitor waiting for the manager to approve its scrapping.",
        registered.assets, registered.repairs
    );
    println!(
        "  Wards: {} beds in 9 wards; {} patients admitted from their clinic visits at the 3 campuses' internal medicine and surgery wards, each with a deposit, their orders verified and the morning's vital signs charted ({} on the way to East internal medicine, {} admission order waiting at the admission office, {} discharged and settled, a bed closed); East's wards sent tomorrow's round to the inpatient pharmacy ({} lines); West's wards give the once-daily round at 09:00 and ask a second nurse to check each new order; bed and nursing days are charged after each midnight.",
        9 * demo::BEDS_PER_WARD,
        wards.admitted,
        wards.arriving,
        wards.waiting,
        wards.discharged,
        wards.round_lines
    );
    println!(
        "  Staff: the department tree of the 3 campuses; {licences} licences (one expiring this month, one lapsed) for the reminders."
    );
    println!(
        "  Announcements: {published} published (a group policy, an upgrade notice to East Campus, news for the nurses), with read receipts."
    );
    println!(
        "  Feedback: {complaints} pieces at East Campus (a complaint answered by head.east, one open, a suggestion, praise of doctor.east)."
    );
    println!(
        "  Price lists: {priced} items priced at each of the 3 campuses (registration, drugs, tests, services, high-value consumables)."
    );
    println!(
        "  Pharmacy: a central store and an outpatient pharmacy per campus, {} batches received ({} near expiry, {} drugs below their reorder level), {} transfer in transit.",
        stocked.batches, stocked.near_expiry, stocked.low, stocked.in_transit
    );
    println!(
        "  The last {history_days} days: {} outpatient visits charged, {} paid, {} prescriptions dispensed, {} refunds.",
        history.visits, history.payments, history.dispensed, history.refunds
    );
    println!();
    println!("  FHIR R4 API   http://{addr}/fhir");
    println!("  Capabilities  http://{addr}/fhir/metadata");
    println!("  Health        http://{addr}/healthz");
    println!("  Metrics       http://{addr}/metrics");
    println!("  HL7 v2 (MLLP) {mllp_addr} (East Campus: ADT, ORU^R01, ORM/OML, SIU)");
    println!(
        "  DICOM         {dicom_addr}, AE title LIANYI (C-ECHO, C-STORE, C-FIND, C-MOVE, C-GET, worklist); modality AE {DEMO_MODALITY} at East Campus, from 127.0.0.1"
    );
    println!("    echoscu -aet {DEMO_MODALITY} -aec LIANYI {} {}", dicom_addr.ip(), dicom_addr.port());
    println!(
        "    storescu -R -aet {DEMO_MODALITY} -aec LIANYI +sd +r {} {} FOLDER_OF_DICOM_FILES",
        dicom_addr.ip(),
        dicom_addr.port()
    );
    if let Some(s) = &study {
        println!(
            "  Imaging       a head CT ({} slices) made by {DEMO_MODALITY} at East Campus for a patient registered at South Campus too; read and reported there by radiologist.south:",
            demo_imaging::SLICES
        );
        println!(
            "    http://{addr}/imaging/studies/{}  (the patient: http://{addr}/patients/{})",
            s.study_uid, s.patient
        );
        println!(
            "    and a study sent under a mistyped Patient ID, waiting for registrar.east: http://{addr}/imaging/reconcile"
        );
        println!("    DICOMweb: http://{addr}/dicomweb/studies (bearer token as for FHIR)");
    }
    println!("  Database      {} (SQLite, recreated on every demo start)", db.display());
    println!();
    for (t, n) in counts {
        println!("  {t:<20} {n:>6}");
    }
    println!();
    println!("  API clients (OAuth2 client credentials; secrets are new on every demo start):");
    for (c, what) in [
        (&admin, "every campus, read and write"),
        (&east, "East Campus only, read and search"),
        (&ops, "the IT operations API: CMDB, service desk, knowledge base, monitoring"),
    ] {
        println!("    {:<20} {what}", c.name);
        println!("      client_id     {}", c.client_id);
        println!("      client_secret {}", c.client_secret);
    }
    println!();
    println!("  Try:");
    println!(
        "    TOKEN=$(curl -s -d grant_type=client_credentials -d client_id={} -d client_secret={} http://{addr}/oauth/token | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')",
        admin.client_id, admin.client_secret
    );
    println!("    curl -H \"Authorization: Bearer $TOKEN\" 'http://{addr}/fhir/Patient?name=Zhang'");
    if let Some((_, patient)) = &sample_oru {
        println!(
            "  Send a lab result over HL7 v2 (python-hl7's mllp_send: pip install hl7; `--loose` reads a plain file):"
        );
        println!("    mllp_send --loose --port {} --file {} {}", mllp_addr.port(), oru_file.display(), mllp_addr.ip());
        println!(
            "    curl -H \"Authorization: Bearer $TOKEN\" 'http://{addr}/fhir/Observation?subject=Patient/{patient}&code=2823-3'"
        );
    }
    println!();
    println!("  Price lists   http://{addr}/billing/prices (kept by managers, read by cashiers)");
    println!(
        "  Dashboards    http://{addr}/manage/dashboard (the manager: every campus, drilled down to department and day)"
    );
    println!(
        "  Performance   http://{addr}/manage/performance (the manager: each department's month scored by the campus's formula, CSV)"
    );
    println!(
        "  Messages      http://{addr}/manage/messages (any member of staff: to a person or a department, arriving live on open pages)"
    );
    println!("  Staff         http://{addr}/manage/staff (hr keeps titles, practising campuses and licences)");
    println!("  Feedback      http://{addr}/manage/feedback (complaints with owner, deadline and answer)");
    println!("  Announcements http://{addr}/manage/notices (the manager publishes and sees who read each)");
    println!(
        "  Equipment     http://{addr}/manage/equipment and repairs http://{addr}/manage/repairs (equipment.east takes and finishes repairs; nurse.east reports faults; the manager approves scrapping)"
    );
    println!(
        "  Materials     http://{addr}/manage/materials (materials.east keeps East Campus's warehouse and issues requisitions; nurse.east requests for East internal medicine at /manage/requisitions)"
    );
    println!(
        "  Rosters       http://{addr}/manage/rosters (head.east keeps East internal medicine's; manager sets shift types at /manage/shift-types and imports clock records at /manage/attendance)"
    );
    println!(
        "  Wards         http://{addr}/ward (bed boards; nurse.east receives patients on East internal medicine, verifies orders, records doses and sends the day's round at /ward/tasks, and vital signs on each stay's temperature chart; pharmacist.east dispenses the rounds at /pharmacy/rounds; manager sets each campus's ward rules at /ward/rules) and http://{addr}/ward/admissions (registrar.east admits onto a free bed, takes deposits, settles discharged stays); doctor.east orders admission from a visit, and ward orders and discharge from a stay's page"
    );
    println!("  Cashier       http://{addr}/billing/cashier?patient=ID (from a patient's page)");
    println!("  Pharmacy      http://{addr}/pharmacy (dispensing) and http://{addr}/pharmacy/stock (stock by batch)");
    println!(
        "  IT operations http://{addr}/ops/cis (CMDB: {} configuration items, {} relations; impact analysis on each; the platform registers itself)",
        cmdb.cis, cmdb.relations
    );
    println!(
        "  Service desk  http://{addr}/ops/report (any staff account reports a fault) and http://{addr}/ops/tickets ({} open tickets)",
        tickets.len()
    );
    println!(
        "  Problems      http://{addr}/ops/problems (a known error) · changes http://{addr}/ops/changes ({changes}; the change calendar http://{addr}/ops/changes/calendar; the change board on http://{addr}/ops/groups)"
    );
    println!(
        "  Knowledge base http://{addr}/ops/kb ({articles} articles; try 打印, 登录慢 or PACS; suggested as a fault is typed)"
    );
    println!(
        "  Monitoring    {probes} probes (the platform, its database, HL7 listener and web page; the west campus's nurse-station printer, standing in for a device that is off: its alert opens an incident within two minutes): GET http://{addr}/api/ops/probes and /api/ops/alerts?open=true with demo-ops's token"
    );
    println!(
        "  Backups       http://{addr}/ops/backups (nightly at 02:00; the first one was made at start: {}; its key is {})",
        first_backup.path.display(),
        dir.join("backup.key").display()
    );
    println!(
        "  Patient portal http://{addr}/portal (made for phones; Chinese, English by the switch): patient.0001 logs in with the demo password (a second factor is optional for patients)."
    );
    println!(
        "                {slip_id} ({}) opens an account at http://{addr}/portal/activate with the code {} from the registration slip, resident ID {} and phone {}.",
        slip_person.name,
        slip.code,
        slip_person.resident_id.as_deref().unwrap_or("-"),
        slip_person.phone.as_deref().unwrap_or("-")
    );
    if asked {
        println!(
            "                pat-0001 asked doctor.east a question about their last visit: http://{addr}/portal/inbox (doctor.east), http://{addr}/portal/messages (patient.0001)."
        );
    }
    println!("  Web login: http://{addr}/login   password for every demo account: {DEMO_PASSWORD}");
    println!("  (each staff account enrols an authenticator app at its first login: scan the QR code)");
    for (username, name, role, campus, _) in DEMO_USERS {
        println!("    {username:<18} {role:<16} {campus:<13} {name}");
    }
    app.run(listener, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
