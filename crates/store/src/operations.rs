//! The store without health data: the integration hub's tables (message log, outbox
//! cursors and deliveries, channels), counters and cursors, and the database's own
//! health. Areas outside the services get this handle, never a [`Store`]: resources
//! are read and written only through the FHIR service, which checks and audits every
//! access. (Message payloads are kept encrypted; the caller holds the key.)

use crate::messages::{Finish, Logged, LoggedMessage, MessageFilter, NewMessage, QueuedMessage, SideWrite};
use crate::outbox::{Attempt, ChannelRow, Delivery, NewDelivery, OutboxEvent, QueueStats};
use crate::{Backend, PoolStats, Result, Store};

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Operations(Store);

impl Store {
    /// This store's tables without health data.
    pub fn operations(&self) -> Operations {
        Operations(self.clone())
    }
}

impl Operations {
    /// The configuration database of IT operations: see [`crate::cmdb`].
    pub fn cmdb(&self) -> crate::cmdb::Cmdb {
        crate::cmdb::Cmdb(self.0.clone())
    }

    /// Monitoring's probes, runs, samples, rules and alerts: see [`crate::monitor`].
    pub fn monitor(&self) -> crate::monitor::Monitor {
        crate::monitor::Monitor(self.0.clone())
    }

    /// The IT service desk's tickets and groups: see [`crate::desk`].
    pub fn desk(&self) -> crate::desk::Desk {
        crate::desk::Desk(self.0.clone())
    }

    /// The support groups' webhooks and their posts: see [`crate::notices`].
    pub fn hooks(&self) -> crate::notices::Hooks {
        crate::notices::Hooks(self.0.clone())
    }

    /// The service desk's notifications and mail: see [`crate::notices`].
    pub fn notices(&self) -> crate::notices::Notices {
        crate::notices::Notices(self.0.clone())
    }

    /// The service desk's problems: see [`crate::problems`].
    pub fn problems(&self) -> crate::problems::Problems {
        crate::problems::Problems(self.0.clone())
    }

    /// The service desk's changes and change board: see [`crate::changes`].
    pub fn change_requests(&self) -> crate::changes::Changes {
        crate::changes::Changes(self.0.clone())
    }

    /// The IT knowledge base's articles and their versions: see [`crate::kb`].
    pub fn kb(&self) -> crate::kb::Kb {
        crate::kb::Kb(self.0.clone())
    }

    /// The DICOM node's application entities and the imaging index's totals: see
    /// [`crate::imaging`].
    pub fn dicom_aes(&self) -> crate::imaging::DicomAes {
        crate::imaging::DicomAes(self.0.clone())
    }

    /// The rosters' shift types, rules and shifts: see [`crate::rosters`].
    pub fn rosters(&self) -> crate::rosters::Rosters {
        crate::rosters::Rosters(self.0.clone())
    }

    /// Staff records and licences: see [`crate::staff`].
    pub fn staff(&self) -> crate::staff::Staff {
        crate::staff::Staff(self.0.clone())
    }

    /// Patients' feedback and complaints: see [`crate::feedback`].
    pub fn feedback(&self) -> crate::feedback::FeedbackTable {
        crate::feedback::FeedbackTable(self.0.clone())
    }

    /// The patient portal's activation codes: see [`crate::portal`].
    pub fn portal(&self) -> crate::portal::Portal {
        crate::portal::Portal(self.0.clone())
    }

    /// Messages between staff: see [`crate::staff_messages`].
    pub fn staff_messages(&self) -> crate::staff_messages::StaffMessages {
        crate::staff_messages::StaffMessages(self.0.clone())
    }

    /// The campuses' performance formulas: see [`crate::performance`].
    pub fn formulas(&self) -> crate::performance::Formulas {
        crate::performance::Formulas(self.0.clone())
    }

    /// The dashboards' daily figures: see [`crate::figures`].
    pub fn figures(&self) -> crate::figures::Figures {
        crate::figures::Figures(self.0.clone())
    }

    /// Announcements and their read receipts: see [`crate::announcements`].
    pub fn announcements(&self) -> crate::announcements::Announcements {
        crate::announcements::Announcements(self.0.clone())
    }

    /// The equipment register, its events and repairs: see [`crate::equipment`].
    pub fn equipment(&self) -> crate::equipment::Equipment {
        crate::equipment::Equipment(self.0.clone())
    }

    /// The materials' catalogue, stock, requisitions and high-value units: see
    /// [`crate::materials`].
    pub fn materials(&self) -> crate::materials::Materials {
        crate::materials::Materials(self.0.clone())
    }

    /// Deposits of inpatient stays: see [`crate::deposits`].
    pub fn deposits(&self) -> crate::deposits::Deposits {
        crate::deposits::Deposits(self.0.clone())
    }

    /// How each campus's wards work: see [`crate::ward_rules`].
    pub fn ward_rules(&self) -> crate::ward_rules::WardRulesTable {
        crate::ward_rules::WardRulesTable(self.0.clone())
    }

