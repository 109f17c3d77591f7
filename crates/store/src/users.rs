//! Storage of users, their role grants and their sessions. The security layer owns
//! every rule (password policy, lockout, MFA, timeouts); this is only rows.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, Store, StoreError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    pub must_change_password: bool,
    /// The TOTP secret as stored (the security layer decides its encoding).
    pub totp_secret: Option<String>,
    pub totp_enabled: bool,
    /// The last TOTP time step accepted, so a code cannot be used twice.
    pub totp_last_step: i64,
    pub failed_attempts: i64,
    pub locked_until: i64,
    pub disabled: bool,
    /// For patient users: their Patient id.
    pub patient: Option<String>,
    pub language: Option<String>,
    pub created_at: i64,
    pub password_changed_at: i64,
    /// When the user last completed a login (epoch ms), if ever.
    pub last_login_at: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleGrant {
    pub role: String,
    /// A campus id or `*`.
    pub campus: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    pub id_hash: String,
    pub user_id: String,
    pub created_at: i64,
    pub last_seen: i64,
    /// `password-change`, `mfa-enrol`, `mfa` or `active`.
    pub stage: String,
    pub csrf: String,
    pub client_addr: Option<String>,
    pub revoked: bool,
}

const USER_COLUMNS: &str = "id, username, display_name, password_hash, must_change_password, totp_secret, totp_enabled, \
     totp_last_step, failed_attempts, locked_until, disabled, patient, language, created_at, password_changed_at, \
     last_login_at";

fn user_from_row(r: &AnyRow) -> Result<UserRecord> {
    Ok(UserRecord {
        id: r.try_get("id")?,
        username: r.try_get("username")?,
        display_name: r.try_get("display_name")?,
        password_hash: r.try_get("password_hash")?,
        must_change_password: r.try_get::<i64, _>("must_change_password")? != 0,
        totp_secret: r.try_get("totp_secret")?,
        totp_enabled: r.try_get::<i64, _>("totp_enabled")? != 0,
        totp_last_step: r.try_get("totp_last_step")?,
        failed_attempts: r.try_get("failed_attempts")?,
        locked_until: r.try_get("locked_until")?,
        disabled: r.try_get::<i64, _>("disabled")? != 0,
        patient: r.try_get("patient")?,
        language: r.try_get("language")?,
        created_at: r.try_get("created_at")?,
        password_changed_at: r.try_get("password_changed_at")?,
        last_login_at: r.try_get("last_login_at")?,
    })
}

fn session_from_row(r: &AnyRow) -> Result<SessionRecord> {
    Ok(SessionRecord {
        id_hash: r.try_get("id_hash")?,
        user_id: r.try_get("user_id")?,
        created_at: r.try_get("created_at")?,
        last_seen: r.try_get("last_seen")?,
        stage: r.try_get("stage")?,
        csrf: r.try_get("csrf")?,
        client_addr: r.try_get("client_addr")?,
        revoked: r.try_get::<i64, _>("revoked")? != 0,
    })
}

impl Store {
    pub async fn insert_user(&self, u: &UserRecord, grants: &[RoleGrant]) -> Result<()> {
        let mut tx = self.write_pool().begin_with(self.backend.begin_write()).await?;
        insert_user_in(&mut tx, u, grants).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Makes a patient's portal account and spends the activation code (by its hash)
    /// that opened it, in one transaction: `Ok(false)`, and nothing written, when the
    /// code was spent meanwhile.
    pub async fn insert_user_spending(
        &self,
        u: &UserRecord,
        grants: &[RoleGrant],
        code_hash: &str,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.write_pool().begin_with(self.backend.begin_write()).await?;
        let spent = sqlx::query(
            "UPDATE portal_activations SET used_at = $1, username = $2 WHERE code_hash = $3 AND used_at IS NULL",
        )
        .bind(now)
        .bind(u.username.clone())
        .bind(code_hash.to_string())
        .execute(&mut *tx)
        .await?;
        if spent.rows_affected() != 1 {
            return Ok(false);
        }
        insert_user_in(&mut tx, u, grants).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The accounts bound to a patient (their portal account).
    pub async fn users_of_patient(&self, patient: &str) -> Result<Vec<UserRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users WHERE patient = $1")))
            .bind(patient.to_string())
            .fetch_all(&self.read_pool())
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    pub async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1")))
            .bind(username.to_string())
            .fetch_optional(&self.read_pool())
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1")))
            .bind(id.to_string())
            .fetch_optional(&self.read_pool())
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub async fn list_users(&self) -> Result<Vec<(UserRecord, Vec<RoleGrant>)>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users ORDER BY username")))
            .fetch_all(&self.read_pool())
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let u = user_from_row(r)?;
            let grants = self.user_grants(&u.id).await?;
            out.push((u, grants));
        }
        Ok(out)
    }

    pub async fn user_grants(&self, user_id: &str) -> Result<Vec<RoleGrant>> {
        let rows = sqlx::query("SELECT role, campus FROM user_roles WHERE user_id = $1 ORDER BY role, campus")
            .bind(user_id.to_string())
            .fetch_all(&self.read_pool())
            .await?;
        rows.iter().map(|r| Ok(RoleGrant { role: r.try_get(0)?, campus: r.try_get(1)? })).collect()
    }

