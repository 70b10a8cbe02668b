//! Automations: the model (triggers and actions, as Prefect defines and checks them), their
//! templates, trigger evaluation (pure: [`matching`], [`evaluate`]; with storage: [`triggers`],
//! [`proactive`]) and what a firing starts ([`firing`]).

pub mod evaluate;
pub mod firing;
pub mod matching;
pub mod model;
pub mod proactive;
pub mod templates;
pub mod triggers;
