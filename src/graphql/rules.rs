//! The validation rules of the GraphQL spec (October 2021, section 5) that async-graphql 7
//! lacks or gets wrong, checked over the parsed document before its own validation. A document
//! that breaks one is refused with `GRAPHQL_VALIDATION_FAILED` and never executed, over HTTP and
//! WebSocket alike. `tests/it/validation.rs` sends one document per rule; graphql-js refuses
//! the same ones.
//!
//! - §5.2.1.1 Operation Name Uniqueness, §5.2.2.1 Lone Anonymous Operation, §5.5.1.1 Fragment
//!   Name Uniqueness: async-graphql's parser refuses these as syntax errors; they are validation
//!   errors (`parse_failure`).
//! - §5.2.3.1 Single Root Field: not checked at all; two root fields, aliases of one, fields
//!   from fragments and `__typename` all count (`single_root_field`).
//! - §5.3.2 Field Selection Merging: async-graphql compares only the names and arguments of
//!   fields side by side, never their sub-selections, nor the response shapes of fields on
//!   different object types (`Merging`).
//! - §5.6.1 Values of Correct Type: async-graphql takes a string literal for an enum value
//!   (`Values::value`).
//! - §5.6.3 Input Object Field Uniqueness: the parser keeps the last of two fields of one name,
//!   so the rule is checked over the text (`duplicate_input_field`).
//! - §5.8.5 All Variable Usages Are Allowed: async-graphql's rule reports nothing, so a
//!   nullable variable reached a non-null argument, and a wrong one reached a resolver
//!   (`Values::usages_allowed`).
//! - Beyond section 5, §6.1.2 CoerceVariableValues: async-graphql coerces a variable's value
//!   when its field runs, after the fields before it ran (checked in `super::variables`).
//! - Beyond section 5, §6.2.3: async-graphql runs only the root fields written directly in a
//!   subscription, so one inside a fragment never ran and `@skip` there was ignored
//!   (`collect_subscription_root`).
//!
//! graphql-js 16 (`tests/contract/validate.mjs`) agrees with the spec on every document of the
//! test; were they to disagree, the spec decides. Past the spec, one limit: fields of one
//! response key are compared at most `MERGE_BUDGET` times, like the document's size a bound.

use async_graphql::parser::types::{
    BaseType, DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet, Type,
    TypeKind, TypeSystemDefinition,
};
use async_graphql::parser::types::{
    Directive, Field, InlineFragment, OperationDefinition, VariableDefinition,
};
use async_graphql::parser::Positioned;
use async_graphql::{ErrorExtensions, Name, Pos, ServerError, ServerResult};
use async_graphql_value::{ConstValue, Value};
use std::collections::{HashMap, HashSet};

use super::error::VALIDATION_FAILED;

fn refuse(message: impl Into<String>, pos: Pos) -> ServerError {
    async_graphql::Error::new(message)
        .extend_with(|_, extensions| extensions.set("code", VALIDATION_FAILED.as_str()))
        .into_server_error(pos)
}

/// The rules async-graphql's parser checks as if they were syntax: §5.2.1.1, §5.2.2.1 and
/// §5.5.1.1, and a document with no operation (graphql-js: §5.5.1.4, its fragments are unused).
pub fn parse_failure(query: &str) -> Option<ServerError> {
    use async_graphql::parser::Error;
    let error = async_graphql::parser::parse_query(query).err()?;
    let pos = error.positions().next().unwrap_or_default();
    match error {
        Error::MultipleOperations { .. } => Some(refuse(
            "an anonymous operation must be the only operation in its document",
            pos,
        )),
        Error::OperationDuplicated { .. } | Error::FragmentDuplicated { .. } => {
            Some(refuse(error.to_string(), pos))
        }
        Error::MissingOperation => Some(refuse(error.to_string(), pos)),
        _ => None,
    }
}

