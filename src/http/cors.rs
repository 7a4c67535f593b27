//! Browsers on other origins: the allow-list `ORDERHUB_CORS_ORIGINS`, applied to CORS
//! (Fetch standard § 3.2, "CORS protocol") and to the `Origin` of WebSocket upgrades (RFC 6455
//! § 10.2).
//!
//! - **CORS.** A request whose `Origin` is on the list goes through tower-http's `CorsLayer`:
//!   a preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered 200 with
//!   `Access-Control-Allow-Origin` (that origin), `-Allow-Methods` (GET, HEAD, POST, OPTIONS),
//!   `-Allow-Headers` (authorization, content-type, accept) and `-Max-Age` ([`MAX_AGE`]); other
//!   requests get `Access-Control-Allow-Origin` and `-Expose-Headers` (retry-after). A request
//!   from any other origin never sees the layer: no `Access-Control-*` field at all, so the
//!   browser withholds the answer (and a preflight is 405, as without CORS).
//!   `Access-Control-Allow-Credentials` is never sent: tokens travel in `Authorization` (or in
//!   `connection_init`), which a page sets itself, never in cookies.
//! - **WebSocket.** Browsers always send `Origin` on an upgrade and let any page open a socket
//!   to any server. An upgrade is accepted without `Origin` (clients that are not browsers), from
//!   the server's own origin (its host and port are the request's `Host`: the embedded
//!   screens), or from an origin on the list; any other is refused with 403.
//! - **No `*`.** The list names exact origins only: each is a deployment decision, and the same
//!   list opens WebSocket upgrades, where a wildcard would let every page in.

use axum::extract::{Request, State};
use axum::http::uri::Authority;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;
use std::time::Duration;
use tower::{Layer, ServiceExt};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may cache a preflight's answer. Chromium caps it at 2 hours, Firefox at
/// 24; 10 minutes lets a changed list take effect soon.
pub const MAX_AGE: Duration = Duration::from_secs(600);

/// `http` or `https`: the schemes a page the API serves can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// A web origin, `scheme://host[:port]` (RFC 6454 § 4), as browsers send it in `Origin`: the
/// host lowercased, the scheme's default port left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: Scheme,
    host: String,
    /// `None` for the scheme's default port.
    port: Option<u16>,
}

/// Why a text is not an origin; the message names the text and the form expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    #[error("wildcards (`*`) are not accepted: list each origin as scheme://host[:port]")]
    Wildcard,
    #[error(
        "{text:?} is not an origin ({why}): use scheme://host[:port], e.g. https://app.example.com"
    )]
    Malformed { text: String, why: &'static str },
}

impl std::str::FromStr for Origin {
    type Err = OriginError;

    /// `http://` or `https://`, then a host and an optional port; no user, path, query or
    /// fragment (not even a trailing `/`). Case is ignored; the default port is dropped.
    fn from_str(text: &str) -> Result<Origin, OriginError> {
        let text = text.trim();
        // `*`, or a pattern such as `https://*.example.com`.
        if text.contains('*') {
            return Err(OriginError::Wildcard);
        }
        let malformed = |why| OriginError::Malformed {
            text: text.to_owned(),
            why,
        };
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| malformed("no scheme"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(malformed("the scheme must be http or https")),
        };
        if rest.contains(['/', '?', '#']) {
            return Err(malformed("an origin has no path, query or fragment"));
        }
        if rest.contains('@') {
            return Err(malformed("an origin has no user information"));
        }
        let authority: Authority = rest.parse().map_err(|_| malformed("not a host[:port]"))?;
        // A `:` after the host (an IPv6 host's are inside brackets) must start a valid port.
        let has_port = rest
            .rsplit_once(':')
            .is_some_and(|(_, after)| !after.contains(']'));
        if authority.host().is_empty() || (has_port && authority.port_u16().is_none()) {
            return Err(malformed("not a host[:port]"));
        }
        Ok(Origin::new(scheme, authority.host(), authority.port_u16()))
    }
}

impl Origin {
    fn new(scheme: Scheme, host: &str, port: Option<u16>) -> Origin {
        Origin {
            scheme,
            host: host.to_ascii_lowercase(),
            port: port.filter(|&port| port != scheme.default_port()),
        }
    }

    /// The origin a request's `Origin` field names; `None` for `null` (an opaque origin) or
    /// anything else that is not `scheme://host[:port]`.
    fn of(value: &HeaderValue) -> Option<Origin> {
        value.to_str().ok()?.parse().ok()
    }

