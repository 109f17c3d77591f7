//! `lianyi backup`, `lianyi backup verify` and `lianyi restore`: an online, encrypted,
//! verifiable copy of an installation.
//!
//! A backup is a consistent copy of the database — SQLite's `VACUUM INTO` while the
//! server writes on, or `pg_dump -Fc` of an exported snapshot — sealed with the backup
//! key ([`lianyi_security::sealed`]) together with the data key file and a manifest:
//! every table's row count and content hash, read from the same snapshot
//! ([`lianyi_store::backup`]), and the audit chain's head, and with the imaging
//! folder's instance files that copy's index names ([`images`]). It is written under a
//! `.partial` name and renamed only once whole and on disk, so a killed backup never
//! looks like one. Verifying restores into a scratch database, checks every manifest
//! entry and the audit chain; restoring goes only into an empty target.

use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use indicatif::{ProgressBar, ProgressStyle};
use lianyi_security::ChainAlg;
use lianyi_security::crypto::CipherAlg;
use lianyi_security::sealed::{BackupKey, SealError, SealedReader, SealedWriter};
use lianyi_store::audit::ChainStatus;
use lianyi_store::backup::TableSum;
use lianyi_store::{Backend, Store, StoreError};
use serde_json::{Value, json};

pub mod images;

/// What a backup's file name ends with.
pub const SUFFIX: &str = ".lyb";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Sealed(#[from] SealError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{tool} failed: {message}")]
    Tool { tool: &'static str, message: String },
    #[error("the manifest does not read: {0}")]
    Manifest(String),
    #[error("refused: {0}")]
    Refused(String),
}

/// Where and how a backup is made.
pub struct Setup {
    pub database_url: String,
    /// The data key file (its content is `LIANYI_KEYS` when that is set).
    pub keys_file: PathBuf,
    pub backup_key: BackupKey,
    pub hash: ChainAlg,
    /// PostgreSQL's client programs (`pg_dump`, `pg_restore`).
    pub pg_bin: PathBuf,
    /// The imaging folder (DICOM instance files).
    pub imaging_dir: PathBuf,
}

/// Creates `path` (which must not exist), readable by its owner only.
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Writes `bytes` to a new file at `path` (a data key file), owner-only and on disk.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = create_private(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// The backup key from `LIANYI_BACKUP_KEY` or its file, created (owner-only) on first
/// use; returns whether it was created.
pub fn backup_key(path: &Path, alg: CipherAlg) -> Result<(BackupKey, bool), BackupError> {
    if let Ok(text) = std::env::var("LIANYI_BACKUP_KEY")
        && !text.trim().is_empty()
    {
        return Ok((BackupKey::parse(&text)?, false));
    }
    Ok(BackupKey::load_or_create(path, alg)?)
}

fn bar(total: Option<u64>, what: &str) -> ProgressBar {
    let b = match total {
        Some(t) => ProgressBar::new(t),
        None => ProgressBar::new_spinner(),
    };
    let template = if total.is_some() {
        format!("{what} {{bar:40}} {{bytes}}/{{total_bytes}} {{bytes_per_sec}}")
    } else {
        format!("{what} {{spinner}} {{bytes}} {{bytes_per_sec}}")
    };
    if let Ok(style) = ProgressStyle::with_template(&template) {
        b.set_style(style);
    }
    b
}

fn utc_stamp(ms: i64) -> String {
    let s = lianyi_fhir::datetime::format_instant(ms);
    format!("{}{}{}-{}{}{}", &s[0..4], &s[5..7], &s[8..10], &s[11..13], &s[14..16], &s[17..19])
}

pub fn sums_json(sums: &[TableSum]) -> Value {
    json!(sums.iter().map(|s| json!({"table": s.table, "rows": s.rows, "hash": s.hash})).collect::<Vec<_>>())
}

fn data_keys(setup: &Setup) -> Result<Vec<u8>, BackupError> {
    if let Ok(text) = std::env::var("LIANYI_KEYS")
        && !text.trim().is_empty()
    {
        return Ok(text.into_bytes());
    }
    std::fs::read(&setup.keys_file)
        .map_err(|e| BackupError::Refused(format!("the data key file {}: {e}", setup.keys_file.display())))
}

/// A backup made.
pub struct Made {
    pub path: PathBuf,
    pub bytes: u64,
    pub tables: usize,
    pub rows: i64,
    pub images: images::Packed,
}

/// Makes a backup in `dir` while the server runs.
pub async fn backup(setup: &Setup, dir: &Path, now_ms: i64) -> Result<Made, BackupError> {
    std::fs::create_dir_all(dir)?;
    let (made, partial) = write_backup(setup, dir, now_ms).await;
    if made.is_err() {
        // A failed backup leaves nothing behind (a killed one leaves its partial file
        // for the next run to delete).
        let _ = std::fs::remove_file(partial);
    }
    made
}

/// [`backup`]'s work; returns the partial file's path with the outcome.
async fn write_backup(setup: &Setup, dir: &Path, now_ms: i64) -> (Result<Made, BackupError>, PathBuf) {
    // Two backups in one second (a drill beside the schedule) get different names.
    let stamp = utc_stamp(now_ms);
    let name = (1..)
        .map(|n| if n == 1 { format!("lianyi-{stamp}{SUFFIX}") } else { format!("lianyi-{stamp}-{n}{SUFFIX}") })
        .find(|n| !dir.join(n).exists() && !dir.join(format!("{n}.partial")).exists())
        .unwrap_or_default();
    let done = dir.join(&name);
    let partial = dir.join(format!("{name}.partial"));
    (sealed_into(setup, dir, now_ms, &partial, &done).await, partial)
}

async fn sealed_into(setup: &Setup, dir: &Path, now_ms: i64, partial: &Path, done: &Path) -> Result<Made, BackupError> {
    let store = Store::connect(&setup.database_url).await?;
    let keys = data_keys(setup)?;
    let schema = store.schema_version().await?;
    let backend = store.backend();
    let header = json!({
        "what": "lianyi backup", "createdAt": lianyi_fhir::datetime::format_instant(now_ms),
        "backend": backend.name(), "schemaVersion": schema, "lianyiVersion": env!("CARGO_PKG_VERSION"),
        "hash": setup.hash_name(),
    });
    let file = create_private(partial)?;
    let mut sealed = SealedWriter::new(BufWriter::new(file), &setup.backup_key, header)?;
    sealed.part("keys", &keys[..], |_| {})?;
    let (sums, head, files, sealed) = match backend {
        Backend::Sqlite => {
            let scratch = tempfile::Builder::new().prefix(".lianyi-backup-").tempdir_in(dir)?;
            let copy = scratch.path().join("lianyi.db");
            eprintln!("copying the database (VACUUM INTO) …");
            store.vacuum_into(&copy).await?;
            store.close().await;
            let snap = Store::connect(&format!("sqlite://{}", copy.display())).await?;
            let sums = sums_with_progress(&snap, setup.hash).await?;
            let head = snap.audit_head().await?;
            let files = snap.instance_files().await?;
            snap.close().await;
            let size = std::fs::metadata(&copy)?.len();
            let b = bar(Some(size), "sealing");
            let sealed = tokio::task::spawn_blocking(move || -> Result<_, BackupError> {
                // Compressed (zstd, level 3) before it is sealed: the bodies are JSON,
                // and an uncompressed copy is as large as the database (BENCHMARKS.md).
                let db = Counted {
                    inner: BufReader::new(std::fs::File::open(&copy)?),
                    read: 0,
                    progress: |n| b.set_position(n),
                };
                sealed.part(COMPRESSED_SQLITE, zstd::stream::read::Encoder::new(db, 3)?, |_| {})?;
                b.finish_and_clear();
                drop(scratch);
                Ok(sealed)
            })
            .await
            .map_err(|e| BackupError::Refused(e.to_string()))??;
            (sums, head, files, sealed)
        }
        Backend::Postgres => {
            let mut snap = store.snapshot().await?;
            let mut child = std::process::Command::new(setup.pg_bin.join("pg_dump"))
                .args(["-Fc", "--no-owner", "--snapshot", &snap.id, "-d", &setup.database_url])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| BackupError::Tool { tool: "pg_dump", message: e.to_string() })?;
            let stdout = child.stdout.take().ok_or_else(|| BackupError::Refused("pg_dump gave no output".into()))?;
            let b = bar(None, "pg_dump");
            let dumping = tokio::task::spawn_blocking(move || -> Result<_, BackupError> {
                sealed.part("database", BufReader::new(stdout), |n| b.set_position(n))?;
                b.finish_and_clear();
                let out = child.wait_with_output()?;
                if !out.status.success() {
                    return Err(BackupError::Tool {
                        tool: "pg_dump",
                        message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                    });
                }
                Ok(sealed)
            });
            let hasher = setup.hash;
            let sums = snap.sums(&hasher, &|t| tracing::debug!(table = t, "hashing")).await;
            let head = snap.audit_head().await;
            let files = snap.instance_files().await;
            let sealed = dumping.await.map_err(|e| BackupError::Refused(e.to_string()))??;
            snap.finish().await?;
            store.close().await;
            (sums?, head?, files?, sealed)
        }
    };
    let (packed, mut sealed) = pack_images(setup, files, sealed).await?;
    let manifest = json!({
        "format": 1, "createdAt": lianyi_fhir::datetime::format_instant(now_ms), "backend": backend.name(),
        "schemaVersion": schema, "hash": setup.hash_name(), "tables": sums_json(&sums),
        "auditHead": {"seq": head.0, "hash": head.1}, "images": packed.manifest(),
    });
    let text = serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Manifest(e.to_string()))?;
    sealed.part("manifest", &text[..], |_| {})?;
    let out = sealed.finish()?;
    let file = out.into_inner().map_err(|e| BackupError::Io(e.into_error()))?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(partial, done)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    let rows: i64 = sums.iter().map(|s| s.rows).sum();
    eprintln!("{} tables, {rows} rows, audit chain head {} ({})", sums.len(), head.0, &head.1[..head.1.len().min(16)]);
    eprintln!("{} instance files, {:.1} MB", packed.files, packed.bytes as f64 / 1e6);
    if !packed.missing.is_empty() {
        eprintln!(
            "WARNING {} indexed instance files are missing from {}",
            packed.missing.len(),
            setup.imaging_dir.display()
        );
    }
    Ok(Made {
        bytes: std::fs::metadata(done)?.len(),
        path: done.to_path_buf(),
        tables: sums.len(),
        rows,
        images: packed,
    })
}

