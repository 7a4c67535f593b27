//! The one place where failures become GraphQL errors with `extensions.code`.

use async_graphql::ErrorExtensions;
use orderhub_actors::domain::DomainError;
use orderhub_actors::{CommandError, StoreError};

use crate::auth::AuthError;

/// A failure on its way to the client. It deliberately has no `Display`, so that it can only
/// become a GraphQL error through the mapping below, never through a bare message.
#[derive(Debug, Clone)]
pub struct ApiError {
    code: &'static str,
    message: String,
    last_seq: Option<i64>,
}

impl ApiError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            last_seq: None,
        }
    }

    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new("BAD_USER_INPUT", message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new("NOT_FOUND", format!("{what} not found"))
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new("UNAUTHENTICATED", message)
    }

    /// The last event the client was sent, so that it can resume with `after`.
    pub fn with_last_seq(self, seq: i64) -> Self {
        Self {
            last_seq: Some(seq),
            ..self
        }
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Logged with its detail, answered without it.
    fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new("INTERNAL", "internal error")
    }

    fn unavailable(detail: &dyn std::fmt::Display) -> Self {
        tracing::warn!(error = %detail, "dependency unavailable");
        Self::new(
            "UNAVAILABLE",
            "the service is temporarily unavailable; retry shortly",
        )
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        let code = match &error {
            DomainError::NotFound(_) => "NOT_FOUND",
            DomainError::Forbidden(_) => "FORBIDDEN",
            DomainError::BadInput(_) => "BAD_USER_INPUT",
            DomainError::SoldOut(_) => "SOLD_OUT",
            DomainError::InvalidTransition { .. } => "INVALID_TRANSITION",
            DomainError::Conflict(_) => "CONFLICT",
        };
        Self::new(code, error.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match &error {
            StoreError::Unavailable(_) => Self::unavailable(&error),
            // Two writers raced past every other guard on a unique key.
            StoreError::Conflict(_) => {
                tracing::warn!(%error, "unique key conflict");
                Self::new(
                    "CONFLICT",
                    "a concurrent request changed the same data; retry",
                )
            }
            StoreError::Internal(_) => Self::internal(&error),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Domain(e) => e.into(),
            CommandError::Store(e) => e.into(),
            CommandError::Timeout(_) | CommandError::ActorUnavailable(_) => {
                Self::unavailable(&error)
            }
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        Self::unauthenticated(error.to_string())
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(error: ApiError) -> Self {
        async_graphql::Error::new(error.message).extend_with(|_, extensions| {
            extensions.set("code", error.code);
            if let Some(seq) = error.last_seq {
                extensions.set("lastSeq", seq);
            }
        })
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
