//! The media type and status of GraphQL responses, as the GraphQL-over-HTTP working draft
//! (graphql.github.io/graphql-over-http/draft) sets them.
//!
//! - **Accept** (§ Accept, § Legacy Watershed): `application/graphql-response+json` or
//!   `application/json`, chosen by the client's `Accept` with its q-values. No `Accept`, `*/*`
//!   and `application/*` get `application/json`, the default until the watershed; an `Accept`
//!   that allows neither is refused with 406 (§ Accept: "respond with 406 Not Acceptable",
//!   RECOMMENDED).
//! - **Status** (§ Response): with `application/json`, 200 for every well-formed request,
//!   whatever its errors. With `application/graphql-response+json`, a request error (the
//!   document does not parse or validate, its variables cannot be coerced, its operation cannot
//!   be chosen: nothing was executed) is 400 and has no `data` entry; a response that executed
//!   is 200, its `data` present (null if a field error reached the root).
//! - A request error never has `data`, whatever the media type (GraphQL spec, October 2021,
//!   § 7.1.1: "If an error was raised before execution begins, the data entry should not be
//!   present").
//!
//! Refusals made before GraphQL sees a request (`Rejection`: 400, 405, 413, 415; 429, 503) keep
//! their statuses and are written in the negotiated type too.

use axum::extract::{FromRequestParts, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::rejection::Rejection;

/// The media type of a GraphQL response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    /// `application/graphql-response+json`: the status tells a request error (400) from a
    /// response that executed (200).
    GraphQLResponse,
    /// `application/json`: 200 for every well-formed request.
    Json,
}

impl MediaType {
    pub const GRAPHQL_RESPONSE: &'static str = "application/graphql-response+json";
    pub const JSON: &'static str = "application/json";

    /// The `Content-Type` of a response in this type; always UTF-8 (§ Body).
    pub fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            MediaType::GraphQLResponse => "application/graphql-response+json; charset=utf-8",
            MediaType::Json => "application/json; charset=utf-8",
        })
    }

    /// The type the request's `Accept` asks for; `None` if it allows neither (406).
    ///
    /// Each type gets the q-value of the most specific range that matches it (RFC 9110
    /// § 12.5.1); the higher wins. At equal q, a type the client named beats one it reached
    /// through a wildcard, and between two named types the GraphQL one wins: `application/json`
    /// is the legacy type. A range with a `charset` other than UTF-8 matches nothing.
    pub fn negotiate(headers: &HeaderMap) -> Option<MediaType> {
        // An empty field is no preference, as if it were absent.
        let mut values = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter(|value| !value.as_bytes().trim_ascii().is_empty())
            .peekable();
        if values.peek().is_none() {
            return Some(MediaType::Json);
        }
        let ranges: Vec<Range> = values
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(Range::parse)
            .collect();
        let graphql = preference(&ranges, Self::GRAPHQL_RESPONSE);
        let json = preference(&ranges, Self::JSON);
        let choice = match (graphql, json) {
            (None, None) => return None,
            (Some(_), None) => MediaType::GraphQLResponse,
            (None, Some(_)) => MediaType::Json,
            (Some(graphql), Some(json)) if graphql > json => MediaType::GraphQLResponse,
            (Some(graphql), Some(json)) if graphql < json => MediaType::Json,
            // Equal q and specificity: named, the GraphQL type; by wildcard, the default.
            (Some((_, Specificity::Exact)), Some(_)) => MediaType::GraphQLResponse,
            (Some(_), Some(_)) => MediaType::Json,
        };
        Some(choice)
    }
}

/// How closely a range names a type: `*/*`, `application/*`, or the type itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Specificity {
    Any,
    Application,
    Exact,
}

/// One media range of an `Accept` header, with its weight in thousandths.
#[derive(Debug)]
struct Range {
    essence: String,
    quality: u16,
}

impl Range {
    /// `type/subtype *( ";" parameter )`; an unparsable range or weight is skipped.
    fn parse(text: &str) -> Option<Range> {
        let mut parts = text.split(';');
        let essence = parts.next()?.trim().to_ascii_lowercase();
        if !essence.contains('/') {
            return None;
        }
        let mut quality = 1000;
        for parameter in parts {
            let (name, value) = parameter.split_once('=')?;
            let value = value.trim().trim_matches('"');
            match name.trim().to_ascii_lowercase().as_str() {
                "q" => quality = qvalue(value)?,
                "charset" if !["utf-8", "utf8"].contains(&value.to_ascii_lowercase().as_str()) => {
                    return None
                }
                _ => {}
            }
        }
        Some(Range { essence, quality })
    }

    fn matches(&self, essence: &str) -> Option<Specificity> {
        match self.essence.as_str() {
            "*/*" => Some(Specificity::Any),
            "application/*" => Some(Specificity::Application),
            named if named == essence => Some(Specificity::Exact),
            _ => None,
        }
    }
}

/// A weight, `0` to `1` with up to three decimals (RFC 9110 § 12.4.2), in thousandths.
fn qvalue(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{fraction:0<3}").parse::<u16>().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The weight the client gives `essence` and how closely it named it; `None` if it did not
/// accept it (unlisted, or q=0).
fn preference(ranges: &[Range], essence: &str) -> Option<(u16, Specificity)> {
    let (specificity, quality) = ranges
        .iter()
        .filter_map(|range| Some((range.matches(essence)?, range.quality)))
        // The most specific range decides; among equals, the first.
        .fold(
            None,
            |best: Option<(Specificity, u16)>, (specificity, quality)| match best {
                Some((kept, _)) if kept >= specificity => best,
                _ => Some((specificity, quality)),
            },
        )?;
    (quality > 0).then_some((quality, specificity))
}

/// The negotiated type of a request to `/graphql`, set by [`negotiated`]; `application/json`
/// where the router is served without it.
impl<S: Send + Sync> FromRequestParts<S> for MediaType {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<MediaType>()
            .copied()
            .unwrap_or(MediaType::Json))
    }
}

