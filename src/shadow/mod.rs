//! `preempt shadow`: calibrate before arming. Replays mined blocks through the block guard's own
//! path, or watches the live pipeline for a while, deciding as dry-run with the config's policy
//! table, and reports per protected contract and per rule what would have been paused, alerted
//! or recorded, and why. Nothing is sent, and the guardian key is never loaded.

mod live;
mod replay;
mod report;

use std::{future::Future, path::PathBuf, process::ExitCode, time::Duration};

use thiserror::Error;

pub use report::{
    ContractCounts, Counts, FindingLine, RuleCounts, ShadowReport, Would, WouldPause, render_human,
};

use crate::{config::Config, fork::NodeError, guard::GuardError};

#[derive(Debug, Error)]
pub enum ShadowError {
    #[error("the config names no node and no --rpc was given")]
    NoNode,
    #[error("no node is reachable: {0}")]
    NoNodeReachable(String),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Block(#[from] GuardError),
    #[error("--from-block must be at least 1: block 0 has no parent to fork from")]
    Genesis,
    #[error("--from-block {from} is after --to-block {to}")]
    Range { from: u64, to: u64 },
    #[error("--to-block {to} is beyond the node's head {head}")]
    BeyondHead { to: u64, head: u64 },
    #[error("warming protected state: {0}")]
    Warm(String),
    #[error("replay thread failed: {0}")]
    Join(String),
    #[error("the live pipeline: {0}")]
    Run(String),
    #[error("the live pipeline was not ready within {0} s")]
    NotReady(u64),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What to shadow.
#[derive(Debug, Clone, Copy)]
pub enum ShadowTarget {
    /// Mined blocks `from..=to`.
    Blocks { from: u64, to: u64 },
    /// The live pipeline, for this long once it is ready.
    Live(Duration),
}

/// Runs a shadow: `rpc` replaces the config's nodes. `interrupt` ends it early; the report
/// covers what was done until then.
pub async fn shadow(
    config: &Config,
    rpc: Option<&str>,
    target: ShadowTarget,
    interrupt: impl Future<Output = ()>,
) -> Result<ShadowReport, ShadowError> {
    match target {
        ShadowTarget::Blocks { from, to } => {
            replay::replay_range(config, rpc, from, to, interrupt).await
        }
        ShadowTarget::Live(duration) => live::watch(config, rpc, duration, interrupt).await,
    }
}

/// `preempt shadow`: the command-line arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ShadowArgs {
    /// The config to calibrate: its nodes, protected contracts and policy table.
    #[arg(long)]
    pub config: PathBuf,
    /// The node to read from, instead of the config's nodes.
    #[arg(long)]
    pub rpc: Option<String>,
    /// First mined block to replay.
    #[arg(long, value_name = "N")]
    pub from_block: Option<u64>,
    /// Last mined block to replay.
    #[arg(long, value_name = "M")]
    pub to_block: Option<u64>,
    /// Watch the live pipeline (`run` in dry-run mode) instead of replaying blocks.
    #[arg(long)]
    pub live: bool,
    /// With --live: seconds to watch once the pipeline is ready.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

impl ShadowArgs {
    /// The target these arguments name, or what is wrong with them.
    pub fn target(&self) -> Result<ShadowTarget, String> {
        match (self.live, self.from_block, self.to_block, self.duration) {
            (true, None, None, Some(0)) => Err("--duration must be at least 1 second".into()),
            (true, None, None, Some(secs)) => Ok(ShadowTarget::Live(Duration::from_secs(secs))),
            (true, None, None, None) => Err("--live needs --duration SECS".into()),
            (true, ..) => Err("give either --live or --from-block/--to-block, not both".into()),
            (false, _, _, Some(_)) => Err("--duration goes with --live".into()),
            (false, Some(from), Some(to), None) if from > to => {
                Err(ShadowError::Range { from, to }.to_string())
            }
            (false, Some(0), Some(_), None) => Err(ShadowError::Genesis.to_string()),
            (false, Some(from), Some(to), None) => Ok(ShadowTarget::Blocks { from, to }),
            (false, ..) => {
                Err("give --from-block N and --to-block M (or --live --duration SECS)".into())
            }
        }
    }
}

/// Runs `preempt shadow`: 0 when nothing would have been paused, 1 when something would have,
/// 2 with one line naming what failed.
pub async fn command(args: ShadowArgs, interrupt: impl Future<Output = ()>) -> ExitCode {
    let fail = |message: &str| {
        eprintln!("error: {}", report::one_line(message));
        ExitCode::from(2)
    };
    let target = match args.target() {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    let report = match shadow(&config, args.rpc.as_deref(), target, interrupt).await {
        Ok(r) => r,
        Err(e) => return fail(&e.to_string()),
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => return fail(&format!("cannot encode the report: {e}")),
        }
    } else {
        print!("{}", render_human(&report));
    }
    ExitCode::from(report.exit_code())
}

#[cfg(test)]
mod tests;
