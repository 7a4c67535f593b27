//! Bytes as the body of `POST /graphql`: read as the server reads it, then parsed, validated
//! and executed against the served schema as an admin. Nothing may panic, and every error
//! that comes back carries a code.

#![no_main]

use libfuzzer_sys::fuzz_target;
use orderhub::graphql::{AppSchema, Caller};
use orderhub_actors::domain::Principal;
use std::sync::OnceLock;

fn schema() -> &'static AppSchema {
    static SCHEMA: OnceLock<AppSchema> = OnceLock::new();
    SCHEMA.get_or_init(|| orderhub::graphql::build(None))
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

fuzz_target!(|body: &[u8]| {
    let Ok(request) = orderhub::http::rejection::parse_body(body) else {
        return;
    };
    let request = request.data(Caller::Authenticated(Principal::admin("fuzz")));
    let response = runtime().block_on(schema().execute(request));
    for error in &response.errors {
        let code = error
            .extensions
            .as_ref()
            .and_then(|extensions| extensions.get("code"));
        assert!(code.is_some(), "an error without a code: {error:?}");
    }
});