/// Seals the instance files `files` names (the snapshot's index) as the images part.
async fn pack_images<W: Write + Send + 'static>(
    setup: &Setup,
    files: Vec<lianyi_store::backup::InstanceFile>,
    mut sealed: SealedWriter<W>,
) -> Result<(images::Packed, SealedWriter<W>), BackupError> {
    let total: i64 = files.iter().map(|f| f.bytes).sum();
    let root = setup.imaging_dir.clone();
    tokio::task::spawn_blocking(move || -> Result<_, BackupError> {
        let b = bar(Some(total.max(0) as u64), "instance files");
        let mut packer = images::Packer::new(&root, files);
        {
            let counted = Counted { inner: &mut packer, read: 0, progress: |n| b.set_position(n) };
            sealed.part(images::PART, zstd::stream::read::Encoder::new(counted, 1)?, |_| {})?;
        }
        b.finish_and_clear();
        Ok((packer.packed().clone(), sealed))
    })
    .await
    .map_err(|e| BackupError::Refused(e.to_string()))?
}

/// Where backups go and how many stay.
pub struct Keeping {
    pub dir: PathBuf,
    /// A second folder (a mounted NAS) each backup is copied to.
    pub offsite: Option<PathBuf>,
    /// Backups kept in each folder (at least 1).
    pub keep: usize,
}

