use super::*;

fn cfg() -> NotificationSettings {
    NotificationSettings {
        pagerduty_url: "http://pd/v2/enqueue".into(),
        pagerduty_eu_url: "http://pd-eu/v2/enqueue".into(),
        opsgenie_url: "http://og/v2/alerts".into(),
        opsgenie_eu_url: "http://og-eu/v2/alerts".into(),
        twilio_url: "http://tw".into(),
        sendgrid_url: "http://sg/".into(),
        discord_url: "http://dc".into(),
    }
}

fn one(slug: &str, data: Value) -> Outgoing {
    let mut all = requests(slug, &data, "Run failed", "etl failed", &cfg()).expect("requests");
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

#[test]
fn chat_services() {
    let slack = one("slack-webhook", json!({"url": "http://hooks/slack"}));
    assert_eq!(
        (slack.method.as_str(), slack.url.as_str()),
        ("POST", "http://hooks/slack")
    );
    assert_eq!(
        slack.body,
        Body::Json(json!({"text": "*Run failed*\netl failed", "mrkdwn": true}))
    );
    let teams = one("ms-teams-webhook", json!({"url": "http://teams"}));
    let Body::Json(card) = teams.body else {
        panic!("json")
    };
    assert_eq!(
        (card["title"].as_str(), card["text"].as_str()),
        (Some("Run failed"), Some("etl failed"))
    );
    let discord = one(
        "discord-webhook",
        json!({"webhook_id": "1", "webhook_token": "t", "username": "bot"}),
    );
    assert_eq!(discord.url, "http://dc/api/webhooks/1/t");
    assert_eq!(
        discord.body,
        Body::Json(json!({"content": "**Run failed**\r\netl failed", "username": "bot"}))
    );
    let mm = requests(
        "mattermost-webhook",
        &json!({"hostname": "mm.local", "token": "abc", "channels": ["a", "b"]}),
        "S",
        "B",
        &cfg(),
    )
    .expect("mattermost");
    assert_eq!(mm.len(), 2);
    assert_eq!(mm[1].url, "http://mm.local:8065/hooks/abc");
    assert_eq!(
        mm[1].body,
        Body::Json(json!({"text": "**S**\nB", "channel": "b"}))
    );
}

#[test]
fn paging_services() {
    let pd = one(
        "pager-duty-webhook",
        json!({"integration_key": "ik", "api_key": "ak", "component": "etl", "notify_type": "failure", "region_name": "eu", "clickable_url": "http://x/"}),
    );
    assert_eq!(pd.url, "http://pd-eu/v2/enqueue");
    assert_eq!(pd.headers["authorization"], "Token token=ak");
    let Body::Json(e) = pd.body else {
        panic!("json")
    };
    assert_eq!(e["routing_key"], "ik");
    assert_eq!(e["event_action"], "trigger");
    assert_eq!(e["payload"]["severity"], "critical");
    assert_eq!(e["payload"]["summary"], "Run failed\r\netl failed");
    assert_eq!(e["payload"]["source"], "Prefect");
    assert_eq!(e["links"], json!([{"href": "http://x/"}]));
    let og = one(
        "opsgenie-webhook",
        json!({"apikey": "k", "target_team": ["ops"], "priority": 1, "tags": ["prod"], "alias": "a1"}),
    );
    assert_eq!(og.url, "http://og/v2/alerts");
    assert_eq!(og.headers["authorization"], "GenieKey k");
    let Body::Json(a) = og.body else {
        panic!("json")
    };
    assert_eq!(a["message"], "Run failed");
    assert_eq!(a["description"], "etl failed");
    assert_eq!(a["priority"], "P1");
    assert_eq!(a["responders"], json!([{"type": "team", "name": "ops"}]));
    assert_eq!(
        (a["tags"].clone(), a["alias"].clone()),
        (json!(["prod"]), json!("a1"))
    );
}

#[test]
fn sms_and_email() {
    let sms = requests(
        "twilio-sms",
        &json!({"account_sid": "AC1", "auth_token": "tok", "from_phone_number": "+1555", "to_phone_numbers": ["+1666", "+1777"]}),
        "S",
        "B",
        &cfg(),
    )
    .expect("twilio");
    assert_eq!(sms.len(), 2);
    assert_eq!(
        sms[0].url,
        "http://tw/2010-04-01/Accounts/AC1/Messages.json"
    );
    assert_eq!(sms[0].headers["authorization"], "Basic QUMxOnRvaw==");
    assert_eq!(
        sms[1].body,
        Body::Form(vec![
            ("Body".into(), "S\r\nB".into()),
            ("From".into(), "+1555".into()),
            ("To".into(), "+1777".into())
        ])
    );
    let mail = one(
        "sendgrid-email",
        json!({"api_key": "SG", "sender_email": "a@x", "to_emails": ["b@x"]}),
    );
    assert_eq!(mail.url, "http://sg/v3/mail/send");
    assert_eq!(mail.headers["authorization"], "Bearer SG");
    let Body::Json(m) = mail.body else {
        panic!("json")
    };
    assert_eq!(m["personalizations"], json!([{"to": [{"email": "b@x"}]}]));
    assert_eq!(m["subject"], "Run failed");
    assert_eq!(m["content"][0]["value"], "etl failed");
    assert!(requests("twilio-sms", &json!({}), "S", "B", &cfg()).is_err());
}

#[test]
fn custom_webhooks_and_unknown_blocks() {
    let hook = one(
        "custom-webhook",
        json!({"name": "n", "url": "http://h/{{token}}", "method": "PUT", "params": {"q": "{{subject}}"},
               "json_data": {"text": "{{subject}}: {{body}}", "t": "{{token}}"}, "headers": {"x": "{{name}}"},
               "secrets": {"token": "s3"}}),
    );
    assert_eq!(hook.method, "PUT");
    assert_eq!(hook.url, "http://h/s3?q=Run+failed");
    assert_eq!(hook.headers["x"], "n");
    assert_eq!(
        hook.body,
        Body::Json(json!({"text": "Run failed: etl failed", "t": "s3"}))
    );
    let form = one(
        "custom-webhook",
        json!({"url": "http://h", "form_data": {"a": "{{body}}"}}),
    );
    assert_eq!(
        form.body,
        Body::Form(vec![("a".into(), "etl failed".into())])
    );
    let e = requests("email", &json!({}), "S", "B", &cfg()).expect_err("unknown");
    assert!(e.contains("\"email\""), "{e}");
}
