//! The GraphQL schema: the public contract (tests/contract/schema.graphql) and its resolvers.

mod document;
mod error;
mod events;
mod live;
mod menu;
mod nulls;
mod orders;
mod restaurants;
mod rules;
mod table_links;
mod telemetry;
mod types;
mod variables;

use async_graphql::{Context, MergedObject, Schema, ID};
use orderhub_actors::channel::ChannelRegistry;
use orderhub_actors::domain::Principal;
use orderhub_actors::domain::RestaurantId;
use orderhub_actors::ports::{Freshness, History, Owned, ReadRouter, Store};
use orderhub_actors::restaurant::{Reply, RestaurantMsg, RestaurantRegistry};
use orderhub_actors::ErrorCode;
use std::sync::Arc;

pub use document::{nesting, MAX_NESTING};
pub use error::{ApiError, ApiResult};
pub use events::{CatchUpTo, SharedExecution};
pub use live::{ending, expires_in, Rendered, Tag};
pub use nulls::failed_as_a_whole;
pub use table_links::{TableLinks, MAX_BASE_URL};

use crate::auth::AuthError;

#[derive(MergedObject, Default)]
pub struct Query(orders::OrderQuery, restaurants::RestaurantQuery);

#[derive(MergedObject, Default)]
pub struct Mutation(
    orders::OrderMutation,
    restaurants::RestaurantMutation,
    menu::MenuMutation,
);

pub type AppSchema = Schema<Query, Mutation, events::Subscription>;

/// What resolvers share: the store for reads, the registry for commands, the channels for
/// subscriptions.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn Store>,
    pub registry: RestaurantRegistry,
    pub channels: ChannelRegistry,
    /// Read-your-writes (commands tell it who wrote) and causal reads (`atLeastSeq`).
    pub reads: Arc<dyn ReadRouter>,
    /// Mints the customer links of `Restaurant.tableLinks`.
    pub table_links: TableLinks,
}

/// Who sent a request, attached per request by the transport.
#[derive(Debug, Clone)]
pub enum Caller {
    Anonymous,
    Authenticated(Principal),
    Rejected(AuthError),
}

/// Limits that refuse abusive documents yet admit the standard introspection queries of
/// GraphiQL and graphql-js (about 15 levels deep).
pub const MAX_DEPTH: usize = 16;
/// Complexity bounds the values a response may hold: each field counts 1, and a list counts
/// its selection as many times as it may hold elements — `orders` its `first`, an order's
/// `items` `MAX_LINES` — while lists the client cannot size (a menu, tables) count once.
/// The largest response the contract invites, a page of 100 orders of 100 lines each with
/// every field of the type (a line's options and an order's tax lines included), counts about
/// 193,000 (`tests/it/calibration.rs`); two such pages by aliases about 386,000. Aliases and
/// fragments that multiply fields are bounded by the fields a document may select as well
/// (`document::MAX_SELECTIONS`).
pub const MAX_COMPLEXITY: usize = 250_000;

/// How the schema is served, beyond its services.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchemaOptions {
    /// Refuse `__schema` and `__type` (GraphiQL needs them).
    pub disable_introspection: bool,
}

pub fn build(services: Option<Services>) -> AppSchema {
    build_with(services, SchemaOptions::default())
}

pub fn build_with(services: Option<Services>, options: SchemaOptions) -> AppSchema {
    // The spec's rules that async-graphql lacks read the served schema from its SDL, which
    // extensions do not change. It is this crate's own SDL: `rules::tests` parses it.
    let plain = Schema::build(Query::default(), Mutation::default(), events::Subscription).finish();
    let types = Arc::new(rules::Types::from_sdl(&plain.sdl()).unwrap_or_default());
    let mut builder = Schema::build(Query::default(), Mutation::default(), events::Subscription)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .limit_recursive_depth(32)
        .extension(telemetry::Telemetry)
        // Inside telemetry, so that operations are counted by the codes given here.
        .extension(error::ErrorCodes)
        // Inside both: what they see of an operation is its response as the spec shapes it.
        .extension(nulls::NullPropagation)
        .extension(document::DocumentRules {
            introspection: !options.disable_introspection,
            types,
        });
    if options.disable_introspection {
        builder = builder.disable_introspection();
    }
    if let Some(services) = services {
        builder = builder.data(services);
    }
    builder.finish()
}

/// The served SDL.
pub fn sdl() -> String {
    build(None).sdl()
}

pub(crate) fn services<'a>(ctx: &Context<'a>) -> ApiResult<&'a Services> {
    ctx.data::<Services>()
        .map_err(|_| ApiError::new(ErrorCode::Internal, "the schema was built without services"))
}