/// Makes a backup and records the run (`kind`: scheduled, manual or drill): copies it
/// to the off-site folder (under a `.partial` name until whole and on disk), then
/// deletes the oldest beyond `keep` in each folder. A failure is recorded with its
/// reason and returned.
pub async fn run_recorded(
    setup: &Setup,
    keeping: &Keeping,
    kind: &str,
    actor: &str,
    now_ms: i64,
) -> Result<(Made, Option<PathBuf>), BackupError> {
    // One backup at a time per folder: the lock is held until this run ends (and
    // released by the system if its process dies), so a run still marked running
    // when the lock is free was interrupted, and its partial file is debris.
    let store = Store::connect(&setup.database_url).await?;
    let lock = match lock_folder(&keeping.dir) {
        Ok(lock) => lock,
        Err(e) => {
            // Recorded too: a folder that is gone (a NAS not mounted) is a failed backup.
            let id = store.backup_started(kind, actor, now_ms).await?;
            let run = lianyi_store::backup::BackupRun {
                id,
                finished_at: Some(now_ms),
                status: "failed".into(),
                error: Some(e.to_string()),
                ..Default::default()
            };
            store.backup_finished(&run).await?;
            store.close().await;
            return Err(e);
        }
    };
    let interrupted = store.backups_interrupted(now_ms).await?;
    if interrupted > 0 {
        tracing::warn!(runs = interrupted, "backups that never finished are marked interrupted");
    }
    for dir in std::iter::once(&keeping.dir).chain(keeping.offsite.as_ref()) {
        remove_partials(dir);
    }
    let id = store.backup_started(kind, actor, now_ms).await?;
    let outcome = async {
        let made = backup(setup, &keeping.dir, now_ms).await?;
        let offsite = match &keeping.offsite {
            Some(dir) => Some(copy_offsite(&made.path, dir)?),
            None => None,
        };
        prune(&keeping.dir, keeping.keep)?;
        if let Some(dir) = &keeping.offsite {
            prune(dir, keeping.keep)?;
        }
        Ok::<_, BackupError>((made, offsite))
    }
    .await;
    let now = lianyi_security::Clock::now_ms(&lianyi_security::SystemClock::default());
    let mut run = lianyi_store::backup::BackupRun { id, finished_at: Some(now), ..Default::default() };
    match &outcome {
        Ok((made, offsite)) => {
            run.status = "ok".into();
            run.file = Some(made.path.display().to_string());
            run.bytes = Some(made.bytes as i64);
            run.tables = Some(made.tables as i64);
            run.row_count = Some(made.rows);
            run.image_files = Some(made.images.files as i64);
            run.image_bytes = Some(made.images.bytes as i64);
            run.offsite = offsite.as_ref().map(|p| p.display().to_string());
        }
        Err(e) => {
            run.status = "failed".into();
            run.error = Some(e.to_string());
        }
    }
    store.backup_finished(&run).await?;
    store.close().await;
    drop(lock);
    outcome
}

