//! `[events]`: how long events are kept and how often the retention pass runs.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EventSettings {
    pub retention_days: u32,
    pub retention_interval_ms: u64,
}
