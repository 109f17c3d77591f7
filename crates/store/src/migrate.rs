//! Forward-only schema migrations, one folder per backend, embedded in the binary.

use sqlx::{AssertSqlSafe, Row};

use crate::{Backend, Result, Store, StoreError};

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "resources",
        sqlite: include_str!("../migrations/sqlite/0001_resources.sql"),
        postgres: include_str!("../migrations/postgres/0001_resources.sql"),
    },
    Migration {
        version: 2,
        name: "audit",
        sqlite: include_str!("../migrations/sqlite/0002_audit.sql"),
        postgres: include_str!("../migrations/postgres/0002_audit.sql"),
    },
    Migration {
        version: 3,
        name: "resource_patient",
        sqlite: include_str!("../migrations/sqlite/0003_resource_patient.sql"),
        postgres: include_str!("../migrations/postgres/0003_resource_patient.sql"),
    },
    Migration {
        version: 4,
        name: "clients",
        sqlite: include_str!("../migrations/sqlite/0004_clients.sql"),
        postgres: include_str!("../migrations/postgres/0004_clients.sql"),
    },
    Migration {
        version: 5,
        name: "users",
        sqlite: include_str!("../migrations/sqlite/0005_users.sql"),
        postgres: include_str!("../migrations/postgres/0005_users.sql"),
    },
    Migration {
        version: 6,
        name: "break_glass",
        sqlite: include_str!("../migrations/sqlite/0006_break_glass.sql"),
        postgres: include_str!("../migrations/postgres/0006_break_glass.sql"),
    },
    Migration {
        version: 7,
        name: "more_index",
        sqlite: include_str!("../migrations/sqlite/0007_more_index.sql"),
        postgres: include_str!("../migrations/postgres/0007_more_index.sql"),
    },
    Migration {
        version: 8,
        name: "search_v2",
        sqlite: include_str!("../migrations/sqlite/0008_search_v2.sql"),
        postgres: include_str!("../migrations/postgres/0008_search_v2.sql"),
    },
    Migration {
        version: 9,
        name: "body_once",
        sqlite: include_str!("../migrations/sqlite/0009_body_once.sql"),
        postgres: include_str!("../migrations/postgres/0009_body_once.sql"),
    },
    Migration {
        version: 10,
        name: "message_log",
        sqlite: include_str!("../migrations/sqlite/0010_message_log.sql"),
        postgres: include_str!("../migrations/postgres/0010_message_log.sql"),
    },
    Migration {
        version: 11,
        name: "outbox",
        sqlite: include_str!("../migrations/sqlite/0011_outbox.sql"),
        postgres: include_str!("../migrations/postgres/0011_outbox.sql"),
    },
    Migration {
        version: 12,
        name: "counters",
        sqlite: include_str!("../migrations/sqlite/0012_counters.sql"),
        postgres: include_str!("../migrations/postgres/0012_counters.sql"),
    },
    Migration {
        version: 13,
        name: "message_queue",
        sqlite: include_str!("../migrations/sqlite/0013_message_queue.sql"),
        postgres: include_str!("../migrations/postgres/0013_message_queue.sql"),
    },
    Migration {
        version: 14,
        name: "channel_leases",
        sqlite: include_str!("../migrations/sqlite/0014_channel_leases.sql"),
        postgres: include_str!("../migrations/postgres/0014_channel_leases.sql"),
    },
    Migration {
        version: 15,
        name: "queued_mapping",
        sqlite: include_str!("../migrations/sqlite/0015_queued_mapping.sql"),
        postgres: include_str!("../migrations/postgres/0015_queued_mapping.sql"),
    },
    Migration {
        version: 16,
        name: "message_warnings",
        sqlite: include_str!("../migrations/sqlite/0016_message_warnings.sql"),
        postgres: include_str!("../migrations/postgres/0016_message_warnings.sql"),
    },
    Migration {
        version: 17,
        name: "last_login",
        sqlite: include_str!("../migrations/sqlite/0017_last_login.sql"),
        postgres: include_str!("../migrations/postgres/0017_last_login.sql"),
    },
    Migration {
        version: 18,
        name: "prices",
        sqlite: include_str!("../migrations/sqlite/0018_prices.sql"),
        postgres: include_str!("../migrations/postgres/0018_prices.sql"),
    },
    Migration {
        version: 19,
        name: "payments",
        sqlite: include_str!("../migrations/sqlite/0019_payments.sql"),
        postgres: include_str!("../migrations/postgres/0019_payments.sql"),
    },
    Migration {
        version: 20,
        name: "refunds",
        sqlite: include_str!("../migrations/sqlite/0020_refunds.sql"),
        postgres: include_str!("../migrations/postgres/0020_refunds.sql"),
    },
    Migration {
        version: 21,
        name: "settlements",
        sqlite: include_str!("../migrations/sqlite/0021_settlements.sql"),
        postgres: include_str!("../migrations/postgres/0021_settlements.sql"),
    },
    Migration {
        version: 22,
        name: "pharmacy",
        sqlite: include_str!("../migrations/sqlite/0022_pharmacy.sql"),
        postgres: include_str!("../migrations/postgres/0022_pharmacy.sql"),
    },
    Migration {
        version: 23,
        name: "payment_lines",
        sqlite: include_str!("../migrations/sqlite/0023_payment_lines.sql"),
        postgres: include_str!("../migrations/postgres/0023_payment_lines.sql"),
    },
    Migration {
        version: 24,
        name: "cmdb",
        sqlite: include_str!("../migrations/sqlite/0024_cmdb.sql"),
        postgres: include_str!("../migrations/postgres/0024_cmdb.sql"),
    },
    Migration {
        version: 25,
        name: "service_desk",
        sqlite: include_str!("../migrations/sqlite/0025_service_desk.sql"),
        postgres: include_str!("../migrations/postgres/0025_service_desk.sql"),
    },
    Migration {
        version: 26,
        name: "problems_changes",
        sqlite: include_str!("../migrations/sqlite/0026_problems_changes.sql"),
        postgres: include_str!("../migrations/postgres/0026_problems_changes.sql"),
    },
    Migration {
        version: 27,
        name: "knowledge",
        sqlite: include_str!("../migrations/sqlite/0027_knowledge.sql"),
        postgres: include_str!("../migrations/postgres/0027_knowledge.sql"),
    },
    Migration {
        version: 28,
        name: "notifications",
        sqlite: include_str!("../migrations/sqlite/0028_notifications.sql"),
        postgres: include_str!("../migrations/postgres/0028_notifications.sql"),
    },
    Migration {
        version: 29,
        name: "sla_settings",
        sqlite: include_str!("../migrations/sqlite/0029_sla_settings.sql"),
        postgres: include_str!("../migrations/postgres/0029_sla_settings.sql"),
    },
    Migration {
        version: 30,
        name: "ticket_search",
        sqlite: include_str!("../migrations/sqlite/0030_ticket_search.sql"),
        postgres: include_str!("../migrations/postgres/0030_ticket_search.sql"),
    },
    Migration {
        version: 31,
        name: "kb_version_source",
        sqlite: include_str!("../migrations/sqlite/0031_kb_version_source.sql"),
        postgres: include_str!("../migrations/postgres/0031_kb_version_source.sql"),
    },
    Migration {
        version: 32,
        name: "cis_retired",
        sqlite: include_str!("../migrations/sqlite/0032_cis_retired.sql"),
        postgres: include_str!("../migrations/postgres/0032_cis_retired.sql"),
    },
    Migration {
        version: 33,
        name: "monitoring",
        sqlite: include_str!("../migrations/sqlite/0033_monitoring.sql"),
        postgres: include_str!("../migrations/postgres/0033_monitoring.sql"),
    },
    Migration {
        version: 34,
        name: "monitor_rollups",
        sqlite: include_str!("../migrations/sqlite/0034_monitor_rollups.sql"),
        postgres: include_str!("../migrations/postgres/0034_monitor_rollups.sql"),
    },
    Migration {
        version: 35,
        name: "group_hooks",
        sqlite: include_str!("../migrations/sqlite/0035_group_hooks.sql"),
        postgres: include_str!("../migrations/postgres/0035_group_hooks.sql"),
    },
    Migration {
        version: 36,
        name: "backup_runs",
        sqlite: include_str!("../migrations/sqlite/0036_backup_runs.sql"),
        postgres: include_str!("../migrations/postgres/0036_backup_runs.sql"),
    },
    Migration {
        version: 37,
        name: "imaging",
        sqlite: include_str!("../migrations/sqlite/0037_imaging.sql"),
        postgres: include_str!("../migrations/postgres/0037_imaging.sql"),
    },
    Migration {
        version: 38,
        name: "backup_images",
        sqlite: include_str!("../migrations/sqlite/0038_backup_images.sql"),
        postgres: include_str!("../migrations/postgres/0038_backup_images.sql"),
    },
    Migration {
        version: 39,
        name: "rosters",
        sqlite: include_str!("../migrations/sqlite/0039_rosters.sql"),
        postgres: include_str!("../migrations/postgres/0039_rosters.sql"),
    },
    Migration {
        version: 40,
        name: "attendance",
        sqlite: include_str!("../migrations/sqlite/0040_attendance.sql"),
        postgres: include_str!("../migrations/postgres/0040_attendance.sql"),
    },
    Migration {
        version: 41,
        name: "materials",
        sqlite: include_str!("../migrations/sqlite/0041_materials.sql"),
        postgres: include_str!("../migrations/postgres/0041_materials.sql"),
    },
    Migration {
        version: 42,
        name: "equipment",
        sqlite: include_str!("../migrations/sqlite/0042_equipment.sql"),
        postgres: include_str!("../migrations/postgres/0042_equipment.sql"),
    },
    Migration {
        version: 43,
        name: "announcements",
        sqlite: include_str!("../migrations/sqlite/0043_announcements.sql"),
        postgres: include_str!("../migrations/postgres/0043_announcements.sql"),
    },
    Migration {
        version: 44,
        name: "staff",
        sqlite: include_str!("../migrations/sqlite/0044_staff.sql"),
        postgres: include_str!("../migrations/postgres/0044_staff.sql"),
    },
    Migration {
        version: 45,
        name: "figures",
        sqlite: include_str!("../migrations/sqlite/0045_figures.sql"),
        postgres: include_str!("../migrations/postgres/0045_figures.sql"),
    },
    Migration {
        version: 46,
        name: "feedback",
        sqlite: include_str!("../migrations/sqlite/0046_feedback.sql"),
        postgres: include_str!("../migrations/postgres/0046_feedback.sql"),
    },
    Migration {
        version: 47,
        name: "roster swaps",
        sqlite: include_str!("../migrations/sqlite/0047_roster_swaps.sql"),
        postgres: include_str!("../migrations/postgres/0047_roster_swaps.sql"),
    },
    Migration {
        version: 48,
        name: "performance",
        sqlite: include_str!("../migrations/sqlite/0048_performance.sql"),
        postgres: include_str!("../migrations/postgres/0048_performance.sql"),
    },
    Migration {
        version: 49,
        name: "staff messages",
        sqlite: include_str!("../migrations/sqlite/0049_staff_messages.sql"),
        postgres: include_str!("../migrations/postgres/0049_staff_messages.sql"),
    },
    Migration {
        version: 50,
        name: "feedback about a person",
        sqlite: include_str!("../migrations/sqlite/0050_feedback_person.sql"),
        postgres: include_str!("../migrations/postgres/0050_feedback_person.sql"),
    },
    Migration {
        version: 51,
        name: "equipment results id",
        sqlite: include_str!("../migrations/sqlite/0051_equipment_results_id.sql"),
        postgres: include_str!("../migrations/postgres/0051_equipment_results_id.sql"),
    },
    Migration {
        version: 52,
        name: "portal activations",
        sqlite: include_str!("../migrations/sqlite/0052_portal.sql"),
        postgres: include_str!("../migrations/postgres/0052_portal.sql"),
    },
    Migration {
        version: 53,
        name: "portal sign-ups",
        sqlite: include_str!("../migrations/sqlite/0053_portal_signups.sql"),
        postgres: include_str!("../migrations/postgres/0053_portal_signups.sql"),
    },
    Migration {
        version: 54,
        name: "audit by patient and number",
        sqlite: include_str!("../migrations/sqlite/0054_audit_by_patient_seq.sql"),
        postgres: include_str!("../migrations/postgres/0054_audit_by_patient_seq.sql"),
    },
    Migration {
        version: 55,
        name: "deposits of inpatient stays",
        sqlite: include_str!("../migrations/sqlite/0055_deposits.sql"),
        postgres: include_str!("../migrations/postgres/0055_deposits.sql"),
    },
    Migration {
        version: 56,
        name: "ward rules of each campus",
        sqlite: include_str!("../migrations/sqlite/0056_ward_rules.sql"),
        postgres: include_str!("../migrations/postgres/0056_ward_rules.sql"),
    },
];

