//! Membership messages over HTTP: `POST {member}/gossip`, signed with the shared
//! secret over the body's digest, like every other replication request.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Weak};

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tether_core::unix_ms;
use tokio::sync::Semaphore;

use super::MAX_MESSAGE;
use crate::http::{check_signed, refuse};
use crate::wire::{self, BODY_DEADLINE, DIGEST, MAX_SKEW_MS};
use crate::{Inner, lock};

/// The most nonces remembered for refusing replays (a member sends a few messages a
/// second, and a nonce matters only while its timestamp is accepted).
const MAX_NONCES: usize = 100_000;

/// Sends `data` to the member at `url` in the background, unless too many sends are
/// under way already (then it is dropped, as a lost datagram would be).
pub(super) fn send(inner: &Weak<Inner>, sends: &Arc<Semaphore>, url: String, data: Bytes) {
    let Ok(permit) = sends.clone().try_acquire_owned() else {
        tracing::debug!(member = %url, "too many membership messages under way; one dropped");
        return;
    };
    let inner = inner.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let Some(store) = inner.upgrade() else { return };
        let digest = wire::digest(&data);
        let mut request = store
            .client
            .post(format!("{url}/gossip"))
            .header(DIGEST, digest.clone());
        for (name, value) in store.secret.request_headers("gossip", digest.as_bytes()) {
            request = request.header(name, value);
        }
        match request.body(data).send().await {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                tracing::warn!(member = %url, %status, answer = text.trim(), "a member refused a membership message");
            }
            Err(e) => {
                tracing::debug!(member = %url, error = %e, "a membership message was not delivered");
            }
        }
    });
}

/// `POST /gossip`: a signed membership message, handed to the protocol task.
pub(crate) async fn receive(inner: Arc<Inner>, request: axum::extract::Request) -> Response {
    let Some(membership) = inner.membership.as_ref() else {
        return refuse(
            StatusCode::NOT_FOUND,
            "this node takes no part in membership (it was given no URL of its own)",
        );
    };
    let (parts, body) = request.into_parts();
    let Some(digest) = parts
        .headers
        .get(DIGEST)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .map(str::to_owned)
    else {
        return refuse(StatusCode::UNAUTHORIZED, "unsigned membership message");
    };
    let nonce = match check_signed(&inner, &parts.headers, "gossip", digest.as_bytes()) {
        Ok(nonce) => nonce,
        Err(refusal) => return *refusal,
    };
    let body =
        match tokio::time::timeout(BODY_DEADLINE, axum::body::to_bytes(body, MAX_MESSAGE)).await {
            Ok(Ok(body)) => body,
            Ok(Err(_)) => {
                return refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the membership message is too large, or could not be read",
                );
            }
            Err(_) => {
                return refuse(
                    StatusCode::REQUEST_TIMEOUT,
                    "the membership message did not arrive in time",
                );
            }
        };
    if wire::digest(&body) != digest {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "the membership message does not match its signed digest",
        );
    }
    // Only a wholly authenticated message spends its nonce.
    let seen = lock(&membership.nonces).fresh(nonce);
    match seen {
        Seen::Fresh => {}
        Seen::Replay => return refuse(StatusCode::CONFLICT, "replayed membership message"),
        // SWIM copes with a lost message, as below.
        Seen::Full => return refuse(StatusCode::SERVICE_UNAVAILABLE, "membership is busy"),
    }
    match membership.inbox.try_send(body) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        // SWIM copes with a lost message; the sender need not retry.
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "membership is busy").into_response(),
    }
}

/// Nonces of the membership messages accepted recently, to refuse a replay.
#[derive(Debug, Default)]
pub(crate) struct Nonces {
    order: VecDeque<(i64, String)>,
    seen: HashSet<String>,
}

/// What [`Nonces::fresh`] says of a nonce.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// Not seen: remembered now.
    Fresh,
    /// Seen already: a replay.
    Replay,
    /// As many nonces as are kept, all still within the accepted time: the message is
    /// refused rather than one forgotten (which would let its replay through).
    Full,
}

impl Nonces {
    /// Remembers `nonce`. Nonces older than the signed timestamps accepted are
    /// forgotten; younger ones never are.
    fn fresh(&mut self, nonce: String) -> Seen {
        let now = unix_ms::now_ms();
        while self
            .order
            .front()
            .is_some_and(|(at, _)| now - at > 2 * MAX_SKEW_MS)
        {
            if let Some((_, old)) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        if self.seen.contains(&nonce) {
            return Seen::Replay;
        }
        if self.order.len() >= MAX_NONCES {
            return Seen::Full;
        }
        self.seen.insert(nonce.clone());
        self.order.push_back((now, nonce));
        Seen::Fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_accepted_once() {
        let mut nonces = Nonces::default();
        assert_eq!(nonces.fresh("a".into()), Seen::Fresh);
        assert_eq!(nonces.fresh("b".into()), Seen::Fresh);
        assert_eq!(nonces.fresh("a".into()), Seen::Replay);
    }

    #[test]
    fn a_full_cache_refuses_rather_than_forgets_a_recent_nonce() {
        let mut nonces = Nonces::default();
        for n in 0..MAX_NONCES {
            assert_eq!(nonces.fresh(n.to_string()), Seen::Fresh);
        }
        assert_eq!(nonces.fresh("one more".into()), Seen::Full);
        // The first is still remembered: its replay is still refused.
        assert_eq!(nonces.fresh("0".into()), Seen::Replay);
    }
}
