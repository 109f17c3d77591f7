//! The demo's materials (物资): a catalogue of everyday, sterile and high-value
//! consumables; each campus's warehouse stocked by batch (a lot of gauze near its
//! expiry at East Campus, masks below their reorder level at South Campus); East
//! internal medicine's requisitions — one issued, so its stock holds gauze, syringes
//! and two coronary stents, one waiting for the materials keeper — and one stent used
//! on a patient and charged.

use lianyi_clinical::scheduling::local_date;
use lianyi_manage::materials::{ItemForm, Materials, ReceiptForm, RequestForm};
use lianyi_security::{Caller, SystemTask};

use crate::CliError;

const DAY_MS: i64 = 86_400_000;
/// The demo department that requests materials (nurse.east's).
const WARD: &str = "campus-east-im";

/// (code, Chinese, English, unit, kind, unit cost in fen, price to the patient in fen
/// for a high-value item).
pub(crate) const ITEMS: [(&str, &str, &str, &str, &str, i64, i64); 8] = [
    ("GAUZE-10", "医用纱布块（10片）", "Gauze pads (10)", "包", "sterile", 350, 0),
    ("SYR-5ML", "一次性注射器 5ml", "Syringe 5 ml", "支", "sterile", 60, 0),
    ("IV-SET", "一次性输液器", "Infusion set", "套", "sterile", 280, 0),
    ("MASK-SURG", "医用外科口罩", "Surgical mask", "个", "general", 45, 0),
    ("GLOVE-M", "检查手套（M号）", "Examination gloves (M)", "盒", "general", 2_500, 0),
    ("ALC-PAD", "酒精棉片", "Alcohol pads", "盒", "general", 900, 0),
    ("STENT-DES", "药物洗脱冠脉支架", "Drug-eluting coronary stent", "个", "high-value", 580_000, 720_000),
    ("IOL-MONO", "人工晶状体（单焦）", "Intraocular lens (monofocal)", "片", "high-value", 120_000, 158_000),
];

/// What the demo stocked.
pub(crate) struct Stocked {
    pub batches: usize,
    pub requisitions: usize,
}

fn yuan(fen: i64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

/// The catalogue, each campus's warehouse, East internal medicine's requisitions, and
/// a stent used on `patient` (priced by the demo's price lists, kind `material`).
pub(crate) async fn load(
    materials: &Materials,
    campuses: &[&str],
    now: i64,
    patient: &str,
) -> Result<Stocked, CliError> {
    let failed = |e: lianyi_manage::materials::MaterialsError| CliError::Usage(format!("demo materials: {e}"));
    let system = Caller::task(SystemTask::Demo);
    for (code, zh, en, unit, kind, _, _) in ITEMS {
        let form = ItemForm {
            code: code.into(),
            name_zh: zh.into(),
            name_en: en.into(),
            unit: unit.into(),
            kind: kind.into(),
            active: true,
        };
        materials.put_item(&system, &form).await.map_err(failed)?;
    }
    let date = |days: i64| local_date(now + days * DAY_MS);
    let mut batches = 0;
    for (c, campus) in campuses.iter().enumerate() {
        let tag = campus.trim_start_matches("campus-").to_uppercase();
        for (i, (code, _, _, _, kind, cost, _)) in ITEMS.iter().enumerate() {
            let high = *kind == "high-value";
            // Two lots of each everyday item; East's first gauze lot expires in 20 days.
            let lots: Vec<(String, i64, i64)> = if high {
                vec![(format!("{tag}-{code}-2611"), if c == 0 { 5 } else { 2 }, 700)]
            } else {
                let near = if *code == "GAUZE-10" && c == 0 { 20 } else { 200 };
                vec![(format!("{tag}-{code}-2609"), 60 + 20 * i as i64, near), (format!("{tag}-{code}-2612"), 240, 400)]
            };
            for (n, (lot, quantity, days)) in lots.into_iter().enumerate() {
                // South Campus is short of masks.
                let quantity = if *code == "MASK-SURG" && c == 2 { 30 - 10 * n as i64 } else { quantity };
                let units = if high {
                    (1..=quantity).map(|u| format!("UDI-{tag}-{code}-{u:04}")).collect::<Vec<_>>().join("\n")
                } else {
                    String::new()
                };
                let form = ReceiptForm {
                    campus: campus.to_string(),
                    item: code.to_string(),
                    lot,
                    expiry: if *kind == "general" { String::new() } else { date(days) },
                    quantity: quantity.to_string(),
                    cost: yuan(*cost),
                    supplier: "国药器械".into(),
                    units,
                };
                materials.receive(&system, &form).await.map_err(failed)?;
                batches += 1;
            }
            let level = if high { 2 } else { 100 };
            materials.set_level(&system, campus, code, &level.to_string()).await.map_err(failed)?;
        }
    }
    // East internal medicine asks for gauze, syringes and two stents; the materials
    // keeper approves and issues; a stent is used on a patient; a second requisition
    // waits.
    let first = RequestForm {
        department: WARD.into(),
        lines: vec![
            ("GAUZE-10".into(), "20".into()),
            ("SYR-5ML".into(), "100".into()),
            ("STENT-DES".into(), "2".into()),
        ],
        note: "每周常规申领".into(),
    };
    let id = materials.request(&system, &first).await.map_err(failed)?;
    materials.approve(&system, id, &[]).await.map_err(failed)?;
    materials.issue(&system, id).await.map_err(failed)?;
    materials.use_unit(&system, "UDI-EAST-STENT-DES-0001", patient).await.map_err(failed)?;
    let second = RequestForm {
        department: WARD.into(),
        lines: vec![("GLOVE-M".into(), "10".into()), ("ALC-PAD".into(), "5".into())],
        note: String::new(),
    };
    materials.request(&system, &second).await.map_err(failed)?;
    Ok(Stocked { batches, requisitions: 2 })
}
