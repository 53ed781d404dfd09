//! Reading request bodies with a hard byte cap, answering `too_large` past it.

use crate::ApiError;
use axum::body::{Body, Bytes};
use http_body_util::{BodyExt, LengthLimitError, Limited};

/// Reads at most `max` bytes of `body`; refuses larger bodies without buffering them.
pub(crate) async fn read_capped(body: Body, max: u64, what: &str) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::TooLarge(format!("the {what} is larger than {max} bytes"));
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(error) => Err(ApiError::BadRequest(format!(
            "could not read the request body: {error}"
        ))),
    }
}
