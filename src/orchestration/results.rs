//! What a `set_state` call answers: `SetStateStatus`, `OrchestrationDetails` and
//! `OrchestrationResult` (API.md §6.4, `prefect.server.schemas.responses`).
//!
//! Owns: the response JSON shape. Must not touch: HTTP status codes (the caller picks 201/200).

use super::states::State;
use serde::{Deserialize, Serialize};

/// ACCEPT / REJECT / WAIT / ABORT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SetStateStatus {
    Accept,
    Reject,
    Wait,
    Abort,
}

/// The `details` object, discriminated by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum OrchestrationDetails {
    #[serde(rename = "accept_details")]
    Accept,
    #[serde(rename = "reject_details")]
    Reject { reason: Option<String> },
    #[serde(rename = "abort_details")]
    Abort { reason: Option<String> },
    #[serde(rename = "wait_details")]
    Wait {
        delay_seconds: i64,
        reason: Option<String>,
    },
}

impl OrchestrationDetails {
    /// The reason, for every kind but ACCEPT.
    pub fn reason(&self) -> Option<&str> {
        match self {
            OrchestrationDetails::Accept => None,
            OrchestrationDetails::Reject { reason }
            | OrchestrationDetails::Abort { reason }
            | OrchestrationDetails::Wait { reason, .. } => reason.as_deref(),
        }
    }
}

/// The body of a `set_state` / `resume` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrchestrationResult {
    pub state: Option<State>,
    pub status: SetStateStatus,
    pub details: OrchestrationDetails,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn details_serialise_exactly_as_prefect() {
        let cases = [
            (
                OrchestrationDetails::Accept,
                json!({"type": "accept_details"}),
            ),
            (
                OrchestrationDetails::Reject { reason: None },
                json!({"type": "reject_details", "reason": null}),
            ),
            (
                OrchestrationDetails::Abort {
                    reason: Some("no".into()),
                },
                json!({"type": "abort_details", "reason": "no"}),
            ),
            (
                OrchestrationDetails::Wait {
                    delay_seconds: 5,
                    reason: Some("later".into()),
                },
                json!({"type": "wait_details", "delay_seconds": 5, "reason": "later"}),
            ),
        ];
        for (details, expected) in cases {
            assert_eq!(serde_json::to_value(&details).unwrap(), expected);
            let back: OrchestrationDetails = serde_json::from_value(expected).unwrap();
            assert_eq!(back, details);
        }
        assert_eq!(
            serde_json::to_value(SetStateStatus::Abort).unwrap(),
            "ABORT"
        );
    }

    #[test]
    fn result_shape() {
        let r = OrchestrationResult {
            state: None,
            status: SetStateStatus::Accept,
            details: OrchestrationDetails::Accept,
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"state": null, "status": "ACCEPT", "details": {"type": "accept_details"}})
        );
        assert_eq!(r.details.reason(), None);
    }
}
