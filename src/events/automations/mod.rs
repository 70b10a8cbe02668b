//! Automations: the model (triggers and actions, as Prefect defines and checks them) and their
//! templates.

pub mod matching;
pub mod model;
pub mod templates;