/// Takes the folder's backup lock (creating the folder).
fn lock_folder(dir: &Path) -> Result<std::fs::File, BackupError> {
    std::fs::create_dir_all(dir)?;
    let lock = std::fs::File::create(dir.join(".lianyi-backup.lock"))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(BackupError::Refused(format!("another backup is running in {}", dir.display())))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// Deletes what interrupted backups left in `dir` (their `.partial` files and scratch
/// copies); called only while holding the folder's lock.
fn remove_partials(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if name.ends_with(".partial") {
            let _ = std::fs::remove_file(&path);
        } else if name.starts_with(".lianyi-backup-") && path.is_dir() {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// What the server's scheduled backups need (the backup key is read, or created, at
/// each run, so a server that never reaches its first run writes no key file).
pub struct Schedule {
    pub cron: lianyi_ops::cron::Cron,
    pub database_url: String,
    pub keys_file: PathBuf,
    pub key_file: PathBuf,
    pub cipher: CipherAlg,
    pub hash: ChainAlg,
    pub pg_bin: PathBuf,
    pub imaging_dir: PathBuf,
    pub keeping: Keeping,
}

impl Schedule {
    /// Runs until aborted: at each time the schedule names, a recorded backup (as the
    /// backup task). A failure is logged and recorded; the next time comes all the same.
    pub async fn run(self) {
        let clock = lianyi_security::SystemClock::default();
        loop {
            let now = lianyi_security::Clock::now_ms(&clock);
            let Some(next) = self.cron.next_after(now) else {
                tracing::warn!(schedule = self.cron.text(), "the backup schedule never fires");
                return;
            };
            tokio::time::sleep(std::time::Duration::from_millis((next - now).max(0) as u64)).await;
            let started = std::time::Instant::now();
            match self.once(next).await {
                Ok(made) => tracing::info!(
                    file = %made.path.display(), bytes = made.bytes, seconds = started.elapsed().as_secs(),
                    "scheduled backup made"
                ),
                Err(e) => tracing::error!(error = %e, "the scheduled backup failed"),
            }
        }
    }

    /// A recorded backup now, by hand (`actor`), with the schedule's folders.
    pub async fn now(&self, actor: &str) -> Result<Made, BackupError> {
        let now = lianyi_security::Clock::now_ms(&lianyi_security::SystemClock::default());
        self.made(now, "manual", actor).await
    }

    async fn once(&self, at: i64) -> Result<Made, BackupError> {
        self.made(at, "scheduled", "system:backup").await
    }

    async fn made(&self, at: i64, kind: &str, actor: &str) -> Result<Made, BackupError> {
        let (backup_key, created) = backup_key(&self.key_file, self.cipher)?;
        if created {
            tracing::warn!(
                file = %self.key_file.display(),
                "created the backup key: keep a copy away from this machine, without it no backup restores"
            );
        }
        let setup = Setup {
            database_url: self.database_url.clone(),
            keys_file: self.keys_file.clone(),
            backup_key,
            hash: self.hash,
            pg_bin: self.pg_bin.clone(),
            imaging_dir: self.imaging_dir.clone(),
        };
        Ok(run_recorded(&setup, &self.keeping, kind, actor, at).await?.0)
    }
}

/// Copies a backup into `dir`; returns the copy's path.
fn copy_offsite(file: &Path, dir: &Path) -> Result<PathBuf, BackupError> {
    std::fs::create_dir_all(dir)?;
    let name = file.file_name().ok_or_else(|| BackupError::Refused("a backup without a name".into()))?;
    let done = dir.join(name);
    let partial = dir.join(format!("{}.partial", name.to_string_lossy()));
    std::fs::copy(file, &partial)?;
    std::fs::File::open(&partial)?.sync_all()?;
    std::fs::rename(&partial, &done)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(done)
}

/// Deletes the oldest backups in `dir` beyond the newest `keep` (names sort by time).
fn prune(dir: &Path, keep: usize) -> Result<(), BackupError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("lianyi-") && n.ends_with(SUFFIX))
        })
        .collect();
    files.sort();
    let extra = files.len().saturating_sub(keep.max(1));
    for f in &files[..extra] {
        std::fs::remove_file(f)?;
    }
    Ok(())
}

pub async fn sums_with_progress(store: &Store, hash: ChainAlg) -> Result<Vec<TableSum>, BackupError> {
    let b = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("hashing {spinner} {msg}") {
        b.set_style(style);
    }
    let sums = store.table_sums(&hash, &|t| b.set_message(t.to_string())).await?;
    b.finish_and_clear();
    Ok(sums)
}

impl Setup {
    fn hash_name(&self) -> &'static str {
        lianyi_store::audit::ChainHasher::name(&self.hash)
    }
}

/// What a backup file holds, once read whole.
pub struct Opened {
    pub manifest: Value,
    pub keys: Vec<u8>,
    pub backend: String,
    /// Instance files restored, and their bytes.
    pub images: (u64, u64),
}

/// Where a backup's database goes.
pub enum Target {
    /// A SQLite database file (must not exist).
    SqliteFile(PathBuf),
    /// An empty PostgreSQL database.
    Postgres(String),
}

impl Target {
    /// The database of `url`: a SQLite file or a PostgreSQL database.
    pub fn of_url(url: &str) -> Target {
        match url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            Some(path) => Target::SqliteFile(PathBuf::from(path.split('?').next().unwrap_or(path))),
            None => Target::Postgres(url.to_string()),
        }
    }
}

