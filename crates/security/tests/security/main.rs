//! The security suite: users, passwords, lockout, TOTP, sessions, on a real store
//! (SQLite, and PostgreSQL when `scripts/test` runs it), with a manual clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use lianyi_security::scope::Perm;
use lianyi_security::totp;
use lianyi_security::users::{NewUser, SecurityPolicy, Stage, UserError, UserService};
use lianyi_security::{AuditLog, Caller, Campuses, ChainAlg, ManualClock};
use lianyi_store::Store;
use lianyi_store::audit::AuditQuery;
use lianyi_store::testing::fresh_database;

const T0: i64 = 1_800_000_000_000;

struct Env {
    users: UserService,
    clock: Arc<ManualClock>,
    store: Store,
    _dir: lianyi_store::testing::TestDir,
}

async fn env() -> Env {
    let (url, dir) = fresh_database().await;
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let clock = ManualClock::new(T0);
    let audit = AuditLog::start(store.clone(), ChainAlg::Sm3);
    let users = UserService::new(store.clone(), audit, clock.clone(), SecurityPolicy::default());
    Env { users, clock, store, _dir: dir }
}

fn doctor(name: &str) -> NewUser {
    NewUser {
        username: name.into(),
        display_name: "李医生".into(),
        password: "first-Password-1".into(),
        grants: vec![("doctor".into(), "campus-east".into())],
        patient: None,
        must_change_password: true,
    }
}

async fn actions(store: &Store) -> Vec<(String, String)> {
    let mut r = store.audit_records(&AuditQuery { limit: 1000, ..Default::default() }).await.unwrap();
    r.reverse();
    r.into_iter().map(|r| (r.entry.action, r.entry.outcome)).collect()
}

/// Logs in through every first-login stage and returns the active session token and
/// the authenticator secret.
async fn first_login(e: &Env, name: &str) -> (String, Vec<u8>) {
    let s = e.users.login(name, "first-Password-1", Some("10.0.0.1".into())).await.unwrap();
    assert_eq!(s.stage, Stage::PasswordChange);
    let next = e.users.change_password(&s.token, "first-Password-1", "a new long passphrase", None).await.unwrap();
    assert_eq!(next, Stage::MfaEnrol);
    let (uri, b32) = e.users.begin_enrolment(&s.token, None).await.unwrap();
    assert!(uri.starts_with("otpauth://totp/Lianyi:"));
    let secret = totp::base32_decode(&b32).unwrap();
    let code = totp::code_at(&secret, e.clock.now_ms_for_test());
    assert_eq!(e.users.confirm_enrolment(&s.token, &code, None).await.unwrap(), Stage::Active);
    (s.token, secret)
}

trait Now {
    fn now_ms_for_test(&self) -> i64;
}
impl Now for ManualClock {
    fn now_ms_for_test(&self) -> i64 {
        lianyi_security::Clock::now_ms(self)
    }
}

#[tokio::test]
async fn five_wrong_passwords_lock_the_account_and_the_lock_is_audited() {
    let e = env().await;
    e.users
        .add_user(&Caller::task(lianyi_security::SystemTask::Operator("test".into())), doctor("dr.wang"))
        .await
        .unwrap();
    for i in 1..=4 {
        let err = e.users.login("dr.wang", "wrong password!", None).await.unwrap_err();
        assert!(matches!(err, UserError::InvalidCredentials), "attempt {i}: {err}");
    }
    let err = e.users.login("dr.wang", "wrong password!", None).await.unwrap_err();
    assert!(matches!(err, UserError::Locked { .. }), "{err}");
    // Even the right password is refused while locked.
    assert!(matches!(e.users.login("dr.wang", "first-Password-1", None).await, Err(UserError::Locked { .. })));
    let log = actions(&e.store).await;
    assert!(log.contains(&("lockout".into(), "success".into())), "{log:?}");
    assert!(log.contains(&("login".into(), "locked".into())));
    assert_eq!(log.iter().filter(|(a, o)| a == "login" && o == "failure").count(), 5);
    e.clock.advance(15 * 60_000 + 1);
    assert_eq!(e.users.login("dr.wang", "first-Password-1", None).await.unwrap().stage, Stage::PasswordChange);
    // Unknown users fail the same way and are audited too.
    assert!(matches!(e.users.login("nobody", "whatever-long", None).await, Err(UserError::InvalidCredentials)));
}

