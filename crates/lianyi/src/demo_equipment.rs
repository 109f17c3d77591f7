//! The demo's medical equipment (设备): each campus's register — ultrasound, patient
//! monitors, a ventilator, a chemistry analyser — accepted into service (East's
//! ultrasound due for metrology within the month); a repair of a monitor done (taken a
//! quarter of an hour after it was reported), one fault just reported, and an old
//! monitor whose scrapping waits for a manager.

use lianyi_manage::assets::{AssetForm, Equipment};
use lianyi_security::{Caller, SystemTask};

use crate::CliError;

/// (department code, tag suffix, Chinese, English, category, model, maker, cost in
/// yuan, calibration interval in days).
const ASSETS: [[&str; 9]; 5] = [
    [
        "im",
        "US-01",
        "彩色多普勒超声诊断仪",
        "Colour Doppler ultrasound",
        "ultrasound",
        "LOGIQ E10",
        "GE",
        "1280000",
        "365",
    ],
    ["im", "MON-01", "多参数监护仪", "Patient monitor", "monitor", "BeneVision N12", "迈瑞", "68000", "365"],
    ["im", "MON-02", "多参数监护仪", "Patient monitor", "monitor", "iMEC 10", "迈瑞", "32000", "365"],
    ["sur", "VEN-01", "有创呼吸机", "Ventilator", "ventilator", "SV800", "迈瑞", "260000", "180"],
    ["lab", "CHEM-01", "全自动生化分析仪", "Chemistry analyser", "analyser", "BS-2000M", "迈瑞", "1650000", "365"],
];

/// What the demo registered.
pub(crate) struct Registered {
    pub assets: usize,
    pub repairs: usize,
}

/// Registers and accepts each campus's equipment (East's ultrasound due for
/// calibration within the month), East internal medicine's repairs and scrapping, and
/// two CT scanners in radiology: East's is the demo's imaging device (`modality`, its
/// studies counted as its use), West's is networked (the CMDB's `CT-W-01`, its
/// monitoring shown); East's chemistry analyser is `CHEM-E1` in its results.
pub(crate) async fn load(
    equipment: &Equipment,
    clock: &lianyi_security::ManualClock,
    campuses: &[&str],
    modality: &str,
) -> Result<Registered, CliError> {
    let failed = |e: lianyi_manage::assets::EquipmentError| CliError::Usage(format!("demo equipment: {e}"));
    let system = Caller::task(SystemTask::Demo);
    let mut ids = Vec::new();
    // Bought and accepted 345 days ago (the clock set back), so East's ultrasound is
    // calibrated again within 20 days and every maintenance is overdue.
    let now = lianyi_security::Clock::now_ms(clock);
    clock.set(now - 345 * 86_400_000);
    let today = equipment.today();
    for campus in campuses {
        let tag = campus.trim_start_matches("campus-").to_uppercase();
        for [dept, suffix, zh, en, category, model, maker, cost, calibration] in ASSETS {
            // East's chemistry analyser is named in its results (the demo's sample ORU).
            let equipment_id = if *campus == "campus-east" && suffix == "CHEM-01" { "CHEM-E1" } else { "" };
            let form = AssetForm {
                department: format!("{campus}-{dept}"),
                tag: format!("{tag}-{suffix}"),
                name_zh: zh.into(),
                name_en: en.into(),
                category: category.into(),
                model: model.into(),
                maker: maker.into(),
                cost: cost.into(),
                purchased_on: today.clone(),
                pm_days: "90".into(),
                calibration_days: calibration.into(),
                equipment_id: equipment_id.into(),
                ..Default::default()
            };
            let id = equipment.register(&system, &form).await.map_err(failed)?;
            ids.push((campus.to_string(), suffix, id));
        }
        let (ae_title, ci) = match *campus {
            "campus-east" => (modality, ""),
            "campus-west" => ("", "CT-W-01"),
            _ => continue,
        };
        let form = AssetForm {
            department: format!("{campus}-rad"),
            tag: format!("{tag}-CT-01"),
            name_zh: "64排螺旋CT".into(),
            name_en: "64-slice CT scanner".into(),
            category: "imaging".into(),
            model: "uCT 760".into(),
            maker: "联影".into(),
            cost: "8600000".into(),
            purchased_on: today.clone(),
            pm_days: "90".into(),
            calibration_days: "365".into(),
            ae_title: ae_title.into(),
            ci: ci.into(),
            ..Default::default()
        };
        let id = equipment.register(&system, &form).await.map_err(failed)?;
        ids.push((campus.to_string(), "CT-01", id));
    }
    let id_of = |campus: &str, suffix: &str| ids.iter().find(|(c, s, _)| c == campus && *s == suffix).map(|x| x.2);
    let east = campuses.first().copied().unwrap_or("campus-east");
    for (_, _, id) in &ids {
        equipment.accept(&system, *id, "安装调试完成，验收合格").await.map_err(failed)?;
    }
    clock.set(now - 3 * 3_600_000);
    let mut repairs = 0;
    if let (Some(monitor), Some(old), Some(us)) = (id_of(east, "MON-01"), id_of(east, "MON-02"), id_of(east, "US-01")) {
        let r = equipment.report(&system, monitor, "血氧探头读数跳变").await.map_err(failed)?;
        clock.set(now - 3 * 3_600_000 + 15 * 60_000);
        equipment.take(&system, r).await.map_err(failed)?;
        clock.set(now - 3_600_000);
        equipment.finish(&system, r, "更换血氧探头", "480").await.map_err(failed)?;
        clock.set(now - 10 * 60_000);
        equipment.report(&system, us, "开机后屏幕无显示").await.map_err(failed)?;
        equipment.request_scrap(&system, old, "使用超过十年，主板老化，维修费用超过残值").await.map_err(failed)?;
        repairs = 2;
    }
    clock.set(now);
    Ok(Registered { assets: ids.len(), repairs })
}
