//! Processing: when readings become an alert, when the alert ends, and which alert is
//! the root cause.
//!
//! Why this shape: the floods Zabbix users fight come from three gaps, each closed
//! here. (1) A value that crosses the line once is not an alert: a rule holds
//! `for` a duration, and clears only past a second line (hysteresis), so a value
//! hovering at the threshold does not toggle. (2) An alert that opens and closes
//! again and again is *flapping*: after `max_changes` changes within the damping
//! window it stays open (one incident) until the value has been good for a whole
//! window. (3) When the core switch is down, the two hundred devices behind it are
//! down too: a down CI whose dependencies (the CMDB's "needs" walk) include a down CI
//! is suppressed and names that root, so one alert opens one incident.
//!
//! Time is a parameter everywhere (`at`, epoch milliseconds): no clock is read here.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

/// Which side of the threshold is bad.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// Bad when the value is above the threshold (latency, queue depth, errors).
    Above,
    /// Bad when the value is below the threshold (up, days left, free space).
    Below,
}

impl Op {
    pub fn parse(s: &str) -> Option<Op> {
        match s {
            "above" | ">" => Some(Op::Above),
            "below" | "<" => Some(Op::Below),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Above => "above",
            Op::Below => "below",
        }
    }
}

/// How bad an alert is; the incident's impact follows from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Warning,
    Major,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Warning, Severity::Major, Severity::Critical];

    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Major => "major",
            Severity::Critical => "critical",
        }
    }
}

/// A threshold rule on one metric of a probe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub metric: String,
    pub op: Op,
    pub threshold: f64,
    /// The value must come back past this line to clear (hysteresis); `None`: the
    /// threshold itself.
    pub clear: Option<f64>,
    /// How long the value must stay bad before the alert opens (0: at once).
    pub for_ms: i64,
    pub severity: Severity,
}

impl Rule {
    /// Whether `v` is bad.
    pub fn breached(&self, v: f64) -> bool {
        match self.op {
            Op::Above => v > self.threshold,
            Op::Below => v < self.threshold,
        }
    }

    /// Whether `v` is good enough to clear an open alert.
    pub fn cleared(&self, v: f64) -> bool {
        let line = self.clear.unwrap_or(self.threshold);
        match self.op {
            Op::Above => v <= line,
            Op::Below => v >= line,
        }
    }

    /// A rule's broken rules, naming the field: the clear line must lie on the good
    /// side of the threshold, durations and numbers must be sane.
    pub fn problems(&self) -> Vec<crate::probe::Problem> {
        let mut out = Vec::new();
        let p = |field: &str, rule: &'static str, detail: &str| crate::probe::Problem {
            field: field.into(),
            rule,
            detail: detail.into(),
        };
        if self.metric.trim().is_empty() || self.metric.len() > 200 {
            out.push(p("metric", "required", "the metric the rule watches"));
        }
        if !self.threshold.is_finite() {
            out.push(p("threshold", "number", "a finite number"));
        }
        if let Some(c) = self.clear {
            let wrong_side = match self.op {
                Op::Above => c > self.threshold,
                Op::Below => c < self.threshold,
            };
            if !c.is_finite() || wrong_side {
                out.push(p("clear", "range", "a number on the good side of the threshold"));
            }
        }
        if !(0..=86_400_000).contains(&self.for_ms) {
            out.push(p("for", "range", "0 to 24 hours"));
        }
        out
    }
}

/// Flap damping: `max_changes` opens and clears within `window_ms` make an alert
/// flapping; it then closes only after a whole calm window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Damping {
    pub window_ms: i64,
    pub max_changes: usize,
}

impl Default for Damping {
    fn default() -> Self {
        Damping { window_ms: 15 * 60_000, max_changes: 4 }
    }
}

/// Where a rule stands for one probe.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum Phase {
    #[default]
    Ok,
    /// Bad since `since`, not yet for long enough.
    Pending { since: i64 },
    /// Open since `since`; when flapping, good since `calm_since` (if it is).
    Firing { since: i64, flapping: bool, calm_since: Option<i64> },
}

/// What an observation changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The alert opened (it was bad for the rule's duration).
    Opened,
    /// An open alert started flapping: it stays open until a calm window passes.
    Flapping,
    /// The alert closed.
    Resolved,
}

