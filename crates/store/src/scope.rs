//! Row-level limits that come from the caller's grants: applied inside the SQL of
//! searches and history, so a page never holds rows the caller may not see and
//! totals do not leak their number.

use crate::sql::{Arg, Sql};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RowScope {
    /// Only resources owned by one of these campuses, or by none. `None`: any campus.
    pub campuses: Option<Vec<String>>,
    /// Types the campus limit does not apply to (shared directory data).
    pub campus_exempt_types: Vec<String>,
    /// Patients whose compartment is open regardless of campus (break-the-glass).
    pub campus_exempt_patients: Vec<String>,
    /// Only resources in this patient's compartment. `None`: any patient.
    pub patient: Option<String>,
    /// Types the patient limit does not apply to (not in the Patient compartment).
    pub patient_exempt_types: Vec<String>,
}

impl RowScope {
    /// Everything: no limits.
    pub fn unrestricted() -> Self {
        RowScope::default()
    }

    /// Appends ` AND (...)` conditions on the `campus` and `patient` columns of alias
    /// `alias` of a table holding rows of one type only (`rtype`): the type's exemptions
    /// are decided here, not in the SQL.
    pub(crate) fn push_conditions_for_type(&self, sql: &mut Sql, alias: &str, rtype: &str) {
        let mut one = self.clone();
        if one.campus_exempt_types.iter().any(|t| t == rtype) {
            one.campuses = None;
        }
        if one.patient_exempt_types.iter().any(|t| t == rtype) {
            one.patient = None;
        }
        // Without exempt types, the conditions never name `res_type`.
        one.campus_exempt_types.clear();
        one.patient_exempt_types.clear();
        one.push_conditions(sql, alias);
    }

    /// Appends ` AND (...)` conditions on the columns of alias `r` (empty alias for
    /// unqualified columns).
    pub(crate) fn push_conditions(&self, sql: &mut Sql, alias: &str) {
        let col = |c: &str| if alias.is_empty() { c.to_string() } else { format!("{alias}.{c}") };
        if let Some(campuses) = &self.campuses {
            sql.push(&format!(" AND ({} IS NULL OR ", col("campus")));
            sql.push_in(&col("campus"), campuses);
            if !self.campus_exempt_types.is_empty() {
                sql.push(" OR ");
                sql.push_in(&col("res_type"), &self.campus_exempt_types);
            }
            if !self.campus_exempt_patients.is_empty() {
                sql.push(" OR ");
                sql.push_in(&col("patient"), &self.campus_exempt_patients);
            }
            sql.push(")");
        }
        if let Some(p) = &self.patient {
            sql.push(&format!(" AND ({} = ", col("patient")));
            sql.push_bind(Arg::Text(p.clone()));
            if !self.patient_exempt_types.is_empty() {
                sql.push(" OR ");
                sql.push_in(&col("res_type"), &self.patient_exempt_types);
            }
            sql.push(")");
        }
    }
}
