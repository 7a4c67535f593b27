//! The one place where failures become GraphQL errors with `extensions.code`: ours through
//! [`ApiError`], async-graphql's own (syntax, validation, limits) through [`ErrorCodes`].

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextRequest, NextSubscribe,
    NextValidation,
};
use async_graphql::futures_util::stream::{BoxStream, StreamExt};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{
    ErrorExtensions, Response, ServerError, ServerResult, ValidationResult, Variables,
};
use orderhub_actors::domain::DomainError;
use orderhub_actors::{CommandError, ErrorCode, StoreError};
use std::sync::Arc;

use crate::auth::AuthError;

/// A failure on its way to the client. It deliberately has no `Display`, so that it can only
/// become a GraphQL error through the mapping below, never through a bare message.
#[derive(Debug, Clone)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    last_seq: Option<i64>,
    retry_after_seconds: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            last_seq: None,
            retry_after_seconds: None,
        }
    }

    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadUserInput, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, message)
    }

    /// `extensions.lastSeq`: the seq to resume from with `after` (the last event the client
    /// was sent, or with `HISTORY_GONE` the restaurant's newest event).
    pub fn with_last_seq(self, seq: i64) -> Self {
        Self {
            last_seq: Some(seq),
            ..self
        }
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// Logged with its detail, answered without it.
    fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(ErrorCode::Internal, "internal error")
    }

    fn unavailable(detail: &dyn std::fmt::Display) -> Self {
        tracing::warn!(error = %detail, "dependency unavailable");
        Self::new(
            ErrorCode::Unavailable,
            "the service is temporarily unavailable; retry shortly",
        )
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        Self::new(error.code(), error.to_string())
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
                    ErrorCode::Conflict,
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
            CommandError::QueueFull { retry_after } => {
                tracing::debug!("refused: the restaurant's command queue is full");
                Self {
                    retry_after_seconds: Some(retry_after.as_secs().max(1)),
                    ..Self::new(
                        ErrorCode::Unavailable,
                        "the restaurant has too many commands waiting; retry shortly",
                    )
                }
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
            extensions.set("code", error.code.as_str());
            if let Some(seq) = error.last_seq {
                extensions.set("lastSeq", seq);
            }
            if let Some(seconds) = error.retry_after_seconds {
                extensions.set("retryAfterSeconds", seconds);
            }
        })
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The document is not GraphQL: a syntax error, or nested past the parser's limit.
pub const PARSE_FAILED: ErrorCode = ErrorCode::GraphqlParseFailed;
/// The document does not fit the schema or the limits: unknown fields, wrong argument or
/// variable types, depth, complexity, an unknown operation name, introspection when disabled.
pub const VALIDATION_FAILED: ErrorCode = ErrorCode::GraphqlValidationFailed;

/// Gives a code to every error async-graphql raises itself, which come without one.
pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodes)
    }
}

fn with_code(mut error: ServerError, code: ErrorCode) -> ServerError {
    set_code(&mut error, code);
    error
}

fn set_code(error: &mut ServerError, code: ErrorCode) {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", code.as_str());
    }
}

/// How async-graphql words a variable that does not fit its argument. It checks a variable's
/// value against the argument's type only when the field runs, so these come with a path.
const COERCION_FAILURES: [&str; 3] = ["Failed to parse", "Variable ", "Invalid value for argument"];

/// Errors that escaped both hooks. Choosing the operation (an unknown `operationName`, a
/// subscription over HTTP) fails before anything runs, without a path; a variable that does
/// not fit is found when its field runs. Both are requests that do not fit the schema.
/// Anything else would be ours: every resolver error has a code already.
fn coded(mut response: Response) -> Response {
    for error in &mut response.errors {
        let misfit = error.path.is_empty()
            || COERCION_FAILURES
                .iter()
                .any(|start| error.message.starts_with(start));
        set_code(
            error,
            if misfit {
                VALIDATION_FAILED
            } else {
                ErrorCode::Internal
            },
        );
    }
    response
}

#[async_trait::async_trait]
impl Extension for ErrorCodes {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        coded(next.run(ctx).await)
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        next.run(ctx, stream).map(coded).boxed()
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables)
            .await
            .map_err(|error| with_code(error, PARSE_FAILED))
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|error| with_code(error, VALIDATION_FAILED))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A code a client can get but cannot look up is a defect of the documentation.
    #[test]
    fn the_readme_documents_every_error_code() {
        let readme = include_str!("../../README.md");
        for code in ErrorCode::ALL {
            assert!(
                readme.contains(&format!("`{code}`")),
                "{code} is not in the README"
            );
        }
    }
}
