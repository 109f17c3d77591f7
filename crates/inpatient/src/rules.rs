//! How each campus's wards work (病区规则) — settings of the campus, not code: the
//! medication round times of each frequency, and whether an order needs a second
//! nurse's check (双人核对) after the first nurse's before it is carried out. A
//! campus's managers set them ([`Capability::SetWardRules`]); every change is
//! audited in the transaction that writes it. The nursing-level and bed fees are
//! items of the campus's price list (see [`crate::charging`]).

use lianyi_security::Caller;
use lianyi_security::roles::Capability;
use lianyi_store::messages::SideWrite;

use crate::schedule::Rounds;
use crate::stays::{Inpatient, InpatientError, invalid};

/// A campus's ward rules (the defaults where it set none).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct WardRules {
    pub rounds: Rounds,
    /// Orders are carried out only after two different nurses verified them.
    pub second_check: bool,
    /// Who set them last and when (`None`: the defaults).
    pub set: Option<(String, i64)>,
}

/// A change of a campus's rules, as the form sends it.
#[derive(Clone, Debug, Default)]
pub struct RulesForm {
    /// `qd=08:00;bid=08:00,16:00;…`; a frequency not named keeps its default.
    pub rounds: String,
    pub second_check: bool,
}

impl Inpatient {
    /// Whether `caller` sets the ward rules of `campus` (a manager there).
    pub fn may_set_rules(caller: &Caller, campus: &str) -> bool {
        caller.can(Capability::SetWardRules)
            && caller.access().patient().is_none()
            && caller.access().all_campuses().contains(campus)
    }

    /// The rules `campus`'s wards work by.
    pub async fn rules(&self, campus: &str) -> Result<WardRules, InpatientError> {
        let Some(set) = self.fhir.operations().ward_rules().get(campus).await? else {
            return Ok(WardRules::default());
        };
        // Stored rules were read by the same parser when set; a bad row (edited by
        // hand) keeps the defaults rather than stopping the ward.
        let rounds = Rounds::parse(&set.rounds).unwrap_or_else(|e| {
            tracing::warn!(campus, error = %e, "stored round times unreadable: the defaults apply");
            Rounds::default()
        });
        Ok(WardRules { rounds, second_check: set.second_check, set: Some((set.updated_by, set.updated_at)) })
    }

    /// Sets `campus`'s ward rules: the round times are checked (the error names the
    /// frequency and the rule) and nothing is written unless all hold.
    pub async fn set_rules(
        &self,
        caller: &Caller,
        campus: &str,
        form: &RulesForm,
    ) -> Result<WardRules, InpatientError> {
        if !Self::may_set_rules(caller, campus) {
            return Err(InpatientError::Forbidden(format!("the ward rules of {campus} are set by its managers")));
        }
        lianyi_security::CampusId::parse(campus).map_err(|_| invalid("campus", "campus", "a campus"))?;
        let rounds = Rounds::parse(&form.rounds).map_err(|e| invalid("rounds", "rounds", e))?;
        let now = self.fhir.now_ms();
        let row = lianyi_store::ward_rules::WardRules {
            campus: campus.to_string(),
            rounds: rounds.text(),
            second_check: form.second_check,
            updated_by: caller.actor().to_string(),
            updated_at: now,
        };
        let mut audit = caller.entry(now, "ward-rules", "success");
        audit.detail = Some(format!(
            "{campus}: rounds {}; second nurse's check {}",
            row.rounds,
            if form.second_check { "on" } else { "off" }
        ));
        self.fhir.write_side(vec![audit], &[SideWrite::WardRules(row)]).await?;
        Ok(WardRules { rounds, second_check: form.second_check, set: Some((caller.actor().to_string(), now)) })
    }
}
