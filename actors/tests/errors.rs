//! What a failure becomes for a client: each domain refusal's public code, the codes' text,
//! and what a command error says.

use std::time::Duration;

use orderhub_actors::domain::{DomainError, MenuItemId, OrderStatus};
use orderhub_actors::{CommandError, ErrorCode, StoreError};

#[test]
fn every_domain_refusal_has_its_public_code() {
    let cases = [
        (DomainError::NotFound("order"), ErrorCode::NotFound),
        (DomainError::Forbidden("no".into()), ErrorCode::Forbidden),
        (DomainError::BadInput("no".into()), ErrorCode::BadUserInput),
        (
            DomainError::SoldOut(MenuItemId::generate()),
            ErrorCode::SoldOut,
        ),
        (
            DomainError::InvalidTransition {
                from: OrderStatus::Served,
                to: OrderStatus::Placed,
            },
            ErrorCode::InvalidTransition,
        ),
        (DomainError::Conflict("no".into()), ErrorCode::Conflict),
    ];
    for (error, code) in cases {
        assert_eq!(error.code(), code, "{error:?}");
    }
}

#[test]
fn a_code_shows_as_it_is_sent_and_only_that_text_parses() {
    for code in ErrorCode::ALL {
        assert_eq!(code.to_string(), code.as_str());
        assert_eq!(ErrorCode::parse(&code.to_string()), Some(code));
        assert_eq!(ErrorCode::parse(&code.as_str().to_lowercase()), None);
        assert!(
            code.as_str()
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == '_'),
            "{code}"
        );
    }
    assert_eq!(ErrorCode::BadUserInput.to_string(), "BAD_USER_INPUT");
    assert_eq!(ErrorCode::parse(""), None);
}

#[test]
fn a_domain_refusal_reads_the_same_as_a_command_error() {
    let refusal = DomainError::SoldOut(MenuItemId::from_trusted("m1".into()));
    let error = CommandError::from(refusal.clone());
    assert_eq!(error.to_string(), refusal.to_string());
    assert!(matches!(error, CommandError::Domain(ref d) if *d == refusal));

    let not_found = CommandError::not_found("table");
    assert!(
        matches!(
            not_found,
            CommandError::Domain(DomainError::NotFound("table"))
        ),
        "{not_found:?}"
    );
    assert_eq!(not_found.to_string(), "table not found");
}

#[test]
fn store_and_actor_failures_say_what_failed() {
    let store = StoreError::Unavailable("connection refused".into());
    assert_eq!(store.to_string(), "store unavailable: connection refused");
    assert_eq!(
        StoreError::Conflict("key".into()).to_string(),
        "store conflict: key"
    );
    assert_eq!(
        StoreError::Internal("bug".into()).to_string(),
        "store failure: bug"
    );
    let wrapped = CommandError::from(store);
    assert_eq!(wrapped.to_string(), "store unavailable: connection refused");
    assert!(matches!(
        wrapped,
        CommandError::Store(StoreError::Unavailable(_))
    ));

    assert_eq!(
        CommandError::Timeout(Duration::from_secs(10)).to_string(),
        "the restaurant did not answer within 10s"
    );
    assert_eq!(
        CommandError::QueueFull {
            retry_after: Duration::from_secs(1)
        }
        .to_string(),
        "the restaurant's command queue is full; retry in 1s"
    );
    assert_eq!(
        CommandError::ActorUnavailable("stopped".into()).to_string(),
        "restaurant actor unavailable: stopped"
    );
}
