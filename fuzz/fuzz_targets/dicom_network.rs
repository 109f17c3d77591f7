//! What a DICOM peer sends: a DIMSE command set, or a data set in any transfer syntax
//! the node accepts, or a Part 10 file (STOW-RS). Reading it must never panic, and a
//! data set read as an instance must carry UIDs that are safe as file names.
#![no_main]

use lianyi_dicom::command::Command;
use lianyi_dicom::instance::{read, split_file, valid_uid};
use lianyi_dicom::sop::TRANSFER_SYNTAXES;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    match which % 3 {
        0 => {
            let _ = Command::read(rest);
        }
        1 => {
            let ts = TRANSFER_SYNTAXES[usize::from(which / 3) % TRANSFER_SYNTAXES.len()];
            if let Ok(i) = read(rest, ts, Some("GB18030")) {
                for uid in [&i.sop_instance, &i.series_uid, &i.study_uid] {
                    assert!(valid_uid(uid) && !uid.contains('/'), "unsafe UID accepted: {uid:?}");
                }
            }
        }
        _ => {
            if let Ok((_, _, ts, start)) = split_file(rest) {
                assert!(start <= rest.len());
                let _ = read(&rest[start..], &ts, None);
            }
        }
    }
});
