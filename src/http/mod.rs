//! HTTP: the GraphQL endpoint, health checks and GraphiQL.

pub mod cors;
mod framing;
mod graphiql;
pub mod media;
pub mod rejection;
mod screens;
pub mod server;

use async_graphql::parser::types::{DocumentOperations, OperationType};
use axum::extract::connect_info::ConnectInfo;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use media::MediaType;
use orderhub_actors::ports::{Bus, Store};
use orderhub_actors::ErrorCode;
use rejection::{error_body, GraphQLBody, Rejection};
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower_http::limit::RequestBodyLimitLayer;
use tracing::Instrument;

use crate::auth::{AuthError, Tokens};
use crate::graphql::{AppSchema, Caller};
use crate::rate_limit::{Client, RateLimiter};
use crate::store::routing::ReadRouting;
use crate::ws::{self, Protocol, WsServices};

#[derive(Clone)]
pub struct HttpState {
    pub schema: AppSchema,
    pub tokens: Tokens,
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn Bus>,
    pub reads: Arc<ReadRouting>,
    pub ws: WsServices,
    /// One permit per open WebSocket.
    pub websockets: Arc<tokio::sync::Semaphore>,
    /// Largest WebSocket message accepted from a client.
    pub max_message_bytes: usize,
    pub rate_limit: Option<Arc<RateLimiter>>,
    /// Queries over HTTP taking longer are answered with TIMEOUT.
    pub query_timeout: Duration,
    /// Which other origins' pages may call the API and open WebSockets.
    pub cross_origin: cors::CrossOrigin,
}

/// Where GraphQL is served, over HTTP and WebSocket.
pub const GRAPHQL_PATH: &str = "/graphql";

/// Everything on the main listener; `/metrics` too unless it has a listener of its own.
pub fn router(state: HttpState, max_body_bytes: usize, with_metrics: bool) -> Router {
    let mut router = Router::new()
        .route(GRAPHQL_PATH, post(graphql_post).get(graphql_get))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    if with_metrics {
        router = router.merge(metrics_router());
    }
    let cross_origin = state.cross_origin.clone();
    let router = router
        .merge(graphiql::routes())
        .merge(screens::routes())
        .route_layer(axum::middleware::from_fn(observe))
        .with_state(state)
        // The GraphQL body is read as Bytes, which stop at DefaultBodyLimit (2 MB) unless told.
        .layer(axum::extract::DefaultBodyLimit::max(max_body_bytes))
        // Every body; a 413 gets a GraphQL error body below.
        .layer(RequestBodyLimitLayer::new(max_body_bytes))
        .layer(axum::middleware::from_fn(rejection::coded))
        // Outermost but for CORS, so that every refusal of a GraphQL request is written in the
        // type the client accepts.
        .layer(axum::middleware::from_fn(media::negotiated));
    if cross_origin.is_empty() {
        return router;
    }
    // Outermost: a preflight is answered before negotiation, and every refusal (406, 413, 415,
    // 429) carries Access-Control-Allow-Origin, so that a page on a listed origin can read why.
    router.layer(axum::middleware::from_fn_with_state(
        cross_origin,
        cors::cross_origin,
    ))
}

/// A span and metrics per request, labelled by route template, never by raw path.
async fn observe(matched: MatchedPath, request: Request, next: Next) -> Response {
    let method: &'static str = match request.method().as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    };
    let route = matched.as_str().to_owned();
    let span =
        tracing::info_span!("http.request", method, route = %route, status = tracing::field::Empty);
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("status", status);
    let labels = [("method", method.to_owned()), ("route", route)];
    metrics::histogram!(crate::metrics::HTTP_DURATION, &labels)
        .record(started.elapsed().as_secs_f64());
    let mut labels = labels.to_vec();
    labels.push(("status", status.to_string()));
    metrics::counter!(crate::metrics::HTTP_REQUESTS, &labels).increment(1);
    response
}

/// The caller of a request, from its `Authorization` header. A bad token is remembered, not
/// refused here, so that the error comes back as GraphQL with the code UNAUTHENTICATED.
pub fn caller(tokens: &Tokens, headers: &HeaderMap) -> Caller {
    match headers
        .get(header::AUTHORIZATION)
        .map(|value| value.to_str())
    {
        None => Caller::Anonymous,
        Some(Err(_)) => Caller::Rejected(AuthError::Malformed),
        Some(Ok(value)) => match tokens.verify_header(value) {
            Ok(principal) => Caller::Authenticated(principal),
            Err(error) => Caller::Rejected(error),
        },
    }
}

