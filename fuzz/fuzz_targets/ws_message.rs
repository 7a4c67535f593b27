//! Bytes as a WebSocket text frame, in both subprotocols. Nothing may panic; a refusal's reason
//! becomes a close reason, and an accepted operation has an id.

#![no_main]

use libfuzzer_sys::fuzz_target;
use orderhub::ws::protocol::{parse, ClientMessage, Protocol};

fuzz_target!(|frame: &[u8]| {
    let Ok(text) = std::str::from_utf8(frame) else {
        return;
    };
    for protocol in [Protocol::TransportWs, Protocol::Legacy] {
        match parse(protocol, text) {
            Ok(ClientMessage::Subscribe { id, .. } | ClientMessage::Complete { id }) => {
                assert!(!id.is_empty(), "an operation without an id");
            }
            Ok(_) => {}
            Err(reason) => assert!(reason.starts_with("Invalid message"), "{reason}"),
        }
    }
});
