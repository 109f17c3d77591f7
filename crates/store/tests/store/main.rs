//! The store suite: one binary, run once on SQLite and once on PostgreSQL by
//! `scripts/test` (see `lianyi_store::testing`). Each test gets a fresh database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lianyi_fhir::search::parse_search;
use lianyi_fhir::{ResourceType, extract_index};
use lianyi_store::audit::{AuditEntry, ChainHasher, ChainStatus};
use lianyi_store::testing::{backend_under_test, fresh_database, raw_execute};
use lianyi_store::{HistoryQuery, RowScope, Store, StoreError, WriteKind, WriteOp};
use serde_json::{Value, json};

const T0: i64 = 1_700_000_000_000;

async fn store() -> (Store, lianyi_store::testing::TestDir) {
    let (url, dir) = fresh_database().await;
    let store = Store::connect(&url).await.expect("connect");
    assert_eq!(store.backend().name(), backend_under_test());
    store.migrate().await.expect("migrate");
    (store, dir)
}

fn op(kind: WriteKind, resource: Value) -> WriteOp {
    let rtype = resource["resourceType"].as_str().unwrap().to_string();
    let id = resource["id"].as_str().unwrap().to_string();
    let index = extract_index(&rtype, &resource);
    WriteOp {
        patient: lianyi_fhir::compartment::patients_of(&rtype, &id, &index).into_iter().next(),
        index,
        resource_type: rtype,
        id,
        kind,
        resource: Some(resource),
        campus: Some("campus-a".into()),
    }
}

fn patient(id: &str, family: &str, given: &str, birth: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "name": [{"family": family, "given": [given]}],
           "gender": "female", "birthDate": birth,
           "identifier": [{"system": "urn:mrn", "value": format!("MRN-{id}")}]})
}

async fn ids(store: &Store, rtype: &str, q: &[(&str, &str)]) -> Vec<String> {
    let params: Vec<(String, String)> = q.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    let req = parse_search(ResourceType::parse(rtype).unwrap(), &params).unwrap();
    let page = store.search(&req, &lianyi_store::RowScope::unrestricted()).await.unwrap();
    page.resources.into_iter().map(|r| r.id).collect()
}

#[tokio::test]
async fn create_read_update_delete_and_history() {
    let (store, _dir) = store().await;
    let r = store.write(vec![op(WriteKind::Create, patient("p1", "Li", "Na", "1990-05-01"))], T0).await.unwrap();
    assert_eq!((r[0].version, r[0].created), (1, true));
    let body: Value = serde_json::from_str(r[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(body["meta"]["versionId"], "1");
    assert_eq!(body["meta"]["lastUpdated"], "2023-11-14T22:13:20.000Z");

    let r = store
        .write(vec![op(WriteKind::Update { if_match: Some(1) }, patient("p1", "Li", "Nana", "1990-05-01"))], T0 + 1000)
        .await
        .unwrap();
    assert_eq!((r[0].version, r[0].created), (2, false));

    let cur = store.read("Patient", "p1").await.unwrap().unwrap();
    assert_eq!(cur.version, 2);
    assert_eq!(cur.campus.as_deref(), Some("campus-a"));
    let v1 = store.vread("Patient", "p1", 1).await.unwrap().unwrap();
    assert!(v1.body.contains("\"Na\""));
    assert_eq!(v1.method, "POST");

    let del = WriteOp {
        resource: None,
        kind: WriteKind::Delete { if_match: None },
        ..op(WriteKind::Create, patient("p1", "x", "y", "2000"))
    };
    let r = store.write(vec![del.clone()], T0 + 2000).await.unwrap();
    assert_eq!((r[0].version, r[0].changed), (3, true));
    assert!(store.read("Patient", "p1").await.unwrap().unwrap().deleted);
    assert!(ids(&store, "Patient", &[("family", "Li")]).await.is_empty(), "deleted resources leave the index");
    let again = store.write(vec![del], T0 + 3000).await.unwrap();
    assert!(!again[0].changed, "deleting twice changes nothing");

    let h = store
        .history(
            &HistoryQuery {
                resource_type: Some("Patient".into()),
                id: Some("p1".into()),
                count: 10,
                ..Default::default()
            },
            &lianyi_store::RowScope::unrestricted(),
        )
        .await
        .unwrap();
    assert_eq!(h.total, 3);
    let versions: Vec<(i64, bool, &str)> =
        h.entries.iter().map(|e| (e.version, e.deleted, e.method.as_str())).collect();
    assert_eq!(versions, vec![(3, true, "DELETE"), (2, false, "PUT"), (1, false, "POST")]);

    // Update after delete brings the resource back as a new version.
    let r = store
        .write(vec![op(WriteKind::Update { if_match: None }, patient("p1", "Li", "Na", "1990"))], T0 + 4000)
        .await
        .unwrap();
    assert_eq!((r[0].version, r[0].created), (4, true));
}

#[tokio::test]
async fn version_conflict_and_failed_batches_store_nothing() {
    let (store, _dir) = store().await;
    store.write(vec![op(WriteKind::Create, patient("p1", "Wang", "Fang", "1980"))], T0).await.unwrap();
    let err = store
        .write(vec![op(WriteKind::Update { if_match: Some(7) }, patient("p1", "Wang", "X", "1980"))], T0)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::VersionConflict { expected: 7, current: 1, .. }), "{err}");

    // A batch whose second write fails leaves no trace of the first.
    let err = store
        .write(
            vec![
                op(WriteKind::Create, patient("p2", "Zhao", "Lei", "1970")),
                op(WriteKind::Create, patient("p1", "Dup", "Dup", "1970")),
            ],
            T0 + 1,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }));
    assert!(store.read("Patient", "p2").await.unwrap().is_none());
    assert!(ids(&store, "Patient", &[("family", "Zhao")]).await.is_empty());
    assert_eq!(store.read("Patient", "p1").await.unwrap().unwrap().version, 1);
}

