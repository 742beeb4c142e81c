//! `tether-balancer --listen ADDR --strategy S --backend URL …`

use std::time::Duration;

use clap::Parser;
use tether_balancer::server::Limits;
use tether_balancer::{AdminToken, Balancer, Config, Strategy, TrustedProxies};

/// A reverse proxy for the tether demo and lab.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "TETHER_BALANCER_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// round-robin, ip-hash, cookie-hash or modulo-hash.
    #[arg(long, env = "TETHER_BALANCER_STRATEGY", default_value = "round-robin")]
    strategy: Strategy,
    /// A backend base URL; repeat for each backend.
    #[arg(
        long = "backend",
        env = "TETHER_BALANCER_BACKENDS",
        value_delimiter = ',',
        required = true
    )]
    backends: Vec<String>,
    /// The cookie cookie-hash and modulo-hash hash (default: the balancer's own routing cookie).
    #[arg(long, env = "TETHER_BALANCER_HASH_COOKIE", default_value = tether_balancer::ROUTE_COOKIE)]
    hash_cookie: String,
    /// Believe X-Forwarded-For from these proxies (addresses or networks,
    /// comma-separated); from anyone else it is replaced by the peer's address.
    #[arg(
        long = "trusted-proxy",
        env = "TETHER_BALANCER_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    trusted_proxies: Vec<String>,
    /// Believe X-Forwarded-For from this machine (loopback): for load generators that
    /// simulate many clients. Same as --trusted-proxy 127.0.0.0/8,::1.
    #[arg(long, env = "TETHER_BALANCER_TRUST_FORWARDED_FOR")]
    trust_forwarded_for: bool,
    /// Serve the admin API (GET/PUT /_balancer/backends) on this address; off when not
    /// given. Needs --admin-token or --admin-token-file. Keep it on loopback.
    #[arg(long, env = "TETHER_BALANCER_ADMIN_LISTEN")]
    admin_listen: Option<String>,
    /// The admin API's bearer token (at least 16 characters).
    #[arg(long, env = "TETHER_BALANCER_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// A file holding the admin API's bearer token.
    #[arg(long, env = "TETHER_BALANCER_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<std::path::PathBuf>,
    /// Health-check interval in milliseconds.
    #[arg(long, env = "TETHER_BALANCER_HEALTH_MS", default_value_t = 1000)]
    health_ms: u64,
    /// Health checks that must fail in a row before a backend is taken out (a failed
    /// request takes it out at once).
    #[arg(long, env = "TETHER_BALANCER_UNHEALTHY_AFTER", default_value_t = 3)]
    unhealthy_after: u32,
    /// How long connecting to a backend may take, in milliseconds.
    #[arg(
        long,
        env = "TETHER_BALANCER_CONNECT_TIMEOUT_MS",
        default_value_t = 3000
    )]
    connect_timeout_ms: u64,
    /// How long a backend may take to answer before the client gets 504, in milliseconds.
    #[arg(
        long,
        env = "TETHER_BALANCER_RESPONSE_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    response_timeout_ms: u64,
    /// How long a client may take to send its request headers (and stay idle between
    /// requests), in milliseconds.
    #[arg(
        long,
        env = "TETHER_BALANCER_HEADER_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    header_timeout_ms: u64,
    /// How long a client may take to send a request's body, in milliseconds.
    #[arg(
        long,
        env = "TETHER_BALANCER_BODY_TIMEOUT_MS",
        default_value_t = 15_000
    )]
    body_timeout_ms: u64,
    /// The most client connections open at once (the longest-idle is closed to make room).
    #[arg(long, env = "TETHER_BALANCER_MAX_CONNECTIONS", default_value_t = 512)]
    max_connections: usize,
    /// Don't print a line per routed request.
    #[arg(long, env = "TETHER_BALANCER_QUIET")]
    quiet: bool,
}

fn fail(message: &str) -> ! {
    eprintln!("tether-balancer: {message}");
    std::process::exit(2);
}

fn admin_token(args: &Args) -> AdminToken {
    let token = match (&args.admin_token, &args.admin_token_file) {
        (Some(token), _) => token.clone(),
        // A secret: refused when other users can read it, like every key file.
        (None, Some(path)) => tether_core::private_file::read_to_string(path)
            .unwrap_or_else(|e| fail(&format!("the admin token file {e}"))),
        (None, None) => fail(
            "--admin-listen needs --admin-token or --admin-token-file (the admin API is never open)",
        ),
    };
    AdminToken::new(token).unwrap_or_else(|e| fail(&e.to_string()))
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mut trusted =
        TrustedProxies::parse(&args.trusted_proxies).unwrap_or_else(|e| fail(&e.to_string()));
    if args.trust_forwarded_for {
        trusted = trusted.and(TrustedProxies::loopback());
    }
    let config = Config::new(args.backends.clone())
        .strategy(args.strategy)
        .hash_cookie(args.hash_cookie.clone())
        .trusted_proxies(trusted)
        .health_interval(Duration::from_millis(args.health_ms))
        .unhealthy_after(args.unhealthy_after)
        .connect_timeout(Duration::from_millis(args.connect_timeout_ms))
        .response_timeout(Duration::from_millis(args.response_timeout_ms))
        .limits(Limits {
            header_read_timeout: Duration::from_millis(args.header_timeout_ms),
            body_read_timeout: Duration::from_millis(args.body_timeout_ms),
            max_connections: args.max_connections,
        })
        .log_requests(!args.quiet);
    config.validate().unwrap_or_else(|e| fail(&e.to_string()));
    let admin = args
        .admin_listen
        .as_ref()
        .map(|addr| (addr, admin_token(&args)));
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .unwrap_or_else(|e| fail(&format!("cannot listen on {}: {e}", args.listen)));
    let balancer = Balancer::new(config);
    if let Some((addr, token)) = admin {
        let admin_listener = tokio::net::TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| fail(&format!("cannot listen on {addr} (admin): {e}")));
        println!("tether-balancer: admin API on http://{addr}");
        tokio::spawn(balancer.clone().serve_admin(admin_listener, token));
    }
    println!(
        "tether-balancer: {} on http://{} -> {}",
        args.strategy,
        args.listen,
        args.backends.join(", ")
    );
    tokio::select! {
        result = balancer.serve(listener) => {
            if let Err(e) = result {
                eprintln!("tether-balancer: {e}");
                std::process::exit(1);
            }
        }
        _ = tokio::signal::ctrl_c() => {}
    }
}
