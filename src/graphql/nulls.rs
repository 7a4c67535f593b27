//! Responses that always have the shape of their query, as the GraphQL spec's "Handling Field
//! Errors" (October 2021, §6.4.4) has them: a field that raised an error is `null` and its
//! error is in `errors`; if the field's type is non-null, the null goes to the nearest
//! nullable parent (a field or a list item), and if there is none, `data` is `null`. A
//! selected key is never missing.
//!
//! async-graphql 7 does otherwise (`do_resolve_container` in `resolver_utils/container.rs`): a
//! field's error leaves the field's key out of its parent object, whatever the field's type,
//! and an object none of whose selections applies (`... on OrderPlaced` on a `StaffCalled`)
//! comes out as `null`, also where the type is non-null. Normalized client caches (Apollo,
//! urql, Relay) read a missing key as a cache miss or a parse error. [`NullPropagation`]
//! wraps every field's resolution (the `resolve` hook runs for each field and list item, with
//! its path and its type) and puts that right, for queries, mutations and each subscription
//! event alike.

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextResolve, ResolveInfo,
};
use async_graphql::{
    PathSegment, QueryPathNode, QueryPathSegment, Response, ServerError, ServerResult, Value,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The extension: one instance per request, or per subscription (whose `execute` runs once
/// per event, one event at a time).
pub struct NullPropagation;

impl ExtensionFactory for NullPropagation {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Propagation::default())
    }
}

#[derive(Default)]
struct Propagation {
    state: Mutex<State>,
    /// How many entries `State::unresolved` has: most fields never need the lock.
    unresolved: AtomicUsize,
}

#[derive(Default)]
struct State {
    /// The field errors of this execution, each with its path; they join the response.
    errors: Vec<ServerError>,
    /// Non-null positions that are null because of an error, waiting for their nearest
    /// nullable parent to become null in their place.
    unresolved: Vec<Vec<PathSegment>>,
}

impl Propagation {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn leave_unresolved(&self, path: Vec<PathSegment>) {
        // Counted under the lock, as `settle` and `finish` count down.
        let mut state = self.lock();
        state.unresolved.push(path);
        self.unresolved.fetch_add(1, Ordering::AcqRel);
    }

    /// Puts the unresolved nulls under the field at `path` (of type `ty`, resolved to `value`)
    /// in their place: the nearest nullable list item on the way, else the field itself if it
    /// is nullable; otherwise they stay unresolved, for the field's parents.
    fn settle(&self, path: &[PathSegment], ty: &FieldType<'_>, value: &mut Value) {
        let mut state = self.lock();
        let mut index = 0;
        while index < state.unresolved.len() {
            let null = &state.unresolved[index];
            if !null.starts_with(path) {
                index += 1;
                continue;
            }
            // The list indices between this field and the null: one per list level.
            let indices: Vec<usize> = null[path.len()..]
                .iter()
                .take(ty.lists())
                .map_while(|segment| match segment {
                    PathSegment::Index(i) => Some(*i),
                    PathSegment::Field(_) => None,
                })
                .collect();
            let nearest = (1..=indices.len())
                .rev()
                .find(|&depth| ty.nullable(depth))
                .or(ty.nullable(0).then_some(0));
            let Some(depth) = nearest else {
                index += 1;
                continue;
            };
            if let Some(slot) = at_mut(value, &indices[..depth]) {
                *slot = Value::Null;
            }
            let mut taken = path.to_vec();
            taken.extend(indices[..depth].iter().map(|&i| PathSegment::Index(i)));
            let before = state.unresolved.len();
            state.unresolved.retain(|null| !null.starts_with(&taken));
            self.unresolved
                .fetch_sub(before - state.unresolved.len(), Ordering::AcqRel);
        }
    }

    /// Ends one execution: its errors, and whether a null found no nullable parent.
    fn finish(&self) -> (Vec<ServerError>, bool) {
        let mut state = self.lock();
        let root_is_null = !state.unresolved.is_empty();
        state.unresolved.clear();
        self.unresolved.store(0, Ordering::Release);
        (std::mem::take(&mut state.errors), root_is_null)
    }
}

/// A field's type as the schema declares it (`[[Item!]]!`): whether the field and each list
/// level's items may be null, outermost first (bit 0 the field, bit n the items n lists
/// down), and the named type inside. Parsed for every field: no allocation.
struct FieldType<'a> {
    nullable: u64,
    lists: usize,
    name: &'a str,
}

