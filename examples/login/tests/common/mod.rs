//! Starting `login serve` instances, a balancer (tether-balancer or nginx) in front, and
//! driving users through it.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
pub use tether_testkit::harness::{Proc, free_port, wait_until};

pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tether-e2e-{tag}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A binary built by this workspace's test run.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|p| p.parent()).expect("target/debug");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run the tests through scripts/test (cargo test --workspace)",
        path.display()
    );
    path
}

pub fn env(var: &str, what: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the tests through scripts/test, which provides {what}")
    })
}

/// Waits until `GET {base}/healthz` answers 200.
pub fn wait_healthy(what: &str, base: &str) {
    let http = reqwest::blocking::Client::new();
    wait_until(
        &format!("{what} at {base} healthy"),
        Duration::from_secs(30),
        || {
            http.get(format!("{base}/healthz"))
                .send()
                .is_ok_and(|r| r.status() == 200)
        },
    );
}

pub struct Instance {
    pub name: String,
    pub port: u16,
    pub proc: Proc,
}

impl Instance {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        self.proc.0.kill().unwrap();
        self.proc.0.wait().unwrap();
    }
}

/// How the instances store sessions.
#[derive(Clone)]
pub enum Store {
    Memory,
    File(PathBuf),
    Redis(String),
    /// A `rediss://` URL and the CA file its server certificate verifies against.
    RedisTls(String, PathBuf),
    Mysql(String),
    Postgres(String),
    /// A `sqlite://` URL: one database file that the instances share.
    Sqlite(String),
    Cookie(PathBuf),
    /// A JWT key file.
    Jwt(PathBuf),
    Replicated,
}

impl Store {
    pub fn file() -> Self {
        Self::File(temp_dir("file"))
    }

    pub fn cookie() -> Self {
        let dir = temp_dir("cookie");
        let key = tether::cookie::KeyRing::generate_key().unwrap();
        let path = dir.join("keys");
        tether::core::private_file::create(&path, format!("{key}\n").as_bytes()).unwrap();
        Self::Cookie(path)
    }

    pub fn jwt() -> Self {
        let dir = temp_dir("jwt");
        let key = tether::jwt::JwtKeys::generate_ed25519("e2e").unwrap();
        let path = dir.join("keys");
        tether::core::private_file::create(&path, format!("{key}\n").as_bytes()).unwrap();
        Self::Jwt(path)
    }

    pub fn redis() -> Self {
        Self::Redis(env("TETHER_TEST_REDIS_URL", "redis-server"))
    }

    pub fn mysql() -> Self {
        Self::Mysql(env("TETHER_TEST_MYSQL_URL", "mariadbd"))
    }

    pub fn postgres() -> Self {
        Self::Postgres(env("TETHER_TEST_POSTGRES_URL", "postgres"))
    }

    /// A database file that does not exist yet: the first instance creates it.
    pub fn sqlite() -> Self {
        let dir = temp_dir("sqlite");
        Self::Sqlite(format!("sqlite://{}", dir.join("sessions.db").display()))
    }

    pub fn shares_sessions(&self) -> bool {
        !matches!(self, Self::Memory)
    }

    pub fn has_user_index(&self) -> bool {
        !matches!(self, Self::Cookie(_) | Self::Jwt(_))
    }

    fn args(&self, ports: &[u16]) -> Vec<String> {
        let kind = match self {
            Self::Memory => "memory",
            Self::File(_) => "file",
            Self::Redis(_) | Self::RedisTls(..) => "redis",
            Self::Mysql(_) => "mysql",
            Self::Postgres(_) => "postgres",
            Self::Sqlite(_) => "sqlite",
            Self::Cookie(_) => "cookie",
            Self::Jwt(_) => "jwt",
            Self::Replicated => "replicated",
        };
        let mut args = vec!["--store".to_owned(), kind.to_owned()];
        match self {
            Self::File(dir) => args.extend(["--store-url".to_owned(), dir.display().to_string()]),
            Self::Redis(url) | Self::Mysql(url) | Self::Postgres(url) | Self::Sqlite(url) => {
                args.extend(["--store-url".to_owned(), url.clone()]);
            }
            Self::RedisTls(url, ca) => args.extend([
                "--store-url".to_owned(),
                url.clone(),
                "--store-ca".to_owned(),
                ca.display().to_string(),
            ]),
            Self::Cookie(keys) | Self::Jwt(keys) => {
                args.extend(["--key-file".to_owned(), keys.display().to_string()]);
            }
            Self::Replicated => {
                let peers: Vec<String> = ports
                    .iter()
                    .map(|p| format!("http://127.0.0.1:{p}"))
                    .collect();
                args.extend(["--peers".to_owned(), peers.join(",")]);
            }
            Self::Memory => {}
        }
        args
    }
}

pub fn start_instances(store: &Store, n: usize) -> Vec<Instance> {
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let login = env!("CARGO_BIN_EXE_login");
    let instances: Vec<Instance> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            let name = format!("instance-{}", i + 1);
            let child = Command::new(login)
                .args([
                    "serve",
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    "--name",
                    &name,
                    "--insecure-cookie",
                ])
                .args(store.args(&ports))
                .env("TETHER_REPLICATION_SECRET", "end-to-end test secret")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap();
            Instance {
                name,
                port: *port,
                proc: Proc(child),
            }
        })
        .collect();
    for i in &instances {
        wait_healthy("instance", &i.url());
    }
    instances
}

