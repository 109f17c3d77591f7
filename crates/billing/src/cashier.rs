//! The cashier (收费处): a patient's unpaid charges are paid in one go — cash (with
//! change), bank card, WeChat Pay or Alipay (the transaction reference typed or
//! scanned; no payment gateway) — and an Invoice is issued under the next number of
//! the campus. The Invoice, the charges turning `billed` and the payment row are one
//! database transaction: there is no paid charge without its invoice and no invoice
//! without its payment. The number is the campus's last plus one, and the payments
//! table's key refuses a number twice; a cashier who lost the race takes the next,
//! so the numbers have no gaps.

use lianyi_fhir::ResourceType;
use lianyi_security::{Caller, Perm};
use lianyi_services::{FhirService, Seen, ServiceError};
use lianyi_store::messages::SideWrite;
use lianyi_store::payments::{NewPayment, PaymentLine};
use lianyi_store::pharmacy::{Dispensing, QueueChange};
use serde_json::{Value, json};

use crate::charges::{AMOUNT_URL, ChargeLine};
use crate::money::Fen;
use crate::prices::FieldError;

pub const METHODS: [&str; 4] = ["cash", "card", "wechat", "alipay"];
pub const METHOD_URL: &str = "urn:lianyi:fhir:payment-method";
/// A red-letter invoice's reference to the invoice it refunds.
pub const REFUND_OF_URL: &str = "urn:lianyi:fhir:refund-of";

/// The invoice numbers' identifier system of a campus.
pub fn invoice_system(campus: &str) -> String {
    format!("urn:lianyi:sid:invoice:{campus}")
}

#[derive(Debug, thiserror::Error)]
pub enum PayError {
    #[error("{}", crate::prices::joined(.0))]
    Invalid(Vec<FieldError>),
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A charge was paid or changed by someone else meanwhile: nothing was written.
    #[error("the charges changed meanwhile")]
    Changed,
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Store(#[from] lianyi_store::StoreError),
    #[error(transparent)]
    Charge(#[from] crate::charges::ChargeError),
}

fn invalid(field: &'static str, rule: &'static str, detail: &str) -> FieldError {
    FieldError { field, rule, detail: detail.into() }
}

/// A payment as the cashier's form gives it.
#[derive(Clone, Debug, Default)]
pub struct PaymentForm {
    pub campus: String,
    pub patient: String,
    /// ChargeItem ids.
    pub charges: Vec<String>,
    pub method: String,
    /// Cash handed over, in yuan (cash only).
    pub tendered: String,
    /// The transaction reference (card, WeChat Pay, Alipay).
    pub reference: String,
}

/// A payment made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paid {
    pub campus: String,
    pub invoice_no: i64,
    pub amount: Fen,
    pub change: Fen,
}

/// A cashier's day: (method, total, payments) for every method, and when it was
/// settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Day {
    pub day: String,
    pub totals: Vec<(String, Fen, i64)>,
    pub settled_at: Option<i64>,
}

/// A receipt (门诊收费票据): the payment and its lines, with totals by category.
#[derive(Clone, Debug)]
pub struct Receipt {
    pub payment: NewPayment,
    pub lines: Vec<ChargeLine>,
    /// (category, total) in the order the categories first appear.
    pub by_category: Vec<(String, Fen)>,
}

#[derive(Clone, Debug)]
pub struct Cashier {
    fhir: FhirService,
    /// One turn per campus at a time between reading the last number and committing
    /// the next (in this process): sixteen desks do not all race for the same number
    /// and retry. Another server on the same database is still kept apart by the
    /// payments table's key and the retry.
    turns: Turns,
}

/// Per campus: the last number handed out in this process (`None` until read from the
/// database, and after a payment failed) and the signal of its write being queued.
#[derive(Debug, Default)]
struct Turn {
    last: Option<i64>,
    queued: Option<std::sync::Arc<tokio::sync::Notify>>,
}

type Turns =
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::Mutex<Turn>>>>>;

