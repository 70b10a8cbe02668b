//! The host names the server answers as (API host, app host) and which browser origins may call
//! the API.

use super::{non_empty, Settings};

/// The host part of a `Host` header value: without the port, IPv6 brackets kept.
pub fn host_name(host: &str) -> &str {
    match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    }
}

impl Settings {
    pub fn api_host(&self) -> Option<&str> {
        non_empty(&self.server.api_host)
    }

    pub fn app_host(&self) -> Option<&str> {
        non_empty(&self.server.app_host)
    }

    /// Whether a page from `origin` (`scheme://host[:port]`) may call the API: the app host's
    /// pages (any scheme and port), and the origins of `server.cors_origins` (`*`: any).
    pub fn cors_allows(&self, origin: &str) -> bool {
        let host = origin
            .split_once("://")
            .map_or(origin, |(_, rest)| rest)
            .split('/')
            .next()
            .unwrap_or("");
        let host = host_name(host);
        if self
            .app_host()
            .is_some_and(|app| app.eq_ignore_ascii_case(host))
        {
            return true;
        }
        self.server
            .cors_origins
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .any(|o| o == "*" || o.trim_end_matches('/').eq_ignore_ascii_case(origin))
    }
}
