//! The two GraphQL-over-WebSocket subprotocols: their messages in, their messages out.
//!
//! `graphql-transport-ws` is the graphql-ws library's protocol
//! (github.com/enisdenjo/graphql-ws, PROTOCOL.md); `graphql-ws` is the legacy
//! subscriptions-transport-ws protocol that older Apollo clients speak.

use serde_json::{json, Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    TransportWs,
    Legacy,
}

impl Protocol {
    pub const TRANSPORT_WS: &'static str = "graphql-transport-ws";
    pub const LEGACY: &'static str = "graphql-ws";

    pub fn from_name(name: &str) -> Option<Protocol> {
        match name {
            Self::TRANSPORT_WS => Some(Protocol::TransportWs),
            Self::LEGACY => Some(Protocol::Legacy),
            _ => None,
        }
    }
}

/// Close codes. The 44xx ones are graphql-transport-ws's own; 4504 and 4508 are ours, and
/// clients treat them as "reconnect".
pub mod close {
    pub const INVALID_MESSAGE: u16 = 4400;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const FORBIDDEN: u16 = 4403;
    pub const INIT_TIMEOUT: u16 = 4408;
    pub const DUPLICATE_ID: u16 = 4409;
    pub const TOO_MANY_INITS: u16 = 4429;
    /// The client stopped answering pings.
    pub const KEEPALIVE_TIMEOUT: u16 = 4504;
    /// Writing to the client's socket was stuck past the slow-consumer timeout.
    pub const SLOW_CONSUMER: u16 = 4508;
    /// The token's subject opened more sockets than `ORDERHUB_WS_MAX_PER_SUBJECT`; this was
    /// its oldest. (4xxx codes are private use, RFC 6455 section 7.4.2; this one mirrors 1008,
    /// "policy violation".)
    pub const TOO_MANY_SOCKETS: u16 = 4008;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const INVALID_PAYLOAD: u16 = 1007;
    pub const MESSAGE_TOO_BIG: u16 = 1009;
}

/// What a client can say, in either protocol.
#[derive(Debug, PartialEq)]
pub enum ClientMessage {
    /// Its payload, an object, if it has one.
    Init(Option<Value>),
    Subscribe {
        id: String,
        payload: Payload,
    },
    Complete {
        id: String,
    },
    /// Its payload, an object, if it has one.
    Ping(Option<Value>),
    Pong,
    /// Legacy only: the client ends the connection.
    Terminate,
}

/// The payload of `subscribe` (legacy: `start`): a GraphQL request.
#[derive(Debug, PartialEq)]
pub struct Payload {
    pub query: String,
    /// An object, if given.
    pub variables: Option<Value>,
    pub operation_name: Option<String>,
    pub extensions: Option<Map<String, Value>>,
}

/// A type of client message. Each has exactly its fields, as graphql-ws's PROTOCOL.md
/// (§ Message types) writes them for `graphql-transport-ws`, and subscriptions-transport-ws's
/// PROTOCOL.md for the legacy `graphql-ws`; a field missing, of the wrong JSON type or not among
/// them makes a message invalid (§ Invalid message: close 4400).
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// `payload?: Record<string, unknown> | null`.
    Init,
    /// `id: string` (not empty); `payload: { query: string; operationName?: string | null;
    /// variables?: Record<string, unknown> | null; extensions?: Record<string, unknown> |
    /// null }`. The legacy protocol names the first three; Apollo's legacy link sends
    /// `extensions` too.
    Subscribe,
    /// `id: string` (not empty).
    Complete,
    /// `payload?: Record<string, unknown> | null`.
    Ping,
    /// `payload?: Record<string, unknown> | null`.
    Pong,
    /// Legacy only; nothing but its type (on the legacy protocol, this and `stop` may have
    /// `"payload": null`, which its reference client writes).
    Terminate,
}

