//! `lianyi collector`: a campus's collector. It runs the probes the central server
//! assigns to its campus, near the devices, and sends the results over HTTP(S).
//!
//! Why a spool on disk: the link to the central server fails exactly when it is
//! needed. Every result is appended to `results.ndjson` in the spool folder (and
//! flushed to disk) before anything is sent; a batch leaves the spool only after the
//! server answered that it stored it. A result sent twice — the answer was lost, or
//! the collector was killed between the answer and the rewrite — is stored once by
//! the server (it is keyed by probe and instant), so nothing is lost and nothing is
//! counted twice. The assignments are kept in the spool too, so a collector that
//! restarts while the server is down goes on probing.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lianyi_monitor::check::{Checker, Outcome};
use lianyi_monitor::probe::Spec;
use lianyi_security::Clock as _;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error("--token: CLIENT_ID:CLIENT_SECRET of an API client with the lianyi:ops scope, bound to the campus")]
    Token,
    #[error("the spool folder {path}: {source}")]
    Spool { path: PathBuf, source: std::io::Error },
    #[error("the probe runner: {0}")]
    Checker(String),
    #[error("the HTTP client: {0}")]
    Http(String),
}

/// One result waiting in the spool.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Sent {
    probe: i64,
    at: i64,
    outcome: Outcome,
}

#[derive(Deserialize)]
struct Assigned {
    id: i64,
    spec: Spec,
}

struct Link {
    http: reqwest::Client,
    server: String,
    id: String,
    secret: String,
    token: Option<(String, std::time::Instant)>,
}

