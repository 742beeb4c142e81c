//! An axum-login app on tether's stores, through tether-tower-sessions.
//!
//! ```text
//! head -c 64 /dev/urandom | base64 -w0 > session.key && chmod 600 session.key
//! axum-login-demo --listen 127.0.0.1:9001 --instance a --session-key-file session.key --store file --dir /var/lib/app/sessions
//! axum-login-demo --listen 127.0.0.1:9002 --instance b --session-key-file session.key --store redis --redis-url redis://127.0.0.1:6379
//! ```
//!
//! Users: `alice` / `wonderland`, `bob` / `builder`. Routes: `POST /login` (form:
//! `username`, `password`), `GET /me` (with the flash messages not yet shown),
//! `GET /protected` (behind `login_required!`), `GET /sessions`, `POST /logout`,
//! `POST /logout-everywhere`, `GET /healthz`.
//!
//! Every instance is given the same cookie-signing key (`--session-key-file`): a key
//! made at start-up (`Key::generate()`) would be each instance's own, and no instance
//! would accept another's cookie, whatever the store.

mod app;
mod users;

use std::path::PathBuf;
use std::sync::Arc;

use axum_login::tower_sessions::cookie::Key;
use clap::{Parser, ValueEnum};
use tether::SessionStore;

/// Where sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    /// A directory every instance shares (one machine, or NFS).
    File,
    /// Redis.
    Redis,
    /// In this process only: one instance, or a sticky balancer.
    Memory,
}

/// An axum-login app whose sessions live in a tether store.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: String,
    /// This instance's name, shown in every answer.
    #[arg(long, default_value = "a")]
    instance: String,
    /// Where sessions live.
    #[arg(long, value_enum, default_value_t = StoreKind::File)]
    store: StoreKind,
    /// The file store's directory (created private to this user).
    #[arg(long, env = "TETHER_FILE_DIR", default_value = "axum-login-sessions")]
    dir: PathBuf,
    /// The Redis URL.
    #[arg(
        long,
        env = "TETHER_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis_url: String,
    /// The cookie-signing key every instance shares: a file holding at least 64 random
    /// bytes as base64 (`head -c 64 /dev/urandom | base64 -w0`), mode 0600.
    #[arg(long, env = "SESSION_KEY_FILE")]
    session_key_file: PathBuf,
    /// Mark the cookie `Secure` (on by default; turn off only for plain-HTTP development).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    secure_cookie: bool,
}

fn store(args: &Args) -> Result<Arc<dyn SessionStore>, tether::Error> {
    let store: Arc<dyn SessionStore> = match args.store {
        StoreKind::File => Arc::new(tether::file::FileStore::open(&args.dir)?),
        StoreKind::Redis => Arc::new(tether::redis::RedisStore::connect(&args.redis_url)?),
        StoreKind::Memory => Arc::new(tether::MemoryStore::new()),
    };
    Ok(store)
}

/// The cookie-signing key from its file (private to this user, like every secret).
fn session_key(path: &std::path::Path) -> Result<Key, String> {
    use base64::Engine as _;
    let text = tether::core::private_file::read_to_string(path)
        .map_err(|e| format!("the session key file {e}"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("the session key in {} is not base64: {e}", path.display()))?;
    Key::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "the session key in {} is shorter than 64 bytes",
            path.display()
        )
    })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let key = match session_key(&args.session_key_file) {
        Ok(key) => key,
        Err(e) => {
            eprintln!("axum-login-demo: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let store = match store(&args) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("axum-login-demo: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("axum-login-demo: listening on {}: {e}", args.listen);
            return std::process::ExitCode::from(2);
        }
    };
    let app = app::router(&args.instance, store, args.secure_cookie, key);
    let shutdown = async {
        tokio::signal::ctrl_c().await.ok();
    };
    match axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("axum-login-demo: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
