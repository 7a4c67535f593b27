use crate::domain::DomainError;

/// Every `extensions.code` a client can get, over HTTP, in a WebSocket `error` or `next`, and
/// in an HTTP refusal's body: one closed set, so that a transport cannot invent a code. The
/// contract (`schema.graphql`, its header) lists most; the README lists every one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// No token, or one that is expired, malformed or signed with another key.
    Unauthenticated,
    /// The caller's role or scope does not allow it.
    Forbidden,
    /// No such thing, or one the caller may not know exists.
    NotFound,
    /// An argument breaks a rule (quantity < 1, an empty order, an unknown menu item, ...).
    BadUserInput,
    /// A menu item is unavailable.
    SoldOut,
    /// The order cannot move to that status from its current one.
    InvalidTransition,
    /// A stale `expectedVersion`, or an idempotency key reused with other content.
    Conflict,
    /// A subscription was cut because its client did not keep up (`extensions.lastSeq`).
    SlowConsumer,
    /// `after` points before the retained history.
    HistoryGone,
    /// Too many operations from one token (`extensions.retryAfterSeconds`).
    RateLimited,
    /// A WebSocket already runs `ORDERHUB_WS_MAX_SUBSCRIPTIONS` operations; this one was not
    /// started, and the connection stays.
    TooManySubscriptions,
    /// The database, the bus or the restaurant's actor is not answering, or its queue is full;
    /// nothing was half-written, and the request may be retried.
    Unavailable,
    /// A query ran longer than `ORDERHUB_QUERY_TIMEOUT` and was stopped.
    Timeout,
    /// A failure of ours; its detail is logged, never sent.
    Internal,
    /// The document is not GraphQL (syntax, or nested past the parser's limit).
    GraphqlParseFailed,
    /// The document does not fit the schema or the limits.
    GraphqlValidationFailed,
    /// The HTTP body is not one JSON GraphQL request.
    BadRequest,
}

impl ErrorCode {
    /// Every code, for documentation checks.
    pub const ALL: [ErrorCode; 17] = [
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::BadUserInput,
        ErrorCode::SoldOut,
        ErrorCode::InvalidTransition,
        ErrorCode::Conflict,
        ErrorCode::SlowConsumer,
        ErrorCode::HistoryGone,
        ErrorCode::RateLimited,
        ErrorCode::TooManySubscriptions,
        ErrorCode::Unavailable,
        ErrorCode::Timeout,
        ErrorCode::Internal,
        ErrorCode::GraphqlParseFailed,
        ErrorCode::GraphqlValidationFailed,
        ErrorCode::BadRequest,
    ];

    /// As it appears in `extensions.code`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::BadUserInput => "BAD_USER_INPUT",
            ErrorCode::SoldOut => "SOLD_OUT",
            ErrorCode::InvalidTransition => "INVALID_TRANSITION",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::SlowConsumer => "SLOW_CONSUMER",
            ErrorCode::HistoryGone => "HISTORY_GONE",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::TooManySubscriptions => "TOO_MANY_SUBSCRIPTIONS",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::GraphqlParseFailed => "GRAPHQL_PARSE_FAILED",
            ErrorCode::GraphqlValidationFailed => "GRAPHQL_VALIDATION_FAILED",
            ErrorCode::BadRequest => "BAD_REQUEST",
        }
    }

    /// The code of a string from a response, if it is one of ours.
    pub fn parse(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == code)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl DomainError {
    pub fn code(&self) -> ErrorCode {
        match self {
            DomainError::NotFound(_) => ErrorCode::NotFound,
            DomainError::Forbidden(_) => ErrorCode::Forbidden,
            DomainError::BadInput(_) => ErrorCode::BadUserInput,
            DomainError::SoldOut(_) | DomainError::OptionSoldOut(_) => ErrorCode::SoldOut,
            DomainError::InvalidTransition { .. } => ErrorCode::InvalidTransition,
            DomainError::Conflict(_) => ErrorCode::Conflict,
        }
    }
}

/// A store failure. The message is for logs only; it never reaches a client.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached right now; retrying later may work.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule was hit (e.g. two writers raced on one idempotency key).
    #[error("store conflict: {0}")]
    Conflict(String),
    #[error("store failure: {0}")]
    Internal(String),
}

/// Why a command failed: the domain refused it, or the machinery around it failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The restaurant's actor did not answer in time; the command may or may not have run.
    #[error("the restaurant did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The restaurant's actor could not be reached or died while handling the command.
    #[error("restaurant actor unavailable: {0}")]
    ActorUnavailable(String),
    /// The restaurant's command queue on this node is full; the command did not run.
    #[error("the restaurant's command queue is full; retry in {retry_after:?}")]
    QueueFull { retry_after: std::time::Duration },
}

impl CommandError {
    pub fn not_found(what: &'static str) -> Self {
        CommandError::Domain(DomainError::NotFound(what))
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn every_code_is_listed_once_and_parses_back() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            assert_eq!(
                ErrorCode::ALL.iter().filter(|c| **c == code).count(),
                1,
                "{code}"
            );
        }
        assert_eq!(ErrorCode::parse("SOMETHING_ELSE"), None);
    }
}