/// What an invoice's transaction carries besides its charges and payment row: the
/// invoice's extensions, the pharmacist's queue changes and the reads that led to it.
struct With<'a> {
    extensions: Vec<Value>,
    queue: Vec<QueueChange>,
    seen: &'a [Seen],
    /// Amounts of a stay's deposit the invoice uses or pays back (numbered in turn).
    deposits: Vec<lianyi_store::deposits::NewDeposit>,
}

/// Wakes the next number's write when this one is dropped (done, failed or abandoned).
struct Handover(std::sync::Arc<tokio::sync::Notify>);

impl Drop for Handover {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

fn rtype(t: &str) -> Result<ResourceType, PayError> {
    Ok(crate::charges::rtype(t)?)
}

impl Cashier {
    pub fn new(fhir: FhirService) -> Cashier {
        Cashier { fhir, turns: Default::default() }
    }

    /// Takes the payment of `form.charges`; every broken rule named by field, nothing
    /// written unless all is well.
    pub async fn pay(&self, caller: &Caller, form: &PaymentForm) -> Result<Paid, PayError> {
        let access = caller.access();
        let cashier = access.allows("Invoice", Perm::Create) && access.allows("ChargeItem", Perm::Update);
        if !(cashier && access.all_campuses().contains(&form.campus)) {
            return Err(PayError::Forbidden("payments are taken by the campus's cashiers".into()));
        }
        let mut errors = Vec::new();
        if !METHODS.contains(&form.method.as_str()) {
            errors.push(invalid("method", "choice", "cash, card, wechat or alipay"));
        }
        if form.charges.is_empty() {
            errors.push(invalid("charges", "required", "at least one charge to pay"));
        }
        // The charges: billable, of this patient and campus, as the cashier reads them.
        let reader = self.fhir.reader(caller, rtype("ChargeItem")?).await?;
        let mut charges = Vec::new();
        // Their reads are audited with the payment (or on its failure, below).
        let mut seen = Vec::new();
        for id in &form.charges {
            match reader.read_to_change(id).await {
                Ok((r, s)) => {
                    seen.push(s);
                    let v: Value = serde_json::from_str(&r.body).map_err(|_| PayError::Changed)?;
                    let subject_ok = v["subject"]["reference"].as_str() == Some(&format!("Patient/{}", form.patient));
                    if v["status"] != "billable" || !subject_ok || r.campus.as_deref() != Some(form.campus.as_str()) {
                        errors.push(invalid(
                            "charges",
                            "not-billable",
                            "a charge that is not this patient's to pay here",
                        ));
                        break;
                    }
                    charges.push((r, v));
                }
                Err(ServiceError::NotFound { .. } | ServiceError::Gone { .. }) => {
                    errors.push(invalid("charges", "not-billable", "a charge that is not this patient's to pay here"));
                    break;
                }
                Err(e) => {
                    self.fhir.record_seen(seen).await?;
                    return Err(e.into());
                }
            }
        }
        let result = self.pay_read(caller, form, &charges, errors, &seen).await;
        if result.is_err() {
            self.fhir.record_seen(seen).await?;
        }
        result
    }