#[tokio::test]
async fn search_by_each_parameter_kind() {
    let (store, _dir) = store().await;
    let ops = vec![
        op(WriteKind::Create, patient("a", "张", "三", "1980-02-10")),
        op(WriteKind::Create, patient("b", "Zhang", "Wei", "1985-07-01")),
        op(WriteKind::Create, patient("c", "Chen", "Jing", "1990")),
        op(
            WriteKind::Create,
            json!({"resourceType": "Encounter", "id": "e1", "status": "finished",
                   "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                   "subject": {"reference": "Patient/a"}, "period": {"start": "2024-03-01T08:00:00+08:00", "end": "2024-03-01T09:00:00+08:00"}}),
        ),
        op(
            WriteKind::Create,
            json!({"resourceType": "Encounter", "id": "e2", "status": "in-progress",
                   "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
                   "subject": {"reference": "Patient/b"}, "period": {"start": "2024-05-10"}}),
        ),
    ];
    store.write(ops, T0).await.unwrap();

    assert_eq!(ids(&store, "Patient", &[("name", "zhang")]).await, vec!["b"]);
    assert_eq!(ids(&store, "Patient", &[("family", "张")]).await, vec!["a"]);
    assert_eq!(ids(&store, "Patient", &[("name", "zh,chen")]).await, vec!["b", "c"]);
    assert_eq!(ids(&store, "Patient", &[("family:exact", "zhang")]).await, Vec::<String>::new());
    assert_eq!(ids(&store, "Patient", &[("family:exact", "Zhang")]).await, vec!["b"]);
    assert_eq!(ids(&store, "Patient", &[("identifier", "urn:mrn|MRN-c")]).await, vec!["c"]);
    assert_eq!(ids(&store, "Patient", &[("identifier", "MRN-c")]).await, vec!["c"]);
    assert_eq!(ids(&store, "Patient", &[("identifier", "urn:other|MRN-c")]).await, Vec::<String>::new());
    assert_eq!(ids(&store, "Patient", &[("identifier", "urn:mrn|")]).await, vec!["a", "b", "c"]);
    assert_eq!(ids(&store, "Patient", &[("birthdate", "1980")]).await, vec!["a"]);
    assert_eq!(ids(&store, "Patient", &[("birthdate", "gt1985-07-01")]).await, vec!["c"]);
    assert_eq!(ids(&store, "Patient", &[("birthdate", "ge1985-07-01")]).await, vec!["b", "c"]);
    assert_eq!(ids(&store, "Patient", &[("birthdate", "lt1985-07-01")]).await, vec!["a"]);
    assert_eq!(ids(&store, "Patient", &[("birthdate", "le1985-07-01")]).await, vec!["a", "b"]);
    assert_eq!(ids(&store, "Patient", &[("birthdate", "ne1985-07-01")]).await, vec!["a", "c"]);
    assert_eq!(ids(&store, "Patient", &[("birthdate", "ge1980"), ("birthdate", "lt1990")]).await, vec!["a", "b"]);
    assert_eq!(ids(&store, "Patient", &[("_id", "c,a")]).await, vec!["a", "c"]);

    assert_eq!(ids(&store, "Encounter", &[("patient", "Patient/a")]).await, vec!["e1"]);
    assert_eq!(ids(&store, "Encounter", &[("subject", "b")]).await, vec!["e2"]);
    assert_eq!(ids(&store, "Encounter", &[("subject:Patient", "b")]).await, vec!["e2"]);
    assert_eq!(ids(&store, "Encounter", &[("date", "2024-03-01")]).await, vec!["e1"]);
    assert_eq!(ids(&store, "Encounter", &[("date", "gt2024-04")]).await, vec!["e2"], "open-ended period reaches past");
    assert_eq!(ids(&store, "Encounter", &[("class", "IMP")]).await, vec!["e2"]);
    assert_eq!(
        ids(&store, "Encounter", &[("status", "finished"), ("patient", "Patient/b")]).await,
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn paging_total_and_last_updated() {
    let (store, _dir) = store().await;
    for i in 0..7 {
        let p = patient(&format!("p{i}"), "Sun", "X", "2000");
        store.write(vec![op(WriteKind::Create, p)], T0 + i * 1000).await.unwrap();
    }
    let req = |q: &[(&str, &str)]| {
        let params: Vec<(String, String)> = q.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        parse_search(ResourceType::parse("Patient").unwrap(), &params).unwrap()
    };
    let page = store
        .search(&req(&[("family", "sun"), ("_count", "3"), ("_offset", "3")]), &RowScope::unrestricted())
        .await
        .unwrap();
    assert_eq!(page.total, Some(7));
    assert_eq!(page.resources.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), vec!["p3", "p4", "p5"]);
    let when = lianyi_fhir::datetime::format_instant(T0 + 4000);
    let got = ids(&store, "Patient", &[("_lastUpdated", &format!("ge{when}"))]).await;
    assert_eq!(got, vec!["p4", "p5", "p6"]);
    let count_only = store.search(&req(&[("_count", "0")]), &RowScope::unrestricted()).await.unwrap();
    assert_eq!((count_only.total, count_only.resources.len()), (Some(7), 0));
}

#[tokio::test]
async fn data_survives_reconnect_and_migrate_is_idempotent() {
    let (url, _dir) = fresh_database().await;
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.migrate().await.unwrap(), 56);
    store.write(vec![op(WriteKind::Create, patient("keep", "Ma", "Li", "1999"))], T0).await.unwrap();
    store.close().await;
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.migrate().await.unwrap(), 0);
    assert_eq!(store.read("Patient", "keep").await.unwrap().unwrap().version, 1);
    assert_eq!(store.count_by_type().await.unwrap(), vec![("Patient".to_string(), 1)]);
}

#[tokio::test]
async fn large_batches_split_across_statements() {
    let (store, _dir) = store().await;
    let ops: Vec<WriteOp> = (0..3000)
        .map(|i| op(WriteKind::Update { if_match: None }, patient(&format!("bulk{i}"), "Bulk", "B", "2001")))
        .collect();
    let res = store.write(ops, T0).await.unwrap();
    assert_eq!(res.len(), 3000);
    let page = ids(&store, "Patient", &[("family", "bulk"), ("_count", "1")]).await;
    assert_eq!(page.len(), 1);
    let req = parse_search(ResourceType::parse("Patient").unwrap(), &[("family".into(), "bulk".into())]).unwrap();
    assert_eq!(store.search(&req, &lianyi_store::RowScope::unrestricted()).await.unwrap().total, Some(3000));
}

/// A stand-in hash for testing the chain mechanics (the real ones live in
/// lianyi-security and have their own known-answer tests).
struct TestHasher;

impl ChainHasher for TestHasher {
    fn name(&self) -> &'static str {
        "test"
    }
    fn hex_digest(&self, data: &[u8]) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        data.hash(&mut h);
        format!("{:016x}", h.finish())
    }
    fn for_name(&self, name: &str) -> Option<&dyn ChainHasher> {
        (name == "test").then_some(self as &dyn ChainHasher)
    }
}

