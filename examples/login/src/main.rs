//! The tether demo. `login` runs three instances behind a balancer on the embedded
//! file store; `login serve …` runs one instance. See the README beside this file.

mod app;
mod demo;
mod guard;
mod metrics;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tether::{SessionLayer, StoreConfig, StoreKind};

/// Log in once, stay logged in whichever instance answers.
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    demo: demo::DemoArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one instance.
    Serve(ServeArgs),
}

/// `--store`: one of the stores tether ships ([`StoreKind::ALL`]).
fn store_kind() -> impl clap::builder::TypedValueParser<Value = StoreKind> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(StoreKind::ALL.iter().map(|kind| kind.name()))
        .try_map(|name| name.parse::<StoreKind>())
}

/// One instance of the demo app.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on, such as 127.0.0.1:9001.
    #[arg(long, env = "TETHER_LISTEN")]
    listen: String,
    /// This instance's name, shown on every page and in `x-instance`.
    #[arg(long, env = "TETHER_NAME")]
    name: String,
    /// memory, file, redis, mysql, postgres, sqlite, cookie, jwt or replicated.
    #[arg(long, env = "TETHER_STORE", value_parser = store_kind(), default_value = "file")]
    store: StoreKind,
    /// The store's URL: redis://… (several, comma-separated, for Redis Cluster),
    /// redis+sentinel://HOST:26379/MASTER, mysql://…, postgres://…, sqlite://PATH
    /// (created when missing), or for `file` a directory (or file:///DIR). See
    /// `tether::StoreConfig`.
    #[arg(long, env = "TETHER_STORE_URL")]
    store_url: Option<String>,
    /// The CA certificate (PEM) a `rediss://` store's server certificate is checked
    /// against, when it is not signed by a public CA.
    #[arg(long, env = "TETHER_STORE_CA")]
    store_ca: Option<PathBuf>,
    /// The cookie store's key file (one base64url key per line, newest first), or the
    /// JWT store's (`kid ed25519 SEED` per line, newest first).
    #[arg(long, env = "TETHER_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// The other instances' URLs (replicated store), comma-separated: seeds. This
    /// instance joins through any one of them that is up and learns every other
    /// member at run time; a name stands for each address it resolves to (a
    /// Kubernetes headless service), looked up again every few seconds.
    #[arg(long, env = "TETHER_PEERS", value_delimiter = ',')]
    peers: Vec<String>,
    /// This instance's own replication URL, as the others reach it (replicated
    /// store). Default: `http://LISTEN/_tether`, unless LISTEN is a wildcard address
    /// such as 0.0.0.0, which the others cannot reach: then membership is off and
    /// --peers is the fixed list of peers.
    #[arg(long, env = "TETHER_ADVERTISE")]
    advertise: Option<String>,
    /// Strict per-session locking.
    #[arg(long, env = "TETHER_LOCK")]
    lock: bool,
    /// Send the cookie over plain HTTP (localhost only).
    #[arg(long, env = "TETHER_INSECURE_COOKIE")]
    insecure_cookie: bool,
    /// The most sessions this instance holds (memory and replicated stores; the memory
    /// store's default is 100,000); anonymous sessions may use half, so they can never
    /// lock out logins.
    #[arg(long, env = "TETHER_MAX_SESSIONS")]
    max_sessions: Option<usize>,
    /// Believe X-Forwarded-For (for the login rate limit's client address) from these
    /// proxies, comma-separated (default: this machine, where the demo's balancer runs).
    #[arg(
        long = "trusted-proxy",
        env = "TETHER_TRUSTED_PROXIES",
        value_delimiter = ',',
        default_value = "127.0.0.0/8,::1"
    )]
    trusted_proxies: Vec<String>,
    /// How long a client may take to send its request headers (and stay idle between
    /// requests), in milliseconds.
    #[arg(long, env = "TETHER_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    header_timeout_ms: u64,
    /// How long a client may take to send a request's body, in milliseconds.
    #[arg(long, env = "TETHER_BODY_TIMEOUT_MS", default_value_t = 15_000)]
    body_timeout_ms: u64,
    /// The most connections open at once (the longest-idle is closed to make room).
    #[arg(long, env = "TETHER_MAX_CONNECTIONS", default_value_t = 512)]
    max_connections: usize,
    /// The most sessions one user may hold: a login beyond it ends that user's oldest
    /// session, so one account can never fill `--max-sessions` (0: no cap).
    #[arg(long, env = "TETHER_MAX_SESSIONS_PER_USER", default_value_t = 10)]
    max_sessions_per_user: u32,
    /// Serve `GET /metrics` (Prometheus) on this address, such as 127.0.0.1:9101; off
    /// by default, and never on the app's listener. It has the app listener's header
    /// and body deadlines and a cap of its own (8 connections: scrapers are few).
    #[arg(long, env = "TETHER_METRICS_LISTEN")]
    metrics_listen: Option<String>,
}

/// The largest request body the app reads (a form, a JSON value).
const MAX_REQUEST_BODY: usize = 1 << 20;

fn fail(message: &str) -> ! {
    eprintln!("login: {message}");
    std::process::exit(2);
}

