//! `ResponseFuture`: the future of `SessionService`'s response.
//!
//! It polls the app's future in place (no box, no clone of the app's service); when
//! the response is out, a request that owes the store nothing is settled at once and
//! only a write is boxed: its state machine is large, and most requests only read.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::Response;
use tether_core::Error;

use crate::backend::Shared;
use crate::cookie_header::CookieAction;
use crate::session::Session;
use crate::transport;

/// The write after the handler: the cookie it leaves (or the error that replaces the
/// response), and the layer's configuration to apply it with. Boxed on its own: only
/// a request that writes builds it.
type Writing =
    Pin<Box<dyn Future<Output = (Result<CookieAction, Arc<Error>>, Arc<Shared>)> + Send>>;

pin_project_lite::pin_project! {
    /// The response future of [`SessionService`](crate::SessionService): the app's
    /// response, with the session written and its cookie set.
    pub struct ResponseFuture<F, B> {
        #[pin]
        handler: F,
        // The request's session until the handler answers; then settled or written.
        closing: Option<Closing>,
        // The write after the handler, and the response it goes on (boxed: a read
        // does not carry a response's room in its future).
        writing: Option<Box<(Writing, Response<B>)>>,
    }
}

impl<F, B> ResponseFuture<F, B> {
    pub(crate) fn new(handler: F, session: Session) -> Self {
        Self {
            handler,
            closing: Some(Closing(session)),
            writing: None,
        }
    }
}

impl<F, B> std::fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("writing", &self.writing.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: From<String>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(pending) = this.writing {
            let (written, shared) = ready!(pending.0.as_mut().poll(cx));
            if let Some(pending) = this.writing.take() {
                return Poll::Ready(Ok(with_cookie(&shared, written, pending.1)));
            }
        }
        let answer = ready!(this.handler.poll(cx));
        // However the request ends (a response, an error), a handle kept past it can
        // change nothing silently: `Closing` closes it when dropped, here or after the
        // write. (Dropped unpolled, the future drops it too.)
        let Some(closing) = this.closing.take() else {
            return Poll::Ready(answer);
        };
        let mut response = answer?;
        let session = &closing.0;
        if session.close_untouched() {
            return Poll::Ready(Ok(response));
        }
        let server_error = response.status().is_server_error();
        if session.settled_without_writing(server_error) {
            transport::vary(&session.inner.shared.config, &mut response);
            return Poll::Ready(Ok(response));
        }
        let mut writing: Writing = Box::pin(async move {
            let written = closing.0.finish(server_error).await;
            (written, closing.0.inner.shared.clone())
        });
        match writing.as_mut().poll(cx) {
            Poll::Ready((written, shared)) => {
                Poll::Ready(Ok(with_cookie(&shared, written, response)))
            }
            Poll::Pending => {
                *this.writing = Some(Box::new((writing, response)));
                Poll::Pending
            }
        }
    }
}

/// `response` with the cookie the write left, or the layer's error response when the
/// write failed.
fn with_cookie<B: From<String>>(
    shared: &Shared,
    written: Result<CookieAction, Arc<Error>>,
    mut response: Response<B>,
) -> Response<B> {
    match written {
        Ok(action) => {
            transport::vary(&shared.config, &mut response);
            transport::write(&shared.config, action, &mut response);
            response
        }
        Err(error) => {
            let (parts, body) = (shared.config.error_handler)(&error).into_parts();
            crate::observe::failed_request(shared.backend.name(), parts.status);
            let mut response = Response::from_parts(parts, B::from(body));
            transport::vary(&shared.config, &mut response);
            response
        }
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
