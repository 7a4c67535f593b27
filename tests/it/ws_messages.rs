//! Every client message of both WebSocket subprotocols against its definition: graphql-ws's
//! PROTOCOL.md for `graphql-transport-ws`, subscriptions-transport-ws's for the legacy
//! `graphql-ws`. Each field of each message type is sent with every JSON type it must not
//! have, left out where it is required, and joined by a field the type does not have; the
//! `type` itself, and messages that are not objects, too. Each such message closes the socket
//! with 4400 and a reason (on `graphql-ws`, after a `connection_error` with that reason). Each
//! well-formed variant is served, and answered with messages the reference client accepts.

use serde_json::{json, Value};

use crate::support::{sqlite, Api};
use crate::ws_client::{Incoming, WsClient, LEGACY, TRANSPORT_WS};

/// One value of each JSON type.
const TYPES: [&str; 6] = ["null", "boolean", "number", "string", "array", "object"];

fn of_type(ty: &str) -> Value {
    match ty {
        "null" => Value::Null,
        "boolean" => json!(true),
        "number" => json!(1),
        "string" => json!("x"),
        "array" => json!([]),
        _ => json!({}),
    }
}

/// A field of a message type: where it is (`payload.query`), the JSON types it may have, and
/// whether it may be left out.
struct Field {
    path: &'static str,
    allowed: &'static [&'static str],
    optional: bool,
}

/// A message type of a protocol: a well-formed message of it, whether it is sent after the
/// connection is acknowledged, and its fields.
struct MessageType {
    protocol: &'static str,
    valid: Value,
    after_init: bool,
    fields: Vec<Field>,
}

const OPTIONAL_OBJECT: &[&str] = &["null", "object"];

fn optional_payload() -> Field {
    Field {
        path: "payload",
        allowed: OPTIONAL_OBJECT,
        optional: true,
    }
}

fn id() -> Field {
    Field {
        path: "id",
        allowed: &["string"],
        optional: false,
    }
}

/// The fields of a subscribe (legacy: start) message.
fn operation_fields() -> Vec<Field> {
    vec![
        id(),
        Field {
            path: "payload",
            allowed: &["object"],
            optional: false,
        },
        Field {
            path: "payload.query",
            allowed: &["string"],
            optional: false,
        },
        Field {
            path: "payload.variables",
            allowed: OPTIONAL_OBJECT,
            optional: true,
        },
        Field {
            path: "payload.operationName",
            allowed: &["null", "string"],
            optional: true,
        },
        Field {
            path: "payload.extensions",
            allowed: OPTIONAL_OBJECT,
            optional: true,
        },
    ]
}

fn message_types() -> Vec<MessageType> {
    let operation = json!({"query": "{ __typename }", "variables": {}, "operationName": null, "extensions": {}});
    let mut types = Vec::new();
    for protocol in [TRANSPORT_WS, LEGACY] {
        let (subscribe, complete) = match protocol {
            TRANSPORT_WS => ("subscribe", "complete"),
            _ => ("start", "stop"),
        };
        types.push(MessageType {
            protocol,
            valid: json!({"type": "connection_init", "payload": {}}),
            after_init: false,
            fields: vec![optional_payload()],
        });
        types.push(MessageType {
            protocol,
            valid: json!({"type": subscribe, "id": "1", "payload": operation}),
            after_init: true,
            fields: operation_fields(),
        });
        types.push(MessageType {
            protocol,
            valid: json!({"type": complete, "id": "1"}),
            after_init: true,
            fields: vec![id()],
        });
    }
    for ping in ["ping", "pong"] {
        types.push(MessageType {
            protocol: TRANSPORT_WS,
            valid: json!({"type": ping, "payload": {}}),
            after_init: true,
            fields: vec![optional_payload()],
        });
    }
    types.push(MessageType {
        protocol: LEGACY,
        valid: json!({"type": "connection_terminate"}),
        after_init: true,
        fields: vec![],
    });
    types
}