impl<'a> FieldType<'a> {
    fn parse(mut ty: &'a str) -> Self {
        let (mut nullable, mut lists) = (0, 0);
        loop {
            if !ty.ends_with('!') && lists < 64 {
                nullable |= 1 << lists;
            }
            ty = ty.trim_end_matches('!');
            match ty.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
                Some(inner) => {
                    ty = inner;
                    lists += 1;
                }
                None => break,
            }
        }
        FieldType {
            nullable,
            lists,
            name: ty,
        }
    }

    /// Whether the items `depth` lists down (0: the field itself) may be null.
    fn nullable(&self, depth: usize) -> bool {
        depth < 64 && self.nullable & (1 << depth) != 0
    }

    /// How many list levels the field has.
    fn lists(&self) -> usize {
        self.lists
    }
}

/// The value at `indices` inside nested lists.
fn at_mut<'v>(mut value: &'v mut Value, indices: &[usize]) -> Option<&'v mut Value> {
    for &index in indices {
        value = match value {
            Value::List(items) => items.get_mut(index)?,
            _ => return None,
        };
    }
    Some(value)
}

/// Whether some value `depth` list levels down is null.
fn has_null(value: &Value, depth: usize) -> bool {
    match value {
        Value::Null => depth == 0,
        Value::List(items) if depth > 0 => items.iter().any(|item| has_null(item, depth - 1)),
        _ => false,
    }
}

/// Replaces every null `depth` list levels down with an empty object.
fn fill_empty(value: &mut Value, depth: usize) {
    match value {
        Value::Null if depth == 0 => *value = Value::Object(Default::default()),
        Value::List(items) if depth > 0 => {
            for item in items {
                fill_empty(item, depth - 1);
            }
        }
        _ => {}
    }
}

/// A response path, from the root, as errors carry it.
fn path_of(node: &QueryPathNode<'_>) -> Vec<PathSegment> {
    let mut path = Vec::new();
    let mut at = Some(node);
    while let Some(node) = at {
        path.push(match node.segment {
            QueryPathSegment::Name(name) => PathSegment::Field(name.to_owned()),
            QueryPathSegment::Index(index) => PathSegment::Index(index),
        });
        at = node.parent;
    }
    path.reverse();
    path
}

/// Whether the named type holds objects (`Order`, `RestaurantEvent`).
fn is_composite(ctx: &ExtensionContext<'_>, name: &str) -> bool {
    ctx.schema_env
        .registry
        .types
        .get(name)
        .is_some_and(|ty| ty.is_composite())
}

#[async_trait::async_trait]
impl Extension for Propagation {
    /// Runs for every field and every list item. A field's `return_type` comes from the
    /// schema; an item's is not to be trusted (async-graphql names the items of
    /// `Vec<Option<T>>` `T!`), so items are settled by their list's field.
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let node = info.path_node;
        let item = matches!(node.segment, QueryPathSegment::Index(_));
        let ty = FieldType::parse(info.return_type);
        match next.run(ctx, info).await {
            Ok(value) if item => Ok(value),
            Ok(value) => {
                let mut value = value.unwrap_or_default();
                let innermost = ty.lists();
                if !ty.nullable(innermost)
                    && has_null(&value, innermost)
                    && is_composite(ctx, ty.name)
                {
                    // Non-null, yet null without an error: an object none of whose selections
                    // applies, which async-graphql reads as null. It is an empty object.
                    fill_empty(&mut value, innermost);
                }
                if self.unresolved.load(Ordering::Acquire) > 0 {
                    self.settle(&path_of(node), &ty, &mut value);
                }
                Ok(Some(value))
            }
            Err(mut error) => {
                let path = path_of(node);
                if error.path.is_empty() {
                    error.path = path.clone();
                }
                self.lock().errors.push(error);
                if item || !ty.nullable(0) {
                    // Its list's field, or the parents' hooks, carry the null up.
                    self.leave_unresolved(path);
                }
                // The key stays, null.
                Ok(Some(Value::Null))
            }
        }
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        let (mut errors, root_is_null) = self.finish();
        if root_is_null {
            // No nullable parent up to the root: the whole data is null (§6.4.4).
            response.data = Value::Null;
        }
        errors.append(&mut response.errors);
        response.errors = errors;
        response
    }
}

/// Whether `response` failed as a whole: its `data` is null because of an error of a root
/// field itself, or of the request (no path), rather than a null that propagated up from a
/// field further down. Over a WebSocket the first is the operation's `error`; the second is
/// a result (`next`), and a subscription goes on after it.
pub fn failed_as_a_whole(response: &Response) -> bool {
    response.data == Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().any(|error| error.path.len() <= 1)
}

#[cfg(test)]
mod tests {
    //! The spec's rules on a schema made for them: every kind of position, and async-graphql
    //! alone beside it.
    use super::*;
    use async_graphql::futures_util::stream::{self, Stream, StreamExt};
    use async_graphql::{EmptyMutation, Interface, Object, Schema, SimpleObject, Subscription};
    use serde_json::{json, Value as Json};

