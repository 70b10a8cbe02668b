//! Auth (nebula): the authentication middleware in front of the API, the route table that
//! says what each route needs, the caller's own routes (`/me`...), and the administration
//! the command line does (users, workspaces, access, service accounts, API keys).
//! Who a credential is lives one layer down, in `identity`, so the websocket handshake can ask
//! it too.

pub mod access;
pub mod accounts;
pub mod admin;
pub mod me;
pub mod middleware;
pub mod session;
pub mod table;
pub mod user_keys;
