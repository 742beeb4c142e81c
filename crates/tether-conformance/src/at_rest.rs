//! Ids at rest are not credentials: the check every store that keeps sessions outside
//! the process runs on what it wrote after a login.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use tether_conformance::at_rest;
//! let ids = at_rest::presented_ids(tether::SessionLayer::new(tether::MemoryStore::new())).await;
//! assert_eq!(ids.len(), 2, "an anonymous session, then the login's new id");
//! at_rest::assert_absent("nothing", b"", &ids);
//! # }
//! ```

use tether::{Id, SessionLayer};

use crate::app;
use crate::http::send;

/// Drives a visit through `layer` (an anonymous session that stores a value, a login
/// that rotates its id and binds a user, a write and a read after it) and returns
/// every session id the client was given: what must never appear at rest.
///
/// # Panics
/// When a request fails or a response sets no session cookie where one is due.
pub async fn presented_ids(layer: SessionLayer) -> Vec<Id> {
    let app = app::routes().layer(layer.with_insecure_cookie());
    let id_of = |cookie: &str| {
        let value = cookie.split_once('=').map_or("", |(_, v)| v);
        Id::parse(value).unwrap_or_else(|| panic!("no session id in the cookie {cookie:?}"))
    };
    let first = send(&app, "POST", "/incr", None).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let anonymous = first.cookie();
    let login = send(&app, "POST", "/login", Some(&anonymous)).await;
    assert_eq!(login.status, 200, "{}", login.body);
    let logged_in = login.cookie();
    for (method, path) in [("POST", "/incr"), ("GET", "/read"), ("GET", "/me")] {
        let reply = send(&app, method, path, Some(&logged_in)).await;
        assert_eq!(reply.status, 200, "{method} {path}: {}", reply.body);
    }
    vec![id_of(&anonymous), id_of(&logged_in)]
}

/// Panics when `written` (everything a store wrote: keys, rows, files, messages)
/// holds any of `ids` in a form a store could write it in: its text, its raw bytes,
/// or hex. `what` names the place in the message.
///
/// # Panics
/// When an id is found.
pub fn assert_absent(what: &str, written: &[u8], ids: &[Id]) {
    for id in ids {
        let text = id.to_string();
        let hex_lower = id.as_bytes().iter().fold(String::new(), |mut out, b| {
            use std::fmt::Write as _;
            let _ = write!(out, "{b:02x}");
            out
        });
        let forms: [(&str, &[u8]); 4] = [
            ("its text", text.as_bytes()),
            ("its bytes", id.as_bytes()),
            ("hex", hex_lower.as_bytes()),
            ("HEX", &hex_lower.to_uppercase().into_bytes()),
        ];
        for (form, needle) in forms {
            assert!(
                !written.windows(needle.len()).any(|w| w == needle),
                "{what} holds a presented session id ({form}): whoever reads it can log in"
            );
        }
    }
}

/// Every file under `dir`, read whole and joined: for stores that write files.
///
/// # Panics
/// When the directory cannot be walked.
pub fn read_tree(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("a readable directory") {
            let path = entry.expect("a directory entry").path();
            // File names are written too (a store may name files by id).
            out.extend_from_slice(path.as_os_str().as_encoded_bytes());
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.extend_from_slice(&bytes);
            }
        }
    }
    out
}

/// Session data sealed at rest ([`SessionLayer::with_sealed_data`]), on `store`:
/// a value written through a sealing layer is nowhere in what the store holds
/// (`dump`), while one written without sealing is (so the check can fail); a
/// rotated key ring still opens it; a ring without its key, or a layer without keys,
/// answers an error and never a fresh session.
///
/// # Panics
/// When any of it does not hold.
pub async fn check_sealed_data<D>(store: std::sync::Arc<dyn tether::SessionStore>, mut dump: D)
where
    D: AsyncFnMut() -> Vec<u8>,
{
    use axum::routing::post;
    use tether::{DataKeys, Session, SessionError};

    async fn put(session: Session, body: String) -> Result<&'static str, SessionError> {
        session.insert("secret", body).await?;
        Ok("kept")
    }
    async fn read(session: Session) -> Result<String, SessionError> {
        Ok(session.get::<String>("secret").await?.unwrap_or_default())
    }
    let app = |layer: SessionLayer| {
        axum::Router::new()
            .route("/secret", post(put).get(read))
            .layer(layer.with_insecure_cookie())
    };
    let (old, new) = (
        DataKeys::generate_key().unwrap(),
        DataKeys::generate_key().unwrap(),
    );
    let keys = |text: &str| DataKeys::parse(text).unwrap();
    let sealing = |text: &str| SessionLayer::from_arc(store.clone()).with_sealed_data(keys(text));
    let marker = |tag: &str| format!("{tag}-{}", Id::generate().unwrap());

    let secret = marker("sealed-secret");
    let sealed = app(sealing(&old));
    let cookie = crate::http::send_body(&sealed, "POST", "/secret", None, &secret)
        .await
        .cookie();
    let plain_secret = marker("plain-secret");
    let plain = app(SessionLayer::from_arc(store.clone()));
    crate::http::send_body(&plain, "POST", "/secret", None, &plain_secret).await;
    let written = dump().await;
    let contains = |needle: &str| {
        written
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    };
    assert!(
        contains(&plain_secret),
        "an unsealed value is not in what the store holds: the dump shows nothing"
    );
    assert!(
        !contains(&secret),
        "a sealed value is readable at the store"
    );

    let rotated = app(sealing(&format!("{new}\n{old}")));
    let reply = send(&rotated, "GET", "/secret", Some(&cookie)).await;
    assert_eq!(reply.body, secret, "a rotated key ring lost the session");

    for (what, layer) in [
        ("a ring without the sealing key", sealing(&new)),
        (
            "a layer without data keys",
            SessionLayer::from_arc(store.clone()),
        ),
    ] {
        let reply = send(&app(layer), "GET", "/secret", Some(&cookie)).await;
        assert!(
            reply.status.is_server_error(),
            "{what}: {} {}",
            reply.status,
            reply.body
        );
        assert!(
            reply.set_cookie.is_none(),
            "{what}: a fresh session replaced the sealed one"
        );
    }
}
