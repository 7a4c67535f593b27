//! Variable values are coerced before anything runs (GraphQL spec, October 2021, § 6.1.2
//! CoerceVariableValues, with the input coercion rules of § 3.5 and § 3.10–3.12): each value
//! must fit its variable's declared type: non-null types need a value (or, if the client gave
//! none, a default) that is not null, `Int` is 32-bit, enums name one of their values, input
//! objects have only their own fields and all their required ones. Otherwise it is a request
//! error, `GRAPHQL_VALIDATION_FAILED`, and no field runs.
//!
//! async-graphql checks a given value against every argument it fills while it validates the
//! document, but only loosely (an `Int` of 2^40 passes), and lets a missing or null value of a
//! non-null variable through: those fail only when a field that uses them runs, after the
//! fields of a mutation before it have run.

use async_graphql::parser::types::{
    BaseType, DocumentOperations, ExecutableDocument, OperationDefinition, Type,
};
use async_graphql::registry::{MetaType, Registry};
use async_graphql::{Name, Positioned, ServerResult, Value, Variables};

use super::error::{ApiError, VALIDATION_FAILED};

/// Refuses `variables` unless each fits its definition in the operation that `document` runs
/// for `operation_name`. An operation that cannot be chosen is left to async-graphql, which
/// reports it; a variable of a type that is not an input type is left to validation.
pub fn check(
    registry: &Registry,
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &Variables,
) -> ServerResult<()> {
    let Some(operation) = chosen(document, operation_name) else {
        return Ok(());
    };
    for definition in &operation.node.variable_definitions {
        let definition = &definition.node;
        let ty = &definition.var_type.node;
        let name = &definition.name.node;
        let refusal = match variables.get(name) {
            None if ty.nullable || definition.default_value.is_some() => continue,
            None => format!("Variable \"${name}\" of required type \"{ty}\" was not provided."),
            Some(value) => match coerce(registry, ty, value, &mut format!("${name}")) {
                Ok(()) => continue,
                Err(reason) => format!("Variable \"${name}\" got an invalid value: {reason}"),
            },
        };
        let error: async_graphql::Error = ApiError::new(VALIDATION_FAILED, refusal).into();
        return Err(error.into_server_error(definition.name.pos));
    }
    Ok(())
}

/// Whether `value` fits `ty`; `Err` says where (`path`, as `$v.items[0].quantity`) and why.
fn coerce(registry: &Registry, ty: &Type, value: &Value, path: &mut String) -> Result<(), String> {
    match (&ty.base, value) {
        (_, Value::Null) if ty.nullable => Ok(()),
        (_, Value::Null) => Err(format!("{path} of non-null type \"{ty}\" must not be null")),
        // A single value stands for a list of one (§ 3.11 Input Coercion).
        (BaseType::List(item), Value::List(items)) => {
            items.iter().enumerate().try_for_each(|(index, value)| {
                let at = path.len();
                path.push_str(&format!("[{index}]"));
                coerce(registry, item, value, path)?;
                path.truncate(at);
                Ok(())
            })
        }
        (BaseType::List(item), value) => coerce(registry, item, value, path),
        (BaseType::Named(name), value) => named(registry, name, value, path),
    }
}

/// `value`, not null, against the named type `name`.
fn named(registry: &Registry, name: &Name, value: &Value, path: &mut String) -> Result<(), String> {
    let fits = match (name.as_str(), value) {
        ("Int", Value::Number(number)) => number
            .as_i64()
            .is_some_and(|number| i32::try_from(number).is_ok()),
        ("Float", Value::Number(_)) | ("String", Value::String(_)) => true,
        ("Boolean", Value::Boolean(_)) | ("ID", Value::String(_)) => true,
        ("ID", Value::Number(number)) => number.is_i64() || number.is_u64(),
        ("Int" | "Float" | "String" | "Boolean" | "ID", _) => false,
        _ => return custom(registry, name, value, path),
    };
    match fits {
        true => Ok(()),
        false => Err(format!("{path}: {name} cannot represent {value}")),
    }
}

/// `value`, not null, against a type of the schema's own.
fn custom(
    registry: &Registry,
    name: &Name,
    value: &Value,
    path: &mut String,
) -> Result<(), String> {
    let wrong = || Err(format!("{path}: {name} cannot represent {value}"));
    match registry.types.get(name.as_str()) {
        Some(MetaType::Scalar { is_valid, .. }) => match is_valid {
            Some(is_valid) if !is_valid(value) => wrong(),
            _ => Ok(()),
        },
        Some(MetaType::Enum { enum_values, .. }) => match value {
            Value::String(text) if enum_values.contains_key(text.as_str()) => Ok(()),
            Value::Enum(variant) if enum_values.contains_key(variant.as_str()) => Ok(()),
            _ => wrong(),
        },
        Some(MetaType::InputObject {
            input_fields,
            oneof,
            ..
        }) => {
            let Value::Object(fields) = value else {
                return wrong();
            };
            if let Some(unknown) = fields
                .keys()
                .find(|key| !input_fields.contains_key(key.as_str()))
            {
                return Err(format!("{path}: {name} has no field \"{unknown}\""));
            }
            if *oneof && (fields.len() != 1 || fields.values().any(|v| *v == Value::Null)) {
                return Err(format!(
                    "{path}: exactly one field of {name} must be given, not null"
                ));
            }
            for (field, definition) in input_fields {
                let Some(ty) = Type::new(&definition.ty) else {
                    continue;
                };
                let at = path.len();
                path.push_str(&format!(".{field}"));
                match fields.get(field.as_str()) {
                    Some(value) => coerce(registry, &ty, value, path)?,
                    None if ty.nullable || definition.default_value.is_some() => {}
                    None => {
                        return Err(format!("{path} of required type \"{ty}\" was not provided"))
                    }
                }
                path.truncate(at);
            }
            Ok(())
        }
        // Not an input type: validation refuses such a variable.
        _ => Ok(()),
    }
}

