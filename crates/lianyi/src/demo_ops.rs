//! The demo's configuration database: a hospital group's network, servers, storage,
//! databases, business systems, clinical services, printers and a CT, related so that
//! an impact walk from a core switch reaches HIS, the clinical services and the
//! campuses that stop. Imported through the CMDB's own CSV import, as a hospital's
//! IT team would load theirs.

use lianyi_ops::cmdb::{Cmdb, CmdbError, Imported};
use lianyi_security::Caller;

const CSV: &str = include_str!("demo_cmdb.csv");

/// Loads the demo CMDB as `caller` (the demo task).
pub async fn load(cmdb: &Cmdb, caller: &Caller) -> Result<Imported, CmdbError> {
    cmdb.import_csv(caller, CSV).await
}
