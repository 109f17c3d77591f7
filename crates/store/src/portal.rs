//! The patient portal's activation codes: a code the registrar prints on the
//! registration slip opens one patient's portal account. Only the code's hash is
//! kept; a patient has one live code (a new one replaces the unspent ones); a code is
//! spent once, and counts its wrong tries.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, Store};

/// One activation code, by its hash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Activation {
    pub code_hash: String,
    pub patient: String,
    /// The campus that issued it.
    pub campus: String,
    /// The actor who issued it.
    pub issued_by: String,
    pub issued_at: i64,
    pub expires_at: i64,
    /// Wrong tries (resident ID or phone not matching) so far.
    pub attempts: i64,
    pub used_at: Option<i64>,
    /// The account it opened.
    pub username: Option<String>,
}

const COLUMNS: &str = "code_hash, patient, campus, issued_by, issued_at, expires_at, attempts, used_at, username";

fn of(r: &AnyRow) -> Result<Activation> {
    Ok(Activation {
        code_hash: r.try_get(0)?,
        patient: r.try_get(1)?,
        campus: r.try_get(2)?,
        issued_by: r.try_get(3)?,
        issued_at: r.try_get(4)?,
        expires_at: r.try_get(5)?,
        attempts: r.try_get(6)?,
        used_at: r.try_get(7)?,
        username: r.try_get(8)?,
    })
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Portal(pub(crate) Store);

async fn insert_code<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(e: E, a: &Activation) -> Result<()> {
    sqlx::query(
        "INSERT INTO portal_activations (code_hash, patient, campus, issued_by, issued_at, expires_at, attempts) \
         VALUES ($1, $2, $3, $4, $5, $6, 0)",
    )
    .bind(a.code_hash.clone())
    .bind(a.patient.clone())
    .bind(a.campus.clone())
    .bind(a.issued_by.clone())
    .bind(a.issued_at)
    .bind(a.expires_at)
    .execute(e)
    .await?;
    Ok(())
}

impl Portal {
    /// Keeps a new code; the patient's unspent codes are withdrawn in the same
    /// transaction.
    pub async fn issue(&self, a: &Activation) -> Result<()> {
        let mut tx = self.0.write_pool().begin().await?;
        sqlx::query("DELETE FROM portal_activations WHERE patient = $1 AND used_at IS NULL")
            .bind(a.patient.clone())
            .execute(&mut *tx)
            .await?;
        insert_code(&mut *tx, a).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The code with this hash, spent or not.
    pub async fn activation(&self, code_hash: &str) -> Result<Option<Activation>> {
        let row =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM portal_activations WHERE code_hash = $1")))
                .bind(code_hash.to_string())
                .fetch_optional(&self.0.write_pool())
                .await?;
        row.as_ref().map(of).transpose()
    }

    /// The patient's newest code.
    pub async fn latest_of(&self, patient: &str) -> Result<Option<Activation>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM portal_activations WHERE patient = $1 ORDER BY issued_at DESC LIMIT 1"
        )))
        .bind(patient.to_string())
        .fetch_optional(&self.0.read_pool())
        .await?;
        row.as_ref().map(of).transpose()
    }

    /// Withdraws an unspent code (it could not be sent).
    pub async fn withdraw(&self, code_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM portal_activations WHERE code_hash = $1 AND used_at IS NULL")
            .bind(code_hash.to_string())
            .execute(&self.0.write_pool())
            .await?;
        Ok(())
    }

    /// Keeps a new code beside the patient's others (a code being sent: the older
    /// ones are withdrawn only once it was taken, by [`Portal::withdraw_others`]).
    pub async fn add_code(&self, a: &Activation) -> Result<()> {
        insert_code(&self.0.write_pool(), a).await
    }

    /// Withdraws a patient's unspent codes but one.
    pub async fn withdraw_others(&self, patient: &str, keep_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM portal_activations WHERE patient = $1 AND used_at IS NULL AND code_hash <> $2")
            .bind(patient.to_string())
            .bind(keep_hash.to_string())
            .execute(&self.0.write_pool())
            .await?;
        Ok(())
    }

    /// Counts a wrong try; returns the count.
    pub async fn wrong_try(&self, code_hash: &str) -> Result<i64> {
        let row = sqlx::query(
            "UPDATE portal_activations SET attempts = attempts + 1 WHERE code_hash = $1 RETURNING attempts",
        )
        .bind(code_hash.to_string())
        .fetch_optional(&self.0.write_pool())
        .await?;
        Ok(match row {
            Some(r) => r.try_get(0)?,
            None => 0,
        })
    }
}

/// An account acting for another patient, and the consent it rests on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Proxy {
    pub id: String,
    /// The proxy's account (a user id).
    pub user_id: String,
    /// The patient acted for.
    pub patient: String,
    /// `parent`, `guardian`, `carer`, `spouse`, `child`.
    pub relation: String,
    /// What the consent is (who gave it, how), as recorded.
    pub consent: String,
    pub granted_by: String,
    pub granted_at: i64,
    pub revoked_at: Option<i64>,
    pub revoked_by: Option<String>,
}

const PROXY_COLUMNS: &str = "id, user_id, patient, relation, consent, granted_by, granted_at, revoked_at, revoked_by";

fn proxy_of(r: &AnyRow) -> Result<Proxy> {
    Ok(Proxy {
        id: r.try_get(0)?,
        user_id: r.try_get(1)?,
        patient: r.try_get(2)?,
        relation: r.try_get(3)?,
        consent: r.try_get(4)?,
        granted_by: r.try_get(5)?,
        granted_at: r.try_get(6)?,
        revoked_at: r.try_get(7)?,
        revoked_by: r.try_get(8)?,
    })
}

