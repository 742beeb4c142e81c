//! A WebSocket that keeps writing its session after the upgrade's response: every
//! message a client sends is counted in its session, and a plain page load on any
//! instance sees the count.
//!
//! The handler's [`Session`] belongs to the upgrade's response (`101`), which is out
//! before the socket's first message: a plain handle used later fails with
//! `SessionError::AfterResponse` rather than pretend. [`Session::detach`] gives the
//! loop a handle whose every write is saved at once.
//!
//! | route | what it does |
//! |---|---|
//! | `POST /hello` | starts a session (the socket's upgrade needs one to write to) |
//! | `GET /ws` | the socket: each text message increments `messages`, answered with the count |
//! | `GET /count` | `messages` from the session |

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::{get, post};
use tether::{DetachedSession, Session, SessionError, SessionLayer};

/// The app, over `layer`.
///
/// ```
/// let app = tether_websocket_example::app(tether::SessionLayer::new(tether::MemoryStore::new()));
/// ```
pub fn app(layer: SessionLayer) -> Router {
    Router::new()
        .route("/hello", post(hello))
        .route("/ws", get(socket))
        .route("/count", get(count))
        .layer(layer)
}

async fn hello(session: Session) -> Result<&'static str, SessionError> {
    session.insert("messages", 0_u64).await?;
    Ok("hello")
}

async fn socket(ws: WebSocketUpgrade, session: Session) -> Response {
    // Taken in the handler, used after its response.
    let session = session.detach();
    ws.on_upgrade(move |socket| talk(socket, session))
}

async fn talk(mut socket: WebSocket, session: DetachedSession) {
    while let Some(Ok(message)) = socket.recv().await {
        let Message::Text(_) = message else {
            continue;
        };
        let reply = match session.get::<u64>("messages").await {
            Ok(n) => {
                let n = n.unwrap_or(0) + 1;
                match session.insert("messages", n).await {
                    Ok(()) => n.to_string(),
                    Err(e) => format!("error: {e}"),
                }
            }
            Err(e) => format!("error: {e}"),
        };
        if socket.send(Message::Text(reply.into())).await.is_err() {
            break;
        }
    }
}

async fn count(session: Session) -> Result<String, SessionError> {
    Ok(session
        .get::<u64>("messages")
        .await?
        .unwrap_or(0)
        .to_string())
}