/// The built-in balancer, as its own process.
pub fn start_balancer(instances: &[Instance], strategy: &str) -> (String, Proc) {
    let port = free_port();
    let mut cmd = Command::new(workspace_bin("tether-balancer"));
    cmd.args([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--strategy",
        strategy,
        "--health-ms",
        "200",
        "--quiet",
    ])
    .arg("--trust-forwarded-for");
    for i in instances {
        cmd.args(["--backend", &i.url()]);
    }
    serve_on(port, "balancer", &mut cmd)
}

/// Starts `cmd`, a proxy on `port`, and waits until it answers `/healthz`.
fn serve_on(port: u16, what: &str, cmd: &mut Command) -> (String, Proc) {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    wait_healthy(what, &url);
    (url, Proc(child))
}

/// One of `examples/{proxy}`'s configurations, with the proxy's listen address and
/// the instances' ports rewritten to this test's; written to a fresh directory.
fn proxy_config(proxy: &str, config: &str, listen: &str, instances: &[Instance]) -> (u16, PathBuf) {
    let port = free_port();
    let dir = temp_dir(proxy);
    let source = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(proxy)
            .join(config),
    )
    .unwrap();
    let mut text = source.replace(
        &format!("{listen} 127.0.0.1:8080"),
        &format!("{listen} 127.0.0.1:{port}"),
    );
    for (i, instance) in instances.iter().enumerate() {
        text = text.replace(
            &format!("127.0.0.1:900{}", i + 1),
            &format!("127.0.0.1:{}", instance.port),
        );
    }
    let conf = dir.join(config);
    std::fs::write(&conf, text).unwrap();
    (port, conf)
}

/// nginx with one of examples/nginx's configurations, ports rewritten.
pub fn start_nginx(config: &str, instances: &[Instance]) -> (String, Proc) {
    let (port, conf) = proxy_config("nginx", config, "listen", instances);
    let dir = conf.parent().unwrap().to_owned();
    let mut cmd = Command::new(env("TETHER_NGINX", "nginx"));
    cmd.arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(&dir)
        .arg("-g")
        // One process: no worker processes to orphan when the test kills it.
        .arg(format!(
            "daemon off; master_process off; pid {}/nginx.pid; error_log {}/error.log;",
            dir.display(),
            dir.display()
        ));
    serve_on(port, "nginx", &mut cmd)
}

/// HAProxy with one of examples/haproxy's configurations, ports rewritten; in the
/// foreground (`-db`), so killing the process stops it.
pub fn start_haproxy(config: &str, instances: &[Instance]) -> (String, Proc) {
    let (port, conf) = proxy_config("haproxy", config, "bind", instances);
    let mut cmd = Command::new(env("TETHER_HAPROXY", "haproxy"));
    cmd.arg("-db").arg("-f").arg(&conf);
    serve_on(port, "haproxy", &mut cmd)
}

/// One browser-like user: its own cookie jar and (for ip-hash) its own address.
pub struct User {
    pub name: String,
    pub http: reqwest::blocking::Client,
    pub address: String,
}

impl User {
    pub fn new(name: &str, n: usize) -> Self {
        Self {
            name: name.to_owned(),
            http: reqwest::blocking::Client::builder()
                .cookie_store(true)
                .build()
                .unwrap(),
            address: format!("10.{}.{}.{}", n / 65536 % 256, n / 256 % 256, n % 256),
        }
    }

    fn req(&self, method: reqwest::Method, url: String) -> reqwest::blocking::RequestBuilder {
        self.http
            .request(method, url)
            .header("x-forwarded-for", &self.address)
    }

    pub fn login(&self, base: &str) -> Value {
        let r = self
            .req(reqwest::Method::POST, format!("{base}/api/login"))
            .json(&json!({"username": self.name, "password": "demo"}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "login of {}", self.name);
        r.json().unwrap()
    }

    /// `(status, user, instance)` of `GET /api/me`.
    pub fn me(&self, base: &str) -> (u16, Option<String>, String) {
        let r = self
            .req(reqwest::Method::GET, format!("{base}/api/me"))
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let instance = r
            .headers()
            .get("x-instance")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body: Value = r.json().unwrap_or(Value::Null);
        (status, body["user"].as_str().map(str::to_owned), instance)
    }

    pub fn post(&self, base: &str, path: &str) -> reqwest::blocking::Response {
        self.req(reqwest::Method::POST, format!("{base}{path}"))
            .send()
            .unwrap()
    }
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// `login serve` on the replicated store with `secret` and `peers`, plus `extra`.
pub fn replicated(port: u16, secret: &str, peers: &[u16], extra: &[&str]) -> Proc {
    let peers: Vec<String> = peers
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let child = Command::new(env!("CARGO_BIN_EXE_login"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--name",
            &format!("n{port}"),
        ])
        .args(["--store", "replicated", "--insecure-cookie"])
        .args(if peers.is_empty() {
            Vec::new()
        } else {
            vec!["--peers".to_owned(), peers.join(",")]
        })
        .args(extra)
        .env("TETHER_REPLICATION_SECRET", secret)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Proc(child)
}

/// Logs `name` in at `base`: the user's client (with its cookie jar) and the session
/// cookie as a `Cookie` header value.
pub fn log_in(base: &str, name: &str) -> (reqwest::blocking::Client, String) {
    let user = reqwest::blocking::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let login = user
        .post(format!("{base}/api/login"))
        .json(&json!({"username": name, "password": "demo"}))
        .send()
        .unwrap();
    assert_eq!(login.status(), 200, "the login of {name}");
    let cookie = tether_testkit::http::cookie_of(login.headers());
    (user, cookie)
}

pub fn status(http: &reqwest::blocking::Client, url: &str) -> Option<u16> {
    http.get(url).send().ok().map(|r| r.status().as_u16())
}
