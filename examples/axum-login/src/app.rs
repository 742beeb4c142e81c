//! The routes: log in, who am I (with flash messages), a protected page, my sessions,
//! log out, log out everywhere.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use axum_login::tower_sessions::cookie::Key;
use axum_login::tower_sessions::{Expiry, SessionManagerLayer};
use axum_login::{AuthManagerLayerBuilder, AuthSession, login_required};
use axum_messages::{Messages, MessagesManagerLayer};
use serde_json::json;
use tether::SessionStore;
use tether_tower_sessions::TowerSessions;

use crate::users::{Credentials, Users};

/// What every handler can reach.
#[derive(Clone)]
struct App {
    /// This instance's name, in every answer, so a client sees who served it.
    instance: Arc<str>,
    /// The tether store under the adapter: for what tower-sessions has no word for.
    sessions: TowerSessions<dyn SessionStore>,
}

type Auth = AuthSession<Users>;

/// The app over `store`: axum-login's layer on tower-sessions' layer on the adapter.
/// `key` signs the session cookie: every instance must be given the same one (from
/// configuration), or each would refuse the others' cookies whatever the store.
pub(crate) fn router(
    instance: &str,
    store: Arc<dyn SessionStore>,
    secure: bool,
    key: Key,
) -> Router {
    let sessions = TowerSessions::from_arc(store).with_user_cap(10);
    let session_layer = SessionManagerLayer::new(sessions.clone())
        .with_name("session")
        .with_secure(secure)
        .with_signed(key)
        .with_expiry(Expiry::OnInactivity(time::Duration::hours(8)));
    let auth_layer = AuthManagerLayerBuilder::new(Users::default(), session_layer).build();
    let protected = Router::new()
        .route("/protected", get(protected))
        .route_layer(login_required!(Users));
    Router::new()
        .merge(protected)
        .route("/healthz", get(|| async { "ok" }))
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/sessions", get(my_sessions))
        .route("/logout", post(logout))
        .route("/logout-everywhere", post(logout_everywhere))
        .layer(MessagesManagerLayer)
        .layer(auth_layer)
        .with_state(App {
            instance: instance.into(),
            sessions,
        })
}

fn unauthorized(app: &App) -> Response {
    let body = Json(json!({"error": "not logged in", "instance": &*app.instance}));
    (StatusCode::UNAUTHORIZED, body).into_response()
}

fn failed(app: &App, what: &str, e: impl std::fmt::Display) -> Response {
    let body = Json(json!({"error": format!("{what}: {e}"), "instance": &*app.instance}));
    (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
}

async fn login(
    State(app): State<App>,
    mut auth: Auth,
    messages: Messages,
    Form(creds): Form<Credentials>,
) -> Response {
    let user = match auth.authenticate(creds).await {
        Ok(Some(user)) => user,
        Ok(None) => return unauthorized(&app),
        Err(e) => return failed(&app, "authenticating", e),
    };
    if let Err(e) = auth.login(&user).await {
        return failed(&app, "logging in", e);
    }
    // A flash message: shown once, by whichever instance answers next.
    messages.success(format!("Welcome, {}", user.name()));
    Json(json!({"user": user.name(), "instance": &*app.instance})).into_response()
}

async fn me(State(app): State<App>, auth: Auth, messages: Messages) -> Response {
    match &auth.user {
        Some(user) => {
            let messages: Vec<String> = messages.into_iter().map(|m| m.message).collect();
            Json(json!({"user": user.name(), "instance": &*app.instance, "messages": messages}))
                .into_response()
        }
        None => unauthorized(&app),
    }
}

/// Behind `login_required!`: axum-login answers 401 without a logged-in user.
async fn protected(State(app): State<App>, auth: Auth) -> Response {
    let name = auth.user.as_ref().map(|u| u.name().to_owned());
    Json(json!({"protected": true, "user": name, "instance": &*app.instance})).into_response()
}

async fn my_sessions(State(app): State<App>, auth: Auth) -> Response {
    let Some(user) = &auth.user else {
        return unauthorized(&app);
    };
    match app.sessions.store().user_sessions(user.name()).await {
        Ok(list) => Json(json!({"user": user.name(), "sessions": list.len()})).into_response(),
        Err(e) => failed(&app, "listing sessions", e),
    }
}

async fn logout(State(app): State<App>, mut auth: Auth) -> Response {
    match auth.logout().await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => failed(&app, "logging out", e),
    }
}

async fn logout_everywhere(State(app): State<App>, mut auth: Auth) -> Response {
    let Some(user) = auth.user.clone() else {
        return unauthorized(&app);
    };
    let ended = match app.sessions.store().delete_user_sessions(user.name()).await {
        Ok(n) => n,
        Err(e) => return failed(&app, "ending sessions", e),
    };
    // This session was among them; also drop its cookie.
    if let Err(e) = auth.logout().await {
        return failed(&app, "logging out", e);
    }
    Json(json!({"ended": ended, "instance": &*app.instance})).into_response()
}