    /// [`Cashier::pay`] once the charges are read.
    async fn pay_read(
        &self,
        caller: &Caller,
        form: &PaymentForm,
        charges: &[(lianyi_store::StoredResource, Value)],
        mut errors: Vec<FieldError>,
        seen: &[Seen],
    ) -> Result<Paid, PayError> {
        let amount = Fen(charges.iter().map(|(_, v)| amount_of(v)).sum());
        let mut tendered = amount;
        let reference = form.reference.trim();
        if form.method == "cash" {
            match Fen::parse_yuan(&form.tendered) {
                Ok(t) if t >= amount => tendered = t,
                Ok(_) => errors.push(invalid("tendered", "short", "at least the amount due")),
                Err(e) => errors.push(invalid("tendered", "amount", &e.to_string())),
            }
        } else if METHODS.contains(&form.method.as_str()) && (reference.is_empty() || reference.len() > 64) {
            errors.push(invalid("reference", "required", "the transaction reference (1 to 64 characters)"));
        }
        if !errors.is_empty() {
            return Err(PayError::Invalid(errors));
        }
        self.open_day(caller, &form.campus).await?;
        let payment = NewPayment {
            campus: form.campus.clone(),
            invoice_no: 0,
            invoice_id: String::new(),
            patient: form.patient.clone(),
            method: form.method.clone(),
            amount_fen: amount.0,
            tendered_fen: tendered.0,
            reference: (form.method != "cash").then(|| reference.to_string()),
            cashier: caller.actor().to_string(),
            paid_at: self.fhir.now_ms(),
            refund_of: None,
            reason: None,
            lines: Vec::new(),
        };
        // Paid prescriptions join the pharmacist's queue in the same transaction.
        let queue = charges
            .iter()
            .filter_map(|(_, v)| crate::dispensing::queue_entry(v, &form.campus, &form.patient, payment.paid_at))
            .map(QueueChange::Add)
            .collect();
        let no = self
            .commit_invoice(
                caller,
                charges,
                "billed",
                payment,
                With { extensions: Vec::new(), queue, seen, deposits: Vec::new() },
            )
            .await?;
        Ok(Paid { campus: form.campus.clone(), invoice_no: no, amount, change: Fen(tendered.0 - amount.0) })
    }

