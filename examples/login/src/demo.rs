//! `login` with no subcommand: instances as child processes behind the balancer.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tether_balancer::{Balancer, Config, Strategy};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, Command};

use crate::{StoreKind, fail};

/// The demo: several instances behind the balancer.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DemoArgs {
    /// Where sessions live (memory only works behind a sticky strategy).
    #[arg(long, env = "TETHER_STORE", value_parser = crate::store_kind(), default_value = "file")]
    store: StoreKind,
    /// The store's URL (see `login serve --help`) for the stores that live on a server.
    #[arg(long, env = "TETHER_STORE_URL")]
    store_url: Option<String>,
    /// How many instances.
    #[arg(long, env = "TETHER_INSTANCES", default_value_t = 3)]
    instances: usize,
    /// round-robin, ip-hash, cookie-hash or modulo-hash (default: cookie-hash for the
    /// memory store, round-robin otherwise).
    #[arg(long, env = "TETHER_STRATEGY")]
    strategy: Option<Strategy>,
    /// Where the balancer listens.
    #[arg(long, env = "TETHER_DEMO_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or_else(|e| fail(&format!("no free port: {e}")), |a| a.port())
}

async fn healthy(port: u16) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if stream
        .write_all(b"GET /healthz HTTP/1.0\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.is_ok() && head.ends_with(b"200")
}

fn write_key_file(dir: &Path, store: StoreKind) -> PathBuf {
    let path = dir.join(format!("{}-keys", store.name()));
    let key = match store {
        StoreKind::Jwt => tether::jwt::JwtKeys::generate_ed25519("demo").map_err(|e| e.to_string()),
        _ => tether::cookie::KeyRing::generate_key().map_err(|e| e.to_string()),
    }
    .unwrap_or_else(|e| fail(&e));
    // 0600, and never through a name someone else prepared.
    tether::core::private_file::create(&path, format!("{key}\n").as_bytes())
        .unwrap_or_else(|e| fail(&format!("writing the key file: {e}")));
    path
}

/// The arguments that pick each instance's store.
fn store_args(
    args: &DemoArgs,
    dir: &Path,
    key_file: Option<&Path>,
    seed: &str,
) -> Vec<std::ffi::OsString> {
    let url = |fallback: Option<String>| {
        args.store_url
            .clone()
            .or(fallback)
            .unwrap_or_else(|| fail("this store needs --store-url"))
    };
    match args.store {
        StoreKind::File => vec!["--store-url".into(), dir.join("sessions").into()],
        StoreKind::Sqlite => {
            let file = format!("sqlite://{}", dir.join("sessions.db").display());
            vec!["--store-url".into(), url(Some(file)).into()]
        }
        StoreKind::Cookie | StoreKind::Jwt => {
            let key_file = key_file.unwrap_or_else(|| fail("the key file was not written"));
            vec!["--key-file".into(), key_file.into()]
        }
        // One seed: the others are learned at run time.
        StoreKind::Replicated => vec!["--peers".into(), format!("{seed}/_tether").into()],
        StoreKind::Memory => Vec::new(),
        // Redis, MySQL, PostgreSQL: a server the demo does not start.
        _ => vec!["--store-url".into(), url(None).into()],
    }
}

pub(crate) async fn run(args: DemoArgs) {
    if args.instances == 0 {
        fail("--instances must be at least 1");
    }
    // The run's keys and sessions: a directory of a random name, created 0700 and
    // exclusively, so another local user can neither read it nor prepare it.
    let run_dir = tempfile::Builder::new()
        .prefix("tether-demo-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
        .unwrap_or_else(|e| fail(&format!("creating the demo's directory: {e}")));
    let dir = run_dir.path().to_owned();
    let ports: Vec<u16> = (0..args.instances).map(|_| free_port()).collect();
    let urls: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let exe =
        std::env::current_exe().unwrap_or_else(|e| fail(&format!("finding the login binary: {e}")));
    let key_file = matches!(args.store, StoreKind::Cookie | StoreKind::Jwt)
        .then(|| write_key_file(&dir, args.store));
    // A random replication secret for this run's children: never a known one.
    let secret = tether::cookie::KeyRing::generate_key().unwrap_or_else(|e| fail(&e.to_string()));

    let mut children: Vec<Child> = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let mut cmd = Command::new(&exe);
        cmd.arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--name", &format!("instance-{}", i + 1)])
            .args(["--store", args.store.name()])
            .arg("--insecure-cookie")
            .env("TETHER_REPLICATION_SECRET", &secret)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        // Each instance knows only the first (the first knows the second): membership
        // tells them of each other.
        let seed = &urls[usize::from(i == 0 && urls.len() > 1)];
        cmd.args(store_args(&args, &dir, key_file.as_deref(), seed));
        children.push(
            cmd.spawn()
                .unwrap_or_else(|e| fail(&format!("starting an instance: {e}"))),
        );
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    for port in &ports {
        while !healthy(*port).await {
            if Instant::now() > deadline {
                fail(&format!("instance on port {port} did not become healthy"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let strategy = args.strategy.unwrap_or(if args.store == StoreKind::Memory {
        Strategy::CookieHash
    } else {
        Strategy::RoundRobin
    });
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .unwrap_or_else(|e| fail(&format!("cannot listen on {}: {e}", args.listen)));
    println!(
        "tether demo: {} instances on the {} store behind the balancer ({strategy})",
        args.instances,
        args.store.name()
    );
    println!(
        "open http://{}/ and log in with any name and the password demo; Ctrl-C stops everything",
        args.listen
    );
    let balancer = Balancer::new(
        Config::new(urls)
            .strategy(strategy)
            .health_interval(Duration::from_millis(500)),
    );

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .unwrap_or_else(|e| fail(&format!("cannot watch SIGTERM: {e}")));
    tokio::select! {
        result = balancer.serve(listener) => {
            if let Err(e) = result {
                eprintln!("login: balancer error: {e}");
            }
        }
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    for child in &mut children {
        let _ = child.kill().await;
    }
    drop(run_dir);
    println!("tether demo: stopped");
}