/// The schema version this build's migrations end at.
pub(crate) fn latest() -> i64 {
    MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0)
}

impl Store {
    /// Applies pending migrations; returns how many were applied. A database that
    /// holds an unfinished copy (see [`crate::copy`]) is refused: nothing may run on
    /// it until the copy is finished.
    pub async fn migrate(&self) -> Result<usize> {
        if let Some(from) = self.unfinished_copy().await? {
            return Err(StoreError::Refused(format!(
                "this database holds an unfinished copy from {from}: run lianyi copy again to finish it"
            )));
        }
        self.migrate_schema().await
    }

    /// [`Store::migrate`] without the check for an unfinished copy.
    pub(crate) async fn migrate_schema(&self) -> Result<usize> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .execute(&self.write_pool())
        .await?;
        let rows = sqlx::query("SELECT version FROM schema_migrations").fetch_all(&self.write_pool()).await?;
        let applied: Vec<i64> = rows.iter().map(|r| r.try_get::<i64, _>(0)).collect::<std::result::Result<_, _>>()?;
        let mut count = 0;
        for m in MIGRATIONS {
            if applied.contains(&m.version) {
                continue;
            }
            let text = match self.backend {
                Backend::Sqlite => m.sqlite,
                Backend::Postgres => m.postgres,
            };
            let mut tx = self.write_pool().begin().await?;
            for stmt in statements(text) {
                sqlx::query(AssertSqlSafe(stmt)).execute(&mut *tx).await?;
            }
            // When a migration ran is bookkeeping of the schema, before any service
            // (and its Clock) exists.
            #[allow(clippy::disallowed_methods)]
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or_default();
            sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
                .bind(m.version)
                .bind(m.name)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(version = m.version, name = m.name, "applied migration");
            count += 1;
        }
        // A database without resources has nothing to reindex: its rows will all be
        // written by this build's rules.
        if self.index_version().await?.is_none()
            && sqlx::query("SELECT 1 FROM resources LIMIT 1").fetch_optional(&self.write_pool()).await?.is_none()
        {
            self.set_index_version(lianyi_fhir::INDEX_VERSION).await?;
        }
        Ok(count)
    }
}

/// Splits a migration file into statements (the files hold no `;` inside literals).
fn statements(text: &str) -> Vec<String> {
    let without_comments: String =
        text.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
    without_comments.split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}