/// Decrypts `file` and restores its database into `target` and its instance files
/// under `images_to` (absent or empty); returns the manifest and the data key file.
/// Every frame is authenticated on the way.
pub async fn unseal_into(setup: &Setup, file: &Path, target: &Target, images_to: &Path) -> Result<Opened, BackupError> {
    if !images::empty_or_absent(images_to)? {
        return Err(BackupError::Refused(format!(
            "{} holds files: a restore writes instance files only into an empty folder",
            images_to.display()
        )));
    }
    let images_root = images_to.to_path_buf();
    let input = BufReader::new(std::fs::File::open(file)?);
    let (mut reader, header) = SealedReader::open(input, &setup.backup_key)?;
    let backend = header["backend"].as_str().unwrap_or_default().to_string();
    match (backend.as_str(), target) {
        ("sqlite", Target::SqliteFile(_)) | ("postgres", Target::Postgres(_)) => {}
        ("sqlite", Target::Postgres(_)) => {
            return Err(BackupError::Refused(
                "this is a SQLite backup: restore it with --data-dir, then move it with lianyi copy".into(),
            ));
        }
        _ => {
            return Err(BackupError::Refused(format!(
                "this is a {backend} backup: restore it with --database postgres://…"
            )));
        }
    }
    let target = match target {
        Target::SqliteFile(p) => Target::SqliteFile(p.clone()),
        Target::Postgres(u) => Target::Postgres(u.clone()),
    };
    let pg_restore = setup.pg_bin.join("pg_restore");
    let written = match &target {
        Target::SqliteFile(p) => Some(p.clone()),
        Target::Postgres(_) => None,
    };
    let opened = tokio::task::spawn_blocking(move || -> Result<Opened, BackupError> {
        let mut manifest = None;
        let mut keys = Vec::new();
        let mut restored = (0, 0);
        while let Some(part) = reader.next_part()? {
            match part.as_str() {
                images::PART => {
                    let b = bar(None, "instance files");
                    restored = images::unpack_into(&images_root, |w| {
                        reader.read_part(w, |n| b.set_position(n))?;
                        Ok(())
                    })?;
                    b.finish_and_clear();
                }
                "manifest" => {
                    let mut text = Vec::new();
                    reader.read_part(&mut text, |_| {})?;
                    manifest =
                        Some(serde_json::from_slice::<Value>(&text).map_err(|e| BackupError::Manifest(e.to_string()))?);
                }
                "keys" => {
                    reader.read_part(&mut keys, |_| {})?;
                }
                "database" | COMPRESSED_SQLITE => match &target {
                    Target::SqliteFile(path) => {
                        let mut options = std::fs::OpenOptions::new();
                        options.write(true).create_new(true);
                        let f = options.open(path)?;
                        let mut w = BufWriter::new(f);
                        let b = bar(None, "restoring");
                        if part == COMPRESSED_SQLITE {
                            let mut unpacked = zstd::stream::write::Decoder::new(&mut w)?;
                            reader.read_part(&mut unpacked, |n| b.set_position(n))?;
                            unpacked.flush()?;
                        } else {
                            // A backup of a version that did not compress.
                            reader.read_part(&mut w, |n| b.set_position(n))?;
                        }
                        b.finish_and_clear();
                        let f = w.into_inner().map_err(|e| BackupError::Io(e.into_error()))?;
                        f.sync_all()?;
                    }
                    Target::Postgres(_) if part == COMPRESSED_SQLITE => {
                        return Err(BackupError::Refused(
                            "this is a backup of a SQLite database: it restores into a data folder, not PostgreSQL"
                                .into(),
                        ));
                    }
                    Target::Postgres(url) => {
                        let mut child = std::process::Command::new(&pg_restore)
                            .args(["--no-owner", "--exit-on-error", "-d", url])
                            .stdin(Stdio::piped())
                            .stdout(Stdio::null())
                            .stderr(Stdio::piped())
                            .spawn()
                            .map_err(|e| BackupError::Tool { tool: "pg_restore", message: e.to_string() })?;
                        let mut stdin = child
                            .stdin
                            .take()
                            .ok_or_else(|| BackupError::Refused("pg_restore took no input".into()))?;
                        let b = bar(None, "pg_restore");
                        let read = reader.read_part(&mut stdin, |n| b.set_position(n));
                        b.finish_and_clear();
                        drop(stdin);
                        let out = child.wait_with_output()?;
                        read?;
                        if !out.status.success() {
                            return Err(BackupError::Tool {
                                tool: "pg_restore",
                                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                            });
                        }
                    }
                },
                other => {
                    // A part a later version added: read (and so authenticate) it.
                    tracing::warn!(part = other, "a backup part this version does not use");
                    reader.read_part(&mut std::io::sink(), |_| {})?;
                }
            }
        }
        let manifest = manifest.ok_or_else(|| BackupError::Manifest("the backup has no manifest".into()))?;
        Ok(Opened { manifest, keys, backend, images: restored })
    })
    .await
    .map_err(|e| BackupError::Refused(e.to_string()))?;
    if opened.is_err() {
        // Nothing half-written stays behind (the folder was empty or absent).
        if let Some(file) = written {
            let _ = std::fs::remove_file(file);
        }
        if let Ok(entries) = std::fs::read_dir(images_to) {
            for e in entries.flatten() {
                let _ = std::fs::remove_dir_all(e.path()).or_else(|_| std::fs::remove_file(e.path()));
            }
        }
    }
    opened
}

/// The result of checking a restored database against its manifest.
pub struct Checked {
    pub tables: usize,
    pub rows: i64,
    /// Tables whose count or hash differ: (table, what).
    pub mismatches: Vec<(String, String)>,
    pub chain: ChainStatus,
    pub head_matches: bool,
    pub images: images::ImagesChecked,
}