/// The address a request came from (`ConnectInfo`, set by `server::run`); `None` where the
/// router is served some other way.
pub struct Peer(Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(Peer(peer.map(|ConnectInfo(address)| address.ip())))
    }
}

async fn graphql_post(
    State(state): State<HttpState>,
    peer: Peer,
    media: MediaType,
    headers: HeaderMap,
    GraphQLBody(request): GraphQLBody,
) -> Response {
    execute(&state, peer, media, &headers, request).await
}

/// Executes a request as its caller, with the caller's read-your-writes requirement in scope:
/// within the caller's rate limit, and for queries within the query timeout. The answer is in
/// `media`, with the status the GraphQL-over-HTTP draft gives it (`media::graphql_response`).
async fn execute(
    state: &HttpState,
    Peer(peer): Peer,
    media: MediaType,
    headers: &HeaderMap,
    request: async_graphql::Request,
) -> Response {
    let caller = caller(&state.tokens, headers);
    let client = match &caller {
        Caller::Authenticated(principal) => Some(principal.subject.clone()),
        _ => None,
    };
    // A verified token's identity, else the peer: never the header's text, which one
    // credential can spell many ways.
    let limited = match &caller {
        Caller::Authenticated(principal) => Some(Client::Token(principal)),
        _ => peer.map(Client::Peer),
    };
    if let (Some(limiter), Some(limited)) = (&state.rate_limit, limited) {
        if let Err(retry_after) = limiter.check(limited) {
            return rate_limited(retry_after);
        }
    }
    let bounded = !is_mutation(&request);
    let request = request.data(caller);
    let executing = state
        .reads
        .scope(client.as_deref(), state.schema.execute(request));
    let response = if bounded {
        match tokio::time::timeout(state.query_timeout, executing).await {
            Ok(response) => response,
            // Stopped while executing: data null, not a request error.
            Err(_) => return media::graphql_response(media, timed_out(state.query_timeout), false),
        }
    } else {
        executing.await
    };
    let request_error = media::is_request_error(&response);
    media::graphql_response(media, response, request_error)
}

/// HTTP 429 with the GraphQL error RATE_LIMITED and when to try again.
fn rate_limited(retry_after: Duration) -> Response {
    metrics::counter!(crate::metrics::RATE_LIMITED, "transport" => "http").increment(1);
    let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
    let mut body = error_body(
        ErrorCode::RateLimited,
        "too many requests from this client; retry later",
    );
    body.0["errors"][0]["extensions"]["retryAfterSeconds"] = json!(seconds);
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, seconds.to_string())],
        body,
    )
        .into_response()
}

fn timed_out(limit: Duration) -> async_graphql::Response {
    use async_graphql::ErrorExtensions;
    let error = async_graphql::Error::new(format!(
        "the query took longer than {} ms and was stopped",
        limit.as_millis()
    ))
    .extend_with(|_, extensions| extensions.set("code", ErrorCode::Timeout.as_str()));
    async_graphql::Response::from_errors(vec![
        error.into_server_error(async_graphql::Pos::default())
    ])
}

/// GET: a WebSocket upgrade for subscriptions, or a query. A mutation through a link or an
/// image tag must never run. HEAD comes here too (axum routes it to the GET handler) and is
/// answered exactly as GET, its body then dropped (RFC 9110 § 9.3.2): a mutation is refused
/// the same way.
async fn graphql_get(
    State(state): State<HttpState>,
    peer: Peer,
    media: MediaType,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    request: Request,
) -> Response {
    if let Ok(upgrade) = upgrade {
        return websocket(state, &headers, upgrade);
    }
    let request = match GraphQLBody::from_request(request, &state).await {
        Ok(GraphQLBody(request)) => request,
        Err(rejection) => return rejection.into_response(),
    };
    if is_mutation(&request) {
        let refusal = Rejection::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "mutations must be sent with POST",
        );
        return ([(header::ALLOW, "POST")], refusal).into_response();
    }
    execute(&state, peer, media, &headers, request).await
}

