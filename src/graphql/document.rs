//! Checks of a document that async-graphql does not make, or makes too late, done before it
//! parses and validates the document.
//!
//! - Nesting of brackets in the text (GRAPHQL_PARSE_FAILED): the parser recurses once per
//!   level, so a body of nothing but `[` would exhaust the stack.
//! - Size with fragments expanded, and fragment cycles (GRAPHQL_VALIDATION_FAILED): fragments
//!   that spread each other twice, thirty levels deep, are a few hundred bytes that expand to
//!   a billion fields. async-graphql follows every spread while it checks the recursion depth,
//!   before any validation rule or limit: such a document took 40 s of CPU per request.
//! - The spec's validation rules that async-graphql lacks or gets wrong (`super::rules`).
//! - Introspection when it is disabled: async-graphql then answers `__schema` and `__type`
//!   with a silent `null`; this refuses them, as Apollo does.
//! - Variables of non-null types without a value (`super::variables`): a request error before
//!   anything runs, not a field error once a field that uses them runs.

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest,
};
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, Selection, SelectionSet,
};
use async_graphql::{ErrorExtensions, Name, Pos, Request, ServerError, ServerResult};
use std::collections::HashMap;
use std::sync::Arc;

use super::error::{PARSE_FAILED, VALIDATION_FAILED};

/// Brackets (`{`, `[`, `(`) open at once: the deepest standard introspection query needs
/// about twenty.
pub const MAX_NESTING: usize = 64;

/// The deepest nesting of brackets outside strings and comments.
pub fn nesting(query: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut chars = query.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '#' => while chars.next_if(|c| *c != '\n' && *c != '\r').is_some() {},
            '"' => skip_string(&mut chars),
            '{' | '[' | '(' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            '}' | ']' | ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Past the rest of a string whose opening quote was just read: `"…"` or `"""…"""`.
pub(super) fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    if chars.next_if_eq(&'"').is_some() {
        if chars.next_if_eq(&'"').is_none() {
            return; // ""
        }
        let mut quotes = 0;
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    quotes = 0;
                    chars.next_if_eq(&'"');
                }
                '"' => {
                    quotes += 1;
                    if quotes == 3 {
                        return;
                    }
                }
                _ => quotes = 0,
            }
        }
        return;
    }
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '"' | '\n' => return,
            _ => {}
        }
    }
}

/// Fields in a document with every fragment spread expanded: far more than any screen asks for,
/// and than the standard introspection query (a few hundred).
pub const MAX_SELECTIONS: usize = 2_000;

pub struct DocumentRules {
    pub introspection: bool,
    /// The served schema, for the spec's rules that async-graphql lacks (`super::rules`).
    pub types: Arc<super::rules::Types>,
}

impl ExtensionFactory for DocumentRules {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DocumentRules {
            introspection: self.introspection,
            types: Arc::clone(&self.types),
        })
    }
}

fn refuse(message: &str, pos: Pos) -> ServerError {
    async_graphql::Error::new(message)
        .extend_with(|_, extensions| extensions.set("code", VALIDATION_FAILED.as_str()))
        .into_server_error(pos)
}

fn operations(document: &ExecutableDocument) -> Vec<(Pos, &SelectionSet)> {
    match &document.operations {
        DocumentOperations::Single(operation) => {
            vec![(operation.pos, &operation.node.selection_set.node)]
        }
        DocumentOperations::Multiple(operations) => operations
            .values()
            .map(|operation| (operation.pos, &operation.node.selection_set.node))
            .collect(),
    }
}

/// Counts fields as if every spread were replaced by its fragment, remembering each
/// fragment's count so that the counting itself stays linear. A spread of a fragment that is
/// being counted is a cycle.
struct Expanded<'a> {
    document: &'a ExecutableDocument,
    fragments: HashMap<&'a Name, Option<usize>>,
    cycle: Option<Pos>,
}

impl<'a> Expanded<'a> {
    fn count(&mut self, set: &'a SelectionSet) -> usize {
        set.items.iter().fold(0, |total, item| {
            let size = match &item.node {
                Selection::Field(field) => 1 + self.count(&field.node.selection_set.node),
                Selection::InlineFragment(fragment) => {
                    self.count(&fragment.node.selection_set.node)
                }
                Selection::FragmentSpread(spread) => {
                    let size = self.fragment(&spread.node.fragment_name.node);
                    if size.is_none() {
                        self.cycle.get_or_insert(spread.pos);
                    }
                    size.unwrap_or(0)
                }
            };
            total.saturating_add(size)
        })
    }

    /// `None` while the fragment is being counted.
    fn fragment(&mut self, name: &'a Name) -> Option<usize> {
        if let Some(size) = self.fragments.get(name) {
            return *size;
        }
        // An unknown fragment is for validation to report.
        let Some(fragment) = self.document.fragments.get(name) else {
            return Some(0);
        };
        self.fragments.insert(name, None);
        let size = self.count(&fragment.node.selection_set.node);
        self.fragments.insert(name, Some(size));
        Some(size)
    }
}

/// Where a selection asks for the schema, in an operation or a fragment.
fn introspection(document: &ExecutableDocument) -> Option<Pos> {
    let fragments = document
        .fragments
        .values()
        .map(|fragment| &fragment.node.selection_set.node);
    operations(document)
        .into_iter()
        .map(|(_, set)| set)
        .chain(fragments)
        .find_map(asks_for_schema)
}

