//! `SessionService`: the Tower service the layer wraps around the app: it finds the
//! session a request presents, hands the handler a `Session`, and writes it after.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tether_core::Id;
use tower_service::Service;

use crate::backend::{Backend, Shared};
use crate::future::ResponseFuture;
use crate::session::{Presented, Session};
use crate::transport;

/// The service [`SessionLayer`](crate::SessionLayer) wraps around the app. It reads its one cookie from
/// the `Cookie` header and writes its `Set-Cookie` itself: no cookie jar per request.
#[derive(Debug, Clone)]
pub struct SessionService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> SessionService<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// What the request's cookies present, checked for the backend: well-formed ids (a
/// value not of an id's exact shape is no session, with no store I/O), or sealed
/// values no longer than the store produces.
fn presented(shared: &Shared, headers: &http::HeaderMap) -> Presented {
    let values = transport::presented(&shared.config, headers);
    if values.is_empty() {
        return Presented::None;
    }
    match &shared.backend {
        Backend::Server(_) => {
            let ids: smallvec::SmallVec<[Id; 2]> = values
                .into_iter()
                .filter_map(|token| shared.config.read_id(token))
                .collect();
            if ids.is_empty() {
                Presented::None
            } else {
                Presented::Ids(ids)
            }
        }
        Backend::Client(store) => {
            let sealed: Vec<String> = values
                .into_iter()
                .filter(|v| !v.is_empty() && v.len() <= store.size_limit())
                .map(str::to_owned)
                .collect();
            if sealed.is_empty() {
                Presented::None
            } else {
                Presented::Sealed(sealed)
            }
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<String> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let shared = self.shared.clone();
        let session = Session::new(shared.clone(), presented(&shared, req.headers()));
        req.extensions_mut().insert(session.clone());

        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::new(Box::pin(async move {
            // However the request ends (a response, an error, the client gone), a
            // handle kept past it can change nothing silently.
            let closing = Closing(session.clone());
            let mut response = inner.call(req).await?;
            if session.close_untouched() {
                return Ok(response);
            }
            let server_error = response.status().is_server_error();
            if session.settled_without_writing(server_error) {
                drop(closing);
                transport::vary(&shared.config, &mut response);
                return Ok(response);
            }
            // Boxed apart: the write's state machine is large, and the future
            // every request builds (touched or not) should not carry it inline.
            let written = Box::pin(session.finish(server_error)).await;
            drop(closing);
            match written {
                Ok(action) => {
                    transport::vary(&shared.config, &mut response);
                    transport::write(&shared.config, action, &mut response);
                    Ok(response)
                }
                Err(error) => {
                    let (parts, body) = (shared.config.error_handler)(&error).into_parts();
                    crate::observe::failed_request(shared.backend.name(), parts.status);
                    let mut response = Response::from_parts(parts, ResBody::from(body));
                    transport::vary(&shared.config, &mut response);
                    Ok(response)
                }
            }
        }))
    }
}

/// Closes the session when the request's future ends or is dropped (see
/// `Session::close`), and releases a lock-mode lock the request still holds: a clone
/// kept by a task must not keep the session locked after its request.
struct Closing(Session);

impl Drop for Closing {
    fn drop(&mut self) {
        self.0.close();
        // After a finished write the lock is already gone and this is one `try_lock`.
        // Dropping the guard releases the lock (from a spawned task).
        if let Some(mut state) = self.0.inner.state.try_lock() {
            drop(state.lock.take());
        } else if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let session = self.0.clone();
            runtime.spawn(async move {
                let lock = session.inner.state.lock().await.lock.take();
                drop(lock);
            });
        }
    }
}
