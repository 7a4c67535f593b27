//! The two GraphQL-over-WebSocket subprotocols: their messages in, their messages out.
//!
//! `graphql-transport-ws` is the graphql-ws library's protocol
//! (github.com/enisdenjo/graphql-ws, PROTOCOL.md); `graphql-ws` is the legacy
//! subscriptions-transport-ws protocol that older Apollo clients speak.

use serde::Deserialize;
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
    Init(Option<Value>),
    Subscribe {
        id: String,
        payload: Payload,
    },
    Complete {
        id: String,
    },
    Ping(Option<Value>),
    Pong,
    /// Legacy only: the client ends the connection.
    Terminate,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    pub query: String,
    #[serde(default)]
    pub variables: Option<Value>,
    #[serde(default)]
    pub operation_name: Option<String>,
    #[serde(default)]
    pub extensions: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
    payload: Option<Value>,
}

/// Parses one text frame; `Err` carries the reason for closing with 4400.
pub fn parse(protocol: Protocol, text: &str) -> Result<ClientMessage, String> {
    let envelope: Envelope =
        serde_json::from_str(text).map_err(|e| format!("Invalid message: {e}"))?;
    let id = || {
        envelope
            .id
            .clone()
            .filter(|id| !id.is_empty())
            .ok_or_else(|| format!("Invalid message: \"{}\" needs an id", envelope.kind))
    };
    let payload = || -> Result<Payload, String> {
        let value = envelope
            .payload
            .clone()
            .ok_or("Invalid message: missing payload")?;
        serde_json::from_value(value).map_err(|e| format!("Invalid message payload: {e}"))
    };
    let message = match (protocol, envelope.kind.as_str()) {
        (_, "connection_init") => match &envelope.payload {
            None | Some(Value::Null) => ClientMessage::Init(None),
            Some(Value::Object(_)) => ClientMessage::Init(envelope.payload.clone()),
            Some(_) => {
                return Err("Invalid message: connection_init payload must be an object".into())
            }
        },
        (Protocol::TransportWs, "subscribe") | (Protocol::Legacy, "start") => {
            ClientMessage::Subscribe {
                id: id()?,
                payload: payload()?,
            }
        }
        (Protocol::TransportWs, "complete") | (Protocol::Legacy, "stop") => {
            ClientMessage::Complete { id: id()? }
        }
        (Protocol::TransportWs, "ping") => ClientMessage::Ping(envelope.payload.clone()),
        (Protocol::TransportWs, "pong") => ClientMessage::Pong,
        (Protocol::Legacy, "connection_terminate") => ClientMessage::Terminate,
        (_, other) => return Err(format!("Invalid message: unknown type {other:?}")),
    };
    Ok(message)
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
            r#"{"type":"subscribe","payload":{"query":"{ x }"}}"#,
            r#"{"type":"subscribe","id":"","payload":{"query":"{ x }"}}"#,
            r#"{"type":"subscribe","id":"1"}"#,
            r#"{"type":"subscribe","id":"1","payload":{"query":5}}"#,
            r#"{"type":"connection_init","payload":"token"}"#,
            r#"{"type":"unknown"}"#,
        ] {
            assert!(parse(Protocol::TransportWs, bad).is_err(), "{bad}");
        }
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