impl Portal {
    /// Keeps a new proxy.
    pub async fn add_proxy(&self, p: &Proxy) -> Result<()> {
        sqlx::query(
            "INSERT INTO portal_proxies (id, user_id, patient, relation, consent, granted_by, granted_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(p.id.clone())
        .bind(p.user_id.clone())
        .bind(p.patient.clone())
        .bind(p.relation.clone())
        .bind(p.consent.clone())
        .bind(p.granted_by.clone())
        .bind(p.granted_at)
        .execute(&self.0.write_pool())
        .await?;
        Ok(())
    }

    /// The live proxy of an account for a patient, read from the primary (a
    /// revocation holds at once).
    pub async fn active_proxy(&self, user_id: &str, patient: &str) -> Result<Option<Proxy>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PROXY_COLUMNS} FROM portal_proxies WHERE user_id = $1 AND patient = $2 AND revoked_at IS NULL"
        )))
        .bind(user_id.to_string())
        .bind(patient.to_string())
        .fetch_optional(&self.0.write_pool())
        .await?;
        row.as_ref().map(proxy_of).transpose()
    }

    /// The patients an account acts for (live proxies).
    pub async fn proxies_of_user(&self, user_id: &str) -> Result<Vec<Proxy>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PROXY_COLUMNS} FROM portal_proxies WHERE user_id = $1 AND revoked_at IS NULL ORDER BY granted_at"
        )))
        .bind(user_id.to_string())
        .fetch_all(&self.0.write_pool())
        .await?;
        rows.iter().map(proxy_of).collect()
    }

    /// Every proxy of a patient, revoked ones too, newest first.
    pub async fn proxies_of_patient(&self, patient: &str) -> Result<Vec<Proxy>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PROXY_COLUMNS} FROM portal_proxies WHERE patient = $1 ORDER BY granted_at DESC"
        )))
        .bind(patient.to_string())
        .fetch_all(&self.0.read_pool())
        .await?;
        rows.iter().map(proxy_of).collect()
    }

    /// Ends a live proxy: false when it was not live.
    pub async fn revoke_proxy(&self, id: &str, now: i64, by: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE portal_proxies SET revoked_at = $1, revoked_by = $2 WHERE id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(by.to_string())
        .bind(id.to_string())
        .execute(&self.0.write_pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// An online sign-up waiting for the desk (or decided by it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Signup {
    pub id: String,
    /// What the person typed, sealed by the field cipher.
    pub details: String,
    pub made_at: i64,
    /// `waiting`, `sent` (a code went to the contact given) or `declined`.
    pub status: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    /// The record the desk matched it to.
    pub patient: Option<String>,
    /// The desk's reason when declined.
    pub note: Option<String>,
}

const SIGNUP_COLUMNS: &str = "id, details, made_at, status, decided_by, decided_at, patient, note";

fn signup_of(r: &AnyRow) -> Result<Signup> {
    Ok(Signup {
        id: r.try_get(0)?,
        details: r.try_get(1)?,
        made_at: r.try_get(2)?,
        status: r.try_get(3)?,
        decided_by: r.try_get(4)?,
        decided_at: r.try_get(5)?,
        patient: r.try_get(6)?,
        note: r.try_get(7)?,
    })
}

impl Portal {
    /// Keeps a sign-up that waits for the desk.
    pub async fn add_signup(&self, s: &Signup) -> Result<()> {
        sqlx::query("INSERT INTO portal_signups (id, details, made_at, status) VALUES ($1, $2, $3, 'waiting')")
            .bind(s.id.clone())
            .bind(s.details.clone())
            .bind(s.made_at)
            .execute(&self.0.write_pool())
            .await?;
        Ok(())
    }

    /// Sign-ups still waiting, oldest first.
    pub async fn waiting_signups(&self, limit: i64) -> Result<Vec<Signup>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SIGNUP_COLUMNS} FROM portal_signups WHERE status = 'waiting' ORDER BY made_at, id LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(&self.0.write_pool())
        .await?;
        rows.iter().map(signup_of).collect()
    }

    pub async fn signup(&self, id: &str) -> Result<Option<Signup>> {
        let row =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {SIGNUP_COLUMNS} FROM portal_signups WHERE id = $1")))
                .bind(id.to_string())
                .fetch_optional(&self.0.write_pool())
                .await?;
        row.as_ref().map(signup_of).transpose()
    }

    /// Puts a sign-up back in the desk's list (its code could not be sent).
    pub async fn reopen_signup(&self, id: &str) -> Result<()> {
        sqlx::query(
            "UPDATE portal_signups SET status = 'waiting', decided_by = NULL, decided_at = NULL, patient = NULL \
             WHERE id = $1 AND status = 'sent'",
        )
        .bind(id.to_string())
        .execute(&self.0.write_pool())
        .await?;
        Ok(())
    }

    /// Records the desk's decision on a waiting sign-up; false when it was no longer
    /// waiting (decided by someone else meanwhile).
    pub async fn decide_signup(
        &self,
        id: &str,
        status: &str,
        by: &str,
        at: i64,
        patient: Option<&str>,
        note: Option<&str>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE portal_signups SET status = $2, decided_by = $3, decided_at = $4, patient = $5, note = $6 \
             WHERE id = $1 AND status = 'waiting'",
        )
        .bind(id.to_string())
        .bind(status.to_string())
        .bind(by.to_string())
        .bind(at)
        .bind(patient.map(str::to_string))
        .bind(note.map(str::to_string))
        .execute(&self.0.write_pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
