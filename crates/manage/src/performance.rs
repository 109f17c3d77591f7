//! The performance formulas (绩效), without storage: each campus weighs the same
//! indicators its own way (the planning documents: evaluation standards differ between
//! campuses) and scores them by one of two methods —
//!
//! - **relative**: each person against the best of their department that month (the
//!   best scores 100 %; for an indicator where lower is better, such as the minutes to
//!   answer a critical value, the fastest scores 100 %);
//! - **target**: each person against the campus's target for the indicator, capped
//!   (120 % by default), so one indicator cannot carry the sheet.
//!
//! The total is the weighted sum. A person with no figure for an indicator (a doctor
//! who had no critical value to answer) is scored on the others, their weights scaled
//! up to the whole. Scores are whole hundredths of a percent (integers, so a sheet
//! reads the same on every machine).

/// An indicator computed from the records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Indicator {
    /// Outpatient visits seen.
    Visits,
    /// Prescriptions signed.
    Prescriptions,
    /// Laboratory and imaging requests.
    Requests,
    /// Reports issued (laboratory, imaging).
    Results,
    /// Minutes from a critical value to its acknowledgement (average): lower is better.
    CriticalResponse,
    /// Patient satisfaction: praise among the praise and complaints naming the person,
    /// in permille.
    Satisfaction,
}

impl Indicator {
    pub const ALL: [Indicator; 6] = [
        Indicator::Visits,
        Indicator::Prescriptions,
        Indicator::Requests,
        Indicator::Results,
        Indicator::CriticalResponse,
        Indicator::Satisfaction,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Indicator::Visits => "visits",
            Indicator::Prescriptions => "prescriptions",
            Indicator::Requests => "requests",
            Indicator::Results => "results",
            Indicator::CriticalResponse => "critical-response",
            Indicator::Satisfaction => "satisfaction",
        }
    }

    pub fn parse(s: &str) -> Option<Indicator> {
        Indicator::ALL.into_iter().find(|i| i.code() == s)
    }

    pub fn lower_is_better(self) -> bool {
        self == Indicator::CriticalResponse
    }
}

/// How a campus turns figures into scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Relative,
    /// Against targets, each indicator's score capped at `cap_percent`.
    Target {
        cap_percent: u32,
    },
}

/// A campus's formula.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Formula {
    pub method: Method,
    /// Weights in whole percent, summing to 100.
    pub weights: Vec<(Indicator, u32)>,
    /// Targets for the target method (per month; minutes for a lower-is-better one).
    pub targets: Vec<(Indicator, u64)>,
}

/// A broken rule of a formula.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormulaError {
    /// The weights do not sum to 100 (their sum).
    WeightsSum(u32),
    /// An indicator weighed twice.
    Twice(Indicator),
    /// The target method needs a positive target for this weighed indicator.
    NoTarget(Indicator),
    /// A cap below 100 % would mark everyone down.
    Cap(u32),
}

impl Formula {
    /// Every broken rule, or nothing.
    pub fn check(&self) -> Vec<FormulaError> {
        let mut out = Vec::new();
        let sum: u32 = self.weights.iter().map(|(_, w)| *w).sum();
        if sum != 100 {
            out.push(FormulaError::WeightsSum(sum));
        }
        for (n, (i, _)) in self.weights.iter().enumerate() {
            if self.weights[..n].iter().any(|(j, _)| j == i) {
                out.push(FormulaError::Twice(*i));
            }
        }
        if let Method::Target { cap_percent } = self.method {
            if cap_percent < 100 {
                out.push(FormulaError::Cap(cap_percent));
            }
            for (i, w) in &self.weights {
                if *w > 0 && !self.targets.iter().any(|(j, t)| j == i && *t > 0) {
                    out.push(FormulaError::NoTarget(*i));
                }
            }
        }
        out
    }
}

/// One person's figures for the month (`None`: nothing to count, e.g. no critical
/// value came to them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Figures {
    pub person: String,
    pub values: Vec<(Indicator, Option<u64>)>,
}

impl Figures {
    fn value(&self, i: Indicator) -> Option<u64> {
        self.values.iter().find(|(j, _)| *j == i).and_then(|(_, v)| *v)
    }
}

/// One person's scores, in hundredths of a percent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scored {
    pub person: String,
    /// Each weighed indicator's score (`None` when the person has no figure).
    pub parts: Vec<(Indicator, Option<u32>)>,
    pub total: u32,
}

/// `a / b` in hundredths of a percent, rounded half up (`b` > 0).
fn percent(a: u64, b: u64) -> u64 {
    (a.saturating_mul(20_000) / b).div_ceil(2)
}