    /// Adds a role grant; false when the user held it already.
    pub async fn add_user_role(&self, user_id: &str, role: &str, campus: &str) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO user_roles (user_id, role, campus) VALUES ($1, $2, $3) ON CONFLICT (user_id, role, campus) DO NOTHING",
        )
        .bind(user_id.to_string())
        .bind(role.to_string())
        .bind(campus.to_string())
        .execute(&self.write_pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Removes a role grant; false when the user did not hold it.
    pub async fn remove_user_role(&self, user_id: &str, role: &str, campus: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM user_roles WHERE user_id = $1 AND role = $2 AND campus = $3")
            .bind(user_id.to_string())
            .bind(role.to_string())
            .bind(campus.to_string())
            .execute(&self.write_pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Saves the mutable security state of a user (everything but id, name, created).
    pub async fn update_user(&self, u: &UserRecord) -> Result<()> {
        sqlx::query(
            "UPDATE users SET display_name = $1, password_hash = $2, must_change_password = $3, totp_secret = $4, \
             totp_enabled = $5, totp_last_step = $6, failed_attempts = $7, locked_until = $8, disabled = $9, \
             language = $10, password_changed_at = $11, last_login_at = $12 WHERE id = $13",
        )
        .bind(u.display_name.clone())
        .bind(u.password_hash.clone())
        .bind(i64::from(u.must_change_password))
        .bind(u.totp_secret.clone())
        .bind(i64::from(u.totp_enabled))
        .bind(u.totp_last_step)
        .bind(u.failed_attempts)
        .bind(u.locked_until)
        .bind(i64::from(u.disabled))
        .bind(u.language.clone())
        .bind(u.password_changed_at)
        .bind(u.last_login_at)
        .bind(u.id.clone())
        .execute(&self.write_pool())
        .await?;
        Ok(())
    }

    /// Sets a user's page language.
    pub async fn set_user_language(&self, user_id: &str, language: &str) -> Result<()> {
        sqlx::query("UPDATE users SET language = $1 WHERE id = $2")
            .bind(language.to_string())
            .bind(user_id.to_string())
            .execute(&self.write_pool())
            .await?;
        Ok(())
    }

    /// Accepts a TOTP step only if it is newer than the last accepted one (atomic, so
    /// two requests racing with the same code cannot both pass).
    pub async fn claim_totp_step(&self, user_id: &str, step: i64) -> Result<bool> {
        let r = sqlx::query("UPDATE users SET totp_last_step = $1 WHERE id = $2 AND totp_last_step < $1")
            .bind(step)
            .bind(user_id.to_string())
            .execute(&self.write_pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn insert_session(&self, s: &SessionRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, created_at, last_seen, stage, csrf, client_addr, revoked) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(s.id_hash.clone())
        .bind(s.user_id.clone())
        .bind(s.created_at)
        .bind(s.last_seen)
        .bind(s.stage.clone())
        .bind(s.csrf.clone())
        .bind(s.client_addr.clone())
        .bind(i64::from(s.revoked))
        .execute(&self.write_pool())
        .await?;
        Ok(())
    }

    pub async fn session(&self, id_hash: &str) -> Result<Option<SessionRecord>> {
        let row = sqlx::query(
            "SELECT id_hash, user_id, created_at, last_seen, stage, csrf, client_addr, revoked FROM sessions WHERE id_hash = $1",
        )
        .bind(id_hash.to_string())
        .fetch_optional(&self.read_pool())
        .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    pub async fn touch_session(&self, id_hash: &str, last_seen: i64, stage: &str) -> Result<()> {
        sqlx::query("UPDATE sessions SET last_seen = $1, stage = $2 WHERE id_hash = $3")
            .bind(last_seen)
            .bind(stage.to_string())
            .bind(id_hash.to_string())
            .execute(&self.write_pool())
            .await?;
        Ok(())
    }

    pub async fn revoke_session(&self, id_hash: &str) -> Result<()> {
        sqlx::query("UPDATE sessions SET revoked = 1 WHERE id_hash = $1")
            .bind(id_hash.to_string())
            .execute(&self.write_pool())
            .await?;
        Ok(())
    }

    pub async fn revoke_user_sessions(&self, user_id: &str) -> Result<()> {
        sqlx::query("UPDATE sessions SET revoked = 1 WHERE user_id = $1")
            .bind(user_id.to_string())
            .execute(&self.write_pool())
            .await?;
        Ok(())
    }
}

async fn insert_user_in(tx: &mut sqlx::Transaction<'_, sqlx::Any>, u: &UserRecord, grants: &[RoleGrant]) -> Result<()> {
    let res = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        )))
        .bind(u.id.clone())
        .bind(u.username.clone())
        .bind(u.display_name.clone())
        .bind(u.password_hash.clone())
        .bind(i64::from(u.must_change_password))
        .bind(u.totp_secret.clone())
        .bind(i64::from(u.totp_enabled))
        .bind(u.totp_last_step)
        .bind(u.failed_attempts)
        .bind(u.locked_until)
        .bind(i64::from(u.disabled))
        .bind(u.patient.clone())
        .bind(u.language.clone())
        .bind(u.created_at)
        .bind(u.password_changed_at)
        .bind(u.last_login_at)
        .execute(&mut **tx)
        .await;
    match res {
        Ok(_) => {}
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            return Err(StoreError::AlreadyExists { resource_type: "user".into(), id: u.username.clone() });
        }
        Err(e) => return Err(e.into()),
    }
    for g in grants {
        sqlx::query("INSERT INTO user_roles (user_id, role, campus) VALUES ($1, $2, $3)")
            .bind(u.id.clone())
            .bind(g.role.clone())
            .bind(g.campus.clone())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
