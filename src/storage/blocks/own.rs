//! Orrery's own block types, registered in every workspace with the system ones: `smtp-email`,
//! a notification block that sends e-mail through an SMTP server (Prefect has no such block; its
//! notifications go through Apprise in Python, and Orrery sends them itself). Users create it in
//! the UI's block catalog or through `POST /block_documents/`; `send-notification` actions send
//! through it.
//!
//! Its schema is versioned `orrery-1`; its checksum is computed the way the client computes one,
//! so the UI and the API treat it as any other schema. A change to the fields means a new version
//! here (the old schema stays, as Prefect keeps old block schemas).

use std::sync::OnceLock;

use serde_json::{json, Value};

use super::checksum::schema_checksum;
use super::system::{SystemSchema, SystemType};

/// The e-mail block's type slug.
pub const SMTP_EMAIL: &str = "smtp-email";
/// The version of Orrery's own block schemas.
pub const OWN_VERSION: &str = "orrery-1";

fn smtp_fields() -> Value {
    json!({
        "title": "SMTPEmail",
        "description": "Sends notifications as e-mail through an SMTP server. An Orrery block \
            type: the server sends the mail itself when an automation's send-notification \
            action names this block.",
        "type": "object",
        "properties": {
            "notify_type": {
                "default": "info",
                "description": "The type of notification being performed.",
                "enum": ["info", "success", "warning", "failure"],
                "title": "Notify Type",
                "type": "string",
                "position": 0
            },
            "smtp_server": {
                "description": "Host name (or address) of the SMTP server.",
                "examples": ["smtp.example.com"],
                "title": "SMTP Server",
                "type": "string",
                "position": 1
            },
            "smtp_type": {
                "default": "STARTTLS",
                "description": "How the connection is secured: STARTTLS (plain, then upgraded to \
                    TLS; port 587), SSL (TLS from the start; port 465) or INSECURE (never \
                    encrypted; port 25, for a relay on a private network).",
                "enum": ["STARTTLS", "SSL", "INSECURE"],
                "title": "SMTP Type",
                "type": "string",
                "position": 2
            },
            "smtp_port": {
                "description": "The server's port, if not the usual one of its SMTP type.",
                "title": "SMTP Port",
                "type": "integer",
                "position": 3
            },
            "username": {
                "description": "The user to log in as; leave empty if the server takes mail \
                    without a login.",
                "title": "Username",
                "type": "string",
                "position": 4
            },
            "password": {
                "description": "The password of the user.",
                "format": "password",
                "title": "Password",
                "type": "string",
                "writeOnly": true,
                "position": 5
            },
            "from_email": {
                "description": "The sender's address.",
                "examples": ["prefect@example.com"],
                "title": "Sender",
                "type": "string",
                "position": 6
            },
            "to_emails": {
                "description": "The recipients' addresses.",
                "examples": ["[\"ops@example.com\"]"],
                "items": {"type": "string"},
                "title": "Recipients",
                "type": "array",
                "position": 7
            }
        },
        "required": ["smtp_server", "from_email", "to_emails"],
        "secret_fields": ["password"],
        "block_type_slug": SMTP_EMAIL,
        "block_schema_references": {}
    })
}

const SMTP_EXAMPLE: &str = "Create the block in the UI (Blocks, then SMTP Email) or through \
`POST /block_documents/`, then name it in an automation:\n\
```python\n\
from prefect.automations import Automation, EventTrigger, SendNotification\n\n\
Automation(\n\
    name=\"mail on failure\",\n\
    trigger=EventTrigger(expect={\"prefect.flow-run.Failed\"}),\n\
    actions=[SendNotification(block_document_id=BLOCK_ID, subject=\"{{ flow_run.name }} failed\",\n\
                              body=\"{{ flow_run.state.message }}\")],\n\
).create()\n\
```";

/// Orrery's own block types.
pub fn types() -> Vec<SystemType> {
    vec![SystemType {
        name: "SMTP Email".into(),
        slug: SMTP_EMAIL.into(),
        logo_url: None,
        documentation_url: None,
        description: Some(
            "Sends notifications as e-mail through an SMTP server (STARTTLS, SSL or plain), \
             from Orrery itself."
                .into(),
        ),
        code_example: Some(SMTP_EXAMPLE.into()),
        is_protected: false,
    }]
}

/// The (checksum, version) of the last schema registered: a workspace that has it has them all.
pub fn marker() -> (&'static str, &'static str) {
    static CHECKSUM: OnceLock<String> = OnceLock::new();
    let checksum = CHECKSUM.get_or_init(|| schema_checksum(&smtp_fields()));
    (checksum.as_str(), OWN_VERSION)
}

/// Their schemas, with the checksums the client would compute.
pub fn schemas() -> Vec<SystemSchema> {
    let fields = smtp_fields();
    vec![SystemSchema {
        block_type_slug: SMTP_EMAIL.into(),
        checksum: schema_checksum(&fields),
        version: OWN_VERSION.into(),
        capabilities: vec!["notify".into()],
        fields,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smtp_schema_is_a_notification_block_with_a_secret_password() {
        let s = &schemas()[0];
        assert!(s.checksum.starts_with("sha256:") && s.checksum.len() == 71);
        assert_eq!(s.capabilities, vec!["notify".to_string()]);
        assert_eq!(s.fields["secret_fields"], json!(["password"]));
        assert_eq!(types()[0].slug, s.block_type_slug);
        assert_eq!(marker(), (s.checksum.as_str(), OWN_VERSION));
    }
}
