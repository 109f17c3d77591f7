//! The satisfaction survey after a visit: the patient rates one of their finished
//! visits (1 to 5 stars, a comment), once. It becomes feedback of the visit's campus
//! about its doctor ([`lianyi_manage::feedback::Feedbacks::survey`]), which the
//! performance sheets count as patient satisfaction.

use lianyi_manage::feedback::{FeedbackError, Feedbacks, Survey};
use lianyi_security::Caller;
use lianyi_services::FhirService;

use crate::common::{patient_of, read, ref_id};
use crate::{PortalError, invalid};

/// A visit to rate, as the form shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rateable {
    pub encounter: String,
    pub date: String,
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Surveys {
    fhir: FhirService,
    feedback: Feedbacks,
}

impl Surveys {
    pub fn new(fhir: FhirService) -> Surveys {
        Surveys { feedback: Feedbacks::new(fhir.clone()), fhir }
    }

    /// One of the patient's finished visits; `NotFound` for anyone else's, a named
    /// refusal for one not finished.
    pub async fn visit(&self, caller: &Caller, encounter: &str) -> Result<(Rateable, Survey), PortalError> {
        let patient = patient_of(caller)?;
        let (stored, e) = read(&self.fhir, caller, "Encounter", encounter).await?.ok_or(PortalError::NotFound)?;
        if ref_id(&e["subject"], "Patient") != Some(patient) {
            return Err(PortalError::NotFound);
        }
        if e["status"] != "finished" {
            return Err(invalid("visit", "not-finished", "a visit is rated once it is finished"));
        }
        let rateable = Rateable {
            encounter: encounter.to_string(),
            date: e["period"]["start"].as_str().and_then(|s| s.get(..10)).unwrap_or_default().to_string(),
        };
        let survey = Survey {
            campus: stored.campus.clone().unwrap_or_default(),
            department: ref_id(&e["serviceProvider"], "Organization").map(str::to_string),
            practitioner: e["participant"]
                .as_array()
                .and_then(|ps| ps.iter().find_map(|p| ref_id(&p["individual"], "Practitioner")))
                .map(str::to_string),
            encounter: encounter.to_string(),
            ..Survey::default()
        };
        Ok((rateable, survey))
    }

    /// Rates one of the patient's finished visits, once.
    pub async fn rate(
        &self,
        caller: &Caller,
        encounter: &str,
        rating: &str,
        comment: &str,
    ) -> Result<i64, PortalError> {
        let (_, mut survey) = self.visit(caller, encounter).await?;
        survey.rating = rating.trim().parse().unwrap_or(0);
        survey.comment = comment.to_string();
        match self.feedback.survey(caller, &survey).await {
            Ok(id) => Ok(id),
            Err(FeedbackError::Invalid(errors)) => Err(PortalError::Invalid(errors)),
            Err(FeedbackError::Forbidden(why)) => Err(PortalError::Forbidden(why.into())),
            Err(FeedbackError::Service(e)) => Err(e.into()),
            Err(FeedbackError::Store(e)) => Err(e.into()),
            Err(e) => Err(PortalError::Users(e.to_string())),
        }
    }
}