/// `message` with the field at `path` set to `value`, or removed if `None`.
fn with(message: &Value, path: &str, value: Option<Value>) -> Value {
    let mut message = message.clone();
    let (parent, name) = match path.rsplit_once('.') {
        Some((parent, name)) => (&mut message[parent], name),
        None => (&mut message, path),
    };
    if let Some(object) = parent.as_object_mut() {
        match value {
            Some(value) => object.insert(name.to_owned(), value),
            None => object.remove(name),
        };
    }
    message
}

/// One message that must be refused, and why it is wrong.
struct Invalid {
    protocol: &'static str,
    after_init: bool,
    what: String,
    text: String,
}

fn invalid_messages() -> Vec<Invalid> {
    let mut cases = Vec::new();
    for ty in message_types() {
        let kind = ty.valid["type"].as_str().unwrap_or_default().to_owned();
        let mut case = |what: String, message: Value| {
            cases.push(Invalid {
                protocol: ty.protocol,
                after_init: ty.after_init,
                what: format!("{} {kind}: {what}", ty.protocol),
                text: message.to_string(),
            })
        };
        for field in &ty.fields {
            for wrong in TYPES.iter().filter(|t| !field.allowed.contains(t)) {
                let message = with(&ty.valid, field.path, Some(of_type(wrong)));
                case(format!("{} of type {wrong}", field.path), message);
            }
            if !field.optional {
                case(
                    format!("no {}", field.path),
                    with(&ty.valid, field.path, None),
                );
            }
        }
        if ty.fields.iter().any(|field| field.path == "id") {
            case("empty id".into(), with(&ty.valid, "id", Some(json!(""))));
        }
        case(
            "a field of no message".into(),
            with(&ty.valid, "extra", Some(json!(1))),
        );
        if ty.fields.iter().any(|field| field.path == "payload.query") {
            let message = with(&ty.valid, "payload.extra", Some(json!(1)));
            case("a payload field of no message".into(), message);
        }
        if !ty.fields.iter().any(|field| field.path == "payload") {
            for payload in [json!({}), json!("x")] {
                let message = with(&ty.valid, "payload", Some(payload.clone()));
                case(format!("a payload {payload}"), message);
            }
        }
        if !ty.fields.iter().any(|field| field.path == "id") {
            case("an id".into(), with(&ty.valid, "id", Some(json!("1"))));
        }
    }
    for protocol in [TRANSPORT_WS, LEGACY] {
        let mut case = |what: String, text: String| {
            cases.push(Invalid {
                protocol,
                after_init: true,
                what: format!("{protocol}: {what}"),
                text,
            })
        };
        for wrong in TYPES.iter().filter(|t| **t != "string") {
            let message = json!({"type": of_type(wrong), "id": "1"});
            case(format!("type of type {wrong}"), message.to_string());
            case(
                format!("a message of type {wrong}"),
                of_type(wrong).to_string(),
            );
        }
        case("a message of type string".into(), json!("x").to_string());
        case("no type".into(), json!({"id": "1"}).to_string());
        case(
            "an unknown type".into(),
            json!({"type": "subscription"}).to_string(),
        );
        case("text that is not JSON".into(), "{\"type\": ".into());
        // The other protocol's words.
        let other = match protocol {
            TRANSPORT_WS => {
                json!({"type": "start", "id": "1", "payload": {"query": "{ __typename }"}})
            }
            _ => json!({"type": "ping"}),
        };
        case(format!("{other}"), other.to_string());
    }
    cases
}

/// Connected with the admin's token on the upgrade request, so that a `connection_init` is
/// refused for its shape alone; acknowledged if `after_init`.
async fn connected(api: &Api, protocol: &'static str, after_init: bool) -> WsClient {
    let bearer = format!("Bearer {}", api.admin());
    let mut client = WsClient::connect_authorized(api, protocol, &bearer).await;
    if after_init {
        let ack = client.init_with(None).await;
        assert!(
            matches!(&ack, Incoming::Json(ack) if ack["type"] == "connection_ack"),
            "{ack:?}"
        );
    }
    client
}

