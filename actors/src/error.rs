use crate::domain::DomainError;

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
}

impl CommandError {
    pub fn not_found(what: &'static str) -> Self {
        CommandError::Domain(DomainError::NotFound(what))
    }
}
