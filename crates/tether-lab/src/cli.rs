//! The lab's command line: `run`, `consistency` and `membership`, and their flags.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::approach::{Approach, Scenario};
use crate::proxy;

/// The consistency lab.
#[derive(Debug, Parser)]
#[command(version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the approaches through the scenarios and write the report.
    Run(RunArgs),
    /// Measure what another instance answers right after a write or a logout
    /// (stale reads and accepts, and how long until it agrees) and write
    /// `consistency.md`.
    Consistency(ConsistencyArgs),
    /// Grow, shrink and replace replicated instances at run time (each new one
    /// knowing one seed) and write `membership.md`.
    Membership(MembershipArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct MembershipArgs {
    /// Users logged in before the changes (default 1,000; 200 with --quick).
    #[arg(long)]
    pub(crate) users: Option<usize>,
    /// Sessions the instances hold for the memory figures (default 100,000; 10,000
    /// with --quick).
    #[arg(long)]
    pub(crate) sessions: Option<usize>,
    /// Fewer users and sessions.
    #[arg(long)]
    pub(crate) quick: bool,
    /// Where `membership.md` and `membership.json` go.
    #[arg(long, default_value = "lab-report")]
    pub(crate) out: PathBuf,
    /// Where the `login` and `tether-balancer` programs are (default: beside this one).
    #[arg(long)]
    pub(crate) bin_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ConsistencyArgs {
    /// Users per approach (default 1,000; 200 with --quick).
    #[arg(long)]
    pub(crate) users: Option<usize>,
    /// Users at a time.
    #[arg(long, default_value_t = 16)]
    pub(crate) concurrency: usize,
    /// Only these approaches (repeatable; default: every one whose instances share
    /// sessions round-robin).
    #[arg(long = "approach", value_enum)]
    pub(crate) approaches: Vec<Approach>,
    /// Fewer users.
    #[arg(long)]
    pub(crate) quick: bool,
    /// Fail, instead of skipping an approach, when its store server cannot start.
    #[arg(long)]
    pub(crate) require_all: bool,
    /// Where `consistency.md` and `consistency.json` go.
    #[arg(long, default_value = "lab-report")]
    pub(crate) out: PathBuf,
    /// Where the `login` and `tether-balancer` programs are (default: beside this one).
    #[arg(long)]
    pub(crate) bin_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
#[allow(clippy::struct_excessive_bools)]
pub(crate) struct RunArgs {
    /// Fewer users, shorter phases, and only the scenarios the shape checks need
    /// (under two minutes).
    #[arg(long)]
    pub(crate) quick: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// Fail, instead of skipping an approach, when its store server cannot start
    /// (the test command runs with this).
    #[arg(long)]
    pub(crate) require_all: bool,
    /// Instances behind the balancer.
    #[arg(long, default_value_t = 3)]
    pub(crate) instances: usize,
    /// Simulated users (default 1,000; 300 with --quick).
    #[arg(long)]
    pub(crate) users: Option<usize>,
    /// Mean think time between a user's actions, ms (default 1000; 250 with --quick).
    #[arg(long)]
    pub(crate) think_ms: Option<u64>,
    /// Only these approaches (repeatable).
    #[arg(long = "approach", value_enum)]
    pub(crate) approaches: Vec<Approach>,
    /// Only these scenarios (repeatable).
    #[arg(long = "scenario", value_enum)]
    pub(crate) scenarios: Vec<Scenario>,
    /// Where `report.md`, `report.json` and the charts go.
    #[arg(long, default_value = "lab-report")]
    pub(crate) out: PathBuf,
    /// Where the `login` and `tether-balancer` programs are (default: beside this one).
    #[arg(long)]
    pub(crate) bin_dir: Option<PathBuf>,
    /// What routes the users: tether's balancer (default), nginx or HAProxy, each
    /// configured for the approach's routing and reloaded when the pool changes.
    #[arg(long, value_enum, default_value = "tether")]
    pub(crate) proxy: proxy::Proxy,
}