/// Nesting is bounded: the parser refused documents deeper than the recursion limit.
fn asks_for_schema(set: &SelectionSet) -> Option<Pos> {
    set.items.iter().find_map(|item| match &item.node {
        Selection::Field(field) => match field.node.name.node.as_str() {
            "__schema" | "__type" => Some(field.pos),
            _ => asks_for_schema(&field.node.selection_set.node),
        },
        Selection::InlineFragment(fragment) => asks_for_schema(&fragment.node.selection_set.node),
        Selection::FragmentSpread(_) => None,
    })
}

/// Checks a parsed document (whose nesting was checked before it was parsed).
pub fn check(document: &ExecutableDocument, introspection_allowed: bool) -> ServerResult<()> {
    let mut expanded = Expanded {
        document,
        fragments: HashMap::new(),
        cycle: None,
    };
    let fragments = document
        .fragments
        .values()
        .map(|fragment| (fragment.pos, &fragment.node.selection_set.node));
    for (pos, set) in operations(document).into_iter().chain(fragments) {
        if expanded.count(set) > MAX_SELECTIONS {
            return Err(refuse(
                &format!("the document selects more than {MAX_SELECTIONS} fields once its fragments are expanded"),
                pos,
            ));
        }
        if let Some(pos) = expanded.cycle {
            return Err(refuse(
                "fragments must not spread each other in a cycle",
                pos,
            ));
        }
    }
    if !introspection_allowed {
        if let Some(pos) = introspection(document) {
            return Err(refuse("introspection is disabled on this server", pos));
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl Extension for DocumentRules {
    /// Before async-graphql parses: the document parsed here is the one it then uses.
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        if nesting(&request.query) > MAX_NESTING {
            let error = async_graphql::Error::new(format!(
                "the document nests brackets more than {MAX_NESTING} deep"
            ))
            .extend_with(|_, extensions| extensions.set("code", PARSE_FAILED.as_str()));
            return Err(error.into_server_error(Pos::default()));
        }
        if let Some(field) = super::rules::duplicate_input_field(&request.query) {
            // The parser kept neither field's position.
            let message = format!("an input object names its field {field} twice");
            let mut error = ServerError::new(message, None);
            let extensions = error.extensions.get_or_insert_with(Default::default);
            extensions.set("code", VALIDATION_FAILED.as_str());
            return Err(error);
        }
        // Taken out while the parsed document borrows the request, and put back.
        let variables = std::mem::take(&mut request.variables);
        let operation = request.operation_name.clone();
        let mut collected = None;
        match request.parsed_query() {
            Ok(document) => {
                check(document, self.introspection)?;
                super::rules::check(document, &self.types)?;
                let operation = operation.as_deref();
                let registry = &ctx.schema_env.registry;
                super::variables::check(registry, document, operation, &variables)?;
                collected =
                    super::rules::collect_subscription_root(document, operation, &variables);
            }
            Err(_) => {
                // A syntax error is left to async-graphql, which reports it with its
                // position; the parser's refusals that are validation rules are not.
                if let Some(error) = super::rules::parse_failure(&request.query) {
                    return Err(error);
                }
            }
        }
        request.variables = variables;
        if let Some(document) = collected {
            request.set_parsed_query(document);
        }
        next.run(ctx, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(query: &str) -> ServerResult<()> {
        check(
            &async_graphql::parser::parse_query(query).expect("parses"),
            true,
        )
    }

    #[test]
    fn fragments_count_as_often_as_they_are_spread() {
        let mut laughs = String::from("query { ...F30 } fragment F0 on Query { __typename } ");
        for level in 1..=30 {
            laughs.push_str(&format!(
                "fragment F{level} on Query {{ ...F{p} ...F{p} }} ",
                p = level - 1
            ));
        }
        assert!(checked(&laughs).is_err());
        let fields = "a: __typename ".repeat(MAX_SELECTIONS);
        assert!(checked(&format!("{{ {fields} }}")).is_ok());
        assert!(checked(&format!("{{ {fields} b: __typename }}")).is_err());
    }

    #[test]
    fn cycles_are_refused() {
        assert!(checked(
            "query { ...A } fragment A on Query { ...B ...B } fragment B on Query { ...A ...A }"
        )
        .is_err());
        assert!(checked("query { __typename } fragment A on Query { ...A }").is_err());
    }

    #[test]
    fn nesting_skips_strings_and_comments() {
        assert_eq!(nesting("{ a(x: [[1]]) { b } }"), 4);
        assert_eq!(
            nesting(
                r#"{ a(note: "{{{[[[\"{{") # {{{{
            { b(s: """ {{{ \""" {{ """) } }"#
            ),
            3
        );
        assert_eq!(nesting(&"[".repeat(100_000)), 100_000);
        assert_eq!(nesting("}}}{"), 1);
    }

    #[test]
    fn introspection_is_found_in_fragments_too() {
        let document = async_graphql::parser::parse_query(
            "query { ...F } fragment F on Query { ... on Query { __type(name: \"Order\") { name } } }",
        )
        .expect("parses");
        assert!(check(&document, true).is_ok());
        assert!(check(&document, false).is_err());
    }
}
