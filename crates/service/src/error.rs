//! What the service answers when it refuses or fails: one enum the HTTP edge maps to one
//! status and stable code each.

use warden_registry::{InvalidId, RegistryError, StoreError, StoreErrorKind};
use warden_runtime::{InvokeError, WorldKind};

/// Why the service refused or failed. The HTTP edge maps each to one status and stable code.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No credentials, or credentials that are not valid (unknown, revoked, expired).
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials that may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// No such object for this caller (another tenant's objects are reported the same way).
    #[error("{0}")]
    NotFound(String),
    /// The object exists already, or is in use.
    #[error("{0}")]
    Conflict(String),
    /// Malformed input.
    #[error("{0}")]
    BadRequest(String),
    /// A limit that can never make sense.
    #[error("{0}")]
    InvalidLimit(String),
    /// The tenant's calls-per-minute quota is used up for now.
    #[error("{message}")]
    RateLimited {
        /// What happened.
        message: String,
        /// When to retry.
        retry_after_secs: u64,
    },
    /// A quota (storage, daily fuel) is used up.
    #[error("{message}")]
    QuotaExceeded {
        /// What happened.
        message: String,
        /// When to retry, if waiting helps.
        retry_after_secs: Option<u64>,
    },
    /// The tenant already has its share of calls in progress.
    #[error("{message}")]
    ConcurrencyLimit {
        /// What happened.
        message: String,
        /// When to retry.
        retry_after_secs: u64,
    },
    /// A pipeline definition that cannot run (names the node or edge at fault).
    #[error("{0}")]
    InvalidPipeline(String),
    /// The component implements another world than the call needs.
    #[error("the call needs a {expected:?} component; this one is a {found:?}")]
    WrongWorld {
        /// The world the call needs.
        expected: WorldKind,
        /// The world the component implements.
        found: WorldKind,
    },
    /// The registry refused or failed.
    #[error(transparent)]
    Registry(RegistryError),
    /// The call could not start.
    #[error(transparent)]
    Invoke(InvokeError),
    /// A bug or a failing backend: logged in full, answered generically.
    #[error("{0}")]
    Internal(String),
}

impl From<RegistryError> for ServiceError {
    fn from(error: RegistryError) -> Self {
        match error {
            RegistryError::QuotaExceeded(message) => ServiceError::QuotaExceeded {
                message,
                retry_after_secs: None,
            },
            other => ServiceError::Registry(other),
        }
    }
}

impl From<InvokeError> for ServiceError {
    fn from(error: InvokeError) -> Self {
        match error {
            InvokeError::WrongWorld { expected, found } => {
                ServiceError::WrongWorld { expected, found }
            }
            other => ServiceError::Invoke(other),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        match error.kind {
            StoreErrorKind::NotFound => ServiceError::NotFound(error.to_string()),
            StoreErrorKind::Conflict => ServiceError::Conflict(error.to_string()),
            StoreErrorKind::OverQuota => ServiceError::QuotaExceeded {
                message: error.source.to_string(),
                retry_after_secs: None,
            },
            StoreErrorKind::Backend => ServiceError::Internal(error.to_string()),
        }
    }
}

impl From<InvalidId> for ServiceError {
    fn from(error: InvalidId) -> Self {
        ServiceError::BadRequest(error.to_string())
    }
}
