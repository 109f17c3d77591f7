//! Deposits (预交金) of inpatient stays: the admission office or a cashier takes an
//! amount for a stay in hospital — cash, bank card, WeChat Pay or Alipay (the
//! transaction reference typed or scanned) — under the campus's next receipt number
//! (预交金收据); the stay's balance is what the final settlement is paid from. The
//! amount, its receipt row and its audit record are one database transaction; the
//! balance never goes below zero.

use lianyi_clinical::record::Record;
use lianyi_fhir::ResourceType;
use lianyi_security::roles::Capability;
use lianyi_security::{Caller, Perm};
use lianyi_services::{FhirService, ServiceError};
use lianyi_store::StoreError;
use lianyi_store::deposits::{Deposit, NewDeposit};
use lianyi_store::messages::SideWrite;
use serde_json::Value;

use crate::cashier::METHODS;
use crate::money::Fen;
use crate::prices::FieldError;

/// The largest single deposit: one million yuan.
const MAX_DEPOSIT: Fen = Fen(100_000_000);

#[derive(Debug, thiserror::Error)]
pub enum DepositError {
    #[error("{}", crate::prices::joined(.0))]
    Invalid(Vec<FieldError>),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error(transparent)]
    Service(ServiceError),
}

impl From<ServiceError> for DepositError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound { .. } | ServiceError::Gone { .. } => invalid("stay", "stay", "a stay in hospital"),
            ServiceError::Forbidden(why) => DepositError::Forbidden(why),
            ServiceError::Store(StoreError::Refused(msg)) => {
                invalid("amount", "balance", msg.trim_start_matches("amount: ").to_string())
            }
            other => DepositError::Service(other),
        }
    }
}

impl From<StoreError> for DepositError {
    fn from(e: StoreError) -> Self {
        ServiceError::from(e).into()
    }
}

impl From<lianyi_clinical::registry::RegistryError> for DepositError {
    fn from(e: lianyi_clinical::registry::RegistryError) -> Self {
        use lianyi_clinical::registry::RegistryError;
        match e {
            RegistryError::Forbidden(why) => DepositError::Forbidden(why),
            RegistryError::Service(s) => s.into(),
            RegistryError::Store(s) => s.into(),
            RegistryError::Invalid(_) => invalid("stay", "stay", "a stay in hospital"),
        }
    }
}

fn invalid(field: &'static str, rule: &'static str, detail: impl Into<String>) -> DepositError {
    DepositError::Invalid(vec![FieldError { field, rule, detail: detail.into() }])
}

/// A deposit as the form gives it.
#[derive(Clone, Debug, Default)]
pub struct DepositForm {
    /// Where it is taken.
    pub campus: String,
    /// The stay (an Encounter id).
    pub stay: String,
    /// Yuan.
    pub amount: String,
    pub method: String,
    /// The transaction reference (card, WeChat Pay, Alipay).
    pub reference: String,
}

/// A stay's deposits and balance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StayAccount {
    pub stay: String,
    /// The stay number (住院号).
    pub number: String,
    pub patient: String,
    pub patient_name: String,
    /// Admitted or on a ward (deposits may be taken).
    pub in_hospital: bool,
    pub deposits: Vec<Deposit>,
    pub balance: Fen,
}

#[derive(Clone, Debug)]
pub struct Deposits {
    fhir: FhirService,
    record: Record,
}

impl Deposits {
    pub fn new(fhir: FhirService) -> Deposits {
        Deposits { record: Record::new(fhir.clone()), fhir }
    }

    /// The campus's cashiers and the admission office take deposits.
    pub fn may_take(caller: &Caller) -> bool {
        let access = caller.access();
        let cashier = access.allows("Invoice", Perm::Create) && access.allows("ChargeItem", Perm::Update);
        access.patient().is_none() && (cashier || caller.can(Capability::AdmitPatients))
    }

    /// Who reads a stay's balance: who takes deposits, and the ward's nurses.
    pub fn may_read(caller: &Caller) -> bool {
        Self::may_take(caller) || (caller.access().patient().is_none() && caller.can(Capability::KeepWard))
    }

