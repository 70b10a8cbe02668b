//! The one integration-test binary. Each test builds its own server with `TestApp` on a fresh
//! database: a SQLite temp dir by default, or a new PostgreSQL database and a private Redis
//! namespace when ORRERY_TEST_DATABASE_URL / ORRERY_TEST_REDIS_URL are set.

mod binary;
mod broker;
mod foundation;
mod orion;
mod support;
