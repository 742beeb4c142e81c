//! The demo's routes: a JSON API for tools and tests, and small HTML pages.

use std::sync::Arc;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post, put};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tether::{Session, SessionError};

/// What every handler knows about its instance.
pub(crate) struct Instance {
    pub(crate) name: String,
    pub(crate) store: String,
    pub(crate) ready: Box<dyn Fn() -> bool + Send + Sync>,
    pub(crate) templates: minijinja::Environment<'static>,
    pub(crate) limiter: crate::guard::LoginLimiter,
}

type Shared = State<Arc<Instance>>;

/// Prefix of the keys `PUT /api/data/{key}` writes, keeping them apart from the
/// counter.
const DATA_PREFIX: &str = "data.";
const COUNTER: &str = "counter";

pub(crate) fn templates() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    for (name, source) in [
        ("base.html", include_str!("../templates/base.html")),
        ("login.html", include_str!("../templates/login.html")),
        ("profile.html", include_str!("../templates/profile.html")),
    ] {
        env.add_template(name, source)
            .expect("the demo's templates parse");
    }
    env
}

pub(crate) fn routes(instance: Arc<Instance>) -> Router {
    let name = HeaderValue::from_str(&instance.name).unwrap_or(HeaderValue::from_static("?"));
    Router::new()
        .route("/api/login", post(api_login))
        .route("/api/me", get(api_me))
        .route("/api/logout", post(api_logout))
        .route("/api/logout-everywhere", post(api_logout_everywhere))
        .route("/api/sessions", get(api_sessions))
        .route("/api/data", get(api_data))
        .route("/api/data/{key}", put(api_put_data))
        .route("/api/counter", post(api_counter))
        .route("/healthz", get(healthz))
        .route("/", get(page))
        .route("/login", post(form_login))
        .route("/logout", post(form_logout))
        .route("/logout-everywhere", post(form_logout_everywhere))
        .route("/counter", post(form_counter))
        .with_state(instance)
        .layer(axum::middleware::from_fn(crate::guard::same_origin_only))
        .layer(axum::middleware::map_response(
            move |mut response: Response| {
                let name = name.clone();
                async move {
                    response.headers_mut().insert("x-instance", name);
                    response
                }
            },
        ))
}