/// The operation async-graphql will run: the document's only one, or the one named.
fn chosen<'a>(
    document: &'a ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<&'a Positioned<OperationDefinition>> {
    match (&document.operations, operation_name) {
        (DocumentOperations::Single(operation), None) => Some(operation),
        (DocumentOperations::Single(_), Some(_)) => None,
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name),
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            operations.values().next()
        }
        (DocumentOperations::Multiple(_), None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::ServerError;
    use serde_json::json;

    fn refused(
        query: &str,
        operation_name: Option<&str>,
        variables: serde_json::Value,
    ) -> Option<ServerError> {
        let document = async_graphql::parser::parse_query(query).expect("parses");
        let mut registry = Registry::default();
        <super::super::Mutation as async_graphql::OutputType>::create_type_info(&mut registry);
        let variables = Variables::from_json(variables);
        check(&registry, &document, operation_name, &variables).err()
    }

    /// Each variable against its declared type: `None` if it fits, else a part of the reason.
    fn expect(query: &str, cases: &[(serde_json::Value, Option<&str>)]) {
        for (variables, refusal) in cases {
            let got = refused(query, None, variables.clone()).map(|error| error.message);
            match (refusal, got) {
                (None, None) => {}
                (Some(expected), Some(message)) if message.contains(expected) => {}
                (expected, got) => panic!("{variables}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn non_null_variables_need_a_value_that_is_not_null() {
        expect(
            "query($r: ID!, $first: Int! = 20, $after: String) { __typename }",
            &[
                (json!({"r": "x"}), None),
                (json!({"r": 7, "first": 5, "after": null}), None),
                (
                    json!({}),
                    Some("\"$r\" of required type \"ID!\" was not provided"),
                ),
                (
                    json!({"r": null}),
                    Some("$r of non-null type \"ID!\" must not be null"),
                ),
                (
                    json!({"r": "x", "first": null}),
                    Some("$first of non-null type \"Int!\""),
                ),
            ],
        );
    }

    #[test]
    fn values_fit_their_declared_types() {
        expect(
            "query($n: Int, $f: Float, $b: Boolean, $s: String, $l: [Int!], $status: OrderStatus) { __typename }",
            &[
                (json!({"n": 2_147_483_647, "f": 1, "b": true, "s": "x", "l": [1, 2], "status": "READY"}), None),
                // One value stands for a list of one.
                (json!({"l": 3}), None),
                (json!({"n": 2_147_483_648_i64}), Some("$n: Int cannot represent 2147483648")),
                (json!({"n": 1.5}), Some("$n: Int cannot represent 1.5")),
                (json!({"n": "1"}), Some("$n: Int cannot represent")),
                (json!({"f": "1.5"}), Some("$f: Float cannot represent")),
                (json!({"b": 0}), Some("$b: Boolean cannot represent 0")),
                (json!({"s": 5}), Some("$s: String cannot represent 5")),
                (json!({"l": [1, null]}), Some("$l[1] of non-null type \"Int!\"")),
                (json!({"status": "DELIVERED"}), Some("$status: OrderStatus cannot represent")),
                (json!({"status": "ready"}), Some("$status: OrderStatus cannot represent")),
            ],
        );
    }

    #[test]
    fn input_objects_have_their_own_fields_and_all_required_ones() {
        let line = json!({"menuItemId": "m", "quantity": 1});
        let order = |items: serde_json::Value| json!({"i": {"restaurantId": "r", "tableId": "t", "items": items, "idempotencyKey": "k"}});
        expect(
            "query($i: PlaceOrderInput!) { __typename }",
            &[
                (order(json!([line])), None),
                (
                    order(json!([{"menuItemId": "m", "quantity": 1, "unitPrice": 1}])),
                    Some("$i.items[0]: OrderItemInput has no field \"unitPrice\""),
                ),
                (
                    order(json!([{"menuItemId": "m", "quantity": 1_i64 << 40}])),
                    Some("$i.items[0].quantity: Int cannot represent"),
                ),
                (
                    order(json!([{"menuItemId": "m"}])),
                    Some("$i.items[0].quantity of required type \"Int!\" was not provided"),
                ),
                (
                    json!({"i": {"restaurantId": "r"}}),
                    Some("$i.tableId of required type"),
                ),
                (
                    json!({"i": "order"}),
                    Some("$i: PlaceOrderInput cannot represent"),
                ),
            ],
        );
    }

    #[test]
    fn only_the_chosen_operation_counts() {
        let query = "query A($r: ID!) { __typename } query B { __typename }";
        assert!(refused(query, Some("B"), json!({})).is_none());
        assert!(refused(query, Some("A"), json!({})).is_some());
        // Not chosen: async-graphql reports the missing or unknown operation.
        assert!(refused(query, None, json!({})).is_none());
        assert!(refused(query, Some("C"), json!({})).is_none());
        assert!(refused("query($r: ID!) { __typename }", Some("A"), json!({})).is_none());
        assert!(refused("query Only($r: ID!) { __typename }", None, json!({})).is_some());
    }
}