    struct Item(i32);

    #[Object]
    impl Item {
        async fn n(&self) -> &i32 {
            &self.0
        }
        /// Fails for odd items.
        async fn nullable(&self) -> async_graphql::Result<Option<i32>> {
            match self.0 % 2 {
                0 => Ok(Some(self.0)),
                _ => Err("odd".into()),
            }
        }
        /// Fails for odd items.
        async fn required(&self) -> async_graphql::Result<i32> {
            match self.0 % 2 {
                0 => Ok(self.0),
                _ => Err("odd".into()),
            }
        }
        async fn child(&self) -> Item {
            Item(self.0 + 1)
        }
        async fn maybe_child(&self) -> Option<Item> {
            Some(Item(self.0 + 1))
        }
    }

    #[derive(SimpleObject)]
    struct Plain {
        n: i32,
    }

    #[derive(Interface)]
    #[graphql(field(name = "n", ty = "&i32"))]
    enum Thing {
        Item(Item),
        Plain(Plain),
    }

    struct Query;

    #[Object]
    impl Query {
        async fn item(&self, n: i32) -> Option<Item> {
            Some(Item(n))
        }
        async fn required_item(&self, n: i32) -> Item {
            Item(n)
        }
        async fn items(&self) -> Vec<Item> {
            (0..3).map(Item).collect()
        }
        async fn maybe_items(&self) -> Vec<Option<Item>> {
            (0..3).map(|n| Some(Item(n))).collect()
        }
        async fn sparse(&self) -> Vec<Option<Item>> {
            vec![Some(Item(0)), None]
        }
        async fn plain(&self) -> Thing {
            Thing::Plain(Plain { n: 7 })
        }
        async fn forbidden(&self) -> async_graphql::Result<Option<i32>> {
            Err("forbidden".into())
        }
    }

    struct Events;

    #[Subscription]
    impl Events {
        async fn items(&self) -> impl Stream<Item = Item> {
            stream::iter([Item(2), Item(1), Item(4)])
        }
    }

    type TestSchema = Schema<Query, EmptyMutation, Events>;

    fn schema(with_propagation: bool) -> TestSchema {
        let builder = Schema::build(Query, EmptyMutation, Events);
        match with_propagation {
            true => builder.extension(NullPropagation).finish(),
            false => builder.finish(),
        }
    }

    /// `data`, and each error's message and path.
    fn shape(response: Response) -> (Json, Vec<(String, Json)>) {
        let errors = response
            .errors
            .iter()
            .map(|e| (e.message.clone(), json!(e.path)))
            .collect();
        (json!(response.data), errors)
    }

    async fn run(query: &str) -> (Json, Vec<(String, Json)>) {
        shape(schema(true).execute(query).await)
    }

    #[tokio::test]
    async fn alone_async_graphql_leaves_an_errored_field_out() {
        let response = schema(false).execute("{ item(n: 1) { n nullable } }").await;
        assert_eq!(json!(response.data), json!({"item": {"n": 1}}));
        let response = schema(false)
            .execute("{ plain { ... on Item { n } } }")
            .await;
        assert_eq!(json!(response.data), json!({"plain": null}));
    }

    #[tokio::test]
    async fn an_errored_nullable_field_is_null_and_its_key_stays() {
        let (data, errors) = run("{ item(n: 1) { n nullable } }").await;
        assert_eq!(data, json!({"item": {"n": 1, "nullable": null}}));
        assert_eq!(errors, [("odd".to_owned(), json!(["item", "nullable"]))]);
        let (data, errors) = run("{ forbidden item(n: 2) { n } }").await;
        assert_eq!(data, json!({"forbidden": null, "item": {"n": 2}}));
        assert_eq!(errors, [("forbidden".to_owned(), json!(["forbidden"]))]);
    }

    #[tokio::test]
    async fn a_non_null_null_goes_to_the_nearest_nullable_parent() {
        // item is nullable: it takes the null.
        let (data, errors) = run("{ item(n: 1) { n required } other: item(n: 2) { n } }").await;
        assert_eq!(data, json!({"item": null, "other": {"n": 2}}));
        assert_eq!(errors, [("odd".to_owned(), json!(["item", "required"]))]);
        // Through a non-null child to the nullable one above it.
        let (data, errors) = run("{ item(n: 0) { n child { required } } }").await;
        assert_eq!(data, json!({"item": null}));
        assert_eq!(
            errors,
            [("odd".to_owned(), json!(["item", "child", "required"]))]
        );
        // A nullable child is nearer.
        let (data, _) = run("{ item(n: 0) { n maybeChild { n required } } }").await;
        assert_eq!(data, json!({"item": {"n": 0, "maybeChild": null}}));
    }