fn entry(i: i64) -> AuditEntry {
    AuditEntry {
        recorded_at: T0 + i,
        actor: format!("user-{i}"),
        actor_kind: "user".into(),
        action: "read".into(),
        resource_type: Some("Patient".into()),
        resource_id: Some(format!("p{i}")),
        patient: Some(format!("p{i}")),
        outcome: "success".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn audit_chain_detects_change_deletion_and_truncation() {
    let (store, _dir) = store().await;
    store.append_audit(&(1..=5).map(entry).collect::<Vec<_>>(), &TestHasher).await.unwrap();
    // Audited writes append in the same transaction.
    let w = op(WriteKind::Create, patient("audited", "Audit", "A", "1999"));
    let mut e = entry(6);
    e.action = "create".into();
    store.write_audited(vec![w], T0, &[e], Some(&TestHasher)).await.unwrap();
    assert_eq!(store.verify_audit(&TestHasher).await.unwrap(), ChainStatus::Intact { records: 6 });
    assert_eq!(store.audit_count().await.unwrap(), 6);
    let by_patient = store
        .audit_records(&lianyi_store::audit::AuditQuery { patient: Some("p3".into()), limit: 10, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(by_patient.len(), 1);
    assert_eq!(by_patient[0].seq, 3);
}

async fn tampered(sql: &str) -> ChainStatus {
    let (url, _dir) = fresh_database().await;
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    store.append_audit(&(1..=5).map(entry).collect::<Vec<_>>(), &TestHasher).await.unwrap();
    raw_execute(&url, sql).await;
    store.verify_audit(&TestHasher).await.unwrap()
}

#[tokio::test]
async fn audit_tampering_is_named() {
    match tampered("UPDATE audit_log SET actor = 'user-X' WHERE seq = 3").await {
        ChainStatus::Broken { seq, reason } => assert_eq!(seq, 3, "{reason}"),
        other => panic!("{other:?}"),
    }
    match tampered("DELETE FROM audit_log WHERE seq = 2").await {
        ChainStatus::Broken { seq, reason } => assert_eq!((seq, reason.contains("missing")), (2, true), "{reason}"),
        other => panic!("{other:?}"),
    }
    match tampered("DELETE FROM audit_log WHERE seq = 5").await {
        ChainStatus::Broken { seq, .. } => assert_eq!(seq, 5),
        other => panic!("{other:?}"),
    }
    // Re-numbering to hide a deletion breaks the link instead.
    match tampered("DELETE FROM audit_log WHERE seq = 2; UPDATE audit_log SET seq = seq - 1 WHERE seq > 2").await {
        ChainStatus::Broken { seq, .. } => assert_eq!(seq, 2),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn row_scope_limits_search_and_history() {
    let (store, _dir) = store().await;
    let mut a = op(WriteKind::Create, patient("pa", "Scope", "A", "1990"));
    a.campus = Some("east".into());
    let mut b = op(WriteKind::Create, patient("pb", "Scope", "B", "1990"));
    b.campus = Some("west".into());
    let mut obs = op(
        WriteKind::Create,
        json!({"resourceType": "Observation", "id": "ob", "status": "final", "code": {"text": "x"}, "subject": {"reference": "Patient/pb"}}),
    );
    obs.campus = Some("east".into());
    let mut org = op(WriteKind::Create, json!({"resourceType": "Organization", "id": "org-w", "name": "West"}));
    org.campus = Some("west".into());
    store.write(vec![a, b, obs, org], T0).await.unwrap();
    let search = |t: &str, scope: RowScope| {
        let store = store.clone();
        let t = t.to_string();
        async move {
            let req = parse_search(ResourceType::parse(&t).unwrap(), &[]).unwrap();
            store.search(&req, &scope).await.unwrap().resources.into_iter().map(|r| r.id).collect::<Vec<_>>()
        }
    };
    let east = RowScope {
        campuses: Some(vec!["east".into()]),
        campus_exempt_types: vec!["Organization".into()],
        ..Default::default()
    };
    assert_eq!(search("Patient", east.clone()).await, vec!["pa"]);
    assert_eq!(search("Organization", east.clone()).await, vec!["org-w"], "directory data is shared");
    let pb = RowScope {
        patient: Some("pb".into()),
        patient_exempt_types: vec!["Organization".into()],
        ..Default::default()
    };
    assert_eq!(search("Patient", pb.clone()).await, vec!["pb"]);
    assert_eq!(search("Observation", pb.clone()).await, vec!["ob"]);
    let pa = RowScope { patient: Some("pa".into()), ..Default::default() };
    assert!(search("Observation", pa.clone()).await.is_empty());
    let h = store.history(&HistoryQuery { count: 10, ..Default::default() }, &east).await.unwrap();
    assert_eq!(h.total, 3);
    let h = store.history(&HistoryQuery { count: 10, ..Default::default() }, &pa).await.unwrap();
    assert_eq!(h.entries.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), vec!["pa"]);
}

#[tokio::test]
async fn every_committed_change_is_an_outbox_event_and_a_rolled_back_one_is_not() {
    let (url, _dir) = fresh_database().await;
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    store
        .write(
            vec![
                op(WriteKind::Create, patient("ob1", "Zhao", "Yi", "1980")),
                op(WriteKind::Update { if_match: None }, patient("ob1", "Zhao", "Er", "1980")),
                op(WriteKind::Delete { if_match: None }, patient("ob1", "Zhao", "Er", "1980")),
            ],
            T0,
        )
        .await
        .unwrap();
    // A batch that fails (version conflict on its second write) leaves no event.
    let err = store
        .write(
            vec![
                op(WriteKind::Create, patient("ob2", "Qian", "San", "1981")),
                op(WriteKind::Update { if_match: Some(9) }, patient("ob1", "Zhao", "Si", "1980")),
            ],
            T0 + 1,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::VersionConflict { .. }), "{err}");
    let events = store.outbox_after(0, 100).await.unwrap();
    let seen: Vec<(&str, i64, &str, Option<&str>)> =
        events.iter().map(|e| (e.id.as_str(), e.version, e.method.as_str(), e.patient.as_deref())).collect();
    assert_eq!(
        seen,
        [("ob1", 1, "POST", Some("ob1")), ("ob1", 2, "PUT", Some("ob1")), ("ob1", 3, "DELETE", Some("ob1"))]
    );
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(store.outbox_head().await.unwrap(), events[2].seq);
}

#[tokio::test]
async fn retention_keeps_what_is_unfinished_and_what_a_channel_has_not_passed() {
    use lianyi_store::messages::{Finish, NewMessage};
    use lianyi_store::outbox::ChannelRow;
    let (url, _dir) = fresh_database().await;
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    store.write(vec![op(WriteKind::Create, patient("r1", "Sun", "Yi", "1970"))], T0).await.unwrap();
    let channel = ChannelRow {
        id: "feed".into(),
        name: "feed".into(),
        kind: lianyi_store::outbox::ChannelKind::Webhook,
        endpoint: "http://127.0.0.1:9/x".into(),
        criteria: String::new(),
        campus: None,
        payload: None,
        headers: None,
        secret: None,
        max_attempts: 3,
        backoff_ms: 100,
        max_backoff_ms: 1000,
        enabled: false,
        cursor: 0,
        created_at: T0,
        subscription: None,
    };
    // The paused channel starts after r1's event, so r2's event waits for it.
    store.create_channel(&channel).await.unwrap();
    store.write(vec![op(WriteKind::Create, patient("r2", "Sun", "Er", "1971"))], T0 + 1).await.unwrap();
    let msg = |control: &str| NewMessage {
        direction: "in".into(),
        channel: "mllp:test".into(),
        peer: None,
        sender: "LIS^EAST".into(),
        control_id: control.into(),
        message_type: "ORU^R01".into(),
        received_at: T0,
        payload: "x".into(),
        digest: Some("d".into()),
        queued: None,
        campus: Some("campus-east".into()),
    };
    let done = store.log_message(msg("A1")).await.unwrap();
    let _unfinished = store.log_message(msg("A2")).await.unwrap();
    // Acknowledged from the journal and not yet applied: queued, kept, found in order.
    let kept = lianyi_store::messages::Queued {
        ack: "AA".into(),
        mapped: "{bundle}".into(),
        summary: "ORU^R01".into(),
        warnings: None,
    };
    let queued = store.log_message(NewMessage { queued: Some(kept), ..msg("A3") }).await.unwrap();
    assert_eq!(store.queued_count("campus-east").await.unwrap(), 1);
    assert_eq!(
        store.answered("in", "LIS^EAST", "A3", "d").await.unwrap().as_deref(),
        Some("AA"),
        "a resend gets the AA"
    );
    assert_eq!(
        store.answered("in", "LIS^EAST", "A3", "other").await.unwrap(),
        None,
        "another message reusing A3 is not"
    );
    let f = Finish {
        id: done,
        status: "accepted".into(),
        finished_at: T0,
        ack: None,
        error: None,
        summary: None,
        warnings: None,
    };
    store.finish_message(&f).await.unwrap();
    let (messages, events) = store.prune_log(T0 + 10, T0 + 10).await.unwrap();
    assert_eq!((messages, events), (1, 0), "the finished message goes; r1's event waits for the dashboards' follower");
    store.set_cursor("dashboards", store.outbox_head().await.unwrap()).await.unwrap();
    let (_, events) = store.prune_log(T0 + 10, T0 + 10).await.unwrap();
    assert_eq!(events, 1, "r1's event, behind every cursor, goes");
    let left = store.recent_messages(None, 10).await.unwrap();
    assert_eq!(left.iter().map(|m| m.control_id.as_str()).collect::<Vec<_>>(), ["A3", "A2"]);
    let waiting = store.queued_messages("campus-east", 10).await.unwrap();
    assert_eq!(waiting[0].message.id, queued);
    assert_eq!(waiting[0].mapped.as_deref(), Some("{bundle}"), "the mapping is kept with the queued message");
    assert_eq!(waiting[0].message.summary.as_deref(), Some("ORU^R01"));
    // Applied once: the outcome is written only while the message is still queued.
    let applied = Finish {
        id: queued,
        status: "accepted".into(),
        finished_at: T0,
        ack: None,
        error: None,
        summary: None,
        warnings: None,
    };
    let side = vec![lianyi_store::messages::SideWrite::FinishQueued(applied)];
    store.write_audited_with(Vec::new(), T0, &[], None, &side).await.unwrap();
    assert!(matches!(
        store.write_audited_with(Vec::new(), T0, &[], None, &side).await,
        Err(lianyi_store::StoreError::NotQueued(id)) if id == queued
    ));
    assert_eq!(store.queued_count("campus-east").await.unwrap(), 0);
    // Once applied the kept mapping is dropped (the data is in the resources now): put
    // back in the queue by hand, the row has none.
    raw_execute(&url, &format!("UPDATE message_log SET status = 'queued' WHERE id = {queued}")).await;
    assert_eq!(store.queued_messages("campus-east", 10).await.unwrap()[0].mapped, None);
    raw_execute(&url, &format!("UPDATE message_log SET status = 'accepted' WHERE id = {queued}")).await;
    let events = store.outbox_after(0, 10).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["r2"],
        "the paused channel has not passed r2"
    );
}

#[tokio::test]
async fn counters_hand_out_each_value_once() {
    let (store, _dir) = store().await;
    assert_eq!(store.next_counter("mrn:campus-a", 2_000_000).await.unwrap(), 2_000_000);
    let takers: Vec<_> = (0..20)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move { s.next_counter("mrn:campus-a", 2_000_000).await.unwrap() })
        })
        .collect();
    let mut taken = Vec::new();
    for t in takers {
        taken.push(t.await.unwrap());
    }
    taken.sort_unstable();
    assert_eq!(taken, (2_000_001..=2_000_020).collect::<Vec<i64>>());
    assert_eq!(store.next_counter("mrn:campus-b", 7).await.unwrap(), 7, "each name counts on its own");
}

