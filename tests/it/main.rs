//! The one integration-test binary. Each test builds its own server with `TestApp` on a fresh
//! database: a SQLite temp dir by default, or a new PostgreSQL database and a private Redis
//! namespace when ORRERY_TEST_DATABASE_URL / ORRERY_TEST_REDIS_URL are set.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on what it did not expect"
)]

mod artifacts;
mod auth;
mod auth_admin;
mod automation_email;
mod automation_firing;
mod automation_notifications;
mod automation_replicas;
mod automations;
mod binary;
mod blocks;
mod broker;
mod deployments;
mod durability;
mod flow_run_input;
mod foundation;
mod layers;
mod limits_v1;
mod orion;
mod replicas;
mod support;
mod ui_api;
mod variables;
mod webhooks;