    #[tokio::test]
    async fn without_a_nullable_parent_data_is_null() {
        let (data, errors) = run("{ requiredItem(n: 1) { required } item(n: 2) { n } }").await;
        assert_eq!(data, Json::Null);
        assert_eq!(
            errors,
            [("odd".to_owned(), json!(["requiredItem", "required"]))]
        );
    }

    #[tokio::test]
    async fn in_lists_the_item_or_the_list_takes_the_null() {
        // [Item!]!: item 1's null goes through the item and the list to the root.
        let (data, errors) = run("{ items { n required } }").await;
        assert_eq!(data, Json::Null);
        assert_eq!(
            errors,
            [("odd".to_owned(), json!(["items", 1, "required"]))]
        );
        // [Item]!: item 1 alone is null.
        let (data, _) = run("{ maybeItems { n required } }").await;
        assert_eq!(
            data,
            json!({"maybeItems": [{"n": 0, "required": 0}, null, {"n": 2, "required": 2}]})
        );
        // A nullable field inside the items: null in place, every item kept.
        let (data, errors) = run("{ items { n nullable } }").await;
        assert_eq!(
            data,
            json!({"items": [{"n": 0, "nullable": 0}, {"n": 1, "nullable": null}, {"n": 2, "nullable": 2}]})
        );
        assert_eq!(
            errors,
            [("odd".to_owned(), json!(["items", 1, "nullable"]))]
        );
        // A missing item of [Item]! stays null, not an empty object.
        let (data, errors) = run("{ sparse { n } }").await;
        assert_eq!(data, json!({"sparse": [{"n": 0}, null]}));
        assert!(errors.is_empty());
    }

    #[tokio::test]
    async fn an_object_none_of_whose_selections_applies_is_empty_not_null() {
        let (data, errors) = run("{ plain { ... on Item { n } } }").await;
        assert_eq!(data, json!({"plain": {}}));
        assert!(errors.is_empty());
        let (data, _) = run("{ plain { ... on Plain { n } } }").await;
        assert_eq!(data, json!({"plain": {"n": 7}}));
    }

    #[tokio::test]
    async fn each_subscription_event_is_shaped_on_its_own() {
        let events: Vec<_> = schema(true)
            .execute_stream("subscription { items { n required } }")
            .map(shape)
            .collect()
            .await;
        assert_eq!(
            events[0],
            (json!({"items": {"n": 2, "required": 2}}), vec![])
        );
        assert_eq!(
            events[1],
            (
                Json::Null,
                vec![("odd".to_owned(), json!(["items", "required"]))]
            )
        );
        assert_eq!(
            events[2],
            (json!({"items": {"n": 4, "required": 4}}), vec![])
        );
        let nested: Vec<_> = schema(true)
            .execute_stream("subscription { items { n maybeChild { required } } }")
            .map(shape)
            .collect()
            .await;
        assert_eq!(nested[0].0, json!({"items": {"n": 2, "maybeChild": null}}));
        assert_eq!(
            nested[0].1,
            [("odd".to_owned(), json!(["items", "maybeChild", "required"]))]
        );
        assert_eq!(
            nested[1],
            (
                json!({"items": {"n": 1, "maybeChild": {"required": 2}}}),
                vec![]
            )
        );
    }

    #[test]
    fn a_field_type_tells_which_levels_may_be_null() {
        let ty = FieldType::parse("[[Item!]]!");
        assert_eq!((ty.lists(), ty.name), (2, "Item"));
        assert_eq!(
            [ty.nullable(0), ty.nullable(1), ty.nullable(2)],
            [false, true, false]
        );
        let ty = FieldType::parse("Restaurant");
        assert_eq!(
            (ty.lists(), ty.name, ty.nullable(0)),
            (0, "Restaurant", true)
        );
    }

    #[test]
    fn only_a_root_or_request_error_fails_a_response_as_a_whole() {
        let error = |path: Vec<PathSegment>| ServerError {
            path,
            ..ServerError::new("x", None)
        };
        let field = |name: &str| PathSegment::Field(name.to_owned());
        let with = Response::from_errors;
        assert!(failed_as_a_whole(&with(vec![error(vec![])])));
        assert!(failed_as_a_whole(&with(vec![error(vec![field("a")])])));
        assert!(!failed_as_a_whole(&with(vec![error(vec![
            field("a"),
            field("b")
        ])])));
        assert!(!failed_as_a_whole(&Response::new(Value::Null)));
    }
}