/// Scores a department's month under a campus's formula.
pub fn score(formula: &Formula, people: &[Figures]) -> Vec<Scored> {
    let best = |i: Indicator| {
        let values = people.iter().filter_map(|p| p.value(i));
        if i.lower_is_better() { values.min() } else { values.max() }
    };
    people
        .iter()
        .map(|p| {
            let mut parts = Vec::new();
            let (mut weighted, mut weight) = (0u64, 0u64);
            for (i, w) in &formula.weights {
                let part = p.value(*i).map(|v| match formula.method {
                    Method::Relative => match best(*i) {
                        Some(b) if i.lower_is_better() => {
                            // The fastest scores 100 %; zero minutes is the best there is.
                            if v == 0 { 10_000 } else { percent(b, v) }
                        }
                        Some(b) if b > 0 => percent(v, b),
                        _ => 0,
                    },
                    Method::Target { cap_percent } => {
                        let target = formula.targets.iter().find(|(j, _)| j == i).map_or(0, |(_, t)| *t);
                        let raw = match (i.lower_is_better(), target) {
                            (_, 0) => 0,
                            (true, t) => {
                                if v == 0 {
                                    u64::MAX
                                } else {
                                    percent(t, v)
                                }
                            }
                            (false, t) => percent(v, t),
                        };
                        raw.min(u64::from(cap_percent) * 100)
                    }
                });
                if let Some(s) = part {
                    weighted += s * u64::from(*w);
                    weight += u64::from(*w);
                }
                parts.push((*i, part.map(|s| u32::try_from(s).unwrap_or(u32::MAX))));
            }
            let total = (weighted * 2).checked_div(weight).map_or(0, |t| t.div_ceil(2));
            Scored { person: p.person.clone(), parts, total: u32::try_from(total).unwrap_or(u32::MAX) }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Indicator::*;

    fn figures(person: &str, visits: u64, prescriptions: u64, critical: Option<u64>) -> Figures {
        Figures {
            person: person.into(),
            values: vec![(Visits, Some(visits)), (Prescriptions, Some(prescriptions)), (CriticalResponse, critical)],
        }
    }

    /// East Campus weighs workload: relative to the department's best.
    fn east() -> Formula {
        Formula {
            method: Method::Relative,
            weights: vec![(Visits, 60), (Prescriptions, 30), (CriticalResponse, 10)],
            targets: Vec::new(),
        }
    }

    /// South Campus weighs quality: against targets, capped at 120 %.
    fn south() -> Formula {
        Formula {
            method: Method::Target { cap_percent: 120 },
            weights: vec![(Visits, 30), (Prescriptions, 20), (CriticalResponse, 50)],
            targets: vec![(Visits, 400), (Prescriptions, 300), (CriticalResponse, 10)],
        }
    }

    #[test]
    fn the_same_month_scores_differently_under_each_campus_formula() {
        let month = [figures("li", 400, 300, Some(5)), figures("wang", 200, 300, Some(20))];
        let e = score(&east(), &month);
        // Li is the department's best on every indicator.
        assert_eq!(e[0].total, 10_000);
        // Wang: visits 50 %, prescriptions 100 %, critical 5/20 = 25 %:
        // 0.6×50 + 0.3×100 + 0.1×25 = 62.5 %.
        assert_eq!(
            e[1].parts,
            vec![(Visits, Some(5_000)), (Prescriptions, Some(10_000)), (CriticalResponse, Some(2_500))]
        );
        assert_eq!(e[1].total, 6_250);
        let s = score(&south(), &month);
        // Li: visits 100 %, prescriptions 100 %, critical 10/5 = 200 % capped at 120 %:
        // 0.3×100 + 0.2×100 + 0.5×120 = 110 %.
        assert_eq!(s[0].parts[2], (CriticalResponse, Some(12_000)));
        assert_eq!(s[0].total, 11_000);
        // Wang: 50 %, 100 %, 10/20 = 50 %: 0.3×50 + 0.2×100 + 0.5×50 = 60 %.
        assert_eq!(s[1].total, 6_000);
    }

    #[test]
    fn a_missing_figure_is_left_out_and_the_other_weights_fill_the_whole() {
        let month = [figures("li", 400, 300, Some(5)), figures("zhao", 400, 150, None)];
        let e = score(&east(), &month);
        // Zhao: visits 100 % (60), prescriptions 50 % (30), no critical value:
        // (60×100 + 30×50) / 90 = 83.33 %.
        assert_eq!(e[1].parts[2], (CriticalResponse, None));
        assert_eq!(e[1].total, 8_333);
    }

    #[test]
    fn zero_minutes_and_empty_months_score_without_dividing_by_zero() {
        let month = [figures("li", 0, 0, Some(0)), figures("wang", 0, 0, Some(3))];
        let e = score(&east(), &month);
        assert_eq!(e[0].parts, vec![(Visits, Some(0)), (Prescriptions, Some(0)), (CriticalResponse, Some(10_000))]);
        assert_eq!(e[1].parts[2], (CriticalResponse, Some(0)), "the best was 0 minutes");
        let s = score(&south(), &month);
        assert_eq!(s[0].parts[2], (CriticalResponse, Some(12_000)), "instant answers reach the cap");
    }

    #[test]
    fn formulas_are_checked() {
        assert!(east().check().is_empty());
        assert!(south().check().is_empty());
        let bad = Formula {
            method: Method::Target { cap_percent: 90 },
            weights: vec![(Visits, 50), (Visits, 20), (Results, 20)],
            targets: vec![(Visits, 100)],
        };
        assert_eq!(
            bad.check(),
            vec![
                FormulaError::WeightsSum(90),
                FormulaError::Twice(Visits),
                FormulaError::Cap(90),
                FormulaError::NoTarget(Results)
            ]
        );
        for i in Indicator::ALL {
            assert_eq!(Indicator::parse(i.code()), Some(i));
        }
    }
}