fn valid_username(u: &str) -> bool {
    (1..=64).contains(&u.len())
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

/// How a login attempt ended.
enum Attempt {
    LoggedIn,
    Refused,
    /// Too many failures for this name or address: the password was not checked.
    Paused(std::time::Duration),
}

/// Checks the demo's credentials (unless guessing is paused) and logs the session in.
async fn log_in(
    i: &Instance,
    client: std::net::IpAddr,
    session: &Session,
    c: &Credentials,
) -> Result<Attempt, SessionError> {
    if let Err(wait) = i.limiter.check(&c.username, Some(client)) {
        return Ok(Attempt::Paused(wait));
    }
    let valid = valid_username(&c.username);
    if !valid || c.password != "demo" {
        i.limiter.failed(&c.username, valid, Some(client));
        return Ok(Attempt::Refused);
    }
    session.cycle_id().await?;
    session.set_user(c.username.clone()).await?;
    Ok(Attempt::LoggedIn)
}

async fn api_login(
    State(i): Shared,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    session: Session,
    body: Option<Json<Credentials>>,
) -> Result<Response, SessionError> {
    let Some(Json(c)) = body else {
        return Ok(error(
            StatusCode::BAD_REQUEST,
            "send {\"username\": …, \"password\": …} as JSON",
        ));
    };
    let client = i.limiter.client(&peer, &headers);
    Ok(match log_in(&i, client, &session, &c).await? {
        Attempt::LoggedIn => {
            Json(json!({ "user": c.username, "instance": i.name })).into_response()
        }
        Attempt::Refused => error(StatusCode::UNAUTHORIZED, "wrong username or password"),
        Attempt::Paused(wait) => crate::guard::too_many(wait, true),
    })
}

async fn api_me(State(i): Shared, session: Session) -> Result<Response, SessionError> {
    Ok(match session.user().await? {
        Some(user) => Json(json!({ "user": user, "instance": i.name })).into_response(),
        None => error(StatusCode::UNAUTHORIZED, "not logged in"),
    })
}

async fn api_logout(session: Session) -> Result<StatusCode, SessionError> {
    session.logout().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn api_logout_everywhere(session: Session) -> Result<Response, SessionError> {
    if session.user().await?.is_none() {
        return Ok(error(StatusCode::UNAUTHORIZED, "not logged in"));
    }
    let ended = session.logout_everywhere().await?;
    Ok(Json(json!({ "ended": ended })).into_response())
}

async fn sessions_json(session: &Session) -> Result<Value, SessionError> {
    let list = session.user_sessions().await?;
    let rfc = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    Ok(Value::Array(
        list.into_iter()
            .map(|s| json!({ "created": rfc(s.created), "last_seen": rfc(s.last_seen), "current": s.current }))
            .collect(),
    ))
}

async fn api_sessions(session: Session) -> Result<Response, SessionError> {
    if session.user().await?.is_none() {
        return Ok(error(StatusCode::UNAUTHORIZED, "not logged in"));
    }
    Ok(Json(sessions_json(&session).await?).into_response())
}

async fn api_put_data(
    session: Session,
    Path(key): Path<String>,
    Json(value): Json<Value>,
) -> Result<StatusCode, SessionError> {
    session
        .insert(&format!("{DATA_PREFIX}{key}"), value)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn api_data(session: Session) -> Result<Json<Map<String, Value>>, SessionError> {
    let data = session.data().await?;
    Ok(Json(
        data.into_iter()
            .filter_map(|(k, v)| k.strip_prefix(DATA_PREFIX).map(|k| (k.to_owned(), v)))
            .collect(),
    ))
}

async fn increment(session: &Session) -> Result<u64, SessionError> {
    let value = session.get::<u64>(COUNTER).await?.unwrap_or(0) + 1;
    session.insert(COUNTER, value).await?;
    Ok(value)
}

async fn api_counter(session: Session) -> Result<Json<Value>, SessionError> {
    Ok(Json(json!({ "value": increment(&session).await? })))
}

async fn healthz(State(i): Shared) -> StatusCode {
    if (i.ready)() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

fn render(i: &Instance, template: &str, status: StatusCode, ctx: Value) -> Response {
    let mut ctx = ctx;
    ctx["instance"] = json!(i.name);
    ctx["store"] = json!(i.store);
    match i
        .templates
        .get_template(template)
        .and_then(|t| t.render(ctx))
    {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("template error: {e}"),
        )
            .into_response(),
    }
}

async fn page(State(i): Shared, session: Session) -> Result<Response, SessionError> {
    let Some(user) = session.user().await? else {
        return Ok(render(&i, "login.html", StatusCode::OK, json!({})));
    };
    let counter = session.get::<u64>(COUNTER).await?.unwrap_or(0);
    // The cookie store keeps no list of sessions: the page says so.
    let sessions = match sessions_json(&session).await {
        Ok(list) => list,
        Err(SessionError::Store(e)) if matches!(*e, tether::Error::Unsupported { .. }) => {
            Value::Null
        }
        Err(e) => return Err(e),
    };
    Ok(render(
        &i,
        "profile.html",
        StatusCode::OK,
        json!({ "user": user, "counter": counter, "sessions": sessions }),
    ))
}

async fn form_login(
    State(i): Shared,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    session: Session,
    Form(c): Form<Credentials>,
) -> Result<Response, SessionError> {
    let client = i.limiter.client(&peer, &headers);
    Ok(match log_in(&i, client, &session, &c).await? {
        Attempt::LoggedIn => Redirect::to("/").into_response(),
        Attempt::Refused => {
            let ctx = json!({ "error": "Wrong username or password.", "username": c.username });
            render(&i, "login.html", StatusCode::UNAUTHORIZED, ctx)
        }
        Attempt::Paused(wait) => crate::guard::too_many(wait, false),
    })
}

async fn form_logout(session: Session) -> Result<Redirect, SessionError> {
    session.logout().await?;
    Ok(Redirect::to("/"))
}

async fn form_logout_everywhere(session: Session) -> Result<Redirect, SessionError> {
    if session.user().await?.is_some() {
        session.logout_everywhere().await?;
    }
    Ok(Redirect::to("/"))
}

async fn form_counter(session: Session) -> Result<Redirect, SessionError> {
    increment(&session).await?;
    Ok(Redirect::to("/"))
}
