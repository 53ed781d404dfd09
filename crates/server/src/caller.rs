//! The caller of a request, extracted from `Authorization: Bearer …` before the body is read:
//! an unauthenticated upload is refused without receiving its bytes.

use crate::{ApiError, AppState};
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use warden_service::Caller;

/// The authenticated caller (in open mode, always the `default` tenant).
pub(crate) struct Authed(pub(crate) Caller);

/// The admin (the admin token, in secured mode), refused before the body is read.
pub(crate) struct Admin(pub(crate) Caller);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Authed(caller) = Authed::from_request_parts(parts, state).await?;
        state.service().may_administer(&caller)?;
        Ok(Admin(caller))
    }
}

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let bearer = match parts.headers.get(header::AUTHORIZATION) {
            None => None,
            Some(value) => {
                let text = value.to_str().ok();
                let token = text.and_then(|text| {
                    let (scheme, token) = text.split_once(' ')?;
                    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
                });
                match token {
                    Some(token) => Some(token),
                    None if state.service().secured() => {
                        return Err(ApiError::Unauthorized(
                            "the Authorization header must be `Bearer <token>`".into(),
                        ));
                    }
                    None => None,
                }
            }
        };
        Ok(Authed(state.service().authenticate(bearer)?))
    }
}
