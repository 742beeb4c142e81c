//! `SessionError`: what a handler sees when a session operation fails.

use std::sync::Arc;

use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use tether_core::Error;

/// Why a session operation failed.
///
/// ```
/// use axum_core::response::IntoResponse;
/// let err = tether::SessionError::Store(std::sync::Arc::new(tether::Error::Unavailable {
///     context: "redis down".into(),
///     source: None,
/// }));
/// assert_eq!(err.into_response().status(), 503);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The store failed (or refused, see [`Error::Unsupported`]). When the failure
    /// leaves the session unknown, the layer answers the request with its error
    /// response whatever the handler returns.
    #[error(transparent)]
    Store(Arc<Error>),
    /// A value could not be serialized to JSON.
    #[error("session value for {key:?} could not be serialized: {source}")]
    Serialize {
        /// The key.
        key: String,
        /// serde's error.
        source: serde_json::Error,
    },
    /// A stored value is not of the requested type.
    #[error("session value for {key:?} is not of the requested type: {source}")]
    Deserialize {
        /// The key.
        key: String,
        /// serde's error.
        source: serde_json::Error,
    },
    /// The call came through a [`Session`](crate::Session) whose response is already
    /// out (a clone kept by a spawned task or a WebSocket loop): nothing it changed
    /// could be saved, so nothing is pretended.
    #[error(
        "this session's response was already sent, so nothing can be saved through this handle; for work after the response (a WebSocket loop, a spawned task), take Session::detach() in the handler"
    )]
    AfterResponse,
    /// A [`DetachedSession`](crate::DetachedSession) wrote to a session that no longer
    /// exists (it ended: logout, expiry, or it moved to a new id), or that never did
    /// at the store (a client-side store, or no session was made).
    #[error(
        "the session ended, or was never stored server-side, before this write after the response"
    )]
    Ended,
}

impl IntoResponse for SessionError {
    /// The default error response for a store error; a type mismatch is a 500.
    fn into_response(self) -> Response {
        match &self {
            Self::Store(e) => {
                let (parts, body) = crate::config::default_error_response(e).into_parts();
                Response::from_parts(parts, body.into())
            }
            Self::AfterResponse | Self::Ended => {
                tracing::error!(error = %self, "session used after its response");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "500 Internal Server Error: the session was used after its response.\n",
                )
                    .into_response()
            }
            Self::Serialize { .. } | Self::Deserialize { .. } => {
                tracing::error!(error = %self, "session value error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "500 Internal Server Error: a session value has an unexpected type.\n",
                )
                    .into_response()
            }
        }
    }
}