impl Link {
    /// A bearer token, fetched again a minute before it expires.
    async fn token(&mut self) -> Result<String, String> {
        if let Some((t, until)) = &self.token
            && std::time::Instant::now() < *until
        {
            return Ok(t.clone());
        }
        let r = self
            .http
            .post(format!("{}/oauth/token", self.server))
            .form(&[("grant_type", "client_credentials"), ("client_id", &self.id), ("client_secret", &self.secret)])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("the token endpoint answered {}", r.status()));
        }
        let v: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
        let token = v["access_token"].as_str().ok_or("no access_token")?.to_string();
        let life = v["expires_in"].as_u64().unwrap_or(300).saturating_sub(60).max(10);
        self.token = Some((token.clone(), std::time::Instant::now() + Duration::from_secs(life)));
        Ok(token)
    }

    async fn assignments(&mut self) -> Result<Vec<Assigned>, String> {
        let token = self.token().await?;
        let r = self
            .http
            .get(format!("{}/api/ops/collector/probes", self.server))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            self.token = None;
            return Err(format!("the probes: {}", r.status()));
        }
        #[derive(Deserialize)]
        struct List {
            probes: Vec<Assigned>,
        }
        Ok(r.json::<List>().await.map_err(|e| e.to_string())?.probes)
    }

    /// Sends a batch; Ok when the server stored it (or had it already).
    async fn send(&mut self, batch: &[Sent]) -> Result<(), String> {
        let token = self.token().await?;
        let r = self
            .http
            .post(format!("{}/api/ops/collector/results", self.server))
            .bearer_auth(token)
            .json(&serde_json::json!({"results": batch}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match r.status() {
            s if s.is_success() => Ok(()),
            s if s == reqwest::StatusCode::UNAUTHORIZED => {
                self.token = None;
                Err("the token was refused".into())
            }
            s => Err(format!("{s}: {}", r.text().await.unwrap_or_default())),
        }
    }
}

/// Results as the spool holds them: one JSON line each.
fn lines(sent: &[Sent]) -> String {
    let mut text = String::new();
    for s in sent {
        text.push_str(&serde_json::to_string(s).unwrap_or_default());
        text.push('\n');
    }
    text
}

/// The spool: the results not yet stored by the server, one JSON line each.
struct Spool {
    dir: PathBuf,
}

impl Spool {
    fn err(&self, source: std::io::Error) -> CollectorError {
        CollectorError::Spool { path: self.dir.clone(), source }
    }

    fn results(&self) -> PathBuf {
        self.dir.join("results.ndjson")
    }

    /// Appends results and flushes them to disk.
    fn append(&self, sent: &[Sent]) -> Result<(), CollectorError> {
        let mut f =
            std::fs::OpenOptions::new().create(true).append(true).open(self.results()).map_err(|e| self.err(e))?;
        f.write_all(lines(sent).as_bytes()).map_err(|e| self.err(e))?;
        f.sync_data().map_err(|e| self.err(e))
    }

    /// Everything waiting (a torn last line from a crash is skipped).
    fn waiting(&self) -> Result<Vec<Sent>, CollectorError> {
        match std::fs::read_to_string(self.results()) {
            Ok(text) => Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Drops the first `n` waiting results (sent and stored), keeping any appended
    /// since they were read: rewritten through a temporary file and a rename.
    fn drop_sent(&self, n: usize) -> Result<(), CollectorError> {
        let rest: Vec<Sent> = self.waiting()?.into_iter().skip(n).collect();
        let tmp = self.dir.join("results.ndjson.tmp");
        {
            let mut f = std::fs::File::create(&tmp).map_err(|e| self.err(e))?;
            f.write_all(lines(&rest).as_bytes()).map_err(|e| self.err(e))?;
            f.sync_data().map_err(|e| self.err(e))?;
        }
        std::fs::rename(&tmp, self.results()).map_err(|e| self.err(e))
    }

    fn save_assignments(&self, list: &[(i64, Spec)]) -> Result<(), CollectorError> {
        let v: Vec<serde_json::Value> =
            list.iter().map(|(id, spec)| serde_json::json!({"id": id, "spec": spec})).collect();
        let tmp = self.dir.join("probes.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&v).unwrap_or_default()).map_err(|e| self.err(e))?;
        std::fs::rename(&tmp, self.dir.join("probes.json")).map_err(|e| self.err(e))
    }

    fn load_assignments(&self) -> Vec<(i64, Spec)> {
        std::fs::read(self.dir.join("probes.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Vec<Assigned>>(&b).ok())
            .map(|l| l.into_iter().map(|a| (a.id, a.spec)).collect())
            .unwrap_or_default()
    }
}

/// Runs the collector until interrupted.
pub async fn run(server: &str, token: &str, spool_dir: &Path, refresh: Duration) -> Result<(), CollectorError> {
    let (id, secret) = token.split_once(':').ok_or(CollectorError::Token)?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| CollectorError::Http(e.to_string()))?;
    let mut link = Link {
        http,
        server: server.trim_end_matches('/').to_string(),
        id: id.to_string(),
        secret: secret.to_string(),
        token: None,
    };
    std::fs::create_dir_all(spool_dir)
        .map_err(|source| CollectorError::Spool { path: spool_dir.to_path_buf(), source })?;
    let spool = Spool { dir: spool_dir.to_path_buf() };
    let checker = Checker::new().map_err(|e| CollectorError::Checker(e.to_string()))?;
    let clock = lianyi_security::SystemClock::default();
    let mut probes = spool.load_assignments();
    let mut due: HashMap<i64, i64> = HashMap::new();
    let mut was_up: HashMap<i64, bool> = HashMap::new();
    let mut refreshed: Option<std::time::Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    println!("Lianyi collector: sending to {} (spool {})", link.server, spool_dir.display());
    loop {
        tick.tick().await;
        if refreshed.is_none_or(|r| r.elapsed() >= refresh) {
            refreshed = Some(std::time::Instant::now());
            match link.assignments().await {
                Ok(list) => {
                    probes = list.into_iter().map(|a| (a.id, a.spec)).collect();
                    spool.save_assignments(&probes)?;
                    tracing::info!(probes = probes.len(), "assignments");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the central server is unreachable: probing from the last assignments")
                }
            }
        }
        // Run what is due, each at its own interval (keeping its cadence unless a
        // whole interval behind).
        let now = clock.now_ms();
        let mut set = tokio::task::JoinSet::new();
        for (id, spec) in &probes {
            let next = due.entry(*id).or_insert(now);
            if *next <= now {
                *next = lianyi_monitor::probe::next_due(*next, spec.interval_s, now);
                let (checker, spec, id) = (checker.clone(), spec.clone(), *id);
                set.spawn(async move { Sent { probe: id, at: now, outcome: checker.run(&spec, now).await } });
            }
        }
        let mut ran = Vec::new();
        while let Some(done) = set.join_next().await {
            if let Ok(s) = done {
                ran.push(s);
            }
        }
        // The first failure after being up is checked again after half an interval.
        for s in &ran {
            let up = s.outcome.is_up();
            if !up
                && was_up.get(&s.probe) != Some(&false)
                && let Some((_, spec)) = probes.iter().find(|(p, _)| *p == s.probe)
                && let Some(next) = due.get_mut(&s.probe)
            {
                *next = (*next).min(lianyi_monitor::probe::retry_at(spec.interval_s, s.at));
            }
            was_up.insert(s.probe, up);
        }
        due.retain(|id, _| probes.iter().any(|(p, _)| p == id));
        was_up.retain(|id, _| probes.iter().any(|(p, _)| p == id));
        if !ran.is_empty() {
            spool.append(&ran)?;
        }
        // Send the backlog, oldest first, in batches.
        let waiting = spool.waiting()?;
        let mut sent = 0;
        for batch in waiting.chunks(500) {
            match link.send(batch).await {
                Ok(()) => sent += batch.len(),
                Err(e) => {
                    tracing::warn!(error = %e, waiting = waiting.len() - sent, "results kept in the spool");
                    break;
                }
            }
        }
        if sent > 0 {
            spool.drop_sent(sent)?;
        }
    }
}
