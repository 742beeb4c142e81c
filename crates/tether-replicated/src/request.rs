//! A signed `GET` to a peer and its signed answer: what a hello and a snapshot page
//! share.

use serde::de::DeserializeOwned;
use tether_core::unix_ms;

use crate::Inner;
use crate::wire::{Hello, MAX_SKEW_MS, NONCE, NOT_READY, SIGNATURE, TIME, hello_binding};

/// How a signed request ended, when it did not give an answer.
pub(crate) enum Refusal {
    /// Nothing there: the connection was refused, or the peer is catching up itself.
    Down,
    /// The peer answered with a client error (a wrong secret, clock skew, a bad
    /// request): retrying the same request cannot help.
    Client(String),
    /// Unreachable, too slow, or a server error: retrying later may help.
    Failed(String),
}

/// `GET {url}` signed for `what` (with `extra` signed too), answered with JSON signed
/// over `reply` and the request's nonce.
pub(crate) async fn signed_get<T: DeserializeOwned>(
    inner: &Inner,
    url: &str,
    what: &str,
    extra: &str,
    query: &[(&str, &str)],
    reply: &[u8],
) -> Result<T, Refusal> {
    let headers = inner.secret.request_headers(what, extra.as_bytes());
    debug_assert_eq!(headers[1].0, NONCE);
    let nonce = headers[1].1.clone();
    let mut request = inner.client.get(url).query(query);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) if e.is_connect() => return Err(Refusal::Down),
        Err(e) if e.is_timeout() => {
            return Err(Refusal::Failed(format!(
                "no answer within {:?}",
                inner.timeout
            )));
        }
        Err(e) => return Err(Refusal::Failed(e.to_string())),
    };
    let status = response.status();
    if status == reqwest::StatusCode::SERVICE_UNAVAILABLE
        && response.headers().contains_key(NOT_READY)
    {
        return Err(Refusal::Down);
    }
    if !status.is_success() {
        let their_time = response
            .headers()
            .get(TIME)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i64>().ok());
        if let Some(theirs) = their_time {
            let skew = theirs - unix_ms::now_ms();
            if skew.abs() > MAX_SKEW_MS {
                return Err(Refusal::Client(format!(
                    "clock skew: the peer's clock is {skew} ms from ours (at most {MAX_SKEW_MS} ms allowed; run NTP)"
                )));
            }
        }
        let text = response.text().await.unwrap_or_default();
        let why = format!("answered {status}: {}", text.trim());
        return Err(if status.is_client_error() {
            Refusal::Client(why)
        } else {
            Refusal::Failed(why)
        });
    }
    let signature = response
        .headers()
        .get(SIGNATURE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| Refusal::Client("an unsigned answer".into()))?;
    let body = response
        .bytes()
        .await
        .map_err(|e| Refusal::Failed(e.to_string()))?;
    if !inner
        .secret
        .verify(&[reply, nonce.as_bytes(), &body], &signature)
    {
        return Err(Refusal::Client(
            "the answer's signature does not verify".into(),
        ));
    }
    serde_json::from_slice(&body).map_err(|e| Refusal::Client(format!("a malformed answer: {e}")))
}

/// A signed hello to the node whose routes are at `base` (its node id, readiness,
/// members and advertised URL). `introduce` names this instance (its URL and node
/// id), as a joining instance does, so a member that knew an earlier process at that
/// URL resyncs it.
pub(crate) async fn hello(
    inner: &Inner,
    base: &str,
    introduce: Option<(&str, u64)>,
) -> Result<Hello, Refusal> {
    let url = format!("{base}/hello");
    match introduce {
        Some((me, node)) => {
            let binding = hello_binding(me, node);
            let node = node.to_string();
            let query = [("from", me), ("node", node.as_str())];
            signed_get(inner, &url, "hello", &binding, &query, b"hello-reply").await
        }
        None => signed_get(inner, &url, "hello", "", &[], b"hello-reply").await,
    }
}