impl Kind {
    fn of(protocol: Protocol, name: &str) -> Option<Kind> {
        let kind = match (protocol, name) {
            (_, "connection_init") => Kind::Init,
            (Protocol::TransportWs, "subscribe") | (Protocol::Legacy, "start") => Kind::Subscribe,
            (Protocol::TransportWs, "complete") | (Protocol::Legacy, "stop") => Kind::Complete,
            (Protocol::TransportWs, "ping") => Kind::Ping,
            (Protocol::TransportWs, "pong") => Kind::Pong,
            (Protocol::Legacy, "connection_terminate") => Kind::Terminate,
            _ => return None,
        };
        Some(kind)
    }
}

/// The JSON type of `value`, as the reasons name it.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses one text frame, checking it against its [`Kind`]; `Err` carries the reason
/// for closing with 4400 (close reasons longer than a control frame takes are cut).
pub fn parse(protocol: Protocol, text: &str) -> Result<ClientMessage, String> {
    let message: Value = serde_json::from_str(text).map_err(|e| format!("Invalid message: {e}"))?;
    let Value::Object(mut fields) = message else {
        let got = json_type(&message);
        return Err(format!(
            "Invalid message: a message is an object, not {got}"
        ));
    };
    let kind = match fields.remove("type") {
        Some(Value::String(kind)) => kind,
        Some(other) => {
            let got = json_type(&other);
            return Err(format!(
                "Invalid message: \"type\" must be a string, not {got}"
            ));
        }
        None => return Err("Invalid message: \"type\" is missing".into()),
    };
    let Some(known) = Kind::of(protocol, &kind) else {
        return Err(format!("Invalid message: unknown type {kind:?}"));
    };
    // subscriptions-transport-ws's own client writes `"payload": null` on
    // `connection_terminate` (and could on `stop`), whose protocol has no payload: null there
    // stands for none.
    let legacy_end = matches!(known, Kind::Complete | Kind::Terminate);
    if protocol == Protocol::Legacy && legacy_end && fields.get("payload") == Some(&Value::Null) {
        fields.remove("payload");
    }
    let invalid = |why: String| format!("Invalid message: {kind:?} {why}");
    let payload = |fields: &mut Map<String, Value>| {
        optional_object(fields.remove("payload"), "payload").map(|p| p.map(Value::Object))
    };
    let message = match known {
        Kind::Init => payload(&mut fields).map(ClientMessage::Init),
        Kind::Ping => payload(&mut fields).map(ClientMessage::Ping),
        Kind::Pong => payload(&mut fields).map(|_| ClientMessage::Pong),
        Kind::Subscribe => id(fields.remove("id")).and_then(|id| {
            let payload = operation(fields.remove("payload"))?;
            Ok(ClientMessage::Subscribe { id, payload })
        }),
        Kind::Complete => id(fields.remove("id")).map(|id| ClientMessage::Complete { id }),
        Kind::Terminate => Ok(ClientMessage::Terminate),
    }
    .map_err(invalid)?;
    match fields.keys().next() {
        Some(field) => Err(invalid(format!("has no field {field:?}"))),
        None => Ok(message),
    }
}

/// `id: string`, not empty: it names an operation.
fn id(value: Option<Value>) -> Result<String, String> {
    match value {
        Some(Value::String(id)) if !id.is_empty() => Ok(id),
        Some(Value::String(_)) => Err("needs an id that is not empty".into()),
        Some(other) => Err(format!("id must be a string, not {}", json_type(&other))),
        None => Err("needs an id".into()),
    }
}

/// `name?: Record<string, unknown> | null`.
fn optional_object(value: Option<Value>, name: &str) -> Result<Option<Map<String, Value>>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(object)) => Ok(Some(object)),
        Some(other) => Err(format!(
            "{name} must be an object or null, not {}",
            json_type(&other)
        )),
    }
}

