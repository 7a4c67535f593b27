//! Per operation: a span, a count by type, name and outcome, and a duration. Per field with a
//! real resolver: a span and a duration. Plain fields read off an already loaded object are
//! not timed: async-graphql calls `resolve` for every field, and has no "real resolver" flag
//! (async-graphql#1721), hence the allow-list.

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextRequest,
    NextResolve, NextSubscribe, ResolveInfo,
};
use async_graphql::futures_util::stream::BoxStream;
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType};
use async_graphql::{Response, ServerResult, Value, Variables};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;
use tracing::Instrument;

use crate::metrics::{OPERATIONS, OPERATION_DURATION, RESOLVER_DURATION};

/// (parent type, field) of every field that does work of its own: reads the store or calls
/// an actor.
const REAL_RESOLVERS: &[(&str, &str)] = &[
    ("Query", "restaurant"),
    ("Query", "order"),
    ("Query", "orders"),
    ("Restaurant", "menu"),
    ("Restaurant", "tables"),
    ("Mutation", "placeOrder"),
    ("Mutation", "advanceOrder"),
    ("Mutation", "cancelOrder"),
    ("Mutation", "setMenuItemAvailability"),
    ("Mutation", "callStaff"),
    ("Mutation", "createRestaurant"),
    ("Mutation", "createTable"),
    ("Mutation", "createMenuItem"),
];

/// Operation names are client-chosen: at most this many distinct ones become label values.
const MAX_OPERATION_NAMES: usize = 200;

pub struct Telemetry;

impl ExtensionFactory for Telemetry {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(TelemetryExtension {
            operation: Mutex::new(None),
        })
    }
}

struct TelemetryExtension {
    /// (type, name) of the operation, once the document is parsed.
    operation: Mutex<Option<(&'static str, String)>>,
}

fn kind(ty: OperationType) -> &'static str {
    match ty {
        OperationType::Query => "query",
        OperationType::Mutation => "mutation",
        OperationType::Subscription => "subscription",
    }
}

/// A bounded label value for a client-chosen operation name.
fn label_for(name: Option<&str>) -> String {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let Some(name) = name else {
        return "anonymous".into();
    };
    if name.len() > 64 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return "invalid".into();
    }
    let mut seen = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if seen.contains(name) || seen.len() < MAX_OPERATION_NAMES {
        seen.insert(name.to_owned());
        name.to_owned()
    } else {
        "other".into()
    }
}

fn outcome(response: &Response) -> String {
    match response.errors.first() {
        None => "ok".into(),
        Some(error) => error
            .extensions
            .as_ref()
            .and_then(|extensions| extensions.get("code"))
            .and_then(|code| match code {
                Value::String(code) if code.len() <= 32 => Some(code.clone()),
                _ => None,
            })
            .unwrap_or_else(|| "INVALID_REQUEST".into()),
    }
}

impl TelemetryExtension {
    fn operation(&self) -> (&'static str, String) {
        self.operation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or(("unknown", "unknown".into()))
    }
}

#[async_trait::async_trait]
impl Extension for TelemetryExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let span = tracing::info_span!(
            "graphql.operation",
            operation.kind = tracing::field::Empty,
            operation.name = tracing::field::Empty,
        );
        let started = Instant::now();
        let response = next.run(ctx).instrument(span.clone()).await;
        let (ty, name) = self.operation();
        span.record("operation.kind", ty);
        span.record("operation.name", name.as_str());
        let labels = [("type", ty.to_owned()), ("operation", name)];
        metrics::histogram!(OPERATION_DURATION, &labels).record(started.elapsed().as_secs_f64());
        let mut labels = labels.to_vec();
        labels.push(("outcome", outcome(&response)));
        metrics::counter!(OPERATIONS, &labels).increment(1);
        response
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        // Counted once per subscription when it is set up; execute runs once per event.
        metrics::counter!(OPERATIONS, "type" => "subscription", "operation" => "subscribe", "outcome" => "started")
            .increment(1);
        next.run(ctx, stream)
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        if let DocumentOperations::Single(operation) = &document.operations {
            *self.operation.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((kind(operation.node.ty), label_for(None)));
        }
        Ok(document)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let ty = self
            .operation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(ty, _)| *ty);
        let ty = ty.unwrap_or(if operation_name.is_some() {
            "query"
        } else {
            "unknown"
        });
        *self.operation.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((ty, label_for(operation_name)));
        next.run(ctx, operation_name).await
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        if !REAL_RESOLVERS.contains(&(info.parent_type, info.name)) {
            return next.run(ctx, info).await;
        }
        let field = format!("{}.{}", info.parent_type, info.name);
        let span = tracing::info_span!("graphql.resolve", field = %field);
        let started = Instant::now();
        let result = next.run(ctx, info).instrument(span).await;
        metrics::histogram!(RESOLVER_DURATION, "field" => field)
            .record(started.elapsed().as_secs_f64());
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_are_bounded_labels() {
        assert_eq!(label_for(None), "anonymous");
        assert_eq!(label_for(Some("Menu")), "Menu");
        assert_eq!(label_for(Some("drop table; --")), "invalid");
        assert_eq!(label_for(Some(&"x".repeat(65))), "invalid");
    }
}