/// §5.6.3: the first input object literal that names a field twice. The parser keeps only
/// the last of the two, so this reads the text: a `{` opened inside arguments, a list or
/// another object is an object value, and a name followed by `:` directly inside one is a
/// field of it.
pub fn duplicate_input_field(query: &str) -> Option<String> {
    enum Open {
        Selection,
        Value,
        Object(HashSet<String>),
    }
    let mut stack: Vec<Open> = Vec::new();
    // The name just read, if nothing but blanks came after it, and whether `$` preceded it.
    let mut last_name: Option<(String, bool)> = None;
    let mut dollar = false;
    let mut chars = query.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' | ',' | '\u{feff}' => continue,
            '#' => {
                while chars.next_if(|c| *c != '\n' && *c != '\r').is_some() {}
                continue;
            }
            _ => {}
        }
        let name = match c {
            '"' => {
                super::document::skip_string(&mut chars);
                None
            }
            '{' => {
                let value = matches!(stack.last(), Some(Open::Value | Open::Object(_)));
                stack.push(if value {
                    Open::Object(HashSet::new())
                } else {
                    Open::Selection
                });
                None
            }
            '(' | '[' => {
                stack.push(Open::Value);
                None
            }
            '}' | ')' | ']' => {
                stack.pop();
                None
            }
            ':' => {
                if let (Some((key, false)), Some(Open::Object(keys))) =
                    (last_name.take(), stack.last_mut())
                {
                    if !keys.insert(key.clone()) {
                        return Some(key);
                    }
                }
                None
            }
            c if c == '_' || c.is_ascii_alphabetic() => {
                let mut word = String::from(c);
                while let Some(c) = chars.next_if(|c| *c == '_' || c.is_ascii_alphanumeric()) {
                    word.push(c);
                }
                Some((word, dollar))
            }
            c if c == '-' || c.is_ascii_digit() => {
                while chars
                    .next_if(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-'))
                    .is_some()
                {}
                None
            }
            _ => None,
        };
        dollar = c == '$';
        last_name = name;
    }
    None
}

/// What the rules need of the served schema, read from its SDL.
#[derive(Debug, Default)]
pub struct Types {
    types: HashMap<String, Kind>,
    directives: HashMap<String, HashMap<String, Input>>,
    query: String,
    mutation: String,
    subscription: String,
}

#[derive(Debug)]
enum Kind {
    Scalar,
    Enum(HashSet<String>),
    /// Objects and interfaces; `object` is false for an interface.
    Composite {
        object: bool,
        fields: HashMap<String, Output>,
    },
    Union,
    Input(HashMap<String, Input>),
}

#[derive(Debug)]
struct Output {
    ty: Type,
    args: HashMap<String, Input>,
}

/// An argument or an input object field.
#[derive(Debug)]
struct Input {
    ty: Type,
    has_default: bool,
}

fn inputs(
    definitions: &[Positioned<async_graphql::parser::types::InputValueDefinition>],
) -> HashMap<String, Input> {
    definitions
        .iter()
        .map(|d| {
            let d = &d.node;
            let input = Input {
                ty: d.ty.node.clone(),
                has_default: d.default_value.is_some(),
            };
            (d.name.node.to_string(), input)
        })
        .collect()
}

impl Types {
    /// Reads the served SDL.
    pub fn from_sdl(sdl: &str) -> Result<Types, async_graphql::parser::Error> {
        let document = async_graphql::parser::parse_schema(sdl)?;
        let mut types = Types {
            query: "Query".into(),
            mutation: "Mutation".into(),
            subscription: "Subscription".into(),
            ..Types::default()
        };
        for scalar in ["Int", "Float", "String", "Boolean", "ID"] {
            types.types.insert(scalar.into(), Kind::Scalar);
        }
        for definition in document.definitions {
            match definition {
                TypeSystemDefinition::Schema(schema) => {
                    let schema = schema.node;
                    let roots = [
                        (schema.query, &mut types.query),
                        (schema.mutation, &mut types.mutation),
                        (schema.subscription, &mut types.subscription),
                    ];
                    for (name, root) in roots {
                        if let Some(name) = name {
                            *root = name.node.to_string();
                        }
                    }
                }
                TypeSystemDefinition::Directive(directive) => {
                    let directive = directive.node;
                    let args = inputs(&directive.arguments);
                    types
                        .directives
                        .insert(directive.name.node.to_string(), args);
                }
                TypeSystemDefinition::Type(definition) => {
                    let definition = definition.node;
                    let composite = |object,
                                     fields: &[Positioned<
                        async_graphql::parser::types::FieldDefinition,
                    >]| Kind::Composite {
                        object,
                        fields: fields
                            .iter()
                            .map(|f| {
                                let output = Output {
                                    ty: f.node.ty.node.clone(),
                                    args: inputs(&f.node.arguments),
                                };
                                (f.node.name.node.to_string(), output)
                            })
                            .collect(),
                    };
                    let kind = match definition.kind {
                        TypeKind::Scalar => Kind::Scalar,
                        TypeKind::Object(object) => composite(true, &object.fields),
                        TypeKind::Interface(interface) => composite(false, &interface.fields),
                        TypeKind::Union(_) => Kind::Union,
                        TypeKind::Enum(values) => Kind::Enum(
                            values
                                .values
                                .iter()
                                .map(|v| v.node.value.node.to_string())
                                .collect(),
                        ),
                        TypeKind::InputObject(input) => Kind::Input(inputs(&input.fields)),
                    };
                    types.types.insert(definition.name.node.to_string(), kind);
                }
            }
        }
        Ok(types)
    }