/// Bytes read from a WebSocket at a time.
const READ_BUFFER: usize = 1024;

fn websocket(state: HttpState, headers: &HeaderMap, upgrade: WebSocketUpgrade) -> Response {
    // Any page can open a WebSocket to any server; only the server's own pages and listed
    // origins may (RFC 6455 § 10.2). Non-browser clients send no Origin and pass.
    if !state.cross_origin.admits_upgrade(headers) {
        metrics::counter!(crate::metrics::CONNECTIONS_REFUSED, "reason" => "origin").increment(1);
        let body = error_body(
            ErrorCode::Forbidden,
            "WebSocket connections from this Origin are not allowed (ORDERHUB_CORS_ORIGINS)",
        );
        return (StatusCode::FORBIDDEN, body).into_response();
    }
    // tungstenite zero-fills its whole read buffer (128 KiB by default) before each read: at
    // thousands of screens that alone is gigabytes. Client messages are small; a larger one
    // just takes more reads.
    let upgrade = upgrade
        .protocols([Protocol::TRANSPORT_WS, Protocol::LEGACY])
        .read_buffer_size(READ_BUFFER)
        .max_message_size(state.max_message_bytes);
    let Some(protocol) = upgrade
        .selected_protocol()
        .and_then(|name| name.to_str().ok())
        .and_then(Protocol::from_name)
    else {
        let message = "WebSocket subprotocol must be graphql-transport-ws or graphql-ws";
        return Rejection::bad_request(message).into_response();
    };
    let Ok(permit) = state.websockets.clone().try_acquire_owned() else {
        metrics::counter!(crate::metrics::CONNECTIONS_REFUSED, "reason" => "max_websockets")
            .increment(1);
        let body = error_body(
            ErrorCode::Unavailable,
            "this node has as many WebSocket connections as it accepts; retry shortly",
        );
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            body,
        )
            .into_response();
    };
    // A token on the upgrade request counts unless connection_init brings one.
    let upgrade_caller = caller(&state.tokens, headers);
    let services = state.ws;
    upgrade.on_upgrade(move |socket| async move {
        let delivery = services.delivery.clone();
        // Made here, not in the block: the block would keep its own copy of the arguments.
        let session = ws::serve(socket, protocol, upgrade_caller, services);
        let connection = async move {
            session.await;
            drop(permit);
        };
        match delivery {
            Some(delivery) => drop(delivery.spawn(connection)),
            None => connection.await,
        }
    })
}

/// Whether the operation the request would run is a mutation. Unparsable documents are left
/// to the executor, which reports the syntax error.
fn is_mutation(request: &async_graphql::Request) -> bool {
    // Deeper ones would exhaust the parser's stack; the executor refuses them unparsed.
    if crate::graphql::nesting(&request.query) > crate::graphql::MAX_NESTING {
        return false;
    }
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else {
        return false;
    };
    let is = |ty: OperationType| ty == OperationType::Mutation;
    match &document.operations {
        DocumentOperations::Single(operation) => is(operation.node.ty),
        DocumentOperations::Multiple(operations) => match &request.operation_name {
            Some(name) => operations
                .get(name.as_str())
                .is_some_and(|op| is(op.node.ty)),
            None => operations.values().any(|op| is(op.node.ty)),
        },
    }
}

/// `/metrics` alone, for `ORDERHUB_METRICS_LISTEN`.
pub fn metrics_router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics() -> Response {
    let body = crate::metrics::handle().render();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// The process is up.
async fn healthz() -> &'static str {
    "ok"
}

/// The node can serve: its store answers. A disconnected bus is reported as degraded but
/// still ready: commands keep working and channels catch up from the store.
async fn readyz(State(state): State<HttpState>) -> Response {
    let store = match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("no answer within 2 s".to_owned()),
    };
    let bus = if state.bus.connected() {
        "ok"
    } else {
        "degraded"
    };
    match store {
        Ok(()) => Json(json!({"status": "ready", "store": "ok", "bus": bus})).into_response(),
        Err(error) => {
            tracing::warn!(%error, "not ready: store");
            let body = json!({"status": "unavailable", "store": "unavailable", "bus": bus});
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}