/// The payload of `subscribe` (legacy: `start`), exactly as [`Kind::Subscribe`] writes it.
fn operation(value: Option<Value>) -> Result<Payload, String> {
    let mut fields = match value {
        Some(Value::Object(fields)) => fields,
        Some(other) => {
            return Err(format!(
                "payload must be an object, not {}",
                json_type(&other)
            ))
        }
        None => return Err("needs a payload".into()),
    };
    let query = match fields.remove("query") {
        Some(Value::String(query)) => query,
        Some(other) => {
            let got = json_type(&other);
            return Err(format!("payload.query must be a string, not {got}"));
        }
        None => return Err("payload needs a query".into()),
    };
    let operation_name = match fields.remove("operationName") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Some(name),
        Some(other) => {
            let got = json_type(&other);
            return Err(format!(
                "payload.operationName must be a string or null, not {got}"
            ));
        }
    };
    let variables = optional_object(fields.remove("variables"), "payload.variables")?;
    let extensions = optional_object(fields.remove("extensions"), "payload.extensions")?;
    if let Some(field) = fields.keys().next() {
        return Err(format!("payload has no field {field:?}"));
    }
    Ok(Payload {
        query,
        variables: variables.map(Value::Object),
        operation_name,
        extensions,
    })
}

/// The text of each server message.
pub fn ack(_: Protocol) -> String {
    json!({"type": "connection_ack"}).to_string()
}

pub fn pong(payload: Option<Value>) -> String {
    match payload {
        Some(payload) => json!({"type": "pong", "payload": payload}),
        None => json!({"type": "pong"}),
    }
    .to_string()
}

/// Legacy keep-alive, which Apollo's old client expects instead of pings.
pub fn keep_alive() -> String {
    json!({"type": "ka"}).to_string()
}

pub fn next(protocol: Protocol, id: &str, response: &Value) -> String {
    next_encoded(protocol, id, &response.to_string())
}

/// A result whose payload (the GraphQL response) is JSON already.
pub fn next_encoded(protocol: Protocol, id: &str, response: &str) -> String {
    NextEnvelope::new(protocol, id).wrap(response)
}

/// The part of a result message that is the same for every event of one subscription:
/// encoded once, when a subscription starts receiving a cohort's frames.
#[derive(Debug)]
pub struct NextEnvelope {
    /// `{"type":"next","id":"…","payload":`
    head: Box<str>,
}

