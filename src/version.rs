//! The versions Orrery reports: the Prefect API version the 3.9.1 client speaks and the Prefect
//! version whose server it stands in for.

/// The API version the 3.9.1 client speaks (`X-PREFECT-API-VERSION`), answered by `/version`.
pub const API_VERSION: &str = "0.8.4";
/// The Prefect server version reported by `/admin/version` (the client requires the same major).
pub const PREFECT_VERSION: &str = "3.9.1";