#[tokio::test]
async fn first_login_then_totp_and_a_used_code_is_rejected() {
    let e = env().await;
    e.users
        .add_user(&Caller::task(lianyi_security::SystemTask::Operator("test".into())), doctor("dr.li"))
        .await
        .unwrap();
    let (token, secret) = first_login(&e, "dr.li").await;
    let info = e.users.active_caller(&token, None).await.unwrap();
    assert_eq!(info.caller.actor(), "user:dr.li");
    assert_eq!(
        info.caller.access().campuses_for("Observation", Perm::Read),
        Campuses::Only(vec![lianyi_security::CampusId::parse("campus-east").unwrap()])
    );
    assert!(!info.caller.access().allows("Patient", Perm::Delete));
    e.users.logout(&token, None).await.unwrap();
    assert!(matches!(e.users.active_caller(&token, None).await, Err(UserError::SessionExpired)));

    // Next login: password, then a code. The enrolment code's step is spent already.
    e.clock.advance(31_000);
    let s = e.users.login("dr.li", "a new long passphrase", None).await.unwrap();
    assert_eq!(s.stage, Stage::Mfa);
    assert!(
        matches!(e.users.active_caller(&s.token, None).await, Err(UserError::WrongStage)),
        "not active before the code"
    );
    let code = totp::code_at(&secret, lianyi_security::Clock::now_ms(&*e.clock));
    assert_eq!(e.users.verify_code(&s.token, &code, None).await.unwrap(), Stage::Active);
    // The same code in another session is a replay.
    let s2 = e.users.login("dr.li", "a new long passphrase", None).await.unwrap();
    assert!(matches!(e.users.verify_code(&s2.token, &code, None).await, Err(UserError::InvalidCode)));
    assert!(actions(&e.store).await.contains(&("mfa-replay".into(), "denied".into())));
    // A wrong code fails too.
    assert!(matches!(e.users.verify_code(&s2.token, "000000", None).await, Err(UserError::InvalidCode)));
}

#[tokio::test]
async fn sessions_expire_when_idle_and_at_the_absolute_limit() {
    let e = env().await;
    e.users
        .add_user(&Caller::task(lianyi_security::SystemTask::Operator("test".into())), doctor("nurse.zhao"))
        .await
        .unwrap();
    let (token, secret) = first_login(&e, "nurse.zhao").await;
    e.clock.advance(14 * 60_000);
    assert!(e.users.active_caller(&token, None).await.is_ok(), "within the idle limit");
    e.clock.advance(15 * 60_000 + 1);
    assert!(matches!(e.users.active_caller(&token, None).await, Err(UserError::SessionExpired)));
    assert!(actions(&e.store).await.contains(&("session-expired".into(), "success".into())));

    // Busy all day: never idle, but the absolute limit of 12 hours ends the session.
    e.clock.advance(60_000);
    let s = e.users.login("nurse.zhao", "a new long passphrase", None).await.unwrap();
    let code = totp::code_at(&secret, e.clock.now_ms_for_test());
    e.users.verify_code(&s.token, &code, None).await.unwrap();
    for _ in 0..71 {
        e.clock.advance(10 * 60_000);
        assert!(e.users.active_caller(&s.token, None).await.is_ok());
    }
    e.clock.advance(10 * 60_000 + 1);
    assert!(matches!(e.users.active_caller(&s.token, None).await, Err(UserError::SessionExpired)));
}

#[tokio::test]
async fn password_policy_and_roles_are_enforced_at_creation() {
    let e = env().await;
    let admin = Caller::task(lianyi_security::SystemTask::Operator("test".into()));
    let mut weak = doctor("dr.short");
    weak.password = "short".into();
    assert!(matches!(e.users.add_user(&admin, weak).await, Err(UserError::Policy(_))));
    let mut named = doctor("zhangsan");
    named.password = "Zhangsan-2026!".into();
    assert!(matches!(e.users.add_user(&admin, named).await, Err(UserError::Policy(_))));
    let mut role = doctor("dr.x");
    role.grants = vec![("surgeon-general".into(), "*".into())];
    assert!(matches!(e.users.add_user(&admin, role).await, Err(UserError::Role(_))));
    e.users.add_user(&admin, doctor("dr.dup")).await.unwrap();
    assert!(matches!(e.users.add_user(&admin, doctor("dr.dup")).await, Err(UserError::Exists(_))));
    let stored = e.store.user_by_name("dr.dup").await.unwrap().unwrap();
    assert!(stored.password_hash.starts_with("$argon2id$"));
    assert!(!stored.password_hash.contains("first-Password-1"));
}
