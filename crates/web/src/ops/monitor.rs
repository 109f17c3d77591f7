//! Monitoring while the server runs: the central server's probes, checked for due
//! ones every tick (each probe at its own interval), and each minute the alerts
//! settled again (a scheduled change's window opens or closes with time alone) and
//! the samples past their retention rolled up and pruned.

use crate::AppState;

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
    loop {
        every.tick().await;
        let free = permits.available_permits().min(500);
        if free > 0 {
            match state.monitor.claim_due(free as i64).await {
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