/// The caller's verified identity; every field of this API needs one.
pub(crate) fn principal<'a>(ctx: &Context<'a>) -> ApiResult<&'a Principal> {
    match ctx.data_opt::<Caller>() {
        Some(Caller::Authenticated(principal)) => Ok(principal),
        Some(Caller::Rejected(error)) => Err(error.clone().into()),
        Some(Caller::Anonymous) | None => Err(ApiError::unauthenticated(
            "send a token: Authorization: Bearer <token>",
        )),
    }
}

/// Parses a client-supplied id; malformed ones are bad input, not lookups.
pub(crate) fn parse_id<T>(field: &str, id: &ID, parse: fn(&str) -> Option<T>) -> ApiResult<T> {
    parse(id.as_str()).ok_or_else(|| ApiError::bad_input(format!("{field} is not a valid id")))
}

/// The restaurant an order, table or menu item belongs to, whose actor handles commands on it.
/// Things of restaurants the caller has no access to read as missing, exactly like things that
/// do not exist.
pub(crate) async fn owner(
    ctx: &Context<'_>,
    thing: Owned<'_>,
    what: &str,
) -> ApiResult<RestaurantId> {
    let by = principal(ctx)?;
    services(ctx)?
        .store
        .owner(thing)
        .await?
        .filter(|restaurant| by.may_view_restaurant(restaurant).is_ok())
        .ok_or_else(|| ApiError::not_found(what))
}

/// How fresh a read of `restaurant` must be to reflect its event `at_least_seq` (the
/// contract's `atLeastSeq`, described above `type Query`): a replica once it has applied that
/// event, else the writer; nobody waits. A seq beyond the restaurant's newest is
/// `BAD_USER_INPUT`: that is checked on the writer, which a read that cannot use the replica
/// goes to anyway.
pub(crate) async fn freshness(
    ctx: &Context<'_>,
    restaurant: &RestaurantId,
    at_least_seq: Option<i32>,
) -> ApiResult<Freshness> {
    let Some(seq) = at_least(at_least_seq)? else {
        return Ok(Freshness::Recent);
    };
    let services = services(ctx)?;
    let freshness = services.reads.freshness_for(restaurant, seq);
    if freshness == Freshness::Current {
        let newest = services
            .store
            .history(restaurant)
            .await?
            .map_or(0, |history| history.last_seq);
        reflects(seq, newest)?;
    }
    Ok(freshness)
}

/// `atLeastSeq` as a seq: 0 or more.
pub(crate) fn at_least(at_least_seq: Option<i32>) -> ApiResult<Option<i64>> {
    match at_least_seq {
        Some(seq) if seq.is_negative() => Err(ApiError::bad_input("atLeastSeq must be 0 or more")),
        seq => Ok(seq.map(i64::from)),
    }
}

/// `atLeastSeq` may name only an event that exists: at most `newest`.
pub(crate) fn reflects(at_least_seq: i64, newest: i64) -> ApiResult<()> {
    if !History::up_to(newest).has_had(at_least_seq) {
        return Err(ApiError::bad_input(format!(
            "atLeastSeq {at_least_seq} is past the restaurant's newest event, {newest}"
        )));
    }
    Ok(())
}

/// Runs a command on the restaurant's actor as the caller, and remembers that the caller
/// wrote, so that its next reads see the write even with a lagging replica.
pub(crate) async fn command<T: Send + 'static>(
    ctx: &Context<'_>,
    restaurant: &RestaurantId,
    message: impl Fn(Principal, Reply<T>) -> RestaurantMsg,
) -> ApiResult<T> {
    let by = principal(ctx)?;
    let services = services(ctx)?;
    let result = services
        .registry
        .call(restaurant, |reply| message(by.clone(), reply))
        .await;
    // Even a failed command may have committed (a timeout): assume it wrote.
    services.reads.client_wrote(&by.subject);
    Ok(result?)
}

#[cfg(test)]
mod architecture {
    /// Resolvers reach the store, its read routing and the actors through the core's ports
    /// and registries, never through an adapter module.
    #[test]
    fn resolvers_import_no_adapter() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/graphql");
        let files = std::fs::read_dir(dir).expect("src/graphql");
        for file in files {
            let path = file.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("source");
            // Spelled in pieces, so that this file does not match itself.
            let modules = ["store", "bus", "ws"].map(|m| format!("crate::{m}"));
            let crates = ["sqlx", "redis"].map(|c| format!("{c}::"));
            for adapter in modules.iter().chain(&crates) {
                assert!(
                    !text.contains(adapter.as_str()),
                    "{} uses {adapter}",
                    path.display()
                );
            }
        }
    }
}
