//! Orrery: one binary that does the job of a customer-managed Prefect installation — the
//! Prefect-compatible orchestration API, auth and tenancy, the UI, background services and the
//! event pipeline — on PostgreSQL and Redis, or on embedded SQLite and in-process brokers.

pub mod api;
pub mod app;
pub mod auth;
pub mod broker;
pub mod cli;
pub mod error;
pub mod event_model;
pub mod events;
pub mod extract;
pub mod identity;
pub mod ids;
pub mod orchestration;
pub mod query;
pub mod router;
pub mod runs;
pub mod scheduling;
pub mod service;
pub mod services;
pub mod settings;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod time;
pub mod tls;
pub mod ui;
pub mod version;
pub mod wire;
