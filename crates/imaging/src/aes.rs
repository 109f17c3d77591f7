//! The AE table: which application entities (modalities, workstations, other PACS) may
//! open an association with the node, from which address, for which campus. What an
//! AE sends belongs to its campus, and its PatientIDs are read as that campus's MRNs.
//! Unknown callers are refused at association time and logged.

use std::net::IpAddr;

use lianyi_dicom::node::Refused;
use lianyi_security::Caller;
use lianyi_security::roles::Capability;
use lianyi_store::imaging::{Ae, ImagingTotals};

use crate::{Imaging, ImagingError, invalid};

/// An AE title as PS3.5 has it: 1 to 16 characters of printable ASCII without the
/// backslash, not all spaces (leading and trailing spaces are not significant).
pub fn valid_ae_title(t: &str) -> bool {
    let t = t.trim();
    !t.is_empty() && t.len() <= 16 && t.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\\')
}

/// What an administrator enters for one AE.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AeDraft {
    pub ae_title: String,
    pub campus: String,
    pub host: String,
    pub port: String,
    pub description: String,
    pub charset: String,
}

impl Imaging {
    /// Reloads the AE table into memory (after a change, and at start).
    pub async fn reload_aes(&self) -> Result<(), ImagingError> {
        let list = self.fhir.operations().dicom_aes().list().await?;
        if let Ok(mut aes) = self.aes.write() {
            *aes = list;
        }
        Ok(())
    }

    /// The AE table, by campus and title.
    pub fn aes(&self) -> Vec<Ae> {
        self.aes.read().map(|a| a.clone()).unwrap_or_default()
    }

    /// May `calling` at `ip` call us (`called` must be `ours`)? Answers from memory;
    /// a refusal is logged without patient data (there is none yet).
    pub fn admit(&self, ours: &str, calling: &str, called: &str, ip: IpAddr) -> Result<Ae, Refused> {
        if called != ours {
            tracing::warn!(calling, called, %ip, "DICOM association refused: the called AE title is not ours");
            metrics::counter!("lianyi_dicom_associations_refused_total", "reason" => "called").increment(1);
            return Err(Refused::WrongCalled);
        }
        let found = self.aes.read().ok().and_then(|aes| aes.iter().find(|a| a.ae_title == calling).cloned());
        match found {
            Some(ae) if ae.host.as_deref().is_none_or(|h| h.parse::<IpAddr>().is_ok_and(|h| h == ip)) => Ok(ae),
            Some(_) => {
                tracing::warn!(calling, %ip, "DICOM association refused: the AE is known, but not at this address");
                metrics::counter!("lianyi_dicom_associations_refused_total", "reason" => "address").increment(1);
                Err(Refused::UnknownCaller)
            }
            None => {
                tracing::warn!(calling, %ip, "DICOM association refused: unknown calling AE title");
                metrics::counter!("lianyi_dicom_associations_refused_total", "reason" => "unknown").increment(1);
                Err(Refused::UnknownCaller)
            }
        }
    }

    /// Adds or changes an AE (the integration role).
    pub async fn put_ae(&self, caller: &Caller, d: &AeDraft) -> Result<Ae, ImagingError> {
        if !caller.can(Capability::ManageIntegration) {
            return Err(ImagingError::Forbidden("the AE table is changed by the integration role".into()));
        }
        let ae_title = d.ae_title.trim().to_string();
        if !valid_ae_title(&ae_title) {
            return Err(invalid("ae_title", "ae-title", "1 to 16 printable ASCII characters, no backslash"));
        }
        let campus = d.campus.trim().to_string();
        if !self.fhir.campuses().await?.contains(&campus) {
            return Err(invalid("campus", "campus", "not a campus of this group"));
        }
        let host = match d.host.trim() {
            "" => None,
            h => Some(
                h.parse::<IpAddr>().map_err(|_| invalid("host", "ip-address", "an IPv4 or IPv6 address"))?.to_string(),
            ),
        };
        let port = match d.port.trim() {
            "" => None,
            p => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .map(i64::from)
                    .ok_or_else(|| invalid("port", "port", "a TCP port, 1 to 65535"))?,
            ),
        };
        if port.is_some() && host.is_none() {
            return Err(invalid("host", "host-for-port", "a port needs the address it is reached at"));
        }
        let charset = match d.charset.trim() {
            "" => None,
            c if ["GB18030", "GBK", "ISO_IR 192", "ISO_IR 100", "ISO_IR 6"].contains(&c) => Some(c.to_string()),
            _ => return Err(invalid("charset", "charset", "one of GB18030, GBK, ISO_IR 192, ISO_IR 100, ISO_IR 6")),
        };
        let ae = Ae {
            ae_title,
            campus,
            host,
            port,
            description: d.description.trim().chars().take(200).collect(),
            charset,
            created_at: self.fhir.now_ms(),
        };
        self.fhir.operations().dicom_aes().put(&ae).await?;
        self.reload_aes().await?;
        tracing::info!(ae = %ae.ae_title, campus = %ae.campus, by = caller.actor(), "DICOM AE saved");
        let at = ae.host.as_deref().map(|h| format!(" from {h}")).unwrap_or_default();
        self.audit_ae(caller, "dicom-ae-put", format!("{} at {}{at}", ae.ae_title, ae.campus)).await?;
        Ok(ae)
    }

    /// Removes an AE (the integration role); whether it was there.
    pub async fn remove_ae(&self, caller: &Caller, ae_title: &str) -> Result<bool, ImagingError> {
        if !caller.can(Capability::ManageIntegration) {
            return Err(ImagingError::Forbidden("the AE table is changed by the integration role".into()));
        }
        let removed = self.fhir.operations().dicom_aes().remove(ae_title).await?;
        self.reload_aes().await?;
        if removed {
            self.audit_ae(caller, "dicom-ae-remove", ae_title.to_string()).await?;
        }
        Ok(removed)
    }

    /// A change of the AE table in the audit chain.
    async fn audit_ae(&self, caller: &Caller, action: &str, detail: String) -> Result<(), ImagingError> {
        let mut e = caller.entry(self.fhir.now_ms(), action, "success");
        e.detail = Some(detail);
        self.fhir
            .audit_log()
            .record(vec![e])
            .await
            .map_err(|e| ImagingError::Service(lianyi_services::ServiceError::Audit(e)))
    }

    /// How many studies each imaging device (AE title) of `campus` sent in
    /// `[from, to)` (milliseconds): the equipment's use, for its keepers and the
    /// campus's managers (counts only).
    pub async fn studies_by_ae(
        &self,
        caller: &Caller,
        campus: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<(String, i64)>, ImagingError> {
        let reads = caller.can(Capability::KeepEquipment) || caller.can(Capability::ViewReports);
        if !reads || !caller.access().all_campuses().contains(campus) {
            return Err(ImagingError::Forbidden(
                "the devices' use is read by the campus's equipment keepers and managers".into(),
            ));
        }
        Ok(self.fhir.operations().dicom_aes().studies_by_ae(campus, from, to).await?)
    }

    /// What the index holds (counts only, for monitoring and the IT pages).
    pub async fn totals(&self) -> Result<ImagingTotals, ImagingError> {
        Ok(self.fhir.operations().dicom_aes().totals().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ae_titles_follow_part_5() {
        assert!(valid_ae_title("DEMO-CT"));
        assert!(valid_ae_title("CT_EAST_01 "));
        for bad in ["", "   ", "A\\B", "SEVENTEEN-CHARS-X", "CT\u{7}"] {
            assert!(!valid_ae_title(bad), "{bad:?}");
        }
    }
}