    fn field(&self, parent: &str, name: &str) -> Option<&Output> {
        match self.types.get(parent)? {
            Kind::Composite { fields, .. } => fields.get(name),
            _ => None,
        }
    }

    fn is_object(&self, name: &str) -> bool {
        matches!(
            self.types.get(name),
            Some(Kind::Composite { object: true, .. })
        )
    }

    fn is_leaf(&self, name: &str) -> bool {
        matches!(self.types.get(name), Some(Kind::Scalar | Kind::Enum(_)))
    }

    fn root(&self, ty: OperationType) -> &str {
        match ty {
            OperationType::Query => &self.query,
            OperationType::Mutation => &self.mutation,
            OperationType::Subscription => &self.subscription,
        }
    }
}

fn named(ty: &Type) -> &str {
    match &ty.base {
        BaseType::Named(name) => name.as_str(),
        BaseType::List(item) => named(item),
    }
}

fn operations(document: &ExecutableDocument) -> Vec<&Positioned<OperationDefinition>> {
    match &document.operations {
        DocumentOperations::Single(op) => vec![op],
        DocumentOperations::Multiple(ops) => ops.values().collect(),
    }
}

/// Checks every rule below over a parsed document whose size and fragment cycles were checked.
pub fn check(document: &ExecutableDocument, types: &Types) -> ServerResult<()> {
    for op in operations(document) {
        let (ty, pos, set) = (op.node.ty, op.pos, &op.node.selection_set.node);
        let variables = op.node.variable_definitions.as_slice();
        if ty == OperationType::Subscription {
            single_root_field(document, set, pos)?;
        }
        let root = types.root(ty);
        let mut values = Values {
            types,
            document,
            visited: HashSet::new(),
            usages: Vec::new(),
        };
        values.selection_set(set, root)?;
        values.usages_allowed(variables)?;
        // §5.6.1 for default values: async-graphql takes a string for an enum there too.
        for definition in variables {
            if let Some(default) = &definition.node.default_value {
                let default = default.node.clone().into_value();
                let mut values = Values {
                    types,
                    document,
                    visited: HashSet::new(),
                    usages: Vec::new(),
                };
                let ty = &definition.node.var_type.node;
                values.value(&default, ty, false, definition.pos)?;
            }
        }
        let mut merging = Merging {
            types,
            document,
            budget: MERGE_BUDGET,
        };
        merging.set_can_merge(vec![(set, root.to_owned())])?;
    }
    Ok(())
}

/// §5.2.3.1: a subscription's selection, its fragments' fields included, has exactly one
/// response key, and it is not an introspection field.
fn single_root_field(
    document: &ExecutableDocument,
    set: &SelectionSet,
    pos: Pos,
) -> ServerResult<()> {
    fn collect<'a>(
        document: &'a ExecutableDocument,
        set: &'a SelectionSet,
        keys: &mut Vec<(&'a Name, &'a Name)>,
        visited: &mut HashSet<&'a Name>,
    ) {
        for item in &set.items {
            if excluded(item_directives(&item.node)) {
                continue;
            }
            match &item.node {
                Selection::Field(field) => {
                    let key = field.node.response_key();
                    if keys.iter().all(|(k, _)| *k != &key.node) {
                        keys.push((&key.node, &field.node.name.node));
                    }
                }
                Selection::InlineFragment(fragment) => {
                    collect(document, &fragment.node.selection_set.node, keys, visited)
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    if let Some(fragment) = document.fragments.get(name) {
                        if visited.insert(name) {
                            collect(document, &fragment.node.selection_set.node, keys, visited);
                        }
                    }
                }
            }
        }
    }
    let mut keys = Vec::new();
    collect(document, set, &mut keys, &mut HashSet::new());
    match keys.as_slice() {
        [(_, name)] if name.starts_with("__") => Err(refuse(
            format!("a subscription must not select the introspection field {name} at its root"),
            pos,
        )),
        [_] => Ok(()),
        _ => Err(refuse(
            "a subscription must select exactly one root field",
            pos,
        )),
    }
}

fn item_directives(item: &Selection) -> &[Positioned<Directive>] {
    match item {
        Selection::Field(f) => &f.node.directives,
        Selection::InlineFragment(f) => &f.node.directives,
        Selection::FragmentSpread(f) => &f.node.directives,
    }
}