/// Negotiates the media type of every GraphQL request: 406 if the client accepts neither type
/// (a WebSocket upgrade is never refused for it); otherwise the handler learns the type, and GraphQL bodies
/// written before it (refusals) get it as their `Content-Type` too.
pub async fn negotiated(mut request: Request, next: Next) -> Response {
    if request.uri().path() != super::GRAPHQL_PATH {
        return next.run(request).await;
    }
    // A WebSocket upgrade is not refused for its Accept; its refusals still follow it.
    let upgrade = request
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let negotiated = MediaType::negotiate(request.headers());
    let negotiated = if upgrade {
        negotiated.or(Some(MediaType::Json))
    } else {
        negotiated
    };
    let Some(media) = negotiated else {
        let message = format!(
            "Accept must allow {} or {}",
            MediaType::GRAPHQL_RESPONSE,
            MediaType::JSON
        );
        return Rejection::new(StatusCode::NOT_ACCEPTABLE, message).into_response();
    };
    request.extensions_mut().insert(media);
    let mut response = next.run(request).await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(MediaType::JSON.as_bytes()));
    if is_json {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, media.content_type());
    }
    // The answer depends on Accept: a cache must not give one client's type to another
    // (RFC 9110 § 12.5.5).
    response
        .headers_mut()
        .append(header::VARY, HeaderValue::from_static("accept"));
    response
}

/// Whether `response` reports a request error: errors, and nothing executed. An error that
/// belongs to a field has a `path` (GraphQL spec § 7.1.2); one raised before execution (parsing,
/// validation, variable coercion, choosing the operation, an operation this transport cannot
/// run) has none, and then there is no data either.
pub fn is_request_error(response: &async_graphql::Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|error| error.path.is_empty())
}

/// A GraphQL response in `media`, with the status and `data` entry the draft gives it (see the
/// module's documentation). `request_error`: nothing was executed ([`is_request_error`]).
pub fn graphql_response(
    media: MediaType,
    response: async_graphql::Response,
    request_error: bool,
) -> Response {
    let status = match (media, request_error) {
        (MediaType::GraphQLResponse, true) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    let cache_control = (response.errors.is_empty())
        .then(|| response.cache_control.value())
        .flatten()
        .and_then(|value| HeaderValue::from_str(&value).ok());
    let headers = response.http_headers.clone();
    let mut body = match serde_json::to_value(&response) {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "cannot encode a GraphQL response");
            serde_json::json!({"errors": [{
                "message": "internal error",
                "extensions": {"code": orderhub_actors::ErrorCode::Internal.as_str()},
            }]})
        }
    };
    if let (true, Some(body)) = (request_error, body.as_object_mut()) {
        body.remove("data");
    }
    let mut answer = (status, body.to_string()).into_response();
    answer
        .headers_mut()
        .insert(header::CONTENT_TYPE, media.content_type());
    if let Some(value) = cache_control {
        answer.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    answer.headers_mut().extend(headers);
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn negotiate(accept: Option<&str>) -> Option<MediaType> {
        let mut headers = HeaderMap::new();
        if let Some(accept) = accept {
            headers.insert(header::ACCEPT, accept.parse().expect("header"));
        }
        MediaType::negotiate(&headers)
    }

    #[test]
    fn accept_chooses_the_media_type() {
        use MediaType::{GraphQLResponse as Gql, Json};
        for (accept, expected) in [
            (None, Some(Json)),
            (Some("*/*"), Some(Json)),
            (Some("application/*"), Some(Json)),
            (Some("application/json"), Some(Json)),
            (Some("Application/JSON; charset=UTF-8"), Some(Json)),
            (Some("application/graphql-response+json"), Some(Gql)),
            (
                Some("application/graphql-response+json; charset=utf-8"),
                Some(Gql),
            ),
            (
                Some("application/graphql-response+json, application/json;q=0.9"),
                Some(Gql),
            ),
            (
                Some("application/json, application/graphql-response+json"),
                Some(Gql),
            ),
            (
                Some("application/graphql-response+json;q=0.5, application/json"),
                Some(Json),
            ),
            (Some("application/graphql-response+json, */*"), Some(Gql)),
            (Some("*/*, application/json;q=0"), Some(Gql)),
            (
                Some("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
                Some(Json),
            ),
            (Some("text/html"), None),
            (Some("application/json;q=0"), None),
            (Some("application/json; charset=latin1"), None),
            (Some("application/json;q=2"), None),
            (Some(""), Some(Json)),
            (Some("text/html, "), None),
        ] {
            assert_eq!(negotiate(accept), expected, "{accept:?}");
        }
    }

    #[test]
    fn qvalues_are_read_as_rfc_9110_writes_them() {
        for (text, expected) in [
            ("1", Some(1000)),
            ("1.000", Some(1000)),
            ("0.5", Some(500)),
            ("0.123", Some(123)),
            ("0", Some(0)),
            ("0.1234", None),
            ("1.5", None),
            ("-0", None),
            ("x", None),
        ] {
            assert_eq!(qvalue(text), expected, "{text}");
        }
    }
}