    /// A stay as `caller` may read it (the patient's record open to them: it belongs
    /// to, or holds an MRN at, one of their campuses): (its Encounter, the patient, their
    /// name).
    pub(crate) async fn stay(&self, caller: &Caller, stay: &str) -> Result<(Value, String, String), DepositError> {
        let rt = ResourceType::parse("Encounter").ok_or_else(|| invalid("stay", "stay", "a stay in hospital"))?;
        let stored = self.fhir.reader(&caller.group_wide(), rt).await?.read(stay).await?;
        let v: Value = serde_json::from_str(&stored.body).map_err(|_| invalid("stay", "stay", "a stay in hospital"))?;
        let patient = v["subject"]["reference"].as_str().and_then(|r| r.strip_prefix("Patient/"));
        let Some(patient) = patient.filter(|_| v["class"]["code"] == "IMP") else {
            return Err(invalid("stay", "stay", "a stay in hospital"));
        };
        let (_, p) = self.record.open(caller, patient).await?;
        let name = lianyi_clinical::registry::person_of(&p).name;
        Ok((v.clone(), patient.to_string(), name))
    }

    /// Takes a deposit for a stay in hospital; returns the receipt.
    pub async fn take(&self, caller: &Caller, form: &DepositForm) -> Result<Deposit, DepositError> {
        if !Self::may_take(caller) || !caller.access().all_campuses().contains(&form.campus) {
            return Err(DepositError::Forbidden(
                "deposits are taken by the campus's cashiers and admission office".into(),
            ));
        }
        let (stay, patient, _) = self.stay(caller, &form.stay).await?;
        let mut errors = Vec::new();
        if !matches!(stay["status"].as_str(), Some("arrived" | "in-progress")) {
            errors.push(FieldError {
                field: "stay",
                rule: "discharged",
                detail: "a stay in hospital (not discharged)".into(),
            });
        }
        let amount = match Fen::parse_yuan(&form.amount) {
            Ok(a) if a.0 > 0 && a <= MAX_DEPOSIT => Some(a),
            Ok(_) => {
                errors.push(FieldError {
                    field: "amount",
                    rule: "range",
                    detail: "more than 0, at most 1,000,000 yuan".into(),
                });
                None
            }
            Err(e) => {
                errors.push(FieldError { field: "amount", rule: "format", detail: e.to_string() });
                None
            }
        };
        let reference = form.reference.trim();
        if !METHODS.contains(&form.method.as_str()) {
            errors.push(FieldError { field: "method", rule: "choice", detail: "cash, card, wechat or alipay".into() });
        } else if form.method != "cash" && (reference.is_empty() || reference.len() > 64) {
            errors.push(FieldError {
                field: "reference",
                rule: "required",
                detail: "the transaction reference (1 to 64 characters)".into(),
            });
        }
        let (Some(amount), true) = (amount, errors.is_empty()) else {
            return Err(DepositError::Invalid(errors));
        };
        let deposits = self.fhir.operations().deposits();
        // A number taken by another desk meanwhile: the next one.
        for _ in 0..20 {
            let no = deposits.last_receipt_no(&form.campus).await? + 1;
            let entry = NewDeposit {
                campus: form.campus.clone(),
                receipt_no: no,
                stay: form.stay.clone(),
                patient: patient.clone(),
                kind: "deposit".into(),
                amount_fen: amount.0,
                method: form.method.clone(),
                reference: (form.method != "cash").then(|| reference.to_string()),
                cashier: caller.actor().to_string(),
                at: self.fhir.now_ms(),
                note: None,
            };
            let mut audit = caller.entry(entry.at, "deposit", "success");
            audit.resource_type = Some("Encounter".into());
            audit.resource_id = Some(form.stay.clone());
            audit.patient = Some(patient.clone());
            audit.detail = Some(format!("receipt {}/{no}: {amount} yuan by {}", form.campus, form.method));
            match self.fhir.write_side(vec![audit], &[SideWrite::Deposit(entry.clone())]).await {
                Ok(()) => {
                    let found = deposits.receipt(&form.campus, no).await?;
                    return found.ok_or_else(|| invalid("amount", "lost", "the receipt could not be read back"));
                }
                Err(ServiceError::Conflict { resource_type, .. }) if resource_type == "deposit" => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(invalid("amount", "busy", "every receipt number was taken meanwhile: nothing was written; try again"))
    }

    /// A stay's deposits and balance.
    pub async fn account(&self, caller: &Caller, stay: &str) -> Result<StayAccount, DepositError> {
        if !Self::may_read(caller) {
            return Err(DepositError::Forbidden("deposits are not among your roles".into()));
        }
        let (v, patient, patient_name) = self.stay(caller, stay).await?;
        let deposits = self.fhir.operations().deposits().of_stay(stay).await?;
        let balance = Fen(deposits.iter().map(|d| d.entry.amount_fen).sum());
        let number = v["identifier"]
            .as_array()
            .and_then(|ids| {
                ids.iter().find(|i| i["system"].as_str().is_some_and(|s| s.starts_with("urn:lianyi:sid:inpatient:")))
            })
            .and_then(|i| i["value"].as_str())
            .unwrap_or_default()
            .to_string();
        Ok(StayAccount {
            stay: stay.to_string(),
            number,
            patient,
            patient_name,
            in_hospital: matches!(v["status"].as_str(), Some("arrived" | "in-progress")),
            deposits,
            balance,
        })
    }

    /// The balances of stays `caller` sees on a board (a stay without deposits: none).
    pub async fn balances(
        &self,
        caller: &Caller,
        stays: &[&str],
    ) -> Result<std::collections::HashMap<String, Fen>, DepositError> {
        if !Self::may_read(caller) {
            return Ok(Default::default());
        }
        let found = self.fhir.operations().deposits().balances(stays).await?;
        Ok(found.into_iter().map(|(k, v)| (k, Fen(v))).collect())
    }

    /// One receipt of `campus`, to print.
    pub async fn receipt(&self, caller: &Caller, campus: &str, no: i64) -> Result<Option<Deposit>, DepositError> {
        if !Self::may_take(caller) || !caller.access().all_campuses().contains(campus) {
            return Err(DepositError::Forbidden("deposits are not among your roles".into()));
        }
        Ok(self.fhir.operations().deposits().receipt(campus, no).await?)
    }
}

/// What a final settlement (出院结算) did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settled {
    /// The invoice of the stay's charges, when there were any.
    pub invoice_no: Option<i64>,
    pub total: Fen,
    /// Paid from the deposit.
    pub from_deposit: Fen,
    /// The deposit's balance paid back.
    pub refund: Fen,
    /// Paid by the patient beyond the deposit.
    pub paid: Fen,
}

impl Deposits {
    /// The final settlement of a discharged stay (出院结算): its billable charges paid
    /// from the deposit under one invoice, what the deposit does not cover paid by the
    /// patient (`method`, with the cash handed over or the transaction reference), and
    /// the balance left paid back in cash — one transaction; the receipts numbered.
    pub async fn settle(
        &self,
        caller: &Caller,
        cashier: &crate::cashier::Cashier,
        form: &DepositForm,
    ) -> Result<Settled, DepositError> {
        if !Self::may_take(caller) || !caller.access().all_campuses().contains(&form.campus) {
            return Err(DepositError::Forbidden(
                "settlements are made by the campus's cashiers and admission office".into(),
            ));
        }
        let (stay, patient, _) = self.stay(caller, &form.stay).await?;
        if stay["status"] != "finished" {
            return Err(invalid("stay", "not-discharged", "a discharged stay (the doctor discharges it first)"));
        }
        let rt = ResourceType::parse("ChargeItem").ok_or_else(|| invalid("stay", "stay", "a stay"))?;
        let params = vec![
            ("context".to_string(), format!("Encounter/{}", form.stay)),
            ("_count".to_string(), "1000".to_string()),
        ];
        let req =
            lianyi_fhir::search::parse_search(rt, &params).map_err(|i| invalid("stay", "search", i.diagnostics))?;
        let page = self.fhir.search(&self.fhir.permit(caller, rt).await?, &req).await?;
        let charges: Vec<(lianyi_store::StoredResource, Value)> = page
            .resources
            .into_iter()
            .filter_map(|r| {
                let v: Value = serde_json::from_str(&r.body).ok()?;
                (v["status"] == "billable").then_some((r, v))
            })
            .collect();
        // The whole stay is settled at once: charges another campus holds are billed
        // there first (its invoice numbers), or the balance would go back too early.
        if let Some((r, _)) = charges.iter().find(|(r, _)| r.campus.as_deref() != Some(form.campus.as_str())) {
            return Err(invalid(
                "stay",
                "other-campus",
                format!("the stay has charges at {} to settle there first", r.campus.as_deref().unwrap_or("-")),
            ));
        }
        let total =
            Fen(charges.iter().map(|(_, v)| crate::charges::extension_i64(v, crate::charges::AMOUNT_URL)).sum());
        let balance = Fen(self
            .fhir
            .operations()
            .deposits()
            .balances(&[form.stay.as_str()])
            .await?
            .get(&form.stay)
            .copied()
            .unwrap_or(0));
        if total.0 == 0 && balance.0 == 0 {
            return Err(invalid("stay", "settled", "nothing to settle: no charge and no deposit left"));
        }
        let from_deposit = Fen(total.0.min(balance.0));
        let refund = Fen(balance.0 - from_deposit.0);
        let due = Fen(total.0 - from_deposit.0);
        let now = self.fhir.now_ms();
        let row = |kind: &str, amount: i64, method: &str| NewDeposit {
            campus: form.campus.clone(),
            receipt_no: 0,
            stay: form.stay.clone(),
            patient: patient.clone(),
            kind: kind.into(),
            amount_fen: amount,
            method: method.into(),
            reference: None,
            cashier: caller.actor().to_string(),
            at: now,
            note: None,
        };
        let mut rows = Vec::new();
        if from_deposit.0 > 0 {
            rows.push(row("settlement", -from_deposit.0, "deposit"));
        }
        if refund.0 > 0 {
            rows.push(row("refund", -refund.0, "cash"));
        }
        if charges.is_empty() {
            // Only the deposit back: its receipt and audit record.
            let deposits = self.fhir.operations().deposits();
            for _ in 0..20 {
                let mut entry = row("refund", -refund.0, "cash");
                entry.receipt_no = deposits.last_receipt_no(&form.campus).await? + 1;
                let mut audit = caller.entry(now, "settlement", "success");
                audit.resource_type = Some("Encounter".into());
                audit.resource_id = Some(form.stay.clone());
                audit.patient = Some(patient.clone());
                audit.detail = Some(format!("no charges; deposit {refund} yuan paid back"));
                match self.fhir.write_side(vec![audit], &[SideWrite::Deposit(entry)]).await {
                    Ok(()) => return Ok(Settled { invoice_no: None, total, from_deposit, refund, paid: Fen(0) }),
                    Err(ServiceError::Conflict { resource_type, .. }) if resource_type == "deposit" => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            return Err(invalid(
                "stay",
                "busy",
                "every receipt number was taken meanwhile: nothing was written; try again",
            ));
        }
        let method = if due.0 > 0 { form.method.clone() } else { "deposit".to_string() };
        if due.0 > 0 && !METHODS.contains(&method.as_str()) {
            return Err(invalid("method", "choice", format!("{due} yuan is due beyond the deposit: how is it paid")));
        }
        let invoice_no = cashier
            .settle_charges(caller, (&form.campus, &patient), &charges, (method, total, due), rows, &form.reference)
            .await
            .map_err(|e| match e {
                crate::cashier::PayError::Invalid(f) => DepositError::Invalid(f),
                crate::cashier::PayError::Forbidden(w) => DepositError::Forbidden(w),
                crate::cashier::PayError::Service(s) => s.into(),
                other => invalid("stay", "changed", other.to_string()),
            })?;
        Ok(Settled { invoice_no: Some(invoice_no), total, from_deposit, refund, paid: due })
    }
}
