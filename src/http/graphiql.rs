//! GraphiQL at `/`, with its scripts embedded in the binary: no CDN, so it works in a
//! restaurant without internet. Vendored from the npm packages graphiql 3.8.3, react 18.3.1 and
//! react-dom 18.3.1 (licenses in assets/graphiql/LICENSES).

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("../../assets/graphiql/index.html");

/// Stored gzip-compressed, and served so: every browser GraphiQL supports accepts gzip.
const ASSETS: [(&str, &[u8], &str); 4] = [
    (
        "react.production.min.js",
        include_bytes!("../../assets/graphiql/react.production.min.js.gz"),
        JS,
    ),
    (
        "react-dom.production.min.js",
        include_bytes!("../../assets/graphiql/react-dom.production.min.js.gz"),
        JS,
    ),
    (
        "graphiql.min.js",
        include_bytes!("../../assets/graphiql/graphiql.min.js.gz"),
        JS,
    ),
    (
        "graphiql.min.css",
        include_bytes!("../../assets/graphiql/graphiql.min.css.gz"),
        CSS,
    ),
];
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/assets/graphiql/{file}", get(asset))
}

async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        INDEX,
    )
        .into_response()
}

async fn asset(Path(file): Path<String>) -> Response {
    match lookup(&file) {
        Some((bytes, content_type)) => (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CONTENT_ENCODING, "gzip"),
                (header::CACHE_CONTROL, "public, max-age=86400"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            bytes,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn lookup(file: &str) -> Option<(&'static [u8], &'static str)> {
    ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .map(|(_, bytes, content_type)| (*bytes, *content_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_the_page_loads_is_embedded() {
        for (name, bytes, _) in ASSETS {
            assert!(
                INDEX.contains(&format!("/assets/graphiql/{name}")),
                "{name} is not loaded"
            );
            assert_eq!(&bytes[..2], &[0x1f, 0x8b], "{name} is gzip");
        }
        assert_eq!(lookup("graphiql.min.css").map(|(_, t)| t), Some(CSS));
        assert!(lookup("../Cargo.toml").is_none());
    }
}