/// Checks the database at `url` and the instance files under `images_dir` against
/// `manifest` (the files against the database's index too; `None`: a database copy,
/// whose imaging folder stays where it is) and verifies the audit chain.
pub async fn check(
    hash: ChainAlg,
    url: &str,
    images_dir: Option<&Path>,
    manifest: &Value,
) -> Result<Checked, BackupError> {
    let store = Store::connect(url).await?;
    let alg = manifest["hash"].as_str().and_then(ChainAlg::parse).unwrap_or(hash);
    let sums = sums_with_progress(&store, alg).await?;
    let listed: Vec<TableSum> = manifest["tables"]
        .as_array()
        .ok_or_else(|| BackupError::Manifest("no tables".into()))?
        .iter()
        .map(|t| TableSum {
            table: t["table"].as_str().unwrap_or_default().to_string(),
            rows: t["rows"].as_i64().unwrap_or(-1),
            hash: t["hash"].as_str().unwrap_or_default().to_string(),
        })
        .collect();
    let mut mismatches = Vec::new();
    for want in &listed {
        match sums.iter().find(|s| s.table == want.table) {
            None => mismatches.push((want.table.clone(), "missing".to_string())),
            Some(got) if got.rows != want.rows => {
                mismatches.push((want.table.clone(), format!("{} rows, the manifest says {}", got.rows, want.rows)))
            }
            Some(got) if got.hash != want.hash => {
                mismatches.push((want.table.clone(), "its content differs from the manifest's hash".to_string()))
            }
            Some(_) => {}
        }
    }
    for got in &sums {
        if !listed.iter().any(|l| l.table == got.table) {
            mismatches.push((got.table.clone(), "not in the manifest".to_string()));
        }
    }
    let head = store.audit_head().await?;
    let head_matches = manifest["auditHead"]["seq"].as_i64() == Some(head.0)
        && manifest["auditHead"]["hash"].as_str() == Some(head.1.as_str());
    let chain = store.verify_audit(&hash).await?;
    let images = match images_dir {
        Some(root) => {
            let index = store.instance_files().await?;
            let (root, manifest) = (root.to_path_buf(), manifest.clone());
            tokio::task::spawn_blocking(move || images::check(&root, &index, &manifest))
                .await
                .map_err(|e| BackupError::Refused(e.to_string()))?
        }
        None => images::ImagesChecked::default(),
    };
    store.close().await;
    Ok(Checked { tables: sums.len(), rows: sums.iter().map(|s| s.rows).sum(), mismatches, chain, head_matches, images })
}

/// Prints a check's outcome; whether it passed.
pub fn report(c: &Checked, out: &mut impl Write) -> std::io::Result<bool> {
    writeln!(out, "{} tables, {} rows checked against the manifest", c.tables, c.rows)?;
    for (table, what) in &c.mismatches {
        writeln!(out, "MISMATCH table {table}: {what}")?;
    }
    match &c.chain {
        ChainStatus::Intact { records } => writeln!(out, "audit chain intact: {records} records verified")?,
        ChainStatus::Broken { seq, reason } => writeln!(out, "audit chain BROKEN at record {seq}: {reason}")?,
    }
    if !c.head_matches {
        writeln!(out, "MISMATCH the audit chain's head differs from the manifest's")?;
    }
    let i = &c.images;
    writeln!(out, "{} instance files, {} bytes checked against the index and the manifest", i.files, i.bytes)?;
    for (file, what) in &i.mismatches {
        writeln!(out, "MISMATCH instance file {file}: {what}")?;
    }
    if !i.missing_at_backup.is_empty() {
        writeln!(
            out,
            "NOTE {} indexed instance files were already missing when the backup was made (first: {})",
            i.missing_at_backup.len(),
            i.missing_at_backup[0]
        )?;
    }
    Ok(c.mismatches.is_empty()
        && i.mismatches.is_empty()
        && c.head_matches
        && matches!(c.chain, ChainStatus::Intact { .. }))
}

/// A scratch PostgreSQL database on the server of `url`, dropped when done.
pub struct ScratchPg {
    admin: String,
    pub name: String,
    pub url: String,
}

