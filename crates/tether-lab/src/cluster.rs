//! The processes one run drives: `login serve` instances and a `tether-balancer`, on
//! loopback ports of their own.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::Error;
use crate::approach::Approach;
use crate::proxy::{Proxy, Running};

/// The replication secret of the lab's instances.
pub(crate) const REPLICATION_SECRET: &str = "tether lab replication secret";
/// The token of the balancer's admin API.
const ADMIN_TOKEN: &str = "tether lab balancer admin token";

/// How often the balancer checks its backends' health.
pub(crate) const HEALTH_CHECK_EVERY: Duration = Duration::from_millis(200);

/// Where the `login` and `tether-balancer` programs are.
#[derive(Debug, Clone)]
pub(crate) struct Programs {
    pub(crate) login: PathBuf,
    pub(crate) balancer: PathBuf,
    /// What routes the users: tether's balancer, nginx or HAProxy.
    pub(crate) proxy: Proxy,
}

impl Programs {
    /// Both programs in `dir`, or an error saying how to build them.
    pub(crate) fn in_dir(dir: &Path) -> Result<Self, Error> {
        let programs = Self {
            login: dir.join("login"),
            balancer: dir.join("tether-balancer"),
            proxy: Proxy::Tether,
        };
        for p in [&programs.login, &programs.balancer] {
            if !p.is_file() {
                return Err(Error::Setup(format!(
                    "{} is missing: build it first (cargo build -p login -p tether-balancer, with \
                     --release for a full run) or pass --bin-dir",
                    p.display()
                )));
            }
        }
        Ok(programs)
    }

    /// The same, behind `proxy` (whose program must be there).
    pub(crate) fn behind(mut self, proxy: Proxy) -> Result<Self, Error> {
        if let Some(program) = proxy.program()
            && !program.is_file()
        {
            return Err(Error::Setup(format!(
                "{} is missing: install {} (apt-get install {}) or set TETHER_{}",
                program.display(),
                proxy.name(),
                proxy.name().to_lowercase(),
                proxy.name().to_uppercase()
            )));
        }
        self.proxy = proxy;
        Ok(self)
    }
}

/// How instances reach their store.
#[derive(Debug, Clone)]
pub(crate) struct StoreSetup {
    /// `--store-url`, when the store has one.
    pub(crate) url: Option<String>,
    /// The cookie store's key file.
    pub(crate) key_file: PathBuf,
}

/// One `login serve` process.
#[derive(Debug)]
pub(crate) struct Instance {
    pub(crate) name: String,
    pub(crate) port: u16,
    child: Option<Child>,
}

impl Instance {
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The process id while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Resident memory in bytes, from `/proc`.
    pub(crate) fn rss_bytes(&self) -> Option<u64> {
        let status = format!("/proc/{}/status", self.pid()?);
        tether_tools::machine::proc_kib(&status, "VmRSS").map(|kib| kib * 1024)
    }
}

/// The instances and the balancer of one run.
#[derive(Debug)]
pub(crate) struct Cluster {
    programs: Programs,
    approach: Approach,
    store: StoreSetup,
    pub(crate) instances: Vec<Instance>,
    balancer: Option<Child>,
    /// nginx or HAProxy in the balancer's place.
    proxy: Option<Running>,
    pub(crate) balancer_port: u16,
    admin_port: u16,
    http: reqwest::Client,
    /// More environment variables for every instance.
    env: Vec<(String, String)>,
}

/// Starts `command`. Its output is dropped, unless `TETHER_LAB_LOGS` names a
/// directory: then its standard output and error are appended to `NAME.log` there
/// (`log`), at the level `TETHER_LAB_RUST_LOG` gives (default `info`).
fn spawn(mut command: Command, what: &str, log: &str) -> Result<Child, Error> {
    let (stdout, stderr) = match std::env::var_os("TETHER_LAB_LOGS") {
        Some(dir) => {
            let open = || {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(Path::new(&dir).join(format!("{log}.log")))
                    .map_err(|e| Error::Setup(format!("the log of {what}: {e}")))
            };
            command.env(
                "RUST_LOG",
                std::env::var("TETHER_LAB_RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
            );
            (Stdio::from(open()?), Stdio::from(open()?))
        }
        None => (Stdio::null(), Stdio::null()),
    };
    command
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::Setup(format!("cannot start {what}: {e}")))
}

impl Cluster {
    /// Starts `n` instances (and reserves a port for one more) and the balancer, and
    /// waits until every instance answers `/healthz`.
    pub(crate) async fn start(
        programs: Programs,
        approach: Approach,
        store: StoreSetup,
        n: usize,
    ) -> Result<Self, Error> {
        Self::start_with(programs, approach, store, n, Vec::new()).await
    }

