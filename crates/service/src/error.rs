//! What the service answers when it refuses or fails: a [`ServiceError`] is a kind (which the
//! HTTP edge maps to one status and stable code), what to tell the caller, and the error
//! underneath, kept whole for the log (the shape of `StoreError`).

use warden_registry::{InvalidId, RegistryError, StoreError, StoreErrorKind};
use warden_runtime::{Cause, InvokeError, WorldKind};

/// Why the service refused or failed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    /// What kind of refusal or failure.
    pub kind: ErrorKind,
    /// What happened, for the caller.
    pub message: String,
    /// The error underneath (a store's, the registry's, the runtime's), if any.
    #[source]
    pub source: Option<Cause>,
}

/// The kinds of [`ServiceError`]: each is one status and stable code at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No credentials, or credentials that are not valid (unknown, revoked, expired).
    Unauthorized,
    /// Valid credentials that may not do this.
    Forbidden,
    /// No such object for this caller (another tenant's objects are reported the same way).
    NotFound,
    /// The object exists already, or is in use.
    Conflict,
    /// Malformed input.
    BadRequest,
    /// A limit that can never make sense.
    InvalidLimit,
    /// The tenant's calls-per-minute quota is used up for now.
    RateLimited {
        /// When to retry.
        retry_after_secs: u64,
    },
    /// A quota (storage, daily fuel, secrets) is used up.
    QuotaExceeded {
        /// When to retry, if waiting helps.
        retry_after_secs: Option<u64>,
    },
    /// The tenant already has its share of calls in progress.
    ConcurrencyLimit {
        /// When to retry.
        retry_after_secs: u64,
    },
    /// A pipeline definition that cannot run (the message names the node or edge at fault).
    InvalidPipeline,
    /// The component implements another world than the call needs.
    WrongWorld {
        /// The world the call needs.
        expected: WorldKind,
        /// The world the component implements.
        found: WorldKind,
    },
    /// The registry refused the component or failed: the source is the [`RegistryError`]
    /// ([`ServiceError::registry`]).
    Registry,
    /// The call could not start: the source is the [`InvokeError`]
    /// ([`ServiceError::invoke`]).
    Invoke,
    /// A bug or a failing backend: logged in full, answered generically.
    Internal,
}

impl ServiceError {
    /// A refusal of `kind` with no error underneath.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ServiceError {
        ServiceError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// A failure inside Warden: what it was doing, and the error underneath.
    pub fn internal(context: impl Into<String>, source: impl Into<Cause>) -> ServiceError {
        ServiceError {
            kind: ErrorKind::Internal,
            message: context.into(),
            source: Some(source.into()),
        }
    }

    /// `Unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> ServiceError {
        ServiceError::new(ErrorKind::Unauthorized, message)
    }

    /// `Forbidden`.
    pub fn forbidden(message: impl Into<String>) -> ServiceError {
        ServiceError::new(ErrorKind::Forbidden, message)
    }

    /// `NotFound`.
    pub fn not_found(message: impl Into<String>) -> ServiceError {
        ServiceError::new(ErrorKind::NotFound, message)
    }

    /// `Conflict`.
    pub fn conflict(message: impl Into<String>) -> ServiceError {
        ServiceError::new(ErrorKind::Conflict, message)
    }

    /// `BadRequest`.
    pub fn bad_request(message: impl Into<String>) -> ServiceError {
        ServiceError::new(ErrorKind::BadRequest, message)
    }

    /// `InvalidLimit`, from what was wrong with it.
    pub fn invalid_limit(source: impl std::error::Error + Send + Sync + 'static) -> ServiceError {
        ServiceError {
            kind: ErrorKind::InvalidLimit,
            message: source.to_string(),
            source: Some(Box::new(source)),
        }
    }

    /// `InvalidPipeline`.
    pub fn invalid_pipeline(message: impl Into<String>) -> ServiceError {
        ServiceError::new(ErrorKind::InvalidPipeline, message)
    }

    /// `RateLimited`, to be retried after `retry_after_secs`.
    pub fn rate_limited(message: impl Into<String>, retry_after_secs: u64) -> ServiceError {
        ServiceError::new(ErrorKind::RateLimited { retry_after_secs }, message)
    }

    /// `QuotaExceeded`, to be retried after `retry_after_secs` if waiting helps.
    pub fn quota_exceeded(
        message: impl Into<String>,
        retry_after_secs: Option<u64>,
    ) -> ServiceError {
        ServiceError::new(ErrorKind::QuotaExceeded { retry_after_secs }, message)
    }

    /// `ConcurrencyLimit`, to be retried after `retry_after_secs`.
    pub fn concurrency_limit(message: impl Into<String>, retry_after_secs: u64) -> ServiceError {
        ServiceError::new(ErrorKind::ConcurrencyLimit { retry_after_secs }, message)
    }

    /// The registry's error, when that is what refused (kind `Registry`).
    pub fn registry(&self) -> Option<&RegistryError> {
        self.source.as_ref()?.downcast_ref()
    }

    /// The runtime's error, when the call could not start (kind `Invoke`).
    pub fn invoke(&self) -> Option<&InvokeError> {
        self.source.as_ref()?.downcast_ref()
    }
}

