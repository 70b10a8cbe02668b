//! The filters of `/work_pools/filter`, `/work_pools/{name}/queues/filter` and
//! `/work_pools/{name}/workers/filter`.

use serde::Deserialize;

use super::{IdFilter, NameFilter, StringsFilter, TimeFilter};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WorkPoolFilter {
    pub id: Option<IdFilter>,
    pub name: Option<StringsFilter>,
    #[serde(rename = "type")]
    pub pool_type: Option<StringsFilter>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WorkQueueFilter {
    pub id: Option<IdFilter>,
    pub name: Option<NameFilter>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WorkerFilter {
    pub last_heartbeat_time: Option<TimeFilter>,
    pub status: Option<StringsFilter>,
}