#[tokio::test]
async fn a_channel_lease_has_one_holder_until_it_runs_out() {
    let (store, _dir) = store().await;
    assert!(store.lease_channel("lab-feed", "node-a", T0, 10_000).await.unwrap());
    assert!(!store.lease_channel("lab-feed", "node-b", T0 + 1_000, 10_000).await.unwrap(), "held by node-a");
    assert!(store.lease_channel("lab-feed", "node-a", T0 + 9_000, 10_000).await.unwrap(), "renewed");
    assert!(!store.lease_channel("lab-feed", "node-b", T0 + 12_000, 10_000).await.unwrap(), "renewal counts");
    assert!(store.lease_channel("other-feed", "node-b", T0, 10_000).await.unwrap(), "each channel on its own");
    assert!(store.lease_channel("lab-feed", "node-b", T0 + 19_001, 10_000).await.unwrap(), "node-a stopped renewing");
    assert!(!store.lease_channel("lab-feed", "node-a", T0 + 19_002, 10_000).await.unwrap());
}

/// Words as the ops crate's segmentation gives them (cut, lowercased, space-joined).
fn kb_text(title: &str, solution: &str) -> lianyi_store::kb::Text {
    lianyi_store::kb::Text {
        title: title.into(),
        solution: solution.into(),
        author: "user:it".into(),
        at: T0,
        ..Default::default()
    }
}