    /// Writes an invoice for `charges` (each turning `status`) with its payment row in
    /// one transaction under the campus's next number; returns the number. A number
    /// taken by another cashier meanwhile fails the whole transaction and the next one
    /// is tried, so numbers are unique and without gaps.
    async fn commit_invoice(
        &self,
        caller: &Caller,
        charges: &[(lianyi_store::StoredResource, Value)],
        status: &str,
        mut payment: NewPayment,
        with: With<'_>,
    ) -> Result<i64, PayError> {
        let With { extensions, queue, seen, deposits } = with;
        let date = lianyi_clinical::scheduling::local_instant(payment.paid_at);
        let campus = payment.campus.clone();
        // Charge by charge, for the revenue reports; a refund's lines count negative.
        let day = lianyi_clinical::scheduling::local_date(payment.paid_at);
        let sign = if payment.refund_of.is_some() { -1 } else { 1 };
        payment.lines = charges
            .iter()
            .map(|(r, v)| PaymentLine {
                charge: r.id.clone(),
                category: crate::charges::line_of(&r.id, v).category,
                department: v["costCenter"]["reference"]
                    .as_str()
                    .and_then(|d| d.strip_prefix("Organization/"))
                    .map(str::to_string),
                amount_fen: sign * amount_of(v),
                day: day.clone(),
            })
            .collect();
        let ops = self.fhir.operations();
        let turn = {
            let mut turns = self.turns.lock().unwrap_or_else(|e| e.into_inner());
            turns.entry(campus.clone()).or_default().clone()
        };
        for _ in 0..20 {
            // Numbers are handed out in turn; each payment's write is queued after the
            // previous number's, and they commit together (group commit).
            let (no, after, queued) = {
                let mut t = turn.lock().await;
                let no = match t.last {
                    Some(n) => n + 1,
                    None => ops.last_invoice_no(&campus).await? + 1,
                };
                t.last = Some(no);
                let queued = std::sync::Arc::new(tokio::sync::Notify::new());
                (no, t.queued.replace(queued.clone()), queued)
            };
            let _handover = Handover(queued.clone());
            let invoice_id = format!("inv-{campus}-{no:08}");
            let mut ext = vec![
                json!({"url": AMOUNT_URL, "valueInteger": payment.amount_fen}),
                json!({"url": METHOD_URL, "valueCode": payment.method}),
            ];
            ext.extend(extensions.iter().cloned());
            let mut entries = vec![json!({"resource": {
                "resourceType": "Invoice", "id": invoice_id, "status": "issued",
                "identifier": [{"system": invoice_system(&campus), "value": format!("{no:08}")}],
                "subject": {"reference": format!("Patient/{}", payment.patient)},
                "date": date,
                "lineItem": charges.iter().enumerate().map(|(i, (r, _))| json!({"sequence": i + 1,
                    "chargeItemReference": {"reference": format!("ChargeItem/{}", r.id)}})).collect::<Vec<_>>(),
                "extension": ext},
                "request": {"method": "PUT", "url": format!("Invoice/{invoice_id}")}})];
            for (r, v) in charges {
                let mut v = v.clone();
                v["status"] = json!(status);
                if let Some(o) = v.as_object_mut() {
                    o.remove("meta");
                }
                entries.push(json!({"resource": v, "request": {"method": "PUT", "url": format!("ChargeItem/{}", r.id),
                                                               "ifMatch": format!("W/\"{}\"", r.version)}}));
            }
            payment.invoice_no = no;
            payment.invoice_id = invoice_id;
            let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
            let mut side = vec![SideWrite::Payment(payment.clone()), SideWrite::InTurn { after, queued }];
            side.extend(queue.iter().map(|q| {
                SideWrite::Queue(match q {
                    QueueChange::Add(d) => QueueChange::Add(Dispensing { invoice_no: no, ..d.clone() }),
                    other => other.clone(),
                })
            }));
            // The deposit's receipts follow the campus's last one.
            let mut receipt = if deposits.is_empty() { 0 } else { ops.deposits().last_receipt_no(&campus).await? };
            for d in &deposits {
                receipt += 1;
                side.push(SideWrite::Deposit(lianyi_store::deposits::NewDeposit { receipt_no: receipt, ..d.clone() }));
            }
            let result = self.fhir.process_bundle_seen(caller, bundle, true, &side, seen).await;
            if result.is_err() {
                // Nothing committed under this number: read the last one afresh.
                turn.lock().await.last = None;
            }
            match result {
                Ok(_) => return Ok(no),
                Err(ServiceError::Conflict { resource_type, .. })
                    if resource_type == "payment" || resource_type == "deposit" =>
                {
                    continue;
                }
                Err(ServiceError::Store(lianyi_store::StoreError::Refused(msg))) => {
                    return Err(PayError::Invalid(vec![crate::stock::refused_field(&msg)]));
                }
                Err(ServiceError::Invalid(o))
                    if o.issues.iter().any(|i| i.code == lianyi_fhir::IssueType::Conflict) =>
                {
                    return Err(PayError::Changed);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(PayError::Changed)
    }

    /// Refunds (退费) charges of a paid invoice whose orders were not yet dispensed or
    /// performed, with a reason: a red-letter invoice (a negative amount, the campus's
    /// next number, referring to the original) and its payment row, the charges
    /// aborted, in one transaction; audited with the reason.
    pub async fn refund(
        &self,
        caller: &Caller,
        campus: &str,
        invoice_no: i64,
        charge_ids: &[String],
        reason: &str,
    ) -> Result<i64, PayError> {
        let access = caller.access();
        let cashier = access.allows("Invoice", Perm::Create) && access.allows("ChargeItem", Perm::Update);
        if !(cashier && access.all_campuses().contains(campus)) {
            return Err(PayError::Forbidden("refunds are made by the campus's cashiers".into()));
        }
        let ops = self.fhir.operations();
        let Some(original) = ops.payment(campus, invoice_no).await?.filter(|p| p.refund_of.is_none()) else {
            return Err(PayError::Invalid(vec![invalid("invoice", "unknown", "a paid invoice of this campus")]));
        };
        let mut errors = Vec::new();
        let reason = reason.trim();
        if reason.chars().count() < 2 || reason.chars().count() > 200 {
            errors.push(invalid("reason", "required", "why the money is given back (2 to 200 characters)"));
        }
        if charge_ids.is_empty() {
            errors.push(invalid("charges", "required", "at least one charge to refund"));
        }
        let invoice = self.fhir.reader(caller, rtype("Invoice")?).await?.read(&original.invoice_id).await?;
        let invoice: Value = serde_json::from_str(&invoice.body).map_err(|_| PayError::Changed)?;
        let on_invoice = |id: &str| {
            invoice["lineItem"].as_array().is_some_and(|items| {
                items
                    .iter()
                    .any(|i| i["chargeItemReference"]["reference"].as_str() == Some(&format!("ChargeItem/{id}")))
            })
        };
        let reader = self.fhir.reader(caller, rtype("ChargeItem")?).await?;
        let mut charges = Vec::new();
        let mut queue = Vec::new();
        for id in charge_ids {
            let r = match reader.read(id).await {
                Ok(r) if on_invoice(id) => r,
                Ok(_) | Err(ServiceError::NotFound { .. } | ServiceError::Gone { .. }) => {
                    errors.push(invalid("charges", "not-on-invoice", "a charge of this invoice"));
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            let v: Value = serde_json::from_str(&r.body).map_err(|_| PayError::Changed)?;
            if v["status"] != "billed" {
                errors.push(invalid("charges", "not-billed", "a charge that is paid and not refunded"));
                break;
            }
            let (delivered, queued) = self.delivered(&v).await?;
            if delivered {
                errors.push(invalid("charges", "delivered", "not yet dispensed or performed"));
                break;
            }
            // A prescription in the pharmacist's queue leaves it in the same
            // transaction, only from the state read here: a dispense meanwhile fails it.
            if let Some(d) = queued {
                let request = d.request.clone();
                queue.push(QueueChange::Status {
                    request,
                    from: d.status.clone(),
                    to: "refunded".into(),
                    dispense: None,
                    by: caller.actor().into(),
                    at: self.fhir.now_ms(),
                });
            }
            charges.push((r, v));
        }
        if !errors.is_empty() {
            return Err(PayError::Invalid(errors));
        }
        self.open_day(caller, campus).await?;
        let amount: i64 = charges.iter().map(|(_, v)| amount_of(v)).sum();
        let payment = NewPayment {
            campus: campus.to_string(),
            invoice_no: 0,
            invoice_id: String::new(),
            patient: original.patient.clone(),
            method: original.method.clone(),
            amount_fen: -amount,
            tendered_fen: -amount,
            reference: original.reference.clone(),
            cashier: caller.actor().to_string(),
            paid_at: self.fhir.now_ms(),
            refund_of: Some(invoice_no),
            reason: Some(reason.to_string()),
            lines: Vec::new(),
        };
        let refers = vec![
            json!({"url": REFUND_OF_URL, "valueReference": {"reference": format!("Invoice/{}", original.invoice_id)}}),
        ];
        let no = self
            .commit_invoice(
                caller,
                &charges,
                "aborted",
                payment,
                With { extensions: refers, queue, seen: &[], deposits: Vec::new() },
            )
            .await?;
        let mut e = caller.entry(self.fhir.now_ms(), "refund", "success");
        e.resource_type = Some("Invoice".into());
        e.resource_id = Some(format!("inv-{campus}-{no:08}"));
        e.patient = Some(original.patient.clone());
        e.detail = Some(format!("refunds invoice {invoice_no}: {reason}"));
        self.fhir.audit_log().record(vec![e]).await.map_err(|x| PayError::Forbidden(x.to_string()))?;
        Ok(no)
    }

    /// Refuses a payment or refund once the cashier settled today.
    async fn open_day(&self, caller: &Caller, campus: &str) -> Result<(), PayError> {
        let today = lianyi_clinical::scheduling::local_date(self.fhir.now_ms());
        if self.fhir.operations().settled_at(campus, caller.actor(), &today).await?.is_some() {
            return Err(PayError::Invalid(vec![invalid("day", "settled", "today is settled: no more payments")]));
        }
        Ok(())
    }

    /// Settles a stay's charges under one invoice: paid from the deposit (`deposits`,
    /// the amounts the deposit gives and pays back) and, for what it does not cover,
    /// by `method` (`due` of `total`); returns the invoice number.
    pub(crate) async fn settle_charges(
        &self,
        caller: &Caller,
        (campus, patient): (&str, &str),
        charges: &[(lianyi_store::StoredResource, Value)],
        (method, total, due): (String, Fen, Fen),
        deposits: Vec<lianyi_store::deposits::NewDeposit>,
        reference: &str,
    ) -> Result<i64, PayError> {
        self.open_day(caller, campus).await?;
        let payment = NewPayment {
            campus: campus.to_string(),
            invoice_no: 0,
            invoice_id: String::new(),
            patient: patient.to_string(),
            method,
            amount_fen: total.0,
            tendered_fen: total.0,
            reference: Some(reference.trim().to_string()).filter(|r| !r.is_empty() && due.0 > 0),
            cashier: caller.actor().to_string(),
            paid_at: self.fhir.now_ms(),
            refund_of: None,
            reason: None,
            lines: Vec::new(),
        };
        let paid_from_deposit = json!({"url": "urn:lianyi:fhir:paid-from-deposit", "valueInteger": total.0 - due.0});
        self.commit_invoice(
            caller,
            charges,
            "billed",
            payment,
            With { extensions: vec![paid_from_deposit], queue: Vec::new(), seen: &[], deposits },
        )
        .await
    }

    /// A cashier's day at a campus (`YYYY-MM-DD`, Beijing time): totals by payment
    /// method (refunds count negative) and whether it is settled.
    pub async fn day(&self, caller: &Caller, campus: &str, day: &str) -> Result<Day, PayError> {
        let access = caller.access();
        if !(access.allows("Invoice", Perm::Create) && access.all_campuses().contains(campus)) {
            return Err(PayError::Forbidden("the day is settled by the campus's cashiers".into()));
        }
        let Some(from) = crate::prices::local_midnight(day) else {
            return Err(PayError::Invalid(vec![invalid("day", "format", "a date as YYYY-MM-DD")]));
        };
        let ops = self.fhir.operations();
        let totals = ops.payment_totals(campus, caller.actor(), from, from + 86_400_000).await?;
        let settled_at = ops.settled_at(campus, caller.actor(), day).await?;
        Ok(Day {
            day: day.to_string(),
            totals: METHODS
                .iter()
                .map(|m| {
                    let (sum, n) = totals.iter().find(|(k, _, _)| k == m).map_or((0, 0), |(_, s, n)| (*s, *n));
                    (m.to_string(), Fen(sum), n)
                })
                .collect(),
            settled_at,
        })
    }

    /// Settles a cashier's day (日结): the amount counted for every payment method must
    /// equal the day's payments by that method (each mismatch named); the day is then
    /// locked and audited as `settlement`.
    pub async fn settle(
        &self,
        caller: &Caller,
        campus: &str,
        day: &str,
        counted: &[(String, String)],
    ) -> Result<Day, PayError> {
        let state = self.day(caller, campus, day).await?;
        if state.settled_at.is_some() {
            return Err(PayError::Invalid(vec![invalid("day", "settled", "this day is settled already")]));
        }
        let mut errors = Vec::new();
        for (method, total, _) in &state.totals {
            let typed = counted.iter().find(|(m, _)| m == method).map(|(_, v)| v.trim()).unwrap_or("");
            let field: &'static str = match method.as_str() {
                "cash" => "cash",
                "card" => "card",
                "wechat" => "wechat",
                _ => "alipay",
            };
            let value = if typed.is_empty() {
                Ok(Fen(0))
            } else {
                Fen::parse_yuan(typed.trim_start_matches('-'))
                    .map(|f| if typed.starts_with('-') { Fen(-f.0) } else { f })
            };
            match value {
                Ok(v) if v == *total => {}
                Ok(_) => errors.push(invalid(field, "mismatch", &format!("the day's payments total {total}"))),
                Err(e) => errors.push(invalid(field, "amount", &e.to_string())),
            }
        }
        if !errors.is_empty() {
            return Err(PayError::Invalid(errors));
        }
        let totals = state.totals.iter().map(|(m, t, _)| format!("{m}={}", t.0)).collect::<Vec<_>>().join(";");
        let count: i64 = state.totals.iter().map(|(_, _, n)| n).sum();
        let now = self.fhir.now_ms();
        if !self.fhir.operations().settle_day(campus, caller.actor(), day, &totals, count, now).await? {
            return Err(PayError::Invalid(vec![invalid("day", "settled", "this day is settled already")]));
        }
        let mut e = caller.entry(now, "settlement", "success");
        e.detail = Some(format!("{campus} {day}: {totals}"));
        self.fhir.audit_log().record(vec![e]).await.map_err(|x| PayError::Forbidden(x.to_string()))?;
        self.day(caller, campus, day).await
    }

    /// Whether a charge's order was carried out — a request completed (looked up as the
    /// billing task: a cashier does not read orders), a prescription dispensed — and a
    /// prescription's place in the pharmacist's queue.
    async fn delivered(&self, charge: &Value) -> Result<(bool, Option<Dispensing>), PayError> {
        let Some(order) = charge["service"][0]["reference"].as_str() else { return Ok((false, None)) };
        if let Some(id) = order.strip_prefix("ServiceRequest/") {
            let wide = Caller::task(lianyi_security::SystemTask::Billing);
            let r = self.fhir.reader(&wide, rtype("ServiceRequest")?).await?.read(id).await?;
            let v: Value = serde_json::from_str(&r.body).map_err(|_| PayError::Changed)?;
            return Ok((v["status"] == "completed", None));
        }
        if let Some(request) = order.strip_prefix("MedicationRequest/") {
            let queued = self.fhir.operations().pharmacy().dispensing(request).await?;
            return Ok((queued.as_ref().is_some_and(|d| d.status == "dispensed"), queued));
        }
        Ok((false, None))
    }

    /// The receipt of invoice `no` of a campus, as the caller may read its charges.
    pub async fn receipt(&self, caller: &Caller, campus: &str, no: i64) -> Result<Option<Receipt>, PayError> {
        if !caller.access().allows("Invoice", Perm::Read) || !caller.access().all_campuses().contains(campus) {
            return Err(PayError::Forbidden("receipts are read by the campus's cashiers".into()));
        }
        let Some(payment) = self.fhir.operations().payment(campus, no).await? else { return Ok(None) };
        let invoice = self.fhir.reader(caller, rtype("Invoice")?).await?.read(&payment.invoice_id).await?;
        let invoice: Value = serde_json::from_str(&invoice.body).map_err(|_| PayError::Changed)?;
        let reader = self.fhir.reader(caller, rtype("ChargeItem")?).await?;
        let mut lines = Vec::new();
        let mut by_category: Vec<(String, Fen)> = Vec::new();
        for item in invoice["lineItem"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let Some(id) =
                item["chargeItemReference"]["reference"].as_str().and_then(|r| r.strip_prefix("ChargeItem/"))
            else {
                continue;
            };
            let r = reader.read(id).await?;
            let c: Value = serde_json::from_str(&r.body).map_err(|_| PayError::Changed)?;
            let line = crate::charges::line_of(&r.id, &c);
            match by_category.iter_mut().find(|(k, _)| *k == line.category) {
                Some((_, total)) => total.0 += line.amount.0,
                None => by_category.push((line.category.clone(), line.amount)),
            }
            lines.push(line);
        }
        Ok(Some(Receipt { payment, lines, by_category }))
    }
}

fn amount_of(c: &Value) -> i64 {
    crate::charges::extension_i64(c, AMOUNT_URL)
}
