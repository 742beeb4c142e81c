//! `SessionError`: what a handler sees when a session operation fails.

use std::sync::Arc;

use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use tether_core::Error;

/// Turns a store error into the response the client sees.
pub type ErrorHandler = Arc<dyn Fn(&Error) -> http::Response<String> + Send + Sync>;

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
                let (parts, body) = default_error_response(e).into_parts();
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

/// The default answer to a store error: 503 (or 500 for errors retrying cannot fix;
/// 413 for a session grown past the store's size limit) with a plain-text body that
/// says what happened without leaking internals.
///
/// ```
/// let err = tether_core::Error::Unavailable { context: "redis down".into(), source: None };
/// let response = tether::default_error_response(&err);
/// assert_eq!(response.status(), 503);
/// assert!(response.body().contains("try again"));
/// ```
pub fn default_error_response(error: &Error) -> http::Response<String> {
    let (status, body) = match error {
        Error::TooLarge { .. } => (
            http::StatusCode::PAYLOAD_TOO_LARGE,
            "413 Content Too Large: the session would exceed the store's size limit.\n",
        ),
        Error::LockTimeout(_) => (
            http::StatusCode::SERVICE_UNAVAILABLE,
            "503 Service Unavailable: this session is busy with another request; try again shortly.\n",
        ),
        e if e.is_transient() => (
            http::StatusCode::SERVICE_UNAVAILABLE,
            "503 Service Unavailable: the session store is unavailable; try again shortly.\n",
        ),
        _ => (
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "500 Internal Server Error: the session could not be saved.\n",
        ),
    };
    let mut response = http::Response::new(body.to_owned());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == http::StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        );
    }
    response
}