/// `url` with its database replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let cut = base.rfind('/').filter(|i| *i > "postgres://".len()).unwrap_or(base.len());
    let mut out = format!("{}/{db}", &base[..cut]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl ScratchPg {
    pub async fn create(url: &str) -> Result<ScratchPg, BackupError> {
        let name = format!(
            "lianyi_verify_{}",
            lianyi_security::secrets::random_hex(6).map_err(|e| BackupError::Refused(e.to_string()))?
        );
        let admin = url.to_string();
        let store = Store::connect(&admin).await?;
        store.create_database(&name).await?;
        store.close().await;
        Ok(ScratchPg { url: with_database(url, &name), admin, name })
    }

    pub async fn drop_now(self) -> Result<(), BackupError> {
        let store = Store::connect(&self.admin).await?;
        store.drop_database(&self.name).await?;
        store.close().await;
        Ok(())
    }
}

/// Verifies a backup: restores it into a scratch database (a temporary file, or a
/// temporary database on the PostgreSQL server of `setup`), checks every manifest
/// entry and the audit chain. Prints the report; returns whether it passed.
pub async fn verify(setup: &Setup, file: &Path) -> Result<bool, BackupError> {
    let mut out = std::io::stdout();
    let header = lianyi_security::sealed::read_header(&mut BufReader::new(std::fs::File::open(file)?))?.0;
    let passed = if header["backend"] == "postgres" {
        if !setup.database_url.starts_with("postgres") {
            return Err(BackupError::Refused(
                "a PostgreSQL backup is verified on a PostgreSQL server: give --database postgres://…".into(),
            ));
        }
        let scratch = ScratchPg::create(&setup.database_url).await?;
        let images = tempfile::tempdir()?;
        let outcome = async {
            let opened = unseal_into(setup, file, &Target::Postgres(scratch.url.clone()), images.path()).await?;
            let c = check(setup.hash, &scratch.url, Some(images.path()), &opened.manifest).await?;
            Ok::<_, BackupError>(report(&c, &mut out)?)
        }
        .await;
        scratch.drop_now().await?;
        outcome?
    } else {
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("lianyi.db");
        let images = dir.path().join("imaging");
        let opened = unseal_into(setup, file, &Target::SqliteFile(db.clone()), &images).await?;
        let c = check(setup.hash, &format!("sqlite://{}", db.display()), Some(&images), &opened.manifest).await?;
        report(&c, &mut out)?
    };
    Ok(passed)
}

/// Restores a backup into an empty target: a data dir (SQLite: its `lianyi.db` and
/// `keys` must not exist) or an empty PostgreSQL database (with the keys written to
/// `keys_to`, which must not exist), and its instance files into the setup's imaging
/// folder (which must be empty or absent). Prints what it restored; returns whether the
/// restored content matches the manifest.
pub async fn restore(setup: &Setup, file: &Path, target: Target, keys_to: &Path) -> Result<bool, BackupError> {
    if keys_to.exists() {
        return Err(BackupError::Refused(format!(
            "{} exists: a restore writes only into an empty target",
            keys_to.display()
        )));
    }
    let url = match &target {
        Target::SqliteFile(path) => {
            if path.exists() {
                return Err(BackupError::Refused(format!(
                    "{} exists: a restore writes only into an empty target",
                    path.display()
                )));
            }
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            format!("sqlite://{}", path.display())
        }
        Target::Postgres(url) => {
            let store = Store::connect(url).await?;
            let tables = store.table_names().await?;
            store.close().await;
            if !tables.is_empty() {
                return Err(BackupError::Refused(format!(
                    "the database holds {} tables: a restore writes only into an empty database",
                    tables.len()
                )));
            }
            url.clone()
        }
    };
    let opened = match unseal_into(setup, file, &target, &setup.imaging_dir).await {
        Ok(o) => o,
        Err(
            e @ (BackupError::Sealed(SealError::Damaged { .. } | SealError::Incomplete(_)) | BackupError::Tool { .. }),
        ) if matches!(target, Target::Postgres(_)) => {
            return Err(BackupError::Refused(format!(
                "{e}; the database may now hold part of the restore: drop it and create it again before another try"
            )));
        }
        Err(e) => return Err(e),
    };
    write_private(keys_to, &opened.keys)?;
    let c = check(setup.hash, &url, Some(&setup.imaging_dir), &opened.manifest).await?;
    let mut out = std::io::stdout();
    writeln!(
        out,
        "restored a {} backup of {} (schema {}) into {}",
        opened.backend,
        opened.manifest["createdAt"].as_str().unwrap_or("?"),
        opened.manifest["schemaVersion"],
        match &target {
            Target::SqliteFile(p) => p.display().to_string(),
            Target::Postgres(_) => "the PostgreSQL database".to_string(),
        }
    )?;
    writeln!(out, "data keys written to {}", keys_to.display())?;
    writeln!(
        out,
        "{} instance files ({:.1} MB) restored into {}",
        opened.images.0,
        opened.images.1 as f64 / 1e6,
        setup.imaging_dir.display()
    )?;
    report(&c, &mut out).map_err(BackupError::from)
}

/// The times a restore drill measured.
pub struct Drill {
    pub file: PathBuf,
    pub bytes: u64,
    pub backup: std::time::Duration,
    pub verify: std::time::Duration,
    pub restore: std::time::Duration,
    pub compare: std::time::Duration,
    pub passed: bool,
}

/// A restore drill: a backup (recorded as the drill's), its verification, a restore into a scratch
/// target (a temporary SQLite file, or a temporary database on the PostgreSQL server)
/// and the comparison of what was restored with the manifest — each step timed, for
/// the recovery time a hospital's continuity plan states. The scratch target is
/// removed afterwards; the backup stays.
pub async fn drill(setup: &Setup, keeping: &Keeping, actor: &str, now_ms: i64) -> Result<Drill, BackupError> {
    let started = std::time::Instant::now();
    let file = run_recorded(setup, keeping, "drill", actor, now_ms).await?.0.path;
    let backup_took = started.elapsed();
    let bytes = std::fs::metadata(&file)?.len();
    let started = std::time::Instant::now();
    let verified = verify(setup, &file).await?;
    let verify_took = started.elapsed();
    let scratch_dir = tempfile::tempdir()?;
    let (target, url, pg) = if setup.database_url.starts_with("postgres") {
        let pg = ScratchPg::create(&setup.database_url).await?;
        (Target::Postgres(pg.url.clone()), pg.url.clone(), Some(pg))
    } else {
        let db = scratch_dir.path().join("lianyi.db");
        let url = format!("sqlite://{}", db.display());
        (Target::SqliteFile(db), url, None)
    };
    let outcome = async {
        let started = std::time::Instant::now();
        let opened = unseal_into(setup, &file, &target, &scratch_dir.path().join("imaging")).await?;
        let restore_took = started.elapsed();
        let started = std::time::Instant::now();
        let checked = check(setup.hash, &url, Some(&scratch_dir.path().join("imaging")), &opened.manifest).await?;
        let compare_took = started.elapsed();
        let passed = report(&checked, &mut std::io::stdout())?;
        Ok::<_, BackupError>((restore_took, compare_took, passed))
    }
    .await;
    if let Some(pg) = pg {
        pg.drop_now().await?;
    }
    let (restore_took, compare_took, restored) = outcome?;
    Ok(Drill {
        file,
        bytes,
        backup: backup_took,
        verify: verify_took,
        restore: restore_took,
        compare: compare_took,
        passed: verified && restored,
    })
}

/// The part a SQLite database is sealed as: the file, compressed with zstd.
const COMPRESSED_SQLITE: &str = "database.zst";

/// A reader that reports how many bytes have been read through it (the progress bar
/// of a part that is compressed on its way into the file).
struct Counted<R, F> {
    inner: R,
    read: u64,
    progress: F,
}

impl<R: std::io::Read, F: FnMut(u64)> std::io::Read for Counted<R, F> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        (self.progress)(self.read);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::{Keeping, Setup, run_recorded, utc_stamp, with_database};
    use lianyi_security::ChainAlg;
    use lianyi_security::crypto::CipherAlg;
    use lianyi_security::sealed::BackupKey;

    #[tokio::test]
    async fn each_run_is_recorded_copied_off_site_and_only_the_newest_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("lianyi.db").display());
        let store = lianyi_store::Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        store.close().await;
        std::fs::write(dir.path().join("keys"), "data k1 aes-256-gcm 00\n").unwrap();
        let setup = Setup {
            database_url: url.clone(),
            keys_file: dir.path().join("keys"),
            backup_key: BackupKey::generate(CipherAlg::Sm4Gcm).unwrap(),
            hash: ChainAlg::Sm3,
            pg_bin: "/nonexistent".into(),
            imaging_dir: dir.path().join("imaging"),
        };
        let keeping = Keeping { dir: dir.path().join("backups"), offsite: Some(dir.path().join("nas")), keep: 2 };
        let day = 86_400_000;
        for i in 0..3 {
            let (made, offsite) =
                run_recorded(&setup, &keeping, "scheduled", "system:backup", 1_800_000_000_000 + i * day)
                    .await
                    .unwrap();
            assert!(made.path.exists() && offsite.unwrap().exists());
        }
        let names = |d: &str| {
            let mut n: Vec<String> = std::fs::read_dir(dir.path().join(d))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".lyb"))
                .collect();
            n.sort();
            n
        };
        assert_eq!(names("backups"), ["lianyi-20270116-080000.lyb", "lianyi-20270117-080000.lyb"]);
        assert_eq!(names("nas"), names("backups"));
        let store = lianyi_store::Store::connect(&url).await.unwrap();
        let runs = store.backup_runs(10).await.unwrap();
        assert_eq!(runs.len(), 3);
        assert!(
            runs.iter().all(|r| r.status == "ok" && r.kind == "scheduled" && r.tables.unwrap_or(0) > 30),
            "{runs:?}"
        );
        assert_eq!(
            runs[0].offsite.as_deref(),
            Some(dir.path().join("nas/lianyi-20270117-080000.lyb").to_str().unwrap())
        );
        assert_eq!(store.last_good_backup().await.unwrap().unwrap().id, runs[0].id);
        // A failure is recorded with its reason.
        let broken = Keeping { dir: dir.path().join("keys").join("not-a-folder"), offsite: None, keep: 2 };
        assert!(run_recorded(&setup, &broken, "manual", "cli:test", 1_800_000_000_000 + 5 * day).await.is_err());
        let runs = store.backup_runs(1).await.unwrap();
        assert_eq!((runs[0].status.as_str(), runs[0].kind.as_str()), ("failed", "manual"));
        assert!(runs[0].error.as_deref().unwrap_or_default().len() > 5, "{runs:?}");
        assert_eq!(store.last_good_backup().await.unwrap().unwrap().status, "ok", "the last good one, not the last");
    }

    #[test]
    fn a_scratch_database_is_on_the_same_server() {
        assert_eq!(with_database("postgres://u:p@h:5432/lianyi", "x"), "postgres://u:p@h:5432/x");
        assert_eq!(with_database("postgres://u@h/lianyi?sslmode=require", "x"), "postgres://u@h/x?sslmode=require");
        assert_eq!(with_database("postgres://u@h:1", "x"), "postgres://u@h:1/x");
        assert_eq!(utc_stamp(1_800_000_000_000), "20270115-080000");
    }
}
