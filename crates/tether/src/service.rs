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
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let shared = &self.shared;
        let session = Session::new(shared.clone(), presented(shared, req.headers()));
        req.extensions_mut().insert(session.clone());
        ResponseFuture::new(self.inner.call(req), session)
    }
}
