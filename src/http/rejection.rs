//! Requests refused before GraphQL sees them, answered as GraphQL errors with the code
//! `BAD_REQUEST` and a fitting status: 400 malformed, empty, batched or without a `query`, 413
//! too large, 415 not JSON.
//!
//! async-graphql-axum's extractor answers these in plain text, reads any content type as JSON
//! (so a browser's cross-site `text/plain` form post would run) and accepts multipart uploads
//! and batches; this one reads exactly one JSON request.

use axum::body::Bytes;
use axum::extract::{FromRequest, Query, Request};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use orderhub_actors::ErrorCode;
use serde::Deserialize;
use serde_json::json;

/// Longest message echoed from a JSON syntax error; the input itself is never echoed.
const MAX_MESSAGE_CHARS: usize = 200;

/// A request refused at the HTTP level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: StatusCode,
    pub message: String,
}

impl Rejection {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body is larger than the server accepts",
        )
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        (
            self.status,
            error_body(ErrorCode::BadRequest, &self.message),
        )
            .into_response()
    }
}

/// The GraphQL body of a request refused before execution.
pub fn error_body(code: ErrorCode, message: &str) -> Json<serde_json::Value> {
    Json(json!({"errors": [{"message": message, "extensions": {"code": code.as_str()}}]}))
}

/// One GraphQL request: from the query string of a GET or HEAD, or the JSON body of a POST.
pub struct GraphQLBody(pub async_graphql::Request);

impl<S: Send + Sync> FromRequest<S> for GraphQLBody {
    type Rejection = Rejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Rejection> {
        // HEAD is GET without the response body (RFC 9110 § 9.3.2): the same request.
        if request.method() == Method::GET || request.method() == Method::HEAD {
            return parse_query_string(request.uri()).map(GraphQLBody);
        }
        check_content_type(request.headers())?;
        let body =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection| match rejection.status() {
                    StatusCode::PAYLOAD_TOO_LARGE => Rejection::too_large(),
                    status => Rejection::new(status, "the request body could not be read"),
                })?;
        parse_body(&body).map(GraphQLBody)
    }
}

/// `application/json`, with any parameters (`charset=utf-8`).
fn check_content_type(headers: &HeaderMap) -> Result<(), Rejection> {
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(str::trim);
    match essence {
        Some(essence) if essence.eq_ignore_ascii_case("application/json") => Ok(()),
        _ => Err(Rejection::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        )),
    }
}

/// The parameters of a GET (GraphQL over HTTP § GET): `query` (required), `operationName`,
/// and `variables` and `extensions` as JSON text. (async-graphql's own reader of them looks for
/// `operation_name`, and reads a missing `query` as an empty one.)
#[derive(Deserialize)]
struct GetParameters {
    query: String,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

/// The request a GET's query string carries.
fn parse_query_string(uri: &Uri) -> Result<async_graphql::Request, Rejection> {
    let not_a_request = |why: &str| {
        Rejection::bad_request(format!("the query string is not a GraphQL request: {why}"))
    };
    let Query(parameters) = Query::<GetParameters>::try_from_uri(uri)
        .map_err(|_| not_a_request("it needs a `query`, and each parameter once"))?;
    let mut request = async_graphql::Request::new(parameters.query);
    request.operation_name = parameters.operation_name;
    if let Some(variables) = parameters.variables {
        request.variables = serde_json::from_str(&variables)
            .map_err(|_| not_a_request("`variables` is not a JSON object"))?;
    }
    if let Some(extensions) = parameters.extensions {
        request.extensions = serde_json::from_str(&extensions)
            .map_err(|_| not_a_request("`extensions` is not a JSON object"))?;
    }
    Ok(request)
}

/// `query` is required (GraphQL over HTTP § Request Parameters); async-graphql's request reads
/// a body without one as an empty document.
#[derive(Deserialize)]
struct HasQuery {
    #[serde(rename = "query")]
    _query: serde::de::IgnoredAny,
}

/// The body of a POST: one JSON object `{"query", "variables", "operationName", "extensions"}`,
/// `query` required.
pub fn parse_body(body: &[u8]) -> Result<async_graphql::Request, Rejection> {
    match body.iter().find(|byte| !byte.is_ascii_whitespace()) {
        None => return Err(Rejection::bad_request("the request body is empty")),
        Some(b'[') => {
            return Err(Rejection::bad_request(
                "batched requests are not supported: send one request per POST",
            ))
        }
        Some(_) => {}
    }
    let not_a_request = |error: serde_json::Error| {
        let mut message = format!("the request body is not a GraphQL request: {error}");
        if let Some((at, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
            message.truncate(at);
        }
        Rejection::bad_request(message)
    };
    let request = serde_json::from_slice(body).map_err(not_a_request)?;
    serde_json::from_slice::<HasQuery>(body).map_err(not_a_request)?;
    Ok(request)
}

/// Gives refusals made outside the GraphQL handler (the body limit's 413) the same JSON body.
pub async fn coded(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        return Rejection::too_large().into_response();
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_other_than_one_request_are_refused() {
        for (body, reason) in [
            ("", "empty"),
            ("  \n", "empty"),
            ("[]", "batched"),
            (r#" [{"query":"{ __typename }"}]"#, "batched"),
            ("{", "not a GraphQL request"),
            (r#"{"query": 5}"#, "not a GraphQL request"),
            ("\"query\"", "not a GraphQL request"),
            (r#"{"qeury": "{ __typename }"}"#, "missing field `query`"),
            (r#"{"variables": {}}"#, "missing field `query`"),
        ] {
            let refused = parse_body(body.as_bytes()).expect_err(body);
            assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{body}");
            assert!(refused.message.contains(reason), "{body}: {refused:?}");
        }
        let request =
            parse_body(br#"{"query":"{ __typename }","operationName":null}"#).expect("one request");
        assert_eq!(request.query, "{ __typename }");
    }

    #[test]
    fn a_get_names_its_operation_with_operation_name() {
        let uri: Uri =
            "/graphql?query=query%20A%7Bx%7D&operationName=A&variables=%7B%22a%22%3A1%7D"
                .parse()
                .expect("uri");
        let request = parse_query_string(&uri).expect("a request");
        assert_eq!(request.query, "query A{x}");
        assert_eq!(request.operation_name.as_deref(), Some("A"));
        assert_eq!(
            request.variables.get("a"),
            Some(&async_graphql::Value::from(1))
        );
        for refused in [
            "/graphql",
            "/graphql?qeury=%7Bx%7D",
            "/graphql?query=%7Bx%7D&variables=%7B",
            "/graphql?query=%7Bx%7D&variables=5",
            "/graphql?query=%7Bx%7D&extensions=%5B%5D",
        ] {
            let uri: Uri = refused.parse().expect("uri");
            let rejection = parse_query_string(&uri).expect_err(refused);
            assert_eq!(rejection.status, StatusCode::BAD_REQUEST, "{refused}");
        }
    }

    #[test]
    fn only_json_is_read() {
        let mut headers = HeaderMap::new();
        assert!(check_content_type(&headers).is_err());
        for (value, ok) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("text/plain", false),
            ("multipart/form-data; boundary=x", false),
            ("application/x-www-form-urlencoded", false),
            ("application/jsonx", false),
        ] {
            headers.insert(header::CONTENT_TYPE, value.parse().expect("header"));
            assert_eq!(check_content_type(&headers).is_ok(), ok, "{value}");
        }
    }
}
