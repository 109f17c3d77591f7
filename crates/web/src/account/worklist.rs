//! The home page as a worklist: what each role has to do now, from the services the
//! pages use (each read checked and audited there). A role sees the panels of what it
//! may do; an area not built yet shows nothing rather than an empty promise.

use lianyi_security::roles::Capability;
use lianyi_security::{Caller, Perm};

use crate::AppState;
use crate::ui::i18n::Tr;
use crate::ui::render::local_time;
use crate::ui::shell::staff_may;

/// One worklist on the home page.
pub(crate) struct Panel {
    /// Locale key of the title; the panel's id is derived from it.
    pub title: &'static str,
    pub id: &'static str,
    /// (href, text, detail)
    pub items: Vec<(String, String, String)>,
    /// Locale key shown when there is nothing to do.
    pub empty: &'static str,
    /// The page with the whole list.
    pub more: String,
    /// A line above the list (counts), may be empty.
    pub summary: String,
}

const SHOWN: usize = 8;
/// Different patients' records a user opens in 24 hours before the privacy officer's
/// home page names them.
const WIDE_READER: i64 = 50;

/// The panels for `caller`; `alerts` are the open critical values the shell found.
pub(crate) async fn panels(
    state: &AppState,
    caller: &Caller,
    t: Tr,
    alerts: &[lianyi_clinical::critical::Alert],
) -> Vec<Panel> {
    let mut out = Vec::new();
    // Laboratory and radiology: open requests, urgent first.
    if staff_may(caller, "DiagnosticReport", Perm::Create) && staff_may(caller, "ServiceRequest", Perm::Update) {
        let pending = state.results.pending(caller, None).await.unwrap_or_default();
        let items = pending
            .iter()
            .take(SHOWN)
            .map(|p| {
                let item =
                    lianyi_clinical::orders::item(&p.order).map_or(p.order.clone(), |i| t.pick(i.zh, i.en).to_string());
                (
                    format!("/results/{}", p.id),
                    format!("{item} · {}", p.placer),
                    t.get(&format!("order-priority-{}", p.priority)).to_string(),
                )
            })
            .collect();
        out.push(Panel {
            title: "work-results",
            id: "work-results",
            items,
            empty: "work-results-none",
            more: "/results".into(),
            summary: String::new(),
        });
    }
    // Registrars: today's appointments at their campus, not yet come first.
    if staff_may(caller, "Appointment", Perm::Create) {
        let mut day = state.scheduling.day_appointments(caller).await.unwrap_or_default();
        let arrived = day.iter().filter(|a| a.status == "arrived").count();
        let summary =
            t.get("work-today-count").replace("{0}", &day.len().to_string()).replace("{1}", &arrived.to_string());
        day.sort_by_key(|a| a.status != "booked");
        let items = day
            .iter()
            .take(SHOWN)
            .map(|a| {
                let doctor = t.pick(&a.doctor.zh, &a.doctor.en);
                (
                    format!("/patients/{}", a.patient),
                    format!("{} {}", a.time, a.patient_name),
                    format!("{doctor} · {}", t.get(&format!("work-today-{}", a.status))),
                )
            })
            .collect();
        out.push(Panel {
            title: "work-today",
            id: "work-today",
            items,
            empty: "work-today-none",
            more: "/scheduling".into(),
            summary,
        });
    }
    // Doctors and nurses: their department's queue today; doctors also the visits
    // they have not ended (notes still open).
    if staff_may(caller, "Encounter", Perm::Search)
        && let Some(dept) = state.scheduling.own_departments(caller).await.unwrap_or_default().into_iter().next()
    {
        let queue = state.scheduling.queue(caller, &dept).await.unwrap_or_default();
        let mut names = Vec::new();
        if let Some(patient) = lianyi_fhir::ResourceType::parse("Patient")
            && let Ok(patients) = state.fhir.reader(caller, patient).await
        {
            for e in queue.iter().take(2 * SHOWN) {
                let name = patients
                    .read(&e.patient)
                    .await
                    .ok()
                    .and_then(|r| serde_json::from_str(&r.body).ok())
                    .map(|p: serde_json::Value| lianyi_clinical::registry::person_of(&p).name)
                    .unwrap_or_default();
                names.push(name);
            }
        }
        let waiting: Vec<_> = queue.iter().zip(&names).filter(|(e, _)| e.status == "arrived").collect();
        let items = waiting
            .iter()
            .take(SHOWN)
            .map(|(e, name)| (format!("/queue?dept={dept}"), format!("{} {name}", e.number), String::new()))
            .collect();
        out.push(Panel {
            title: "work-queue",
            id: "work-queue",
            items,
            empty: "work-queue-none",
            more: format!("/queue?dept={dept}"),
            summary: t
                .get("work-queue-count")
                .replace("{0}", &queue.iter().filter(|e| e.status == "arrived").count().to_string()),
        });
        if staff_may(caller, "Condition", Perm::Create) {
            let items = queue
                .iter()
                .zip(&names)
                .filter(|(e, _)| e.status == "in-progress")
                .take(SHOWN)
                .map(|(e, name)| {
                    (format!("/encounters/{}", e.encounter), format!("{} {name}", e.number), String::new())
                })
                .collect();
            out.push(Panel {
                title: "work-open-visits",
                id: "work-open-visits",
                items,
                empty: "work-open-visits-none",
                more: format!("/queue?dept={dept}"),
                summary: String::new(),
            });
        }
    }
    // Pharmacists: paid prescriptions waiting at their campus, oldest payment first.
    if let Some(campus) = caller.campus().map(|c| c.as_str().to_string())
        && lianyi_billing::dispensing::Dispensary::may_dispense(caller, &campus)
    {
        let (waiting, total) =
            state.dispensary.queue(caller, &campus, "waiting", SHOWN as i64).await.unwrap_or_default();
        let items = waiting
            .iter()
            .take(SHOWN)
            .map(|l| {
                let drug = l.drug.map_or(l.entry.drug.clone(), |d| format!("{} {}", t.pick(d.zh, d.en), d.strength));
                (
                    format!("/pharmacy/rx/{}", l.entry.request),
                    format!("{drug} · {}", l.patient_name),
                    crate::ui::render::local_time(l.entry.paid_at),
                )
            })
            .collect();
        out.push(Panel {
            title: "work-dispensing",
            id: "work-dispensing",
            items,
            empty: "work-dispensing-none",
            more: "/pharmacy".into(),
            summary: t.fmt("work-dispensing-count", &total.to_string()),
        });
    }
    // Stock keepers: drugs below their reorder level or near expiry in their stores,
    // and transfers waiting for them to count in.
    if caller.can(Capability::KeepStock) {
        let mut items = Vec::new();
        let stores = state.stock.stores(caller).await.unwrap_or_default();
        let mut arriving = 0;
        let mut campuses: Vec<&str> = stores.iter().map(|s| s.campus.as_str()).collect();
        campuses.dedup();
        for campus in campuses {
            let transfers = state.stock.transfers(caller, campus).await.unwrap_or_default();
            arriving += transfers.iter().filter(|x| x.status == "in-transit" && x.to_campus == campus).count();
        }
        for s in &stores {
            let lines = state.stock.stock(caller, &s.campus, &s.code, false).await.unwrap_or_default();
            for l in lines.iter().filter(|l| l.low() || l.near_expiry() || l.expired > 0) {
                let flag = if l.low() {
                    t.fmt("work-stock-low", &format!("{} / {}", l.usable, l.reorder_level.unwrap_or_default()))
                } else if l.expired > 0 {
                    t.get("stock-shelf-expired").to_string()
                } else {
                    t.get("stock-near").to_string()
                };
                items.push((
                    format!("/pharmacy/stock?store={}/{}", s.campus, s.code),
                    format!(
                        "{} {} · {}",
                        t.pick(l.drug.zh, l.drug.en),
                        l.drug.strength,
                        t.pick(&s.name_zh, &s.name_en)
                    ),
                    flag,
                ));
            }
        }
        let summary = t.fmt("work-stock-count", &items.len().to_string()).replace("{1}", &arriving.to_string());
        items.truncate(SHOWN);
        out.push(Panel {
            title: "work-stock",
            id: "work-stock",
            items,
            empty: "work-stock-none",
            more: "/pharmacy/stock?show=low".into(),
            summary,
        });
    }
    // IT engineers: their groups' open tickets, newest first, with the SLA state.
    if lianyi_ops::desk::Desk::may_work(caller) {
        let open = state.desk.list(caller, lianyi_ops::desk::View::Groups, "", None, 200).await.unwrap_or_default();
        let breached = open.iter().filter(|(_, c)| c.state == lianyi_ops::sla::SlaState::Breached).count();
        let items = open
            .iter()
            .take(SHOWN)
            .map(|(tk, c)| {
                let state = format!("{:?}", c.state).to_lowercase();
                (
                    format!("/ops/tickets/{}", tk.id),
                    format!("P{} · {}", tk.priority, tk.title),
                    t.get(&format!("work-tickets-sla-{state}")).to_string(),
                )
            })
            .collect();
        out.push(Panel {
            title: "work-tickets",
            id: "work-tickets",
            items,
            empty: "work-tickets-none",
            more: "/ops/tickets".into(),
            summary: t.fmt("work-tickets-count", &open.len().to_string()).replace("{1}", &breached.to_string()),
        });
    }
    // Clinicians: critical values waiting for them (also in the bar of every page).
    if staff_may(caller, "Task", Perm::Read) {
        let items = alerts
            .iter()
            .take(SHOWN)
            .map(|a| (format!("/patients/{}", a.patient), a.text.clone(), a.authored.clone()))
            .collect();
        out.push(Panel {
            title: "work-critical",
            id: "work-critical",
            items,
            empty: "work-critical-none",
            more: "/reports/critical-values".into(),
            summary: String::new(),
        });
    }
    // Managers and department heads: critical values of the last 30 days, the slow
    // and open ones first.
    if caller.can(Capability::ViewReports) && staff_may(caller, "Task", Perm::Search) {
        let mut handled = state.critical.report(caller, 30).await.unwrap_or_default();
        let limit = state.critical.escalate_after_ms / 60_000;
        let within = handled.iter().filter(|h| h.minutes.is_some_and(|m| m <= limit)).count();
        let summary = t
            .get("work-quality-count")
            .replace("{0}", &handled.len().to_string())
            .replace("{1}", &within.to_string())
            .replace("{2}", &limit.to_string());
        handled.sort_by_key(|h| std::cmp::Reverse(h.minutes.unwrap_or(i64::MAX)));
        let items = handled
            .iter()
            .filter(|h| h.minutes.is_none_or(|m| m > limit))
            .take(SHOWN)
            .map(|h| {
                let detail = match h.minutes {
                    Some(m) => t.fmt("work-quality-minutes", &m.to_string()),
                    None => t.get("work-quality-open").to_string(),
                };
                ("/reports/critical-values".to_string(), format!("{} · {}", h.text, h.owner), detail)
            })
            .collect();
        out.push(Panel {
            title: "work-quality",
            id: "work-quality",
            items,
            empty: "work-quality-none",
            more: "/reports/critical-values".into(),
            summary,
        });
    }
    // Privacy officers: today's break-the-glass.
    if caller.can(Capability::ReviewAudit) {
        let now = state.fhir.now_ms();
        let list = state.fhir.break_glass_report(caller, now - 86_400_000, now + 60_000).await.unwrap_or_default();
        let items = list
            .iter()
            .take(SHOWN)
            .map(|g| {
                ("/admin/break-glass".to_string(), format!("{} → {}", g.actor, g.patient), local_time(g.granted_at))
            })
            .collect();
        out.push(Panel {
            title: "work-break-glass",
            id: "work-break-glass",
            items,
            empty: "work-break-glass-none",
            more: "/admin/break-glass".into(),
            summary: String::new(),
        });
    }
    // Privacy officers: users who opened many different patients' records in the last
    // 24 hours (more than a clinic's day usually needs).
    if caller.can(Capability::ReviewAudit) {
        let now = state.fhir.now_ms();
        let wide = state.fhir.unusual_access(caller, now - 86_400_000, WIDE_READER).await.unwrap_or_default();
        let items = wide
            .iter()
            .take(SHOWN)
            .map(|(actor, n)| {
                (format!("/admin/audit?actor={actor}"), actor.clone(), t.fmt("work-unusual-detail", &n.to_string()))
            })
            .collect();
        out.push(Panel {
            title: "work-unusual",
            id: "work-unusual",
            items,
            empty: "work-unusual-none",
            more: "/admin/audit".into(),
            summary: t.fmt("work-unusual-rule", &WIDE_READER.to_string()),
        });
    }
    // IT engineers: the platform itself (version, uptime, database and its pools).
    if caller.can(Capability::ManageIntegration) {
        let ops = state.fhir.operations();
        let db = match ops.ping().await {
            Ok(()) => t.get("work-system-db-ok"),
            Err(_) => t.get("work-system-db-down"),
        };
        let pools = ops.pool_stats();
        let uptime = state.started.elapsed().as_secs();
        let mut items = vec![
            ("/healthz".to_string(), t.fmt("work-system-version", env!("CARGO_PKG_VERSION")), String::new()),
            ("/healthz".to_string(), format!("{} · {db}", ops.backend().name()), t.get("work-system-db").to_string()),
            (
                "/metrics".to_string(),
                t.get("work-system-uptime")
                    .replace("{0}", &(uptime / 3600).to_string())
                    .replace("{1}", &(uptime / 60 % 60).to_string()),
                String::new(),
            ),
            (
                "/metrics".to_string(),
                t.get("work-system-pools")
                    .replace("{0}", &pools.read_size.to_string())
                    .replace("{1}", &pools.write_size.to_string()),
                String::new(),
            ),
        ];
        // The disk of the data directory (where the keys file lives).
        if let Some(dir) = state.config.keys_file.parent()
            && let Ok(fs) = rustix::fs::statvfs(dir)
        {
            let gb = |blocks: u64| (blocks.saturating_mul(fs.f_frsize) >> 30).to_string();
            let disk = t.get("work-system-disk").replace("{0}", &gb(fs.f_bavail)).replace("{1}", &gb(fs.f_blocks));
            items.push(("/metrics".to_string(), disk, String::new()));
        }
        for (protocol, addr) in state.listeners.lock().map(|l| l.clone()).unwrap_or_default() {
            items.push((
                "/admin/integration".to_string(),
                format!("{protocol} {addr}"),
                t.get("work-system-listening").to_string(),
            ));
        }
        out.push(Panel {
            title: "work-system",
            id: "work-system",
            items,
            empty: "work-system-none",
            more: "/admin/integration".into(),
            summary: String::new(),
        });
    }
    // IT engineers: interfaces with a queue, dead letters or errors.
    if caller.can(Capability::ManageIntegration) {
        let status = state.outbound.status(caller).await.unwrap_or_default();
        let items = status
            .iter()
            .filter(|s| s.queue.dead > 0 || s.queue.pending > 0 || s.queue.last_error.is_some())
            .take(SHOWN)
            .map(|s| {
                let detail = t
                    .get("work-channel-detail")
                    .replace("{0}", &s.queue.pending.to_string())
                    .replace("{1}", &s.queue.dead.to_string());
                ("/admin/integration".to_string(), s.channel.id.clone(), detail)
            })
            .collect();
        out.push(Panel {
            title: "work-channels",
            id: "work-channels",
            items,
            empty: "work-channels-none",
            more: "/admin/integration".into(),
            summary: String::new(),
        });
    }
    // Administrators: locked and disabled accounts.
    if caller.can(Capability::AdministerUsers)
        && let Ok(accounts) = state.users.accounts(caller).await
    {
        let now = state.fhir.now_ms();
        let items = accounts
            .iter()
            .filter(|(u, _)| u.locked_until > now)
            .take(SHOWN)
            .map(|(u, _)| {
                (
                    format!("/admin/accounts?q={}", u.username),
                    u.username.clone(),
                    t.fmt("accounts-locked", &local_time(u.locked_until)),
                )
            })
            .collect();
        out.push(Panel {
            title: "work-accounts",
            id: "work-accounts",
            items,
            empty: "work-accounts-none",
            more: "/admin/accounts".into(),
            summary: String::new(),
        });
    }
    out
}