/// Whether `@skip(if: true)` or `@include(if: false)` leaves a selection out. The spec's
/// CollectFields for §5.2.3.1 runs with no variable values, so only literals decide; a
/// selection whose condition is a variable counts.
fn excluded(directives: &[Positioned<Directive>]) -> bool {
    directives.iter().any(|directive| {
        let condition = directive.node.get_argument("if").map(|v| &v.node);
        matches!(
            (directive.node.name.node.as_str(), condition),
            ("skip", Some(Value::Boolean(true))) | ("include", Some(Value::Boolean(false)))
        )
    })
}

/// A variable where a value of `ty` goes, and whether that place has a default.
struct Usage<'a> {
    variable: &'a Name,
    ty: &'a Type,
    has_default: bool,
    pos: Pos,
}

/// §5.6.1 over literals, collecting variable usages for §5.8.5.
struct Values<'a> {
    types: &'a Types,
    document: &'a ExecutableDocument,
    visited: HashSet<&'a Name>,
    usages: Vec<Usage<'a>>,
}

impl<'a> Values<'a> {
    fn selection_set(&mut self, set: &'a SelectionSet, parent: &str) -> ServerResult<()> {
        for item in &set.items {
            for directive in item_directives(&item.node) {
                let Some(args) = self.types.directives.get(directive.node.name.node.as_str())
                else {
                    continue; // §5.7.1 is async-graphql's
                };
                for (name, value) in &directive.node.arguments {
                    if let Some(arg) = args.get(name.node.as_str()) {
                        self.value(&value.node, &arg.ty, arg.has_default, value.pos)?;
                    }
                }
            }
            match &item.node {
                Selection::Field(field) => {
                    // Unknown fields and arguments are async-graphql's (§5.3.1, §5.4.1).
                    let Some(output) = self.types.field(parent, &field.node.name.node) else {
                        continue;
                    };
                    for (name, value) in &field.node.arguments {
                        if let Some(arg) = output.args.get(name.node.as_str()) {
                            self.value(&value.node, &arg.ty, arg.has_default, value.pos)?;
                        }
                    }
                    self.selection_set(&field.node.selection_set.node, named(&output.ty))?;
                }
                Selection::InlineFragment(fragment) => {
                    let on = fragment.node.type_condition.as_ref();
                    let parent = on.map_or(parent, |c| c.node.on.node.as_str());
                    self.selection_set(&fragment.node.selection_set.node, parent)?;
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    if let Some(fragment) = self.document.fragments.get(name) {
                        if self.visited.insert(name) {
                            let on = fragment.node.type_condition.node.on.node.as_str();
                            self.selection_set(&fragment.node.selection_set.node, on)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// §5.6.1 for one literal where a value of `ty` is expected (§3.5 and §3.10 say which
    /// literals each type takes).
    fn value(
        &mut self,
        value: &'a Value,
        ty: &'a Type,
        has_default: bool,
        pos: Pos,
    ) -> ServerResult<()> {
        let wrong = || refuse(format!("{value} is not a value of type {ty}"), pos);
        match (value, &ty.base) {
            (Value::Variable(variable), _) => {
                self.usages.push(Usage {
                    variable,
                    ty,
                    has_default,
                    pos,
                });
                Ok(())
            }
            (Value::Null, _) if ty.nullable => Ok(()),
            (Value::Null, _) => Err(wrong()),
            (Value::List(items), BaseType::List(item)) => {
                for value in items {
                    self.value(value, item, false, pos)?;
                }
                Ok(())
            }
            // One value where a list is expected is a list of one (§3.1.7 input coercion).
            (_, BaseType::List(item)) => self.value(value, item, false, pos),
            (_, BaseType::Named(name)) => match self.types.types.get(name.as_str()) {
                Some(Kind::Enum(values)) => match value {
                    Value::Enum(v) if values.contains(v.as_str()) => Ok(()),
                    _ => Err(wrong()),
                },
                Some(Kind::Input(fields)) => {
                    let Value::Object(given) = value else {
                        return Err(wrong());
                    };
                    for (name, value) in given {
                        let Some(field) = fields.get(name.as_str()) else {
                            return Err(refuse(format!("{ty} has no field {name}"), pos));
                        };
                        self.value(value, &field.ty, field.has_default, pos)?;
                    }
                    for (name, field) in fields {
                        let missing = !given.contains_key(name.as_str());
                        if missing && !field.ty.nullable && !field.has_default {
                            return Err(refuse(format!("{ty} needs its field {name}"), pos));
                        }
                    }
                    Ok(())
                }
                Some(Kind::Scalar) => {
                    let fits = match (name.as_str(), value) {
                        ("Int", Value::Number(n)) => {
                            n.as_i64().is_some_and(|n| i32::try_from(n).is_ok())
                        }
                        ("Float", Value::Number(_)) => true,
                        ("String", Value::String(_)) => true,
                        ("Boolean", Value::Boolean(_)) => true,
                        ("ID", Value::String(_)) => true,
                        ("ID", Value::Number(n)) => n.is_i64() || n.is_u64(),
                        ("Int" | "Float" | "String" | "Boolean" | "ID", _) => false,
                        // A custom scalar says itself which literals it takes.
                        _ => true,
                    };
                    if fits {
                        Ok(())
                    } else {
                        Err(wrong())
                    }
                }
                // Not an input type: async-graphql reports it (§5.8.2).
                _ => Ok(()),
            },
        }
    }

    /// §5.8.5: every usage of a variable of this operation, in it or in the fragments it
    /// spreads, is allowed where it stands (IsVariableUsageAllowed).
    fn usages_allowed(&self, definitions: &[Positioned<VariableDefinition>]) -> ServerResult<()> {
        for usage in &self.usages {
            // An undefined variable is async-graphql's (§5.8.3).
            let Some(definition) = definitions
                .iter()
                .find(|d| d.node.name.node == *usage.variable)
            else {
                continue;
            };
            let variable = &definition.node.var_type.node;
            let non_null_default = definition
                .node
                .default_value
                .as_ref()
                .is_some_and(|v| v.node != ConstValue::Null);
            let allowed = if !usage.ty.nullable && variable.nullable {
                (non_null_default || usage.has_default)
                    && compatible(
                        variable,
                        &Type {
                            base: usage.ty.base.clone(),
                            nullable: true,
                        },
                    )
            } else {
                compatible(variable, usage.ty)
            };
            if !allowed {
                return Err(refuse(
                    format!(
                        "variable ${} of type {variable} cannot be used where {} is expected",
                        usage.variable, usage.ty
                    ),
                    usage.pos,
                ));
            }
        }
        Ok(())
    }
}

/// The operation a request runs (GetOperation, §6.1); none when there is no such operation,
/// which async-graphql reports.
fn chosen<'a>(
    document: &'a ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<&'a Positioned<OperationDefinition>> {
    match (&document.operations, operation_name) {
        (DocumentOperations::Single(op), _) => Some(op),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next(),
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// async-graphql starts a subscription's stream from the fields written directly at the root
/// of the operation (`collect_subscription_streams`): a root field inside a fragment never ran
/// (the subscription completed at once), and `@skip` or `@include` there were not applied. The
/// spec collects the root fields first (CollectFields, §6.2.3 and §6.3.2). This returns the
/// document with the subscription's root selection so collected, when it differs.
pub fn collect_subscription_root(
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &async_graphql::Variables,
) -> Option<ExecutableDocument> {
    fn included(
        directives: &[Positioned<Directive>],
        variables: &async_graphql::Variables,
    ) -> bool {
        directives.iter().all(|directive| {
            let condition = match directive.node.get_argument("if").map(|v| &v.node) {
                Some(Value::Boolean(value)) => Some(*value),
                Some(Value::Variable(name)) => match variables.get(name) {
                    Some(ConstValue::Boolean(value)) => Some(*value),
                    _ => None,
                },
                _ => None,
            };
            !matches!(
                (directive.node.name.node.as_str(), condition),
                ("skip", Some(true)) | ("include", Some(false))
            )
        })
    }
    fn collect(
        document: &ExecutableDocument,
        set: &SelectionSet,
        variables: &async_graphql::Variables,
        fields: &mut Vec<Positioned<Selection>>,
        visited: &mut HashSet<Name>,
    ) {
        for item in &set.items {
            if !included(item_directives(&item.node), variables) {
                continue;
            }
            match &item.node {
                Selection::Field(field) => {
                    let mut field = field.clone();
                    field
                        .node
                        .directives
                        .retain(|d| !matches!(d.node.name.node.as_str(), "skip" | "include"));
                    fields.push(Positioned::new(Selection::Field(field), item.pos));
                }
                Selection::InlineFragment(fragment) => {
                    let set = &fragment.node.selection_set.node;
                    collect(document, set, variables, fields, visited);
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    if let Some(fragment) = document.fragments.get(name) {
                        if visited.insert(name.clone()) {
                            let set = &fragment.node.selection_set.node;
                            collect(document, set, variables, fields, visited);
                        }
                    }
                }
            }
        }
    }
    let operation = chosen(document, operation_name)?;
    let root = &operation.node.selection_set.node;
    let plain = root.items.iter().all(|item| match &item.node {
        Selection::Field(field) => field.node.directives.is_empty(),
        _ => false,
    });
    if operation.node.ty != OperationType::Subscription || plain {
        return None;
    }
    let mut fields = Vec::new();
    collect(document, root, variables, &mut fields, &mut HashSet::new());
    // The chosen operation's name, to find it again in the copy.
    let name = match &document.operations {
        DocumentOperations::Single(_) => None,
        DocumentOperations::Multiple(ops) => ops
            .iter()
            .find(|(_, op)| std::ptr::eq(*op, operation))
            .map(|(name, _)| name.clone()),
    };
    let collected = SelectionSet { items: fields };
    let mut used = Uses::default();
    used.set(document, &collected);
    let mut document = document.clone();
    let operation = match (&mut document.operations, name) {
        (DocumentOperations::Single(op), _) => op,
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get_mut(&name)?,
        (DocumentOperations::Multiple(_), None) => return None,
    };
    operation.node.selection_set.node = collected;
    // What the fields left out alone used would now be unused (§5.5.1.4, §5.8.4).
    operation
        .node
        .variable_definitions
        .retain(|d| used.variables.contains(&d.node.name.node));
    let mut used = Uses::default();
    for op in operations(&document) {
        used.set(&document, &op.node.selection_set.node);
    }
    document
        .fragments
        .retain(|name, _| used.fragments.contains(name));
    Some(document)
}

/// The fragments and variables a selection uses, through the fragments it spreads.
#[derive(Default)]
struct Uses {
    fragments: HashSet<Name>,
    variables: HashSet<Name>,
}

impl Uses {
    fn set(&mut self, document: &ExecutableDocument, set: &SelectionSet) {
        for item in &set.items {
            for directive in item_directives(&item.node) {
                for (_, value) in &directive.node.arguments {
                    self.value(&value.node);
                }
            }
            match &item.node {
                Selection::Field(field) => {
                    for (_, value) in &field.node.arguments {
                        self.value(&value.node);
                    }
                    self.set(document, &field.node.selection_set.node);
                }
                Selection::InlineFragment(fragment) => {
                    self.set(document, &fragment.node.selection_set.node)
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    if self.fragments.insert(name.clone()) {
                        if let Some(fragment) = document.fragments.get(name) {
                            self.set(document, &fragment.node.selection_set.node);
                        }
                    }
                }
            }
        }
    }

    fn value(&mut self, value: &Value) {
        match value {
            Value::Variable(name) => {
                self.variables.insert(name.clone());
            }
            Value::List(items) => items.iter().for_each(|v| self.value(v)),
            Value::Object(fields) => fields.values().for_each(|v| self.value(v)),
            _ => {}
        }
    }
}

/// AreTypesCompatible (§5.8.5).
fn compatible(variable: &Type, location: &Type) -> bool {
    if !location.nullable {
        if variable.nullable {
            return false;
        }
    } else if !variable.nullable {
        let variable = Type {
            base: variable.base.clone(),
            nullable: true,
        };
        return compatible(&variable, location);
    }
    match (&variable.base, &location.base) {
        (BaseType::List(v), BaseType::List(l)) => compatible(v, l),
        (BaseType::Named(v), BaseType::Named(l)) => v == l,
        _ => false,
    }
}

/// Two fields written alike, positions aside.
fn same_field(a: &Field, b: &Field) -> bool {
    let alias = |f: &Field| f.alias.as_ref().map(|a| a.node.clone());
    a.name.node == b.name.node
        && alias(a) == alias(b)
        && same_arguments(&a.arguments, &b.arguments)
        && same_directives(&a.directives, &b.directives)
        && same_set(&a.selection_set.node, &b.selection_set.node)
}

fn same_arguments(
    a: &[(Positioned<Name>, Positioned<Value>)],
    b: &[(Positioned<Name>, Positioned<Value>)],
) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.0.node == y.0.node && x.1.node == y.1.node)
}

fn same_directives(a: &[Positioned<Directive>], b: &[Positioned<Directive>]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.node.name.node == y.node.name.node
                && same_arguments(&x.node.arguments, &y.node.arguments)
        })
}

fn same_set(a: &SelectionSet, b: &SelectionSet) -> bool {
    a.items.len() == b.items.len()
        && a.items
            .iter()
            .zip(&b.items)
            .all(|(x, y)| match (&x.node, &y.node) {
                (Selection::Field(x), Selection::Field(y)) => same_field(&x.node, &y.node),
                (Selection::FragmentSpread(x), Selection::FragmentSpread(y)) => {
                    x.node.fragment_name.node == y.node.fragment_name.node
                        && same_directives(&x.node.directives, &y.node.directives)
                }
                (Selection::InlineFragment(x), Selection::InlineFragment(y)) => {
                    let on = |f: &InlineFragment| {
                        f.type_condition.as_ref().map(|c| c.node.on.node.clone())
                    };
                    on(&x.node) == on(&y.node)
                        && same_directives(&x.node.directives, &y.node.directives)
                        && same_set(&x.node.selection_set.node, &y.node.selection_set.node)
                }
                _ => false,
            })
}

/// Pairs of distinct fields of one response key compared at most, per operation: a document
/// of 2,000 fields (the most it may select), all of one key and each a little different,
/// would be two million comparisons. The spec sets no such bound; it is a limit, like the
/// document's size.
const MERGE_BUDGET: usize = 100_000;

/// A field in a selection set, with the type it was selected on.
#[derive(Clone)]
struct Selected<'a> {
    parent: String,
    field: &'a Positioned<Field>,
}

/// §5.3.2 Field Selection Merging: FieldsInSetCanMerge and SameResponseShape.
struct Merging<'a> {
    types: &'a Types,
    document: &'a ExecutableDocument,
    budget: usize,
}

impl<'a> Merging<'a> {
    /// The fields of these selection sets by response key, fragments expanded.
    fn collect(&self, sets: Vec<(&'a SelectionSet, String)>) -> Vec<(&'a Name, Vec<Selected<'a>>)> {
        let mut grouped: Vec<(&'a Name, Vec<Selected<'a>>)> = Vec::new();
        let mut pending = sets;
        let mut visited: HashSet<(&Name, String)> = HashSet::new();
        while let Some((set, parent)) = pending.pop() {
            for item in &set.items {
                match &item.node {
                    Selection::Field(field) => {
                        let key = &field.node.response_key().node;
                        let selected = Selected {
                            parent: parent.clone(),
                            field,
                        };
                        match grouped.iter_mut().find(|(k, _)| *k == key) {
                            // A copy of a field merges with it: only distinct ones are
                            // compared, so that repeating a field costs nothing more.
                            Some((_, fields)) => {
                                let copy = fields.iter().any(|other| {
                                    other.parent == selected.parent
                                        && same_field(&other.field.node, &field.node)
                                });
                                if !copy {
                                    fields.push(selected);
                                }
                            }
                            None => grouped.push((key, vec![selected])),
                        }
                    }
                    Selection::InlineFragment(fragment) => {
                        let on = fragment.node.type_condition.as_ref();
                        let on = on.map_or(parent.clone(), |c| c.node.on.node.to_string());
                        pending.push((&fragment.node.selection_set.node, on));
                    }
                    Selection::FragmentSpread(spread) => {
                        let name = &spread.node.fragment_name.node;
                        if let Some(fragment) = self.document.fragments.get(name) {
                            if visited.insert((name, parent.clone())) {
                                let on = fragment.node.type_condition.node.on.node.to_string();
                                pending.push((&fragment.node.selection_set.node, on));
                            }
                        }
                    }
                }
            }
        }
        grouped
    }

    fn output(&self, selected: &Selected<'a>) -> Option<Type> {
        if selected.field.node.name.node == "__typename" {
            return Some(Type {
                base: BaseType::Named(Name::new("String")),
                nullable: false,
            });
        }
        let output = self
            .types
            .field(&selected.parent, &selected.field.node.name.node)?;
        Some(output.ty.clone())
    }

    fn spend(&mut self, pos: Pos) -> ServerResult<()> {
        self.budget = self.budget.checked_sub(1).ok_or_else(|| {
            refuse(
                "the document repeats fields too often to check that they merge",
                pos,
            )
        })?;
        Ok(())
    }

    /// FieldsInSetCanMerge over the union of `sets`, then over each field's own selection.
    fn set_can_merge(&mut self, sets: Vec<(&'a SelectionSet, String)>) -> ServerResult<()> {
        let grouped = self.collect(sets);
        for (_, fields) in &grouped {
            for (i, a) in fields.iter().enumerate() {
                for b in &fields[i + 1..] {
                    self.pair_can_merge(a, b)?;
                }
            }
        }
        for (_, fields) in grouped {
            for selected in fields {
                let sub = &selected.field.node.selection_set.node;
                if let (false, Some(ty)) = (sub.items.is_empty(), self.output(&selected)) {
                    self.set_can_merge(vec![(sub, named(&ty).to_owned())])?;
                }
            }
        }
        Ok(())
    }

    fn pair_can_merge(&mut self, a: &Selected<'a>, b: &Selected<'a>) -> ServerResult<()> {
        self.spend(b.field.pos)?;
        let key = &a.field.node.response_key().node;
        self.same_response_shape(a, b)?;
        let same_parent = a.parent == b.parent
            || !self.types.is_object(&a.parent)
            || !self.types.is_object(&b.parent);
        if !same_parent {
            return Ok(());
        }
        let (fa, fb) = (&a.field.node, &b.field.node);
        if fa.name.node != fb.name.node {
            return Err(refuse(
                format!(
                    "{key} selects both {} and {}: use different aliases",
                    fa.name.node, fb.name.node
                ),
                b.field.pos,
            ));
        }
        let arguments = |f: &'a Field| {
            let mut args: Vec<(&Name, &Value)> = f
                .arguments
                .iter()
                .map(|(n, v)| (&n.node, &v.node))
                .collect();
            args.sort_by(|x, y| x.0.cmp(y.0));
            args
        };
        if arguments(fa) != arguments(fb) {
            return Err(refuse(
                format!("{key} is selected twice with different arguments: use different aliases"),
                b.field.pos,
            ));
        }
        let (Some(ta), Some(tb)) = (self.output(a), self.output(b)) else {
            return Ok(());
        };
        let sets = vec![
            (&fa.selection_set.node, named(&ta).to_owned()),
            (&fb.selection_set.node, named(&tb).to_owned()),
        ];
        let grouped = self.collect(sets);
        for (_, fields) in &grouped {
            for (i, x) in fields.iter().enumerate() {
                for y in &fields[i + 1..] {
                    self.pair_can_merge(x, y)?;
                }
            }
        }
        Ok(())
    }

    /// SameResponseShape: the two fields' values have one shape, whatever types they are on.
    fn same_response_shape(&mut self, a: &Selected<'a>, b: &Selected<'a>) -> ServerResult<()> {
        let (Some(mut ta), Some(mut tb)) = (self.output(a), self.output(b)) else {
            return Ok(()); // an unknown field is async-graphql's (§5.3.1)
        };
        let key = &a.field.node.response_key().node;
        let differ = || {
            refuse(
                format!("{key} would be two values of different shapes: use different aliases"),
                b.field.pos,
            )
        };
        loop {
            if ta.nullable != tb.nullable {
                return Err(differ());
            }
            match (ta.base, tb.base) {
                (BaseType::List(ia), BaseType::List(ib)) => {
                    ta = *ia;
                    tb = *ib;
                }
                (BaseType::Named(na), BaseType::Named(nb)) => {
                    if self.types.is_leaf(&na) || self.types.is_leaf(&nb) {
                        return if na == nb { Ok(()) } else { Err(differ()) };
                    }
                    let sets = vec![
                        (&a.field.node.selection_set.node, na.to_string()),
                        (&b.field.node.selection_set.node, nb.to_string()),
                    ];
                    let grouped = self.collect(sets);
                    for (_, fields) in &grouped {
                        for (i, x) in fields.iter().enumerate() {
                            for y in &fields[i + 1..] {
                                self.spend(y.field.pos)?;
                                self.same_response_shape(x, y)?;
                            }
                        }
                    }
                    return Ok(());
                }
                _ => return Err(differ()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_served_sdl_is_read() {
        let types = Types::from_sdl(&super::super::sdl()).expect("the served SDL parses");
        assert!(types.field("Query", "orders").is_some());
        assert!(types.is_object("Order"));
        assert!(types.directives.contains_key("include"));
    }

    #[test]
    fn duplicate_input_fields_are_found_in_the_text() {
        assert_eq!(
            duplicate_input_field("{ f(a: {x: 1, y: {x: 2}, z: [{x: 1}]}) { x: id x: id } }"),
            None
        );
        assert_eq!(
            duplicate_input_field("{ f(a: {x: 1 # x: 2\n y: \"x: 3\", x: $x}) { id } }"),
            Some("x".into())
        );
        assert_eq!(
            duplicate_input_field("query($v: I = {a: [1, {b: 1, b: 2}]}) { id }"),
            Some("b".into())
        );
        assert_eq!(
            duplicate_input_field("{ f(a: {x: $x, y: 1}) { id } }"),
            None
        );
    }

    fn checked(query: &str) -> ServerResult<()> {
        let types = Types::from_sdl(&super::super::sdl()).expect("the served SDL parses");
        check(
            &async_graphql::parser::parse_query(query).expect("parses"),
            &types,
        )
    }

    #[test]
    fn copies_of_a_field_merge_and_cost_nothing() {
        let copies = "o: order(id: \"x\") { id items { name } } ".repeat(600);
        assert!(checked(&format!("{{ {copies} }}")).is_ok());
        let differing: String = (0..600)
            .map(|i| format!("o: order(id: \"{i}\") {{ id }} "))
            .collect();
        assert!(checked(&format!("{{ {differing} }}")).is_err());
        let shapes = "{ o: order(id: \"x\") { id } o: order(id: \"x\") { id: number } }";
        assert!(checked(shapes).is_err());
        let aliases = "a: __typename ".repeat(2_000);
        assert!(checked(&format!("{{ {aliases} }}")).is_ok());
    }
}