/// A rule's state for one probe, kept between observations (stored as JSON).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Track {
    pub phase: Phase,
    /// When the alert opened or cleared, within the damping window.
    pub changes: VecDeque<i64>,
}

impl Track {
    pub fn firing(&self) -> bool {
        matches!(self.phase, Phase::Firing { .. })
    }

    fn note_change(&mut self, at: i64, d: &Damping) -> bool {
        self.changes.push_back(at);
        while self.changes.front().is_some_and(|t| at - t > d.window_ms) {
            self.changes.pop_front();
        }
        self.changes.len() >= d.max_changes
    }

    /// One reading of the rule's metric at `at`; returns what changed.
    pub fn observe(&mut self, rule: &Rule, d: &Damping, at: i64, value: f64) -> Option<Change> {
        let bad = rule.breached(value);
        match self.phase.clone() {
            Phase::Ok | Phase::Pending { .. } if !bad => {
                self.phase = Phase::Ok;
                None
            }
            Phase::Ok | Phase::Pending { .. } => {
                let since = match self.phase {
                    Phase::Pending { since } => since,
                    _ => at,
                };
                if at - since >= rule.for_ms {
                    let flapping = self.note_change(at, d);
                    self.phase = Phase::Firing { since: at, flapping, calm_since: None };
                    Some(Change::Opened)
                } else {
                    self.phase = Phase::Pending { since };
                    None
                }
            }
            Phase::Firing { since, flapping, calm_since } => {
                if !rule.cleared(value) {
                    // Bad again (or inside the hysteresis band): the calm ends.
                    self.phase = Phase::Firing { since, flapping, calm_since: None };
                    return None;
                }
                if !flapping {
                    if self.note_change(at, d) {
                        // This clear would be one change too many: it stays open.
                        self.phase = Phase::Firing { since, flapping: true, calm_since: Some(at) };
                        return Some(Change::Flapping);
                    }
                    self.phase = Phase::Ok;
                    return Some(Change::Resolved);
                }
                let calm = calm_since.unwrap_or(at);
                if at - calm >= d.window_ms {
                    self.phase = Phase::Ok;
                    self.changes.clear();
                    Some(Change::Resolved)
                } else {
                    self.phase = Phase::Firing { since, flapping, calm_since: Some(calm) };
                    None
                }
            }
        }
    }

    /// Called when a flapping alert gets no reading (the probe failed): nothing
    /// changes; present so a caller can tell a missing reading from a good one.
    pub fn is_flapping(&self) -> bool {
        matches!(self.phase, Phase::Firing { flapping: true, .. })
    }
}

