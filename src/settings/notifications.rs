//! `[notifications]`: where the notification services are reached. The services' own endpoints
//! by default; set one to go through a proxy or a regional gateway.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationSettings {
    pub pagerduty_url: String,
    pub pagerduty_eu_url: String,
    pub opsgenie_url: String,
    pub opsgenie_eu_url: String,
    pub twilio_url: String,
    pub sendgrid_url: String,
    pub discord_url: String,
}