/// The socket is closed with 4400 and a reason naming the message invalid; on the legacy
/// protocol, a `connection_error` with that reason comes first.
async fn refused(client: &mut WsClient) -> Result<(), String> {
    let mut told = None;
    let mut answer = client.recv().await;
    if client.protocol == LEGACY {
        match answer {
            Incoming::Json(error) if error["type"] == "connection_error" => {
                told = error["payload"]["message"].as_str().map(str::to_owned);
                answer = client.recv().await;
            }
            other => return Err(format!("no connection_error first: {other:?}")),
        }
    }
    match answer {
        Incoming::Closed(Some(4400), reason) if reason.starts_with("Invalid message") => match told
        {
            Some(told) if !told.starts_with(&reason) => Err(format!(
                "connection_error {told:?} and close {reason:?} differ"
            )),
            _ => Ok(()),
        },
        other => Err(format!(
            "expected close 4400 \"Invalid message…\", got {other:?}"
        )),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_message_of_the_wrong_shape_is_closed_with_4400() {
    let server = sqlite();
    let cases = invalid_messages();
    let mut failures = Vec::new();
    for case in &cases {
        let mut client = connected(server, case.protocol, case.after_init).await;
        client.send_raw(&case.text).await;
        // Had the message been taken, this would be answered (pong, ack, or 4429 for a second
        // connection_init) instead of the close.
        let probe = match case.protocol {
            TRANSPORT_WS => json!({"type": "ping", "payload": {"probe": true}}),
            _ => json!({"type": "connection_init"}),
        };
        client.try_send_raw(&probe.to_string()).await;
        if let Err(failure) = refused(&mut client).await {
            failures.push(format!("{}: {} → {failure}", case.what, case.text));
        }
    }
    assert!(cases.len() >= 120, "{} cases", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} malformed messages were not refused:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// What graphql-ws's client (`validateMessage`) accepts of a pong: a payload that is an
/// object, null or absent.
fn a_valid_pong(message: &Value) -> bool {
    message["type"] == "pong"
        && message
            .as_object()
            .is_some_and(|fields| fields.keys().all(|key| key == "type" || key == "payload"))
        && (message["payload"].is_null() || message["payload"].is_object())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_well_formed_variant_is_served() {
    let server = sqlite();
    // A ping is answered by a pong the reference client accepts, its payload echoed.
    for payload in [
        None,
        Some(Value::Null),
        Some(json!({})),
        Some(json!({"at": 1})),
    ] {
        let mut client = connected(server, TRANSPORT_WS, true).await;
        let ping = match &payload {
            Some(payload) => json!({"type": "ping", "payload": payload}),
            None => json!({"type": "ping"}),
        };
        client.send(ping.clone()).await;
        let pong = client.recv().await.json();
        assert!(a_valid_pong(&pong), "{ping} → {pong}");
        let echoed = payload.filter(Value::is_object).unwrap_or(Value::Null);
        assert_eq!(pong["payload"], echoed, "{ping} → {pong}");
        // An unsolicited pong, with each payload it may have, is taken in silence.
        for pong in [
            json!({"type": "pong"}),
            json!({"type": "pong", "payload": null}),
            json!({"type": "pong", "payload": {"at": 2}}),
        ] {
            client.send(pong).await;
        }
        client.send(json!({"type": "ping"})).await;
        assert!(a_valid_pong(&client.recv().await.json()));
        client.close().await;
    }
    // connection_init with an object, null or no payload.
    for protocol in [TRANSPORT_WS, LEGACY] {
        for payload in [None, Some(Value::Null), Some(json!({}))] {
            let mut client = connected(server, protocol, false).await;
            let ack = client.init_with(payload.clone()).await;
            assert!(
                matches!(&ack, Incoming::Json(ack) if ack["type"] == "connection_ack"),
                "{protocol} {payload:?}: {ack:?}"
            );
            client.close().await;
        }
    }
    // subscribe (legacy: start) with each optional field absent, null or of its type; then
    // complete (legacy: stop), which the legacy client may send with a null payload.
    let optional = [
        ("variables", json!({})),
        ("operationName", json!("Named")),
        ("extensions", json!({"persistedQuery": null})),
    ];
    for protocol in [TRANSPORT_WS, LEGACY] {
        let mut client = connected(server, protocol, true).await;
        let (subscribe, next, stop) = match protocol {
            TRANSPORT_WS => ("subscribe", "next", json!({"type": "complete", "id": "x"})),
            _ => (
                "start",
                "data",
                json!({"type": "stop", "id": "x", "payload": null}),
            ),
        };
        let mut variants = vec![json!({"query": "query Named { __typename }"})];
        for (field, value) in &optional {
            for value in [Value::Null, value.clone()] {
                let mut payload = json!({"query": "query Named { __typename }"});
                payload[*field] = value;
                variants.push(payload);
            }
        }
        for (index, payload) in variants.iter().enumerate() {
            let id = format!("op{index}");
            client
                .send(json!({"type": subscribe, "id": id, "payload": payload}))
                .await;
            let result = client.recv().await.json();
            assert_eq!(
                (&result["type"], &result["id"], &result["payload"]["data"]),
                (&json!(next), &json!(id), &json!({"__typename": "Query"})),
                "{protocol} {payload}: {result}"
            );
            let complete = client.recv().await.json();
            assert_eq!(
                complete["type"], "complete",
                "{protocol} {payload}: {complete}"
            );
        }
        // Completing an operation that has ended is no error.
        client.send(stop).await;
        if protocol == TRANSPORT_WS {
            client.send(json!({"type": "ping"})).await;
            assert!(a_valid_pong(&client.recv().await.json()));
        }
        client.close().await;
    }
    // The legacy client ends with `"payload": null`: a normal closure.
    let mut client = connected(server, LEGACY, true).await;
    client
        .send(json!({"type": "connection_terminate", "payload": null}))
        .await;
    client.expect_close(1000).await;
}

/// Every message the server sends on `graphql-transport-ws` passes graphql-ws's own
/// `validateMessage`, which its client applies to all it receives (`tests/contract/frames.mjs`):
/// the acknowledgement, a pong to each payload a ping may have, results with and without
/// errors, errors of operations refused before they run, completions.
#[test]
fn every_message_the_server_sends_passes_the_reference_clients_check() {
    let server = sqlite();
    let url = server.base.replace("http://", "ws://") + "/graphql";
    let nothing = "00000000-0000-7000-8000-000000000000";
    let messages = [
        json!({"type": "ping"}),
        json!({"type": "ping", "payload": null}),
        json!({"type": "ping", "payload": {}}),
        json!({"type": "ping", "payload": {"at": 1}}),
        json!({"type": "pong", "payload": {"at": 2}}),
        json!({"type": "subscribe", "id": "ok", "payload": {"query": "{ __typename }"}}),
        json!({"type": "subscribe", "id": "field error", "payload": {"query": "{ order(id: \"\") { id } }"}}),
        json!({"type": "subscribe", "id": "invalid", "payload": {"query": "{ secret }"}}),
        json!({"type": "subscribe", "id": "unparsable", "payload": {"query": "{"}}),
        json!({"type": "subscribe", "id": "coercion", "payload": {"query": "query($o: ID!) { order(id: $o) { id } }", "variables": {}}}),
        json!({"type": "subscribe", "id": "missing", "payload": {"query": format!("subscription {{ orderUpdated(orderId: \"{nothing}\") {{ id }} }}")}}),
        json!({"type": "complete", "id": "never started"}),
    ];
    let messages: Vec<String> = messages.iter().map(Value::to_string).collect();
    let token = server.admin();
    let mut args = vec![url.as_str(), token.as_str()];
    args.extend(messages.iter().map(String::as_str));
    let output = crate::support::node_run("frames.mjs", &args);
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && report.starts_with("valid: "),
        "{report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
