//! Monitoring while the server runs: the central server's probes, checked for due
//! ones every tick (each probe at its own interval), and each minute the alerts
//! settled again (a scheduled change's window opens or closes with time alone) and
//! the samples past their retention rolled up and pruned.

use crate::AppState;

/// Runs until aborted.
pub(crate) async fn run_probes(state: AppState, tick: std::time::Duration) {
    let mut every = tokio::time::interval(tick);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_settle = 0_i64;
    loop {
        every.tick().await;
        if let Err(e) = state.monitor.run_due(&state.checker).await {
            tracing::error!(error = %e, "running the probes");
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
