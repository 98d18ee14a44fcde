//! The `preempt` command line.

use std::{path::PathBuf, process::ExitCode};

use alloy::primitives::{B256, Bytes};
use clap::{Args, Parser, Subcommand, ValueEnum};
use preempt::{
    check::{CheckTarget, print_human, run_check},
    config::Config,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "preempt",
    version,
    about = "Mempool exploit interceptor and block-level guard for DeFi protocols"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulate a tx (raw, by hash, or every pending one) and print the verdict with evidence.
    /// Exit code: 0 clean, 1 findings, 2 error.
    Check {
        #[arg(long)]
        config: PathBuf,
        /// Node to read state from (default: the config's first node).
        #[arg(long)]
        rpc: Option<String>,
        /// A tx by hash: mined (state just before it) or pending.
        #[arg(long, group = "target")]
        tx: Option<B256>,
        /// A raw signed tx, 0x-hex.
        #[arg(long, group = "target")]
        raw: Option<Bytes>,
        /// Every tx now pending in the node's pool.
        #[arg(long, group = "target")]
        pending: bool,
        /// A stored incident, re-derived offline from the pre-state its simulation read: no
        /// node is asked. The store is `[incidents] store` of --config, or --store.
        #[arg(long, group = "target", value_name = "ID")]
        replay: Option<i64>,
        /// The SQLite incident store for --replay (default: the config's `[incidents] store`).
        #[arg(long, requires = "replay")]
        store: Option<PathBuf>,
        /// With --tx of a mined tx: leave out the earlier txs of its block that paused a
        /// protected contract, to show what the tx would have done without the pause.
        #[arg(long, requires = "tx")]
        without_pause: bool,
        /// Print JSON instead of the human report.
        #[arg(long)]
        json: bool,
    },
    /// Watch the mempool of every configured node and pause protected contracts under attack.
    /// Logs a line containing `ready` once every node is subscribed and protected state is warm.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Calibrate before arming: replay mined blocks (or watch the live pipeline) with the same
    /// rules, deciding as dry-run, and report per contract and rule what would have been paused.
    /// Nothing is sent. Exit code: 0 nothing would pause, 1 something would, 2 error.
    Shadow(preempt::shadow::ShadowArgs),
    /// The latency benchmark: starts its own anvil with the fixtures, measures every stage against
    /// the floor (bare revm) and the peer (debug_traceCall), writes bench.json, bench.svg, bench.txt.
    #[cfg(feature = "dev")]
    Bench(preempt::bench::BenchOptions),
    /// Incidents: `list` and `show ID` from the store, or a JSON-lines file as a timeline.
    Incidents(IncidentsArgs),
    /// A running guard's state, from its metrics endpoint (`[metrics] listen`): nodes and their
    /// lag, fork block, protected contracts and whether each is paused, pauses in flight, the
    /// guardian's nonce and balance, counts since start. Exit code 2 if no guard answers.
    Status {
        /// The guard's metrics address (`[metrics] listen`), or a full URL of its metrics.
        #[arg(long, default_value = preempt::status::DEFAULT_METRICS_URL)]
        metrics: String,
    },
    /// Demo and benchmark helpers on a local anvil: deploy the demo protocol, send its scenarios.
    #[cfg(feature = "dev")]
    #[command(subcommand)]
    Devnet(DevnetCommand),
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct IncidentsArgs {
    /// An incident file (JSON lines written by `run`), printed as a readable timeline.
    #[arg(required = true)]
    file: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<IncidentsCommand>,
}

/// Where the incident store is: `--store FILE`, or the `[incidents] store` of `--config FILE`.
#[derive(Debug, Args)]
struct StoreArg {
    /// The SQLite incident store.
    #[arg(long, conflicts_with = "config")]
    store: Option<PathBuf>,
    /// A config whose `[incidents] store` names the store.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum IncidentsCommand {
    /// Incidents in the store, newest first.
    List {
        #[command(flatten)]
        store: StoreArg,
        /// Opened at or after: RFC 3339 (2026-11-23T12:00:00Z, or a date) or Unix seconds.
        #[arg(long)]
        since: Option<String>,
        /// With a finding on this contract: its address or its name in the config.
        #[arg(long)]
        contract: Option<String>,
        /// With a finding of this rule (drain, reentrancy, read-only-reentrancy, invariant).
        #[arg(long)]
        rule: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One incident's timeline: detection, findings with evidence, decisions, every send with
    /// its answer, outcome.
    Show {
        /// The incident's id, as `list` prints it.
        id: i64,
        #[command(flatten)]
        store: StoreArg,
        /// Print JSON instead of the timeline.
        #[arg(long)]
        json: bool,
    },
}

fn store_path(arg: StoreArg) -> Result<PathBuf, String> {
    if let Some(path) = arg.store {
        return Ok(path);
    }
    let Some(config) = arg.config else {
        return Err("give --store FILE, or --config FILE with an [incidents] store".into());
    };
    let config = Config::load(&config).map_err(|e| e.to_string())?;
    config.incidents_store.ok_or_else(|| {
        format!("{}: key `incidents.store`: not set; give --store FILE", config.file.display())
    })
}

/// `incidents list` / `show`: what to print, or a one-line error.
fn incidents_command(command: IncidentsCommand) -> Result<String, String> {
    use preempt::incident::{
        ContractFilter, IncidentFilter, StoreReader, parse_time, render_detail, render_list,
    };
    match command {
        IncidentsCommand::List { store, since, contract, rule, limit, json } => {
            let since_unix_ms = since
                .as_deref()
                .map(parse_time)
                .transpose()
                .map_err(|e| format!("--since: {e}"))?;
            let filter = IncidentFilter {
                since_unix_ms,
                contract: contract.as_deref().map(ContractFilter::named),
                rule,
                limit: Some(limit),
            };
            let path = store_path(store)?;
            let reader = StoreReader::open(&path).map_err(|e| e.to_string())?;
            let rows = reader.list(&filter).map_err(|e| format!("{}: {e}", path.display()))?;
            if json {
                serde_json::to_string_pretty(&rows).map(|s| s + "\n").map_err(|e| e.to_string())
            } else {
                Ok(render_list(&rows))
            }
        }
        IncidentsCommand::Show { id, store, json } => {
            let path = store_path(store)?;
            let reader = StoreReader::open(&path).map_err(|e| e.to_string())?;
            let detail = reader
                .show(id)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .ok_or_else(|| format!("no incident {id} in {}", path.display()))?;
            if json {
                serde_json::to_string_pretty(&detail).map(|s| s + "\n").map_err(|e| e.to_string())
            } else {
                Ok(render_detail(&detail))
            }
        }
    }
}

#[cfg(feature = "dev")]
#[derive(Debug, Subcommand)]
enum DevnetCommand {
    /// Deploy the demo protocol; write deployment.json and preempt.toml into --out.
    Deploy {
        #[arg(long)]
        rpc: String,
        /// The node URL to write into preempt.toml (default: --rpc).
        #[arg(long)]
        node_url: Option<String>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign and send one scenario's tx to the mempool (no mining); prints its hash.
    Send {
        #[arg(long)]
        rpc: String,
        #[arg(long)]
        deployment: PathBuf,
        scenario: String,
    },
    /// The precision corpus: honest traffic and attacks of many protocol shapes, each on its own
    /// anvil through `preempt run` with a plain config; writes corpus.json and prints a table.
    Corpus(preempt::devnet::corpus::CorpusArgs),
    /// A chain of the corpus's honest traffic (a few hundred blocks, optionally one attack
    /// last) for `preempt shadow`: writes chain.json, state.json and the plain configs.
    CorpusChain(preempt::devnet::corpus::ChainArgs),
}

#[cfg(feature = "dev")]
async fn devnet_command(command: DevnetCommand) -> eyre::Result<()> {
    use preempt::devnet::{Deployment, Scenario, config_toml, deploy, send_scenario};
    match command {
        DevnetCommand::Deploy { rpc, node_url, out } => {
            let deployment = deploy(&rpc).await?;
            std::fs::create_dir_all(&out)?;
            std::fs::write(
                out.join("deployment.json"),
                serde_json::to_string_pretty(&deployment)?,
            )?;
            let config = config_toml(
                &deployment,
                node_url.as_deref().unwrap_or(&rpc),
                "PREEMPT_GUARDIAN_KEY",
            );
            std::fs::write(out.join("preempt.toml"), config)?;
            println!(
                "deployed {} contracts; wrote {}",
                deployment.contracts.len(),
                out.join("preempt.toml").display()
            );
        }
        DevnetCommand::Send { rpc, deployment, scenario } => {
            let text = std::fs::read_to_string(&deployment)
                .map_err(|e| eyre::eyre!("{}: {e}", deployment.display()))?;
            let deployment: Deployment = serde_json::from_str(&text)?;
            let names: Vec<&str> = Scenario::all().iter().map(|s| s.name()).collect();
            let scenario = Scenario::from_name(&scenario).ok_or_else(|| {
                eyre::eyre!("unknown scenario `{scenario}`; one of: {}", names.join(", "))
            })?;
            let hash = send_scenario(&rpc, &deployment, scenario).await?;
            println!("sent {} as {hash}", scenario.name());
        }
        // Handled in main (they have their own exit codes).
        DevnetCommand::Corpus(_) | DevnetCommand::CorpusChain(_) => {}
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Run { config } => {
                let config = match Config::load(&config) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                };
                match preempt::run::run(config, shutdown_signal()).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::from(2)
                    }
                }
            }
            Command::Shadow(args) => preempt::shadow::command(args, shutdown_signal()).await,
            #[cfg(feature = "dev")]
            Command::Bench(opts) if opts.soak.is_some() => {
                let soak = preempt::bench::soak::SoakOptions {
                    anvil: opts.anvil.clone(),
                    preempt: std::env::current_exe().unwrap_or_else(|_| "preempt".into()),
                    out: opts.out.clone(),
                    blocks: opts.soak.unwrap_or_default(),
                    txs_per_block: opts.soak_txs,
                    max_entries: opts.soak_max_entries,
                };
                match preempt::bench::soak::run_soak(&soak).await {
                    Ok(report) => {
                        println!(
                            "soak: {} blocks, divergences {}, attacks paused {:?}, rss {} MiB, replay µs {}, head lag ms {}",
                            report.blocks,
                            report.divergences,
                            report.attacks_paused,
                            report.rss_mb,
                            report.replay_us,
                            report.head_lag_ms
                        );
                        println!("wrote {0}/soak.json, {0}/soak.svg", opts.out.display());
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::from(2)
                    }
                }
            }
            #[cfg(feature = "dev")]
            Command::Bench(opts) if opts.flood => {
                match preempt::bench::flood::run_flood_bench(&opts.flood_options()).await {
                    Ok(_) => {
                        println!("wrote {}/flood.json", opts.out.display());
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::from(2)
                    }
                }
            }
            #[cfg(feature = "dev")]
            Command::Bench(opts) => match preempt::bench::run_bench(&opts).await {
                Ok(report) => {
                    print!("{}", preempt::bench::table(&report));
                    println!(
                        "wrote {0}/bench.json, {0}/bench.svg, {0}/bench.txt",
                        opts.out.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            },
            Command::Status { metrics } => match preempt::status::scrape(&metrics).await {
                Ok(snapshot) => {
                    let url = preempt::status::metrics_url(&metrics);
                    print!("{}", preempt::status::render(&snapshot, &url));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            },
            Command::Incidents(IncidentsArgs { command: Some(command), .. }) => {
                match incidents_command(command) {
                    Ok(text) => {
                        print!("{text}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::from(2)
                    }
                }
            }
            Command::Incidents(IncidentsArgs { file, .. }) => {
                let file = file.unwrap_or_default();
                match std::fs::read_to_string(&file) {
                    Ok(text) => {
                        print!("{}", preempt::incident::render_timeline(&text));
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("error: {}: {e}", file.display());
                        ExitCode::from(2)
                    }
                }
            }
            #[cfg(feature = "dev")]
            Command::Devnet(DevnetCommand::Corpus(args)) => {
                preempt::devnet::corpus::command(args).await
            }
            #[cfg(feature = "dev")]
            Command::Devnet(DevnetCommand::CorpusChain(args)) => {
                preempt::devnet::corpus::chain_command(args).await
            }
            #[cfg(feature = "dev")]
            Command::Devnet(command) => match devnet_command(command).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            },
            Command::Check {
                config,
                rpc,
                tx,
                raw,
                pending,
                replay,
                store,
                without_pause,
                json,
            } => {
                let target = match (tx, raw, pending, replay) {
                    (Some(h), None, false, None) if without_pause => {
                        CheckTarget::HashWithoutPause(h)
                    }
                    (Some(h), None, false, None) => CheckTarget::Hash(h),
                    (None, Some(r), false, None) => CheckTarget::Raw(r),
                    (None, None, true, None) => CheckTarget::Pending,
                    (None, None, false, Some(_)) => CheckTarget::Pending,
                    _ => {
                        eprintln!("error: give exactly one of --tx, --raw, --pending, --replay");
                        return ExitCode::from(2);
                    }
                };
                let config = match Config::load(&config) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                };
                let checked = match replay {
                    Some(id) => {
                        let store = match store.or_else(|| config.incidents_store.clone()) {
                            Some(s) => s,
                            None => {
                                eprintln!(
                                    "error: {}: key `incidents.store`: not set; give --store FILE",
                                    config.file.display()
                                );
                                return ExitCode::from(2);
                            }
                        };
                        preempt::check::run_replay(&config, &store, id)
                    }
                    None => run_check(&config, rpc.as_deref(), target).await,
                };
                match checked {
                    Ok(report) => {
                        if json {
                            match serde_json::to_string_pretty(&report) {
                                Ok(s) => println!("{s}"),
                                Err(e) => {
                                    eprintln!("error: cannot encode the report: {e}");
                                    return ExitCode::from(2);
                                }
                            }
                        } else {
                            print!("{}", print_human(&report));
                        }
                        let errors = report.verdicts.iter().filter(|v| v.error.is_some()).count();
                        if report.findings() > 0 {
                            ExitCode::from(1)
                        } else if errors > 0 {
                            ExitCode::from(2)
                        } else {
                            ExitCode::SUCCESS
                        }
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::from(2)
                    }
                }
            }
        }
    });
    // Tasks still waiting on a dead node must not hold the exit (SIGTERM → exit within 2 s).
    runtime.shutdown_timeout(std::time::Duration::from_millis(300));
    code
}
