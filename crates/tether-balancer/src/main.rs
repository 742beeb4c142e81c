//! `tether-balancer --listen ADDR --strategy S --backend URL …`

use std::time::Duration;

use clap::Parser;
use tether_balancer::{Balancer, Config, Strategy};

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
    /// Take the client address for ip-hash from X-Forwarded-For.
    #[arg(long, env = "TETHER_BALANCER_TRUST_FORWARDED_FOR")]
    trust_forwarded_for: bool,
    /// Health-check interval in milliseconds.
    #[arg(long, env = "TETHER_BALANCER_HEALTH_MS", default_value_t = 1000)]
    health_ms: u64,
    /// Don't print a line per routed request.
    #[arg(long, env = "TETHER_BALANCER_QUIET")]
    quiet: bool,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let config = Config::new(args.backends.clone())
        .strategy(args.strategy)
        .hash_cookie(args.hash_cookie)
        .trust_forwarded_for(args.trust_forwarded_for)
        .health_interval(Duration::from_millis(args.health_ms))
        .log_requests(!args.quiet);
    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("tether-balancer: cannot listen on {}: {e}", args.listen);
            std::process::exit(2);
        }
    };
    println!(
        "tether-balancer: {} on http://{} -> {}",
        args.strategy,
        args.listen,
        args.backends.join(", ")
    );
    tokio::select! {
        result = Balancer::new(config).serve(listener) => {
            if let Err(e) = result {
                eprintln!("tether-balancer: {e}");
                std::process::exit(1);
            }
        }
        _ = tokio::signal::ctrl_c() => {}
    }
}