    /// The pharmacy's stock and queue: see [`crate::pharmacy`].
    pub fn pharmacy(&self) -> crate::pharmacy::Pharmacy {
        crate::pharmacy::Pharmacy(self.0.clone())
    }

    /// The backup runs, newest first: see [`crate::backup`].
    pub async fn backup_runs(&self, limit: i64) -> Result<Vec<crate::backup::BackupRun>> {
        self.0.backup_runs(limit).await
    }

    /// The newest backup run that ended well.
    pub async fn last_good_backup(&self) -> Result<Option<crate::backup::BackupRun>> {
        self.0.last_good_backup().await
    }

    /// The cashier's payments: see [`crate::payments`].
    pub async fn last_invoice_no(&self, campus: &str) -> Result<i64> {
        self.0.last_invoice_no(campus).await
    }

    pub async fn payment(&self, campus: &str, invoice_no: i64) -> Result<Option<crate::payments::NewPayment>> {
        self.0.payment(campus, invoice_no).await
    }

    pub async fn payment_totals(
        &self,
        campus: &str,
        cashier: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<(String, i64, i64)>> {
        self.0.payment_totals(campus, cashier, from, to).await
    }

    pub async fn settle_day(
        &self,
        campus: &str,
        cashier: &str,
        day: &str,
        totals: &str,
        payments: i64,
        at: i64,
    ) -> Result<bool> {
        self.0.settle_day(campus, cashier, day, totals, payments, at).await
    }

    pub async fn settled_at(&self, campus: &str, cashier: &str, day: &str) -> Result<Option<i64>> {
        self.0.settled_at(campus, cashier, day).await
    }

    pub async fn revenue(
        &self,
        by: crate::payments::RevenueBy,
        from: &str,
        to: &str,
        campuses: Option<&[String]>,
    ) -> Result<Vec<crate::payments::Revenue>> {
        self.0.revenue(by, from, to, campuses).await
    }

    /// What the payments of these FHIR Invoices paid, line by line: see
    /// [`crate::payments`].
    pub async fn invoice_lines(
        &self,
        invoices: &[String],
    ) -> Result<Vec<(String, String, crate::payments::PaymentLine)>> {
        self.0.invoice_lines(invoices).await
    }

    pub async fn invoice_numbers(&self, campus: &str) -> Result<Vec<i64>> {
        self.0.invoice_numbers(campus).await
    }

    /// The price list: see [`crate::prices`].
    pub async fn put_price_item(&self, item: &crate::prices::PriceItem) -> Result<()> {
        self.0.put_price_item(item).await
    }

    pub async fn add_price(
        &self,
        campus: &str,
        code: &str,
        effective_from: i64,
        amount_fen: i64,
        recorded_at: i64,
        recorded_by: &str,
    ) -> Result<bool> {
        self.0.add_price(campus, code, effective_from, amount_fen, recorded_at, recorded_by).await
    }

    pub async fn price_list(
        &self,
        campus: &str,
        at: i64,
        q: &str,
        category: Option<&str>,
        limit: usize,
    ) -> Result<Vec<crate::prices::PricedItem>> {
        self.0.price_list(campus, at, q, category, limit).await
    }

    pub async fn priced_item(&self, campus: &str, code: &str, at: i64) -> Result<Option<crate::prices::PricedItem>> {
        self.0.priced_item(campus, code, at).await
    }

    pub async fn priced_ref(
        &self,
        campus: &str,
        kind: &str,
        reference: &str,
        at: i64,
    ) -> Result<Option<crate::prices::PricedItem>> {
        self.0.priced_ref(campus, kind, reference, at).await
    }

    pub async fn price_campuses(&self) -> Result<Vec<String>> {
        self.0.price_campuses().await
    }

    pub async fn price_history(&self, campus: &str, code: &str) -> Result<Vec<crate::prices::PriceRow>> {
        self.0.price_history(campus, code).await
    }

    pub async fn log_message(&self, m: NewMessage) -> Result<i64> {
        self.0.log_message(m).await
    }

    pub async fn journal_message(&self, m: NewMessage) -> Result<Logged> {
        self.0.journal_message(m).await
    }

    pub async fn answered(
        &self,
        direction: &str,
        sender: &str,
        control_id: &str,
        digest: &str,
    ) -> Result<Option<String>> {
        self.0.answered(direction, sender, control_id, digest).await
    }

    pub async fn finish_message(&self, f: &Finish) -> Result<()> {
        self.0.finish_message(f).await
    }

    pub async fn find_messages(&self, filter: &MessageFilter) -> Result<Vec<LoggedMessage>> {
        self.0.find_messages(filter).await
    }

    pub async fn recent_messages(&self, status: Option<&str>, limit: usize) -> Result<Vec<LoggedMessage>> {
        self.0.recent_messages(status, limit).await
    }

    pub async fn queued_messages(&self, campus: &str, limit: usize) -> Result<Vec<QueuedMessage>> {
        self.0.queued_messages(campus, limit).await
    }

    pub async fn queued_count(&self, campus: &str) -> Result<i64> {
        self.0.queued_count(campus).await
    }

    pub async fn message(&self, id: i64) -> Result<Option<LoggedMessage>> {
        self.0.message(id).await
    }

    pub async fn outbox_head(&self) -> Result<i64> {
        self.0.outbox_head().await
    }

    pub async fn outbox_seq_of(&self, resource_type: &str, id: &str) -> Result<i64> {
        self.0.outbox_seq_of(resource_type, id).await
    }

    pub async fn outbox_scan(&self, resource_type: &str, cursor: i64) -> Result<(i64, bool)> {
        self.0.outbox_scan(resource_type, cursor).await
    }

    pub async fn create_channel(&self, c: &ChannelRow) -> Result<ChannelRow> {
        self.0.create_channel(c).await
    }

    pub async fn upsert_subscription_channel(&self, c: &ChannelRow, from: i64) -> Result<()> {
        self.0.upsert_subscription_channel(c, from).await
    }

    pub async fn lease_channel(&self, channel: &str, holder: &str, now: i64, ttl_ms: i64) -> Result<bool> {
        self.0.lease_channel(channel, holder, now, ttl_ms).await
    }

    pub async fn channels(&self) -> Result<Vec<ChannelRow>> {
        self.0.channels().await
    }

    pub async fn channel(&self, id: &str) -> Result<Option<ChannelRow>> {
        self.0.channel(id).await
    }

    pub async fn set_channel_enabled(&self, id: &str, enabled: bool) -> Result<bool> {
        self.0.set_channel_enabled(id, enabled).await
    }

    pub async fn outbox_after(&self, cursor: i64, limit: usize) -> Result<Vec<OutboxEvent>> {
        self.0.outbox_after(cursor, limit).await
    }

    pub async fn enqueue(
        &self,
        channel: &ChannelRow,
        from: i64,
        to: i64,
        deliveries: &[NewDelivery],
        now_ms: i64,
    ) -> Result<bool> {
        self.0.enqueue(channel, from, to, deliveries, now_ms).await
    }

    pub async fn pending_deliveries(&self, channel: &str, limit: usize) -> Result<Vec<Delivery>> {
        self.0.pending_deliveries(channel, limit).await
    }

    pub async fn record_attempt(&self, id: i64, now_ms: i64, attempt: &Attempt) -> Result<()> {
        self.0.record_attempt(id, now_ms, attempt).await
    }

    pub async fn requeue(&self, ids: &[i64], now_ms: i64) -> Result<u64> {
        self.0.requeue(ids, now_ms).await
    }

    pub async fn dead_letters(&self, channel: &str) -> Result<Vec<i64>> {
        self.0.dead_letters(channel).await
    }

    pub async fn queue_stats(&self) -> Result<Vec<QueueStats>> {
        self.0.queue_stats().await
    }

    /// Per inbound channel: messages received since `since`, and how many failed.
    pub async fn inbound_counts(&self, since: i64) -> Result<Vec<(String, i64, i64)>> {
        self.0.inbound_counts(since).await
    }

    pub async fn queue_health(&self) -> Result<Vec<QueueStats>> {
        self.0.queue_health().await
    }

    pub async fn prune_log(&self, messages_before: i64, events_before: i64) -> Result<(u64, u64)> {
        self.0.prune_log(messages_before, events_before).await
    }

    pub async fn next_counter(&self, name: &str, first: i64) -> Result<i64> {
        self.0.next_counter(name, first).await
    }

    pub async fn cursor(&self, name: &str) -> Result<Option<i64>> {
        self.0.cursor(name).await
    }

    pub async fn set_cursor(&self, name: &str, value: i64) -> Result<()> {
        self.0.set_cursor(name, value).await
    }

    pub async fn refresh_statistics(&self) -> Result<()> {
        self.0.refresh_statistics().await
    }

    pub async fn ping(&self) -> Result<()> {
        self.0.ping().await
    }

    /// See [`Store::failing`].
    pub async fn failing(&self) -> Option<crate::Failing> {
        self.0.failing().await
    }

    /// Records a queued message's outcome, only if it is still queued (else
    /// [`crate::StoreError::NotQueued`]): a message that could not be applied.
    pub async fn finish_queued(&self, f: Finish) -> Result<()> {
        let at = f.finished_at;
        self.0.write_audited_with(Vec::new(), at, &[], None, &[SideWrite::FinishQueued(f)]).await.map(|_| ())
    }

    /// Woken on every committed change (and by those who queue deliveries).
    pub fn changes(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.0.changes()
    }

    pub fn backend(&self) -> Backend {
        self.0.backend()
    }

    pub fn pool_stats(&self) -> PoolStats {
        self.0.pool_stats()
    }

    /// Whether reads may go to a standby at all.
    pub fn has_standby(&self) -> bool {
        self.0.standby.is_some()
    }

    /// How the read standby stands; none without one.
    pub fn standby_status(&self) -> Option<crate::standby::StandbyStatus> {
        self.0.standby_status()
    }

    /// See [`Store::note_write`].
    pub async fn note_write(&self, key: &str) -> Result<()> {
        self.0.note_write(key).await
    }

    /// Closes the pools, waiting for checked-out connections to return.
    pub async fn close(&self) {
        self.0.close().await
    }
}