    /// As [`Cluster::start`], every instance with these environment variables too.
    pub(crate) async fn start_with(
        programs: Programs,
        approach: Approach,
        store: StoreSetup,
        n: usize,
        env: Vec<(String, String)>,
    ) -> Result<Self, Error> {
        let ports: Vec<u16> = (0..=n)
            .map(|_| tether_testkit::harness::free_port())
            .collect();
        let mut cluster = Self {
            programs,
            approach,
            store,
            instances: ports
                .iter()
                .enumerate()
                .map(|(i, &port)| Instance {
                    name: format!("i{}", i + 1),
                    port,
                    child: None,
                })
                .collect(),
            balancer: None,
            proxy: None,
            balancer_port: tether_testkit::harness::free_port(),
            admin_port: tether_testkit::harness::free_port(),
            http: reqwest::Client::new(),
            env,
        };
        for i in 0..n {
            cluster.launch(i)?;
        }
        for i in 0..n {
            cluster.wait_healthy(i).await?;
        }
        if cluster.programs.proxy != Proxy::Tether {
            // Chosen now, not before the instances' start: meanwhile their outgoing
            // connections may have taken it as a local port.
            cluster.balancer_port = tether_testkit::harness::free_port();
            let ports: Vec<u16> = cluster.instances[..n].iter().map(|i| i.port).collect();
            let dir = std::env::temp_dir().join(format!(
                "tether-lab-proxy-{}-{}",
                std::process::id(),
                cluster.balancer_port
            ));
            cluster.proxy = Some(Running::start(
                cluster.programs.proxy,
                approach.strategy(),
                cluster.balancer_port,
                &ports,
                &dir,
            )?);
            let url = format!("{}/healthz", cluster.balancer_url());
            wait(
                &format!("{} at {url}", cluster.programs.proxy.name()),
                || async {
                    cluster
                        .http
                        .get(&url)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success())
                },
            )
            .await?;
            return Ok(cluster);
        }
        cluster.start_balancer(n).await?;
        Ok(cluster)
    }

    /// Starts `tether-balancer` in front of the first `n` instances, on ports chosen
    /// now; when it exits before its admin API answers (a port taken meanwhile by
    /// some outgoing connection), again on other ports.
    async fn start_balancer(&mut self, n: usize) -> Result<(), Error> {
        let backends: Vec<String> = self.instances[..n].iter().map(Instance::url).collect();
        for attempt in 1..=5 {
            self.balancer_port = tether_testkit::harness::free_port();
            self.admin_port = tether_testkit::harness::free_port();
            let mut balancer = Command::new(&self.programs.balancer);
            balancer
                .arg("--listen")
                .arg(format!("127.0.0.1:{}", self.balancer_port))
                .arg("--strategy")
                .arg(self.approach.strategy())
                .arg("--backend")
                .arg(backends.join(","))
                .arg("--health-ms")
                .arg(HEALTH_CHECK_EVERY.as_millis().to_string())
                .args(["--trust-forwarded-for", "--quiet"])
                .arg("--admin-listen")
                .arg(format!("127.0.0.1:{}", self.admin_port))
                .env("TETHER_BALANCER_ADMIN_TOKEN", ADMIN_TOKEN);
            let mut child = spawn(balancer, "tether-balancer", "balancer")?;
            let url = format!("{}/_balancer/backends", self.admin_url());
            let http = self.http.clone();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                if http.get(&url).bearer_auth(ADMIN_TOKEN).send().await.is_ok() {
                    self.balancer = Some(child);
                    return Ok(());
                }
                if let Ok(Some(status)) = child.try_wait() {
                    eprintln!(
                        "tether-lab: the balancer exited ({status}) before answering, attempt {attempt}; trying other ports"
                    );
                    break;
                }
                if tokio::time::Instant::now() > deadline {
                    return Err(Error::Setup(format!(
                        "the balancer at {url} did not come up within 30s"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Err(Error::Setup(
            "the balancer exited before answering five times (see TETHER_LAB_LOGS)".into(),
        ))
    }

    pub(crate) fn balancer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.balancer_port)
    }

    /// The balancer's admin API (its own listener, token required).
    fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    /// The instances that are started (the spare is not, until scale-out).
    pub(crate) fn running(&self) -> impl Iterator<Item = &Instance> {
        self.instances.iter().filter(|i| i.child.is_some())
    }

    /// Starts instance `i` (again).
    pub(crate) fn launch(&mut self, i: usize) -> Result<(), Error> {
        let instance = &self.instances[i];
        let mut command = Command::new(&self.programs.login);
        command
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", instance.port))
            .arg("--name")
            .arg(&instance.name)
            .arg("--store")
            .arg(self.approach.store().name())
            .arg("--insecure-cookie")
            .arg("--key-file")
            .arg(&self.store.key_file)
            .env("TETHER_REPLICATION_SECRET", REPLICATION_SECRET)
            .env("RUST_LOG", "error")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(url) = &self.store.url {
            command.arg("--store-url").arg(url);
        }
        if self.approach == Approach::Replicated {
            // One seed (the first other instance running; the next one, when none
            // is): every other member, and every instance started later, is learned
            // at run time.
            let seed = self
                .instances
                .iter()
                .enumerate()
                .find(|(j, other)| *j != i && other.child.is_some())
                .map_or_else(
                    || self.instances[(i + 1) % self.instances.len()].url(),
                    |(_, other)| other.url(),
                );
            command.arg("--peers").arg(seed);
        }
        let child = spawn(
            command,
            &format!("login serve ({})", instance.name),
            &instance.name,
        )?;
        self.instances[i].child = Some(child);
        Ok(())
    }

    /// Whether instance `i` is started.
    pub(crate) fn is_running(&self, i: usize) -> bool {
        self.instances[i].child.is_some()
    }

    /// Starts one more instance, on a new port; returns its index.
    pub(crate) fn add(&mut self) -> Result<usize, Error> {
        let i = self.instances.len();
        self.instances.push(Instance {
            name: format!("i{}", i + 1),
            port: tether_testkit::harness::free_port(),
            child: None,
        });
        self.launch(i)?;
        Ok(i)
    }

    /// Waits until instance `i` answers `/healthz` with 200 (for the replicated store,
    /// once it has caught up).
    pub(crate) async fn wait_healthy(&self, i: usize) -> Result<(), Error> {
        self.wait_healthy_within(i, Duration::from_secs(30)).await
    }

    /// As [`Cluster::wait_healthy`], for up to `within`.
    pub(crate) async fn wait_healthy_within(
        &self,
        i: usize,
        within: Duration,
    ) -> Result<(), Error> {
        let url = format!("{}/healthz", self.instances[i].url());
        wait_within(
            &format!("instance {}", self.instances[i].name),
            within,
            || async {
                self.http
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            },
        )
        .await
    }

    /// SIGKILL: the process dies at once, with whatever it held in memory.
    pub(crate) async fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.instances[i].child.take() {
            let _ = child.kill().await;
        }
    }

    /// SIGTERM and wait: a graceful shutdown, as a deploy does it.
    pub(crate) async fn stop(&mut self, i: usize) {
        if let Some(mut child) = self.instances[i].child.take() {
            if let Some(pid) = child.id() {
                let _ = Command::new("kill").arg(pid.to_string()).status().await;
            }
            match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill().await;
                }
            }
        }
    }

    /// Tells the balancer (or the proxy) to route to instances `0..n`.
    pub(crate) async fn set_pool(&self, n: usize) -> Result<(), Error> {
        if let Some(proxy) = &self.proxy {
            let ports: Vec<u16> = self.instances[..n].iter().map(|i| i.port).collect();
            return proxy.set_pool(&ports).await;
        }
        let body: Vec<String> = self.instances[..n].iter().map(Instance::url).collect();
        let response = self
            .http
            .put(format!("{}/_balancer/backends", self.admin_url()))
            .bearer_auth(ADMIN_TOKEN)
            .body(body.join("\n"))
            .send()
            .await
            .map_err(|e| Error::Setup(format!("reconfiguring the balancer: {e}")))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(Error::Setup(format!(
                "the balancer refused the new pool: {}",
                response.status()
            )))
        }
    }

    /// Bytes the replicated store's instances sent each other so far.
    pub(crate) async fn replication_bytes(&self) -> Option<u64> {
        if self.approach != Approach::Replicated {
            return None;
        }
        let mut total = 0;
        for instance in self.running() {
            let mut request = self.http.get(format!("{}/_tether/stats", instance.url()));
            for (name, value) in tether_replicated::sign_stats_request(REPLICATION_SECRET) {
                request = request.header(name, value);
            }
            let stats: serde_json::Value = request.send().await.ok()?.json().await.ok()?;
            total += stats["peers"]
                .as_array()?
                .iter()
                .filter_map(|p| p["sent_bytes"].as_u64())
                .sum::<u64>();
        }
        Some(total)
    }
}

/// Polls `ok` every 50 ms for up to 30 s.
async fn wait<F, Fut>(what: &str, ok: F) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_within(what, Duration::from_secs(30), ok).await
}

/// Polls `ok` every 50 ms for up to `within`.
async fn wait_within<F, Fut>(what: &str, within: Duration, mut ok: F) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !ok().await {
        if tokio::time::Instant::now() > deadline {
            return Err(Error::Setup(format!(
                "{what} did not come up within {within:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