#[tokio::test]
async fn the_knowledge_base_finds_two_character_words_keeps_versions_and_refuses_stale_edits() {
    use lianyi_store::kb::{Article, KbQuery};
    let (store, _dir) = store().await;
    let kb = store.operations().kb();
    let article = |title: &str| Article {
        title: title.into(),
        status: "published".into(),
        author: "user:it".into(),
        created_at: T0,
        source: Some("incident:1".into()),
        ci_class: Some("printer".into()),
        ..Default::default()
    };
    let printer = kb
        .create(&article("打印机无法打印"), &kb_text("打印机无法打印", "清空队列"), "打印 打印机 无法 打印 清空 队列")
        .await
        .unwrap();
    let bp = kb
        .create(
            &article("高血压随访表打不开"),
            &kb_text("高血压随访表打不开", "重装插件"),
            "血压 高血压 随访 表 打 不 开 重装 插件",
        )
        .await
        .unwrap();
    let english = kb
        .create(
            &article("Printer offline"),
            &kb_text("Printer offline", "Restart the spooler"),
            "printer offline restart the spooler",
        )
        .await
        .unwrap();
    let find = |words: &[&str], any: bool| {
        let q = KbQuery { words: words.iter().map(|w| w.to_string()).collect(), any, limit: 10, ..Default::default() };
        let kb = kb.clone();
        async move { kb.find(&q).await.unwrap().into_iter().map(|(a, _)| a.id).collect::<Vec<_>>() }
    };
    assert_eq!(find(&["打印"], false).await, [printer]);
    assert_eq!(find(&["血压", "高血压"], false).await, [bp]);
    assert_eq!(find(&["printer"], false).await, [english]);
    assert_eq!(find(&["printer", "打印"], false).await, Vec::<i64>::new(), "every word");
    let mut any = find(&["printer", "打印"], true).await;
    any.sort();
    assert_eq!(any, [printer, english], "any word");
    assert_eq!(find(&[], false).await, [english, bp, printer], "newest first (same time: last id first)");
    for (class, n) in [("printer", 3), ("network", 0)] {
        let q = KbQuery { words: vec!["打印".into()], ci_class: Some(class.into()), limit: 10, ..Default::default() };
        assert_eq!(kb.find(&q).await.unwrap().len(), n.min(1), "{class}");
        let q = KbQuery { ci_class: Some(class.into()), limit: 10, ..Default::default() };
        assert_eq!(kb.find(&q).await.unwrap().len(), n, "{class}");
    }

    // An edit is a new version; the old text stays; the index follows the new text.
    let latest = kb
        .edit(printer, 1, &kb_text("打印机无法打印（驱动）", "重装驱动"), "打印 打印机 无法 打印 驱动 重装 驱动")
        .await
        .unwrap();
    assert_eq!(latest, 2);
    let texts = kb.texts(printer).await.unwrap();
    assert_eq!(
        texts.iter().map(|t| (t.version, t.solution.as_str())).collect::<Vec<_>>(),
        [(1, "清空队列"), (2, "重装驱动")]
    );
    assert_eq!(find(&["队列"], false).await, Vec::<i64>::new(), "the old text is not searched");
    assert_eq!(find(&["驱动"], false).await, [printer]);
    let a = kb.get(printer).await.unwrap().unwrap();
    assert_eq!((a.latest, a.version, a.title.as_str()), (2, 2, "打印机无法打印（驱动）"));
    assert!(matches!(kb.edit(printer, 1, &kb_text("x", "y"), "x y").await, Err(StoreError::VersionConflict { .. })));
    // Retired articles are left out unless asked for.
    kb.set_status(printer, 2, "retired", T0 + 1, "user:it").await.unwrap();
    assert_eq!(find(&["驱动"], false).await, Vec::<i64>::new());
    let q = KbQuery { words: vec!["驱动".into()], retired: true, limit: 10, ..Default::default() };
    assert_eq!(kb.find(&q).await.unwrap().len(), 1);
    assert!(matches!(
        kb.set_status(printer, 2, "published", T0 + 2, "user:it").await,
        Err(StoreError::VersionConflict { .. })
    ));
    assert_eq!(kb.from_source("incident:1").await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_backup_manifest_changes_in_exactly_the_tables_whose_rows_change() {
    let (url, _dir) = fresh_database().await;
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    store.write(vec![op(WriteKind::Create, patient("m1", "王", "芳", "1980-01-02"))], T0).await.unwrap();
    store.append_audit(&(1..=3).map(entry).collect::<Vec<_>>(), &TestHasher).await.unwrap();
    let sums = |store: Store| async move { store.table_sums(&TestHasher, &|_| {}).await.unwrap() };
    let a = sums(store.clone()).await;
    assert_eq!(a, sums(store.clone()).await, "the same content, the same manifest");
    let rows = |s: &[lianyi_store::backup::TableSum], t: &str| s.iter().find(|x| x.table == t).map(|x| x.rows);
    assert_eq!(rows(&a, "audit_log"), Some(3));
    assert!(rows(&a, "schema_migrations").is_none(), "the migration ledger is not hashed");
    let changed = |a: &[lianyi_store::backup::TableSum], b: &[lianyi_store::backup::TableSum]| {
        a.iter().zip(b).filter(|(x, y)| x != y).map(|(x, _)| x.table.clone()).collect::<Vec<_>>()
    };
    store.append_audit(&[entry(4)], &TestHasher).await.unwrap();
    let b = sums(store.clone()).await;
    assert_eq!(changed(&a, &b), ["audit_head", "audit_log"]);
    // A changed value with the same row count.
    raw_execute(&url, "UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2").await;
    let c = sums(store.clone()).await;
    assert_eq!(changed(&b, &c), ["audit_log"]);
    assert_eq!(rows(&c, "audit_log"), Some(4));
    assert_eq!(store.audit_head().await.unwrap().0, 4);
}

#[tokio::test]
async fn daily_figures_replace_a_source_and_sum_by_campus_department_and_day() {
    use lianyi_store::figures::{Figure, Scope, Sum, SumBy};
    let (store, _dir) = store().await;
    let figures = store.operations().figures();
    let f = |campus: &str, dept: &str, measure: &str, day: &str, total: i64| Figure {
        campus: campus.into(),
        department: dept.into(),
        measure: measure.into(),
        day: day.into(),
        total,
        n: 1,
        person: String::new(),
    };
    let by = |person: &str, f: Figure| Figure { person: person.into(), ..f };
    figures
        .replace(&[
            (
                "Encounter/1".into(),
                vec![
                    by("Practitioner/wang", f("east", "im", "visits", "2026-12-01", 1)),
                    f("east", "im", "wait", "2026-12-01", 30),
                ],
            ),
            (
                "Encounter/2".into(),
                vec![f("east", "surg", "visits", "2026-12-02", 1), f("east", "surg", "wait", "2026-12-02", 10)],
            ),
            ("Encounter/3".into(), vec![f("west", "im", "visits", "2026-12-02", 1)]),
        ])
        .await
        .unwrap();
    // Counted again (a batch read twice): replaced, not added.
    figures
        .replace(&[(
            "Encounter/1".into(),
            vec![
                by("Practitioner/wang", f("east", "im", "visits", "2026-12-01", 1)),
                f("east", "im", "wait", "2026-12-01", 30),
            ],
        )])
        .await
        .unwrap();
    figures
        .replace(&[(
            "MedicationRequest/4".into(),
            vec![by("user:dr.wang", f("east", "im", "prescriptions", "2026-12-01", 1))],
        )])
        .await
        .unwrap();
    let sum = |key: &str, measure: &str, total: i64, n: i64| Sum { key: key.into(), measure: measure.into(), total, n };
    let week = Scope { from: "2026-12-01", to: "2026-12-07", ..Scope::default() };
    assert_eq!(
        figures.sums(&week, SumBy::Campus).await.unwrap(),
        [
            sum("east", "prescriptions", 1, 1),
            sum("east", "visits", 2, 2),
            sum("east", "wait", 40, 2),
            sum("west", "visits", 1, 1)
        ]
    );
    assert_eq!(
        figures.person_sums("east", "2026-12-01", "2026-12-07").await.unwrap(),
        [sum("Practitioner/wang", "visits", 1, 1), sum("user:dr.wang", "prescriptions", 1, 1)]
    );
    let east = Scope { campus: Some("east"), ..week.clone() };
    assert_eq!(
        figures.sums(&east, SumBy::Department).await.unwrap(),
        [
            sum("im", "prescriptions", 1, 1),
            sum("im", "visits", 1, 1),
            sum("im", "wait", 30, 1),
            sum("surg", "visits", 1, 1),
            sum("surg", "wait", 10, 1)
        ]
    );
    let im = Scope { department: Some("im"), ..east.clone() };
    assert_eq!(
        figures.sums(&im, SumBy::Day).await.unwrap(),
        [sum("2026-12-01", "prescriptions", 1, 1), sum("2026-12-01", "visits", 1, 1), sum("2026-12-01", "wait", 30, 1)]
    );
    // A record that changes day and department moves; one that no longer counts goes.
    figures
        .replace(&[
            ("Encounter/2".into(), vec![f("east", "im", "visits", "2026-12-03", 1)]),
            ("Encounter/3".into(), Vec::new()),
        ])
        .await
        .unwrap();
    assert_eq!(
        figures.sums(&week, SumBy::Day).await.unwrap(),
        [
            sum("2026-12-01", "prescriptions", 1, 1),
            sum("2026-12-01", "visits", 1, 1),
            sum("2026-12-01", "wait", 30, 1),
            sum("2026-12-02", "visits", 0, 0),
            sum("2026-12-02", "wait", 0, 0),
            sum("2026-12-03", "visits", 1, 1)
        ]
    );
    let only = [String::from("west")];
    let west = Scope { campuses: Some(&only), ..week.clone() };
    assert_eq!(figures.sums(&west, SumBy::Campus).await.unwrap(), [sum("west", "visits", 0, 0)]);
    assert_eq!(figures.of_source("Encounter/3").await.unwrap(), []);
    assert_eq!(figures.of_source("Encounter/2").await.unwrap(), [f("east", "im", "visits", "2026-12-03", 1)]);
    // A visit given to another doctor moves from one person to the other.
    figures
        .replace(&[(
            "Encounter/1".into(),
            vec![
                by("Practitioner/li", f("east", "im", "visits", "2026-12-01", 1)),
                f("east", "im", "wait", "2026-12-01", 30),
            ],
        )])
        .await
        .unwrap();
    assert_eq!(
        figures.person_sums("east", "2026-12-01", "2026-12-07").await.unwrap(),
        [
            sum("Practitioner/li", "visits", 1, 1),
            sum("Practitioner/wang", "visits", 0, 0),
            sum("user:dr.wang", "prescriptions", 1, 1)
        ]
    );
    // The campus's formula is set and replaced.
    use lianyi_store::performance::FormulaRow;
    let formulas = store.operations().formulas();
    assert_eq!(formulas.get("east").await.unwrap(), None);
    let row = FormulaRow {
        campus: "east".into(),
        method: "relative".into(),
        cap_percent: 120,
        weights: "visits:60,prescriptions:40".into(),
        targets: String::new(),
        updated_at: 1,
        updated_by: "user:boss".into(),
    };
    formulas.set(&row).await.unwrap();
    let row = FormulaRow { method: "target".into(), targets: "visits:300,prescriptions:200".into(), ..row };
    formulas.set(&row).await.unwrap();
    assert_eq!(formulas.get("east").await.unwrap(), Some(row));
    // Two servers counting the same record at once: it counts once.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let figures = figures.clone();
        let one = vec![("Encounter/9".to_string(), vec![f("south", "er", "visits", "2026-12-04", 1)])];
        tasks.push(tokio::spawn(async move { figures.replace(&one).await.unwrap() }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let south = Scope { campus: Some("south"), ..week.clone() };
    assert_eq!(figures.sums(&south, SumBy::Campus).await.unwrap(), [sum("south", "visits", 1, 1)]);
}

/// Twenty coded Observations, then twenty measured ones: the composite index's number
/// is NULL on every connection of the pool before it is a float (on PostgreSQL, a
/// float4 NULL would make the connection's prepared statement refuse the float8).
#[tokio::test]
async fn coded_then_measured_observations_on_every_connection() {
    let (store, _dir) = store().await;
    for n in 0..40i64 {
        let mut obs = json!({"resourceType": "Observation", "id": format!("alt{n}"), "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]}});
        if n < 20 {
            obs["valueCodeableConcept"] =
                json!({"coding": [{"system": "http://snomed.info/sct", "code": "260385009"}]});
        } else {
            obs["valueQuantity"] = json!({"value": 5.5 + n as f64, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"});
        }
        store.write(vec![op(WriteKind::Create, obs)], T0 + n).await.unwrap();
    }
    let measured = ids(&store, "Observation", &[("code-value-quantity", "http://loinc.org|2345-7$gt5")]).await;
    assert_eq!(measured.len(), 20);
    let coded = ids(
        &store,
        "Observation",
        &[("code-value-concept", "http://loinc.org|2345-7$http://snomed.info/sct|260385009")],
    )
    .await;
    assert_eq!(coded.len(), 20);
}

/// Messages between staff: a mailbox holds what came to its people and departments
/// and what it sent; the place of a reader never moves back.
#[tokio::test]
async fn staff_messages_reach_their_mailboxes_and_the_place_never_moves_back() {
    use lianyi_store::staff_messages::{Mailbox, StaffMessage};
    let (store, _dir) = store().await;
    let messages = store.operations().staff_messages();
    let m = |sender: &str, person: Option<&str>, dept: Option<&str>, body: &str| StaffMessage {
        sender: sender.into(),
        sender_name: sender.into(),
        to_practitioner: person.map(str::to_string),
        to_department: dept.map(str::to_string),
        body: body.into(),
        sent_at: T0,
        ..StaffMessage::default()
    };
    let a = messages.send(&m("user:li", Some("wang"), None, "a")).await.unwrap();
    let b = messages.send(&m("user:li", None, Some("west-sur"), "b")).await.unwrap();
    let c = messages.send(&m("user:wang", Some("li"), None, "c")).await.unwrap();
    let wang = Mailbox {
        sender: "user:wang".into(),
        practitioners: vec!["wang".into()],
        departments: vec!["west-sur".into()],
    };
    let bodies = |list: Vec<StaffMessage>| list.into_iter().map(|m| m.body).collect::<Vec<_>>();
    assert_eq!(bodies(messages.list(&wang, 0, 10).await.unwrap()), ["c", "b", "a"]);
    assert_eq!(bodies(messages.list(&wang, a, 10).await.unwrap()), ["c", "b"]);
    let zhao = Mailbox {
        sender: "user:zhao".into(),
        practitioners: vec!["zhao".into()],
        departments: vec!["west-sur".into()],
    };
    assert_eq!(bodies(messages.list(&zhao, 0, 10).await.unwrap()), ["b"]);
    let nobody = Mailbox { sender: "user:nobody".into(), ..Mailbox::default() };
    assert!(messages.list(&nobody, 0, 10).await.unwrap().is_empty());
    assert_eq!(messages.seen("wang").await.unwrap(), 0);
    messages.mark_seen("wang", c).await.unwrap();
    messages.mark_seen("wang", b).await.unwrap();
    assert_eq!(messages.seen("wang").await.unwrap(), c, "never back");
}

#[tokio::test]
async fn a_deposit_balance_never_goes_below_zero_and_receipts_have_no_gaps() {
    use lianyi_store::StoreError;
    use lianyi_store::deposits::NewDeposit;
    use lianyi_store::messages::SideWrite;
    let (store, _dir) = store().await;
    let deposits = store.operations().deposits();
    let amount = |no: i64, kind: &str, fen: i64| NewDeposit {
        campus: "campus-east".into(),
        receipt_no: no,
        stay: "stay-1".into(),
        patient: "p1".into(),
        kind: kind.into(),
        amount_fen: fen,
        method: "cash".into(),
        reference: None,
        cashier: "user:adm".into(),
        at: 1,
        note: None,
    };
    let write = |d: NewDeposit| {
        let store = store.clone();
        async move { store.write_audited_with(Vec::new(), 1, &[], None, &[SideWrite::Deposit(d)]).await }
    };
    write(amount(1, "deposit", 300_000)).await.unwrap();
    // A number out of turn (a gap, or one taken) fails, writing nothing.
    assert!(matches!(write(amount(3, "deposit", 100)).await, Err(StoreError::AlreadyExists { .. })));
    assert!(matches!(write(amount(1, "deposit", 100)).await, Err(StoreError::AlreadyExists { .. })));
    // More than the balance back: refused, and the balance stands.
    match write(amount(2, "refund", -300_001)).await {
        Err(StoreError::Refused(msg)) => assert!(msg.starts_with("amount: "), "{msg}"),
        other => panic!("{other:?}"),
    }
    write(amount(2, "refund", -300_000)).await.unwrap();
    assert_eq!(deposits.balances(&["stay-1"]).await.unwrap()["stay-1"], 0);
    let rows = deposits.of_stay("stay-1").await.unwrap();
    assert_eq!(rows.iter().map(|d| d.entry.receipt_no).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(deposits.last_receipt_no("campus-east").await.unwrap(), 2);
    assert_eq!(deposits.last_receipt_no("campus-west").await.unwrap(), 0);
}

#[tokio::test]
async fn a_campus_s_ward_rules_are_replaced_whole() {
    use lianyi_store::messages::SideWrite;
    use lianyi_store::ward_rules::WardRules;
    let (store, _dir) = store().await;
    let table = store.operations().ward_rules();
    assert_eq!(table.get("campus-west").await.unwrap(), None, "the defaults: no row");
    let rules = |rounds: &str, second_check: bool, at: i64| WardRules {
        campus: "campus-west".into(),
        rounds: rounds.into(),
        second_check,
        updated_by: "user:mgr".into(),
        updated_at: at,
    };
    for r in [rules("qd=09:00", true, 1), rules("qd=07:30;bid=07:30,15:30", false, 2)] {
        store.write_audited_with(Vec::new(), r.updated_at, &[], None, &[SideWrite::WardRules(r)]).await.unwrap();
    }
    assert_eq!(table.get("campus-west").await.unwrap(), Some(rules("qd=07:30;bid=07:30,15:30", false, 2)));
    assert_eq!(table.get("campus-east").await.unwrap(), None);
}