impl NextEnvelope {
    pub fn new(protocol: Protocol, id: &str) -> Self {
        let kind = match protocol {
            Protocol::TransportWs => "next",
            Protocol::Legacy => "data",
        };
        let id = Value::from(id);
        Self {
            head: format!(r#"{{"type":"{kind}","id":{id},"payload":"#).into_boxed_str(),
        }
    }

    /// The message carrying `response`.
    pub fn wrap(&self, response: &str) -> String {
        let mut text = String::with_capacity(self.head.len() + response.len() + 1);
        text.push_str(&self.head);
        text.push_str(response);
        text.push('}');
        text
    }
}

/// An operation that failed as a whole; it ends the operation (no `complete` follows).
pub fn error(protocol: Protocol, id: &str, errors: &Value) -> String {
    let payload = match protocol {
        Protocol::TransportWs => errors.clone(),
        // Legacy clients expect one error object.
        Protocol::Legacy => errors.get(0).cloned().unwrap_or(Value::Null),
    };
    json!({"type": "error", "id": id, "payload": payload}).to_string()
}

pub fn complete(_: Protocol, id: &str) -> String {
    json!({"type": "complete", "id": id}).to_string()
}

/// Legacy: the connection was refused.
pub fn connection_error(message: &str) -> String {
    json!({"type": "connection_error", "payload": {"message": message}}).to_string()
}

/// The token of a `connection_init` payload: `{"authorization": "Bearer …"}` (any case).
pub fn authorization(payload: &Value) -> Option<&str> {
    payload
        .as_object()?
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, value)| value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_protocols_parse_their_own_words() {
        let subscribe = r#"{"type":"subscribe","id":"1","payload":{"query":"subscription { x }"}}"#;
        assert!(matches!(
            parse(Protocol::TransportWs, subscribe),
            Ok(ClientMessage::Subscribe { .. })
        ));
        assert!(parse(Protocol::Legacy, subscribe).is_err());
        let start = r#"{"type":"start","id":"1","payload":{"query":"subscription { x }","variables":{"a":1}}}"#;
        assert!(matches!(
            parse(Protocol::Legacy, start),
            Ok(ClientMessage::Subscribe { .. })
        ));
        assert_eq!(
            parse(Protocol::Legacy, r#"{"type":"stop","id":"1"}"#),
            Ok(ClientMessage::Complete { id: "1".into() })
        );
        assert_eq!(
            parse(Protocol::TransportWs, r#"{"type":"connection_init"}"#),
            Ok(ClientMessage::Init(None))
        );
    }

    #[test]
    fn malformed_messages_are_refused() {
        for bad in [
            "not json",
            "{}",
            r#"["subscribe", "1", {"query": "{ x }"}]"#,
            r#"{"type": 1}"#,
            r#"{"type":"subscribe","payload":{"query":"{ x }"}}"#,
            r#"{"type":"subscribe","id":"","payload":{"query":"{ x }"}}"#,
            r#"{"type":"subscribe","id":1,"payload":{"query":"{ x }"}}"#,
            r#"{"type":"subscribe","id":"1"}"#,
            r#"{"type":"subscribe","id":"1","payload":{"query":5}}"#,
            r#"{"type":"subscribe","id":"1","payload":{"query":"{ x }","variables":[]}}"#,
            r#"{"type":"subscribe","id":"1","payload":{"query":"{ x }","operationName":1}}"#,
            r#"{"type":"subscribe","id":"1","payload":{"query":"{ x }","extensions":"x"}}"#,
            r#"{"type":"subscribe","id":"1","payload":{"query":"{ x }","extra":1}}"#,
            r#"{"type":"connection_init","payload":"token"}"#,
            r#"{"type":"ping","payload":"x"}"#,
            r#"{"type":"pong","payload":[]}"#,
            r#"{"type":"ping","id":"1"}"#,
            r#"{"type":"complete","id":"1","payload":null}"#,
            r#"{"type":"unknown"}"#,
        ] {
            assert!(parse(Protocol::TransportWs, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn optional_payloads_are_objects_null_or_absent() {
        for (text, expected) in [
            (r#"{"type":"ping"}"#, ClientMessage::Ping(None)),
            (
                r#"{"type":"ping","payload":null}"#,
                ClientMessage::Ping(None),
            ),
            (
                r#"{"type":"ping","payload":{"at":1}}"#,
                ClientMessage::Ping(Some(json!({"at": 1}))),
            ),
            (r#"{"type":"pong","payload":{}}"#, ClientMessage::Pong),
        ] {
            assert_eq!(parse(Protocol::TransportWs, text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn the_legacy_client_may_end_with_a_null_payload() {
        for (text, expected) in [
            (
                r#"{"type":"connection_terminate","payload":null}"#,
                Ok(ClientMessage::Terminate),
            ),
            (
                r#"{"type":"stop","id":"1","payload":null}"#,
                Ok(ClientMessage::Complete { id: "1".into() }),
            ),
        ] {
            assert_eq!(parse(Protocol::Legacy, text), expected, "{text}");
        }
        assert!(parse(Protocol::Legacy, r#"{"type":"stop","id":"1","payload":{}}"#).is_err());
        assert!(parse(
            Protocol::TransportWs,
            r#"{"type":"complete","id":"1","payload":null}"#
        )
        .is_err());
    }

    #[test]
    fn a_preencoded_result_is_the_same_message() {
        let response = json!({"data": {"x": "a \"quoted\" value"}});
        for protocol in [Protocol::TransportWs, Protocol::Legacy] {
            let id = "id \"1\"";
            let message: Value =
                serde_json::from_str(&next(protocol, id, &response)).expect("JSON");
            assert_eq!(message["id"], id);
            assert_eq!(message["payload"], response);
        }
    }

    #[test]
    fn authorization_is_found_in_any_case() {
        assert_eq!(
            authorization(&json!({"Authorization": "Bearer x"})),
            Some("Bearer x")
        );
        assert_eq!(
            authorization(&json!({"authorization": "Bearer y"})),
            Some("Bearer y")
        );
        assert_eq!(authorization(&json!({"token": "z"})), None);
    }
}