/// The file store's directory when none is given: private to this user (sessions are
/// credentials), never a shared name under /tmp that another user could create first.
fn default_file_dir() -> PathBuf {
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state")))
        .unwrap_or_else(|| fail("--store file needs --store-url (no HOME to keep sessions under)"));
    state.join("tether-demo").join("sessions")
}

/// The session layer, plus what the store adds to the app.
struct Built {
    layer: SessionLayer,
    ready: Box<dyn Fn() -> bool + Send + Sync>,
    extra: Option<axum::Router>,
    /// A replicated store whose first catch-up failed: retried once serving.
    catching_up: Option<tether::replicated::ReplicatedStore>,
    /// The replicated store, to leave its cluster on a graceful shutdown.
    replicated: Option<tether::replicated::ReplicatedStore>,
}

/// The store the flags name, as tether's one store-from-configuration path reads it.
fn store_config(args: &ServeArgs) -> StoreConfig {
    let kind = args.store;
    let config = match (&args.store_url, kind) {
        // A plain directory, as `--store file` has always taken.
        (Some(dir), StoreKind::File) if !dir.starts_with("file:") => StoreConfig::file(dir),
        (Some(url), _) => {
            StoreConfig::parse(url).unwrap_or_else(|e| fail(&format!("--store-url: {e}")))
        }
        (None, StoreKind::File) => StoreConfig::file(default_file_dir()),
        (None, _) => StoreConfig::without_url(kind)
            .unwrap_or_else(|| fail(&format!("--store {kind} needs --store-url"))),
    };
    if config.kind() != kind {
        fail(&format!(
            "--store-url names the {} store, --store says {kind}",
            config.kind()
        ));
    }
    let mut config = match (kind, &args.key_file) {
        (StoreKind::Cookie | StoreKind::Jwt, Some(path)) => config.with_key_file(path),
        (StoreKind::Cookie, None) => config.with_keys(
            std::env::var("TETHER_COOKIE_KEYS")
                .unwrap_or_else(|_| fail("--store cookie needs --key-file or TETHER_COOKIE_KEYS")),
        ),
        (StoreKind::Jwt, None) => config.with_keys(
            std::env::var("TETHER_JWT_KEYS")
                .unwrap_or_else(|_| fail("--store jwt needs --key-file or TETHER_JWT_KEYS")),
        ),
        _ => config,
    };
    if let Some(path) = &args.store_ca {
        let pem = std::fs::read(path)
            .unwrap_or_else(|e| fail(&format!("cannot read the CA file {}: {e}", path.display())));
        config = config.with_ca_pem(pem);
    }
    if let Some(max) = args.max_sessions {
        if !matches!(kind, StoreKind::Replicated | StoreKind::Memory) {
            fail("--max-sessions applies to the memory and replicated stores");
        }
        config = config.with_max_sessions(max);
    }
    if kind == StoreKind::Replicated {
        config = replication(args, config);
    }
    config
}

/// The replicated store's secret and peers.
fn replication(args: &ServeArgs, config: StoreConfig) -> StoreConfig {
    // Never a known secret: whoever holds it can forge logins and read every
    // session id. `login` (the demo) makes a random one for its children.
    let secret = std::env::var("TETHER_REPLICATION_SECRET").unwrap_or_default();
    if secret.len() < tether::replicated::MIN_SECRET_LEN {
        fail(&format!(
            "--store replicated needs TETHER_REPLICATION_SECRET, at least {} bytes shared by every instance (head -c 24 /dev/urandom | base64)",
            tether::replicated::MIN_SECRET_LEN
        ));
    }
    let me = format!("http://{}", args.listen);
    let peers = args
        .peers
        .iter()
        .map(|p| {
            p.trim_end_matches('/')
                .trim_end_matches("/_tether")
                .to_owned()
        })
        .filter(|p| *p != me)
        .map(|p| format!("{p}/_tether"));
    let config = config.with_replication_secret(secret).with_peers(peers);
    if let Some(url) = advertised(args) {
        config.with_advertised_url(url)
    } else {
        eprintln!(
            "login: --listen {} is a wildcard address: membership is off (give --advertise URL to turn it on)",
            args.listen
        );
        config
    }
}

/// This instance's replication URL: `--advertise`, or one made of `--listen` when
/// the others can reach that address.
fn advertised(args: &ServeArgs) -> Option<String> {
    if let Some(url) = &args.advertise {
        // Spelled as the seeds are: `http://host:port` and `http://host:port/_tether/`
        // both name the routes under `/_tether`.
        let url = url.trim_end_matches('/').trim_end_matches("/_tether");
        return Some(format!("{url}/_tether"));
    }
    match args.listen.parse::<std::net::SocketAddr>() {
        Ok(addr) if addr.ip().is_unspecified() => None,
        _ => Some(format!("http://{}/_tether", args.listen)),
    }
}

