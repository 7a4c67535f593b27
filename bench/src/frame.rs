//! A small scanner for the text frames of graphql-transport-ws, so that the generator reads
//! the few fields it needs without parsing every frame into a JSON tree.
//!
//! It relies on one property of JSON: a quote inside a string value is always escaped (`\"`),
//! so an unescaped `"seq":` or `"type":"next"` in a frame can only be a key and its value,
//! never a piece of some string. The frames it reads are the server's `next` messages for
//! the subscription the generator sends ([`crate::client::EVENTS_QUERY`]), whose payload has
//! exactly one `seq` key (the event's) and one `note` key (the order's). The order of keys
//! does not matter (orderhub sorts them; other servers may not). Whitespace after a colon is
//! allowed. Anything the scanner cannot read is reported as `None`, never a panic.

/// What kind of server message a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ConnectionAck,
    Next,
    Error,
    Complete,
    Ping,
    Pong,
    Other,
}

/// The `type` of a frame.
pub fn kind(text: &str) -> Kind {
    let Some(value) = string_after(text, "\"type\"") else {
        return Kind::Other;
    };
    match value {
        "next" | "data" => Kind::Next,
        "connection_ack" => Kind::ConnectionAck,
        "error" => Kind::Error,
        "complete" => Kind::Complete,
        "ping" => Kind::Ping,
        "pong" => Kind::Pong,
        _ => Kind::Other,
    }
}

/// The event's `seq`.
pub fn seq(text: &str) -> Option<i64> {
    int_after(text, "\"seq\"")
}

/// The send time carried in the order's note, `"note":"t=<unix nanoseconds>"`.
pub fn sent_at_nanos(text: &str) -> Option<u64> {
    let value = string_after(text, "\"note\"")?;
    let digits = value.strip_prefix("t=")?;
    let end = digits
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// The note the generator puts on each order: its send time.
pub fn note_for(sent_at_nanos: u64) -> String {
    format!("t={sent_at_nanos}")
}

/// Position right after `key` and the colon that follows it, skipping whitespace.
fn value_start(text: &str, key: &str) -> Option<usize> {
    let at = text.find(key)? + key.len();
    let rest = text.as_bytes().get(at..)?;
    let mut i = 0;
    while rest.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    if rest.get(i) != Some(&b':') {
        return None;
    }
    i += 1;
    while rest.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    Some(at + i)
}

/// The integer value of the first `key`.
fn int_after(text: &str, key: &str) -> Option<i64> {
    let start = value_start(text, key)?;
    let rest = &text[start..];
    let negative = rest.starts_with('-');
    let digits = if negative { &rest[1..] } else { rest };
    let end = digits
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    if end == 0 {
        return None;
    }
    let value: i64 = digits[..end].parse().ok()?;
    Some(if negative { -value } else { value })
}

/// The string value of the first `key`, up to its closing quote (escapes are not decoded:
/// the values read here never contain any).
fn string_after<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let start = value_start(text, key)?;
    let rest = text[start..].strip_prefix('"')?;
    let end = rest.find('"')?;
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDERHUB_NEXT: &str = r#"{"id":"1","payload":{"data":{"restaurantEvents":{"__typename":"OrderPlaced","at":"2026-01-01T00:00:00.000Z","order":{"id":"0192","items":[{"name":"Ramen","quantity":1}],"note":"t=1767225600123456789","number":7,"status":"PLACED","tableId":"t1","total":{"amount":900,"currency":"JPY"}},"seq":42}}},"type":"next"}"#;

    #[test]
    fn reads_orderhubs_next_frame() {
        assert_eq!(kind(ORDERHUB_NEXT), Kind::Next);
        assert_eq!(seq(ORDERHUB_NEXT), Some(42));
        assert_eq!(
            sent_at_nanos(ORDERHUB_NEXT),
            Some(1_767_225_600_123_456_789)
        );
    }

    #[test]
    fn key_order_and_whitespace_do_not_matter() {
        let text = r#"{ "type" : "next", "id": "1", "payload": {"data": {"restaurantEvents": {"seq" : 3, "order": {"note" : "t=99"}}}}}"#;
        assert_eq!(kind(text), Kind::Next);
        assert_eq!(seq(text), Some(3));
        assert_eq!(sent_at_nanos(text), Some(99));
    }

    #[test]
    fn other_messages_are_classified() {
        assert_eq!(kind(r#"{"type":"connection_ack"}"#), Kind::ConnectionAck);
        assert_eq!(kind(r#"{"type":"ping"}"#), Kind::Ping);
        assert_eq!(kind(r#"{"id":"1","type":"complete"}"#), Kind::Complete);
        let error = r#"{"id":"1","payload":[{"extensions":{"code":"SLOW_CONSUMER","lastSeq":17},"message":"x"}],"type":"error"}"#;
        assert_eq!(kind(error), Kind::Error);
        // lastSeq is not the event's seq.
        assert_eq!(seq(error), None);
        assert_eq!(kind(r#"{"type":"whatever"}"#), Kind::Other);
        assert_eq!(kind("not json at all"), Kind::Other);
    }

    #[test]
    fn escaped_quotes_in_strings_cannot_fake_keys() {
        // A note that tries to look like a seq key is a string with escaped quotes.
        let text = r#"{"payload":{"data":{"restaurantEvents":{"order":{"note":"x \"seq\":999"},"seq":5}}},"type":"next"}"#;
        assert_eq!(seq(text), Some(5));
        assert_eq!(sent_at_nanos(text), None);
    }

    #[test]
    fn bad_or_missing_values_are_none() {
        for text in [
            "",
            r#"{"seq":}"#,
            r#"{"seq":"5"}"#,
            r#"{"seq"}"#,
            r#"{"seq":-}"#,
            r#"{"seq":99999999999999999999999}"#,
        ] {
            assert_eq!(seq(text), None, "{text}");
        }
        assert_eq!(seq(r#"{"seq":-3}"#), Some(-3));
        for text in [
            r#"{"note":null}"#,
            r#"{"note":"hello"}"#,
            r#"{"note":"t="}"#,
            r#"{"note":"t=12"#,
        ] {
            assert_eq!(sent_at_nanos(text), None, "{text}");
        }
        assert_eq!(
            sent_at_nanos(&format!(r#"{{"note":"{}"}}"#, note_for(77))),
            Some(77)
        );
    }
}