/// The root causes among the CIs that are down: for each down CI, the down CIs it
/// needs (its dependency closure, from the CMDB) that do not need it back. A down CI
/// with none is a root; the others are suppressed, each naming its roots.
///
/// `needs(ci)` gives every CI that `ci` runs on, depends on, connects to or is part
/// of, transitively.
pub fn roots<F>(down: &BTreeSet<i64>, mut needs: F) -> BTreeMap<i64, Vec<i64>>
where
    F: FnMut(i64) -> BTreeSet<i64>,
{
    let closures: BTreeMap<i64, BTreeSet<i64>> = down.iter().map(|&c| (c, needs(c))).collect();
    let mut out = BTreeMap::new();
    for (&ci, closure) in &closures {
        // Down CIs this one needs and that do not need it back (a ring of mutual
        // dependencies has no root inside it: each is its own).
        let causes: Vec<i64> = closure
            .iter()
            .copied()
            .filter(|d| *d != ci && down.contains(d) && !closures.get(d).is_some_and(|c| c.contains(&ci)))
            .collect();
        // Name only the deepest causes: a cause that itself needs another cause is
        // not a root.
        let deepest: Vec<i64> = causes
            .iter()
            .copied()
            .filter(|c| !causes.iter().any(|o| o != c && closures.get(c).is_some_and(|cl| cl.contains(o))))
            .collect();
        out.insert(ci, deepest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn down_rule(for_ms: i64) -> Rule {
        Rule { metric: "up".into(), op: Op::Below, threshold: 1.0, clear: None, for_ms, severity: Severity::Major }
    }

    #[test]
    fn an_alert_opens_only_after_its_duration_and_clears_past_the_hysteresis_line() {
        let rule = Rule {
            metric: "latency_ms".into(),
            op: Op::Above,
            threshold: 500.0,
            clear: Some(300.0),
            for_ms: 3 * MIN,
            severity: Severity::Warning,
        };
        let d = Damping::default();
        let mut t = Track::default();
        assert_eq!(t.observe(&rule, &d, 0, 600.0), None);
        assert_eq!(t.observe(&rule, &d, MIN, 700.0), None);
        // Good for one reading: the duration starts again.
        assert_eq!(t.observe(&rule, &d, 2 * MIN, 100.0), None);
        assert_eq!(t.observe(&rule, &d, 3 * MIN, 600.0), None);
        assert_eq!(t.observe(&rule, &d, 5 * MIN, 600.0), None);
        assert_eq!(t.observe(&rule, &d, 6 * MIN, 600.0), Some(Change::Opened));
        // Inside the band (below 500, above 300): still open.
        assert_eq!(t.observe(&rule, &d, 7 * MIN, 400.0), None);
        assert!(t.firing());
        assert_eq!(t.observe(&rule, &d, 8 * MIN, 250.0), Some(Change::Resolved));
        assert_eq!(t.phase, Phase::Ok);
    }

    #[test]
    fn a_flapping_port_keeps_one_alert_until_a_calm_window_passes() {
        let rule = down_rule(0);
        let d = Damping { window_ms: 10 * MIN, max_changes: 4 };
        let mut t = Track::default();
        let mut changes = Vec::new();
        // Down and up every minute for 20 minutes.
        for m in 0..20 {
            let v = if m % 2 == 0 { 0.0 } else { 1.0 };
            if let Some(c) = t.observe(&rule, &d, m * MIN, v) {
                changes.push((m, c));
            }
        }
        // Opened, resolved, opened, then the fourth change makes it flapping: one
        // alert from minute 2 on, never resolved while it flaps.
        assert_eq!(changes, [(0, Change::Opened), (1, Change::Resolved), (2, Change::Opened), (3, Change::Flapping)]);
        assert!(t.is_flapping());
        // Up from minute 19 on: resolved once a whole window (10 minutes) is calm.
        let mut after = Vec::new();
        for m in 21..40 {
            if let Some(c) = t.observe(&rule, &d, m * MIN, 1.0) {
                after.push((m, c));
            }
        }
        assert_eq!(after, [(29, Change::Resolved)]);
        // Later, a single failure opens a fresh, non-flapping alert.
        assert_eq!(t.observe(&rule, &d, 100 * MIN, 0.0), Some(Change::Opened));
        assert!(!t.is_flapping());
    }

    #[test]
    fn a_rule_with_its_clear_line_on_the_wrong_side_is_refused() {
        let mut r = down_rule(0);
        r.clear = Some(0.5);
        assert_eq!(r.problems()[0].field, "clear");
        r.clear = Some(1.0);
        r.for_ms = -1;
        assert_eq!(r.problems()[0].field, "for");
    }

    #[test]
    fn the_core_switch_is_the_one_root_when_everything_behind_it_is_down() {
        // 1 core switch; 2 access switch on 1; 10..20 terminals on 2; 30 server on 1;
        // 40 HIS on 30; 50 and 51 connect to each other (a ring); 60 alone.
        let mut needs_of: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
        needs_of.insert(2, [1].into());
        for t in 10..20 {
            needs_of.insert(t, [2, 1].into());
        }
        needs_of.insert(30, [1].into());
        needs_of.insert(40, [30, 1].into());
        needs_of.insert(50, [51].into());
        needs_of.insert(51, [50].into());
        let needs = |c: i64| needs_of.get(&c).cloned().unwrap_or_default();
        let mut down: BTreeSet<i64> = [1, 2, 30, 40, 50, 51, 60].into();
        down.extend(10..20);
        let r = roots(&down, needs);
        let root_cis: Vec<i64> = r.iter().filter(|(_, c)| c.is_empty()).map(|(ci, _)| *ci).collect();
        assert_eq!(root_cis, [1, 50, 51, 60]);
        assert_eq!(r[&15], [1]);
        assert_eq!(r[&40], [1]);
        // With the core switch up, the access switch is the terminals' root, and the
        // server the HIS's.
        down.remove(&1);
        let r = roots(&down, |c| needs_of.get(&c).cloned().unwrap_or_default());
        assert_eq!(r[&15], [2]);
        assert_eq!(r[&40], [30]);
        assert!(r[&2].is_empty() && r[&30].is_empty());
    }
}
