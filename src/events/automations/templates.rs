//! Automation templates: Jinja syntax (Prefect renders actions' subjects, bodies, webhook
//! payloads and deployment parameters with Jinja), parsed with minijinja. `POST
//! /templates/validate` and every saved action use [`validate`].

/// Why `text` is not a template, if it isn't: Prefect's `{"line", "message"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (line {})", self.message, self.line)
    }
}

fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
    env
}

/// Parses `text` as a template.
pub fn validate(text: &str) -> Result<(), TemplateError> {
    let env = environment();
    env.template_from_str(text)
        .map(|_| ())
        .map_err(|e| TemplateError {
            line: e.line().unwrap_or(1),
            message: e.detail().map_or_else(|| e.to_string(), str::to_string),
        })
}

/// Renders `text` with `context` (undefined names render empty, as Prefect's do).
pub fn render(text: &str, context: &serde_json::Value) -> Result<String, TemplateError> {
    let env = environment();
    env.render_str(text, context).map_err(|e| TemplateError {
        line: e.line().unwrap_or(1),
        message: e.detail().map_or_else(|| e.to_string(), str::to_string),
    })
}

/// Whether a plain string is a (version 1) template: it has Jinja markup.
pub fn maybe_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_name_their_line() {
        assert!(validate("Flow {{ flow.name }} failed").is_ok());
        assert!(validate("{% if x %}y{% endif %}").is_ok());
        let e = validate("a\n{{ x }").expect_err("bad");
        assert_eq!(e.line, 2);
        assert!(validate("{% if x %}").is_err());
        let ctx = serde_json::json!({"event": {"event": "a.b"}});
        assert_eq!(
            render("got {{ event.event }}{{ nope }}", &ctx).expect("render"),
            "got a.b"
        );
        assert!(maybe_template("x {{ y }}") && !maybe_template("x { y }"));
    }
}