    /// Whether a request with this `Host` is addressed to this origin's host and port: the
    /// page and the API share an origin (the scheme is not compared, as a proxy in front may
    /// end TLS).
    fn is_host(&self, host: &HeaderValue) -> bool {
        let Some(authority) = host
            .to_str()
            .ok()
            .and_then(|host| host.parse::<Authority>().ok())
        else {
            return false;
        };
        let port = |port: Option<u16>| port.unwrap_or(self.scheme.default_port());
        authority.host().eq_ignore_ascii_case(&self.host)
            && port(authority.port_u16()) == port(self.port)
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.host)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// The cross-origin policy of a node: the allowed origins and the CORS layer built from them.
#[derive(Clone)]
pub struct CrossOrigin {
    allowed: Arc<[Origin]>,
    cors: CorsLayer,
}

impl std::fmt::Debug for CrossOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.allowed.iter()).finish()
    }
}

impl CrossOrigin {
    pub fn new(allowed: &[Origin]) -> CrossOrigin {
        let allowed: Arc<[Origin]> = allowed.into();
        let listed = allowed.clone();
        let cors = CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(move |origin, _| {
                Origin::of(origin).is_some_and(|origin| listed.contains(&origin))
            }))
            .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::OPTIONS])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
            // A 429's or 503's advice, for a page that wants to retry politely.
            .expose_headers([header::RETRY_AFTER])
            .max_age(MAX_AGE);
        CrossOrigin { allowed, cors }
    }

    /// No origin is listed: browsers may call only from the server's own origin.
    pub fn is_empty(&self) -> bool {
        self.allowed.is_empty()
    }

    fn is_listed(&self, origin: &HeaderValue) -> bool {
        Origin::of(origin).is_some_and(|origin| self.allowed.contains(&origin))
    }

    /// Whether a WebSocket upgrade with these header fields may proceed: no `Origin` (not a
    /// browser), the request's own `Host`, or a listed origin.
    pub fn admits_upgrade(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(header::ORIGIN) else {
            return true;
        };
        let same_origin = Origin::of(value)
            .zip(headers.get(header::HOST))
            .is_some_and(|(origin, host)| origin.is_host(host));
        same_origin || self.is_listed(value)
    }
}

/// Middleware: a request from a listed origin goes through the CORS layer, any other past it.
/// (`CorsLayer` on its own answers every `OPTIONS` as a preflight and gives unlisted origins
/// `Access-Control-Allow-Methods` and the rest; they get nothing here.)
pub async fn cross_origin(
    State(policy): State<CrossOrigin>,
    request: Request,
    next: Next,
) -> Response {
    let listed = request
        .headers()
        .get(header::ORIGIN)
        .is_some_and(|origin| policy.is_listed(origin));
    if listed {
        return match policy.cors.layer(next).oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
    }
    let mut response = next.run(request).await;
    // Whether a response carries CORS fields depends on Origin: a cache must not hand this one
    // to a listed page (RFC 9110 § 12.5.5).
    response
        .headers_mut()
        .append(header::VARY, HeaderValue::from_static("origin"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_exact_and_normalized() {
        for (text, expected) in [
            ("https://app.example.com", "https://app.example.com"),
            ("HTTPS://App.Example.COM", "https://app.example.com"),
            ("https://app.example.com:443", "https://app.example.com"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            (" http://localhost:80 ", "http://localhost"),
            ("http://[::1]:3000", "http://[::1]:3000"),
        ] {
            let origin: Origin = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(origin.to_string(), expected, "{text}");
        }
        assert_eq!("*".parse::<Origin>(), Err(OriginError::Wildcard));
        for refused in [
            "",
            "null",
            "app.example.com",
            "ftp://app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://app.example.com?x",
            "https://user@app.example.com",
            "https://",
            "https://app.example.com:",
            "https://app.example.com:99999",
            "https://*.example.com",
        ] {
            assert!(refused.parse::<Origin>().is_err(), "{refused:?} is refused");
        }
    }

    #[test]
    fn an_upgrade_is_admitted_without_origin_same_origin_or_listed() {
        let listed: Origin = "https://app.example".parse().expect("origin");
        let policy = CrossOrigin::new(&[listed]);
        let headers = |origin: Option<&str>, host: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::HOST, HeaderValue::from_str(host).expect("host"));
            if let Some(origin) = origin {
                headers.insert(
                    header::ORIGIN,
                    HeaderValue::from_str(origin).expect("origin"),
                );
            }
            headers
        };
        for (origin, host, admitted) in [
            (None, "hub.example:8000", true),
            (Some("http://hub.example:8000"), "hub.example:8000", true),
            (Some("http://HUB.example:8000"), "hub.example:8000", true),
            (Some("http://hub.example"), "hub.example:80", true),
            (Some("https://hub.example"), "hub.example", true),
            (Some("https://app.example"), "hub.example:8000", true),
            (Some("http://hub.example:8001"), "hub.example:8000", false),
            (Some("http://evil.example"), "hub.example", false),
            (Some("https://app.example:444"), "hub.example", false),
            (Some("null"), "hub.example", false),
            (Some("hub.example"), "hub.example", false),
        ] {
            assert_eq!(
                policy.admits_upgrade(&headers(origin, host)),
                admitted,
                "Origin {origin:?}, Host {host}"
            );
        }
    }
}
