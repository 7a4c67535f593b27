//! The screens: the kitchen display at `/kitchen`, the customer page at `/order` and the
//! manager screen at `/manage` (menu, tax, tables and a printable sheet of table QR codes). Plain
//! HTML, CSS and JavaScript embedded in the binary, no build step and no CDN; they speak only
//! the served GraphQL API, so they are also the reference client for other frontends.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// No inline script or style, nothing from elsewhere. `connect-src` names ws: and wss: because
/// older browsers do not count a WebSocket to the page's own host as `'self'`.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// Route and page.
const PAGES: [(&str, &str); 3] = [
    (
        "/kitchen",
        include_str!("../../assets/screens/kitchen.html"),
    ),
    ("/order", include_str!("../../assets/screens/order.html")),
    ("/manage", include_str!("../../assets/screens/manage.html")),
];

const ASSETS: [(&str, &str, &str); 6] = [
    (
        "client.js",
        include_str!("../../assets/screens/client.js"),
        JS,
    ),
    (
        "kitchen.js",
        include_str!("../../assets/screens/kitchen.js"),
        JS,
    ),
    (
        "order.js",
        include_str!("../../assets/screens/order.js"),
        JS,
    ),
    (
        "screens.css",
        include_str!("../../assets/screens/screens.css"),
        CSS,
    ),
    (
        "manage.js",
        include_str!("../../assets/screens/manage.js"),
        JS,
    ),
    (
        "manage.css",
        include_str!("../../assets/screens/manage.css"),
        CSS,
    ),
];

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new().route("/assets/screens/{file}", get(asset));
    for (path, html) in PAGES {
        router = router.route(path, get(move || async move { serve(html, HTML) }));
    }
    router
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, body, content_type)) => serve(body, content_type),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `no-cache`: a tablet that stays open all evening picks up a new version on its next load.
fn serve(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        body,
    )
        .into_response()
}