impl From<RegistryError> for ServiceError {
    fn from(error: RegistryError) -> Self {
        match error {
            RegistryError::QuotaExceeded(message) => ServiceError::quota_exceeded(message, None),
            other => ServiceError {
                kind: ErrorKind::Registry,
                message: warden_runtime::describe(&other),
                source: Some(Box::new(other)),
            },
        }
    }
}

impl From<InvokeError> for ServiceError {
    fn from(error: InvokeError) -> Self {
        let kind = match error {
            InvokeError::WrongWorld { expected, found } => {
                ErrorKind::WrongWorld { expected, found }
            }
            _ => ErrorKind::Invoke,
        };
        ServiceError {
            kind,
            message: warden_runtime::describe(&error),
            source: Some(Box::new(error)),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        let kind = match error.kind {
            StoreErrorKind::NotFound => ErrorKind::NotFound,
            StoreErrorKind::Conflict => ErrorKind::Conflict,
            StoreErrorKind::OverQuota => ErrorKind::QuotaExceeded {
                retry_after_secs: None,
            },
            StoreErrorKind::Backend => ErrorKind::Internal,
        };
        let message = match kind {
            ErrorKind::Internal => "the store failed".to_owned(),
            _ => error.source.to_string(),
        };
        ServiceError {
            kind,
            message,
            source: Some(Box::new(error)),
        }
    }
}

impl From<InvalidId> for ServiceError {
    fn from(error: InvalidId) -> Self {
        ServiceError {
            kind: ErrorKind::BadRequest,
            message: error.to_string(),
            source: Some(Box::new(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_failing_store_is_internal_and_keeps_its_error_whole() {
        let failed: ServiceError = StoreError::backend("database is locked").into();
        assert_eq!(failed.kind, ErrorKind::Internal);
        assert_eq!(failed.to_string(), "the store failed");
        let chain = warden_runtime::describe(&failed);
        assert!(chain.contains("database is locked"), "{chain}");
        assert!(failed.source().is_some());
    }

    #[test]
    fn a_registry_refusal_keeps_the_registry_error_for_the_edge() {
        let missing: ServiceError = RegistryError::NotFound("no component `x`".into()).into();
        assert_eq!(missing.kind, ErrorKind::Registry);
        assert!(matches!(
            missing.registry(),
            Some(RegistryError::NotFound(what)) if what == "no component `x`"
        ));
        assert!(missing.invoke().is_none());
        let absent: ServiceError = StoreError::not_found("no tenant `acme`").into();
        assert_eq!(absent.kind, ErrorKind::NotFound);
        assert_eq!(absent.to_string(), "no tenant `acme`");
    }
}
