//! Monitoring while the server runs: the central server's probes, checked for due
//! ones every tick (each probe at its own interval), and each minute the alerts
//! settled again (a scheduled change's window opens or closes with time alone) and
//! the samples past their retention rolled up and pruned.

use crate::AppState;
use crate::ui::i18n::{Lang, Tr};

/// Monitoring's ticket texts in the installation's `language` (zh-CN unless `en`).
pub fn phrases(language: &str) -> lianyi_ops::monitor::Phrases {
    let t = Tr::new(Lang::parse(language).unwrap_or(Lang::ZhCn));
    let get = |k: &str| t.get(k).to_string();
    lianyi_ops::monitor::Phrases {
        down_title: get("mon-ticket-down"),
        metric_title: get("mon-ticket-metric"),
        alert: get("mon-ticket-alert"),
        flapping: get("mon-ticket-flapping"),
        recovered: get("mon-ticket-recovered"),
        recovered_note: get("mon-ticket-recovered-note"),
        also_down: get("mon-ticket-also-down"),
        in_all: get("mon-ticket-in-all"),
        severities: ["warning", "major", "critical"].map(|s| t.named("mon-severity", s)),
    }
}

/// Checks in flight at most; the scheduler claims no more due probes than it may start.
const IN_FLIGHT: usize = 1_000;

/// Runs until aborted. Each due probe is checked in its own task and its result
/// recorded as soon as it comes (one recorder, in order of arrival), so a slow target
/// delays nothing but itself.
pub(crate) async fn run_probes(state: AppState, tick: std::time::Duration) {
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let (results, mut arrived) = tokio::sync::mpsc::channel::<(i64, i64, lianyi_monitor::check::Outcome)>(IN_FLIGHT);
    let recorder = state.clone();
    tokio::spawn(async move {
        while let Some((probe, at, outcome)) = arrived.recv().await {
            if let Err(e) = recorder.monitor.record_central(probe, at, &outcome).await {
                tracing::error!(probe, error = %e, "recording a probe run");
            }
        }
    });
    let mut every = tokio::time::interval(tick);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_settle = 0_i64;
    let mut pause = lianyi_services::follow::Pause::new("monitoring");
    loop {
        every.tick().await;
        let free = permits.available_permits().min(500);
        if free > 0 {
            let claimed = state.monitor.claim_due(free as i64).await;
            let wait = pause.after(&state.fhir.operations(), claimed.is_ok(), std::time::Duration::ZERO).await;
            if pause.paused() {
                // The database fails: no probe is claimed (nor its result lost) until
                // it answers again.
                tokio::time::sleep(wait).await;
                continue;
            }
            match claimed {
                Ok((at, work)) => {
                    for (probe, spec) in work {
                        let Ok(permit) = permits.clone().try_acquire_owned() else { break };
                        let (state, results) = (state.clone(), results.clone());
                        tokio::spawn(async move {
                            let outcome = state.monitor.check(&state.checker, &spec, at).await;
                            let _ = results.send((probe, at, outcome)).await;
                            drop(permit);
                        });
                    }
                }
                Err(e) => tracing::error!(error = %e, "claiming the due probes"),
            }
        }
        let now = state.fhir.now_ms();
        if now - last_settle >= 60_000 {
            last_settle = now;
            if let Err(e) = state.monitor.settle(now).await {
                tracing::error!(error = %e, "settling the alerts");
            }
            if let Err(e) = state.monitor.housekeep(now, 50).await {
                tracing::error!(error = %e, "rolling up and pruning the samples");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::phrases;

    #[test]
    fn each_language_writes_the_incident_texts_with_every_hole_they_need() {
        for (language, down) in [("zh-CN", "{ci} 无响应"), ("en", "{ci} not answering"), ("fr", "{ci} 无响应")] {
            let p = phrases(language);
            assert_eq!(p.down_title, down, "{language}");
            let holes: [(&str, &[&str]); 7] = [
                (&p.metric_title, &["{ci}", "{metric}", "{value}"]),
                (&p.alert, &["{severity}", "{metric}", "{value}", "{since}"]),
                (&p.recovered, &["{metric}", "{value}", "{at}"]),
                (&p.recovered_note, &["{metric}", "{at}"]),
                (&p.also_down, &["{cis}"]),
                (&p.in_all, &["{n}"]),
                (&p.down_title, &["{ci}"]),
            ];
            for (text, needed) in holes {
                for h in needed {
                    assert!(text.contains(h), "{language}: {text} lacks {h}");
                }
            }
            assert!(p.severities.iter().all(|s| !s.is_empty() && !s.contains("mon-")), "{:?}", p.severities);
        }
    }
}