async fn build_store(args: &ServeArgs) -> Built {
    let opened = store_config(args)
        .open()
        .await
        .unwrap_or_else(|e| fail(&format!("--store {}: {e}", args.store)));
    let mut built = Built {
        layer: opened.layer(),
        ready: Box::new(|| true),
        extra: None,
        catching_up: None,
        replicated: None,
    };
    if let Some(store) = opened.jwt() {
        // Verifiers (a gateway, another service) fetch the public keys here.
        let jwks = axum::Json(store.keys().jwks());
        built.extra = Some(axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || std::future::ready(jwks.clone())),
        ));
    }
    if let Some(store) = opened.replicated() {
        // Catch up before listening (see `serve`), so no request meets a
        // half-filled instance: a restart can be quicker than the balancer's
        // health check. A peer that answered with an error keeps the instance not
        // ready (503s, /healthz too) while it tries again in the background.
        if let tether::replicated::CatchUp::Failed(reasons) = store.catch_up().await {
            eprintln!(
                "login: not ready: could not catch up with the peers ({}); retrying",
                reasons.join("; ")
            );
            built.catching_up = Some(store.clone());
        }
        built.replicated = Some(store.clone());
        // Healthy once caught up and known to every member: a balancer routes here
        // only when a login on any member is replicated here too.
        let ready = store.clone();
        built.ready = Box::new(move || ready.is_ready() && ready.is_joined());
        built.extra = Some(axum::Router::new().nest("/_tether", store.router()));
    }
    built
}

/// The bounds of every listener an instance opens (the app's, the replication
/// routes on it, the metrics'), from the flags.
fn listener_limits(args: &ServeArgs) -> tether_server::Limits {
    tether_server::Limits {
        header_read_timeout: Duration::from_millis(args.header_timeout_ms),
        body_read_timeout: Duration::from_millis(args.body_timeout_ms),
        max_connections: args.max_connections,
    }
}

async fn serve(args: ServeArgs) {
    let limits = listener_limits(&args);
    if let Some(addr) = &args.metrics_listen {
        metrics::serve(addr, limits)
            .await
            .unwrap_or_else(|e| fail(&e));
    }
    let built = build_store(&args).await;
    // Bound only once the store is ready: until then a connection is refused at once
    // (a balancer sends the request to another instance, a catching-up peer asks the
    // next one) instead of waiting in the backlog.
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .unwrap_or_else(|e| fail(&format!("cannot listen on {}: {e}", args.listen)));
    let mut layer = built.layer;
    if args.insecure_cookie {
        layer = layer.with_insecure_cookie();
    }
    if args.lock {
        layer = layer.with_lock(tether::LockOptions::default());
    }
    if args.max_sessions_per_user > 0 {
        layer = layer.with_max_sessions_per_user(args.max_sessions_per_user);
    }
    let trusted = tether_server::TrustedProxies::parse(&args.trusted_proxies)
        .unwrap_or_else(|e| fail(&e.to_string()));
    let instance = Arc::new(app::Instance {
        name: args.name.clone(),
        store: args.store.name().to_owned(),
        ready: built.ready,
        templates: app::templates(),
        limiter: guard::LoginLimiter::new(trusted),
    });
    // What a production app puts around `SessionLayer` (outermost first): traces
    // that never show the session cookie, a panic answered as 500 (the session layer,
    // inside, has by then released its lock and saved nothing), a body limit and a
    // time limit (503, which browsers never resend on their own, unlike 408). The
    // session layer sits inside all of them, next to the handlers. The replicated
    // store's peer routes (`extra`) stay outside: their batches have their own limits.
    let site = {
        use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
        use tower_http::{
            catch_panic::CatchPanicLayer, limit::RequestBodyLimitLayer,
            sensitive_headers::SetSensitiveHeadersLayer, timeout::TimeoutLayer, trace::TraceLayer,
        };
        app::routes(instance).layer(layer).layer(
            tower::ServiceBuilder::new()
                .layer(SetSensitiveHeadersLayer::new([
                    COOKIE,
                    SET_COOKIE,
                    AUTHORIZATION,
                ]))
                .layer(TraceLayer::new_for_http())
                .layer(CatchPanicLayer::new())
                .layer(RequestBodyLimitLayer::new(MAX_REQUEST_BODY))
                .layer(TimeoutLayer::with_status_code(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    Duration::from_secs(30),
                )),
        )
    };
    let router = match built.extra {
        Some(extra) => site.merge(extra),
        None => site,
    };
    let replicated = built.replicated;
    if let Some(store) = built.catching_up {
        tokio::spawn(async move {
            store.catch_up_until_ready().await;
            eprintln!("login: caught up with the peers; ready");
        });
    }
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .unwrap_or_else(|e| fail(&format!("cannot watch SIGTERM: {e}")));
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    if let Err(e) = tether_server::serve(listener, router, limits, shutdown).await {
        fail(&format!("server error: {e}"));
    }
    // Stopped on purpose (a deploy, a scale-in): the other members drop this one at
    // once rather than after it stops answering their probes.
    if let Some(store) = replicated {
        store.leave().await;
    }
}

#[tokio::main]
async fn main() {
    // Warnings and errors on stderr; `RUST_LOG=tower_http=debug` adds a line per
    // request, with `Cookie` and `Set-Cookie` shown as `Sensitive`.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Serve(args)) => serve(args).await,
        None => demo::run(cli.demo).await,
    }
}
