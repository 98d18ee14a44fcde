//! The runner: deploys the base state once, runs each scenario on its own anvil (loaded from the
//! base state) with `preempt run` watching, judges it from the blocks, the pool and the incident
//! records, and writes `corpus.json`.

use std::{
    collections::BTreeSet,
    fmt::Write as _,
    path::{Path, PathBuf},
    time::Instant,
};

use alloy::{
    primitives::{Address, B256, Bytes, U256},
    providers::ext::AnvilApi,
};
use serde::Serialize;
use serde_json::Value;

use super::{
    Actor, Book, CorpusError, Kind,
    base::deploy_base,
    driver::{Driver, GuardOutcome, GuardSettings, Mode, Observed, TxRole},
    rpc_err,
    scenarios::{self, ScenarioDef},
};
use crate::bench::AnvilProcess;

/// What `preempt devnet corpus` runs.
#[derive(Debug, Clone)]
pub struct CorpusOptions {
    /// Where corpus.json and each scenario's config, log and incidents go.
    pub out: PathBuf,
    /// Run only these scenarios (all when empty).
    pub only: Vec<String>,
    /// The anvil binary.
    pub anvil: PathBuf,
    /// The preempt binary run as `preempt run`.
    pub preempt: PathBuf,
    /// Run the scenarios without preempt and check each does what it claims (outcome
    /// `as-claimed`, else `not-as-claimed` with what failed): the corpus's own check.
    pub bare: bool,
}

/// One scenario's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    pub name: &'static str,
    pub kind: Kind,
    /// `clean` / `false-pause` (honest); `prevented` / `missed` / `paused-late` /
    /// `paused-attack-succeeded` (attacks); `error` when the scenario itself could not run;
    /// `as-claimed` / `not-as-claimed` in a bare run.
    pub outcome: String,
    pub rules_fired: Vec<String>,
    pub shape: &'static str,
    pub notes: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub twin_of: Option<&'static str>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CorpusReport {
    pub honest: usize,
    pub false_pauses: usize,
    pub attacks: usize,
    pub prevented: usize,
    /// Scenarios that could not be run or judged (counted in neither target).
    pub errors: usize,
    pub wall_time_s: f64,
    pub scenarios: Vec<ScenarioResult>,
}

impl CorpusReport {
    /// `--strict`: every honest scenario silent, every attack prevented, nothing errored.
    pub fn meets_targets(&self) -> bool {
        self.false_pauses == 0 && self.prevented == self.attacks && self.errors == 0
    }
}

/// The base state every scenario starts from.
#[derive(Debug, Clone)]
pub(crate) struct BaseState {
    pub(crate) dump: Bytes,
    pub(crate) book: Book,
}

/// Deploys the base state on a fresh anvil and dumps it.
pub(crate) async fn base_state(anvil: &Path) -> Result<BaseState, CorpusError> {
    let node = start_anvil(anvil)?;
    let mut d =
        Driver::connect(&node.http_url(), &node.ws_url(), Book::default(), Mode::Bare).await?;
    deploy_base(&mut d).await?;
    let dump = d.provider().anvil_dump_state().await.map_err(rpc_err("anvil_dumpState"))?;
    Ok(BaseState { dump, book: d.into_book() })
}

pub(crate) fn start_anvil(anvil: &Path) -> Result<AnvilProcess, CorpusError> {
    AnvilProcess::start(anvil).map_err(|e| CorpusError::Anvil(e.to_string()))
}

/// A fresh anvil holding the base state, and a driver on it.
pub(crate) async fn scenario_node(
    anvil: &Path,
    base: &BaseState,
    mode: Mode,
) -> Result<(AnvilProcess, Driver), CorpusError> {
    let node = start_anvil(anvil)?;
    let provider = alloy::providers::RootProvider::<alloy::network::Ethereum>::new_http(
        node.http_url().parse().map_err(|e| CorpusError::Anvil(format!("url: {e}")))?,
    );
    provider.anvil_load_state(base.dump.clone()).await.map_err(rpc_err("anvil_loadState"))?;
    let d = Driver::connect(&node.http_url(), &node.ws_url(), base.book.clone(), mode).await?;
    Ok((node, d))
}

/// The scenarios named in `only` (all when empty), in corpus order.
pub(crate) fn select(only: &[String]) -> Result<Vec<&'static ScenarioDef>, CorpusError> {
    let all = scenarios::all();
    for name in only {
        if !all.iter().any(|s| s.name == name) {
            let known: Vec<&str> = all.iter().map(|s| s.name).collect();
            return Err(CorpusError::UnknownScenario {
                name: name.clone(),
                known: known.join(", "),
            });
        }
    }
    Ok(all.into_iter().filter(|s| only.is_empty() || only.iter().any(|n| n == s.name)).collect())
}

/// Runs the corpus and writes `<out>/corpus.json`. Only a failure of the runner itself (no
/// anvil, a base deployment that reverts, an unwritable out dir) is an error; a scenario that
/// fails is reported as `error` and the run goes on.
pub async fn run_corpus(opts: &CorpusOptions) -> Result<CorpusReport, CorpusError> {
    let started = Instant::now();
    let selected = select(&opts.only)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CorpusError::Io { path, source }
    };
    std::fs::create_dir_all(&opts.out).map_err(io(&opts.out))?;
    eprintln!("corpus: deploying the base state");
    let base = base_state(&opts.anvil).await?;
    eprintln!("corpus: base state ready ({:.1} s)", started.elapsed().as_secs_f64());
    let mut results = Vec::with_capacity(selected.len());
    for (i, def) in selected.iter().enumerate() {
        let result = run_one(def, &base, opts).await;
        eprintln!(
            "corpus: [{}/{}] {:<44} {:<7} {:<24} {:.1} s",
            i + 1,
            selected.len(),
            def.name,
            kind_name(def.kind),
            result.outcome,
            result.seconds
        );
        results.push(result);
    }
    let report = summarize(results, started.elapsed().as_secs_f64());
    let path = opts.out.join("corpus.json");
    let text = serde_json::to_string_pretty(&report)
        .map_err(|e| CorpusError::Node(format!("cannot encode the report: {e}")))?;
    std::fs::write(&path, text + "\n").map_err(io(&path))?;
    Ok(report)
}

fn summarize(scenarios: Vec<ScenarioResult>, wall_time_s: f64) -> CorpusReport {
    let judged = |kind| scenarios.iter().filter(move |s| s.kind == kind && s.outcome != "error");
    CorpusReport {
        honest: judged(Kind::Honest).count(),
        false_pauses: judged(Kind::Honest).filter(|s| s.outcome == "false-pause").count(),
        attacks: judged(Kind::Attack).count(),
        prevented: judged(Kind::Attack).filter(|s| s.outcome == "prevented").count(),
        errors: scenarios.iter().filter(|s| s.outcome == "error").count(),
        wall_time_s,
        scenarios,
    }
}

async fn run_one(
    def: &'static ScenarioDef,
    base: &BaseState,
    opts: &CorpusOptions,
) -> ScenarioResult {
    let started = Instant::now();
    let mut result = ScenarioResult {
        name: def.name,
        kind: def.kind,
        outcome: "error".into(),
        rules_fired: Vec::new(),
        shape: def.shape.name(),
        notes: String::new(),
        twin_of: def.twin_of,
        seconds: 0.0,
    };
    let mode = if opts.bare {
        Mode::Bare
    } else {
        Mode::Guarded(GuardSettings {
            bin: opts.preempt.clone(),
            dir: opts.out.join("scenarios").join(def.name),
            protect: scenarios::protected(def.shape).to_vec(),
        })
    };
    match scenario_node(&opts.anvil, base, mode).await {
        Err(e) => result.notes = format!("{}: {e}", def.about),
        Ok((_anvil, mut d)) if opts.bare => {
            let run = (def.run)(&mut d).await;
            let verified = match run {
                Ok(()) => d.verify().await,
                Err(e) => Err(e),
            };
            let mut notes = vec![def.about.to_string()];
            match verified {
                Ok(failed) if failed.is_empty() => result.outcome = "as-claimed".into(),
                Ok(failed) => {
                    result.outcome = "not-as-claimed".into();
                    notes.extend(failed);
                }
                Err(e) => notes.push(format!("scenario failed: {e}")),
            }
            result.notes = notes.join("; ");
        }
        Ok((_anvil, mut d)) => {
            let run = (def.run)(&mut d).await;
            let finished = d.finish().await;
            match (run, finished) {
                (Ok(()), Ok(guard)) => {
                    let verdict = judge(def.kind, &d.observed(), &guard);
                    result.outcome = verdict.outcome;
                    result.rules_fired = verdict.rules;
                    let mut notes = vec![def.about.to_string()];
                    notes.extend(verdict.notes);
                    notes.extend(d.notes.iter().cloned());
                    result.notes = notes.join("; ");
                }
                (Err(e), _) | (_, Err(e)) => {
                    let mut notes = vec![def.about.to_string(), format!("scenario failed: {e}")];
                    notes.extend(d.notes.iter().cloned());
                    result.notes = notes.join("; ");
                }
            }
        }
    }
    result.seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    result
}

#[derive(Debug)]
pub(crate) struct Verdict {
    pub(crate) outcome: String,
    pub(crate) rules: Vec<String>,
    pub(crate) notes: Vec<String>,
}

/// A guardian tx mined while the txs under test were pending.
struct MinedPause {
    block: u64,
    index: usize,
    to: Option<Address>,
}

/// What the incident records say: the rules that fired, and the txs preempt decided to pause on.
struct Detections {
    rules: Vec<String>,
    paused_on: Vec<B256>,
}

fn detections(incidents: &[Value]) -> Detections {
    let mut rules = BTreeSet::new();
    let mut paused_on = Vec::new();
    for record in incidents.iter().filter(|r| r["kind"] == "detection") {
        for finding in record["findings"].as_array().into_iter().flatten() {
            if let Some(rule) = finding["rule"].as_str() {
                rules.insert(rule.to_string());
            }
        }
        // decisions: [[contract, {"action": ...}], ...]
        let pauses = record["decisions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| matches!(d[1]["action"].as_str(), Some("pause" | "replace" | "dry-run")));
        if pauses
            && let Some(tx) = record["attack_tx"].as_str().and_then(|h| h.parse().ok())
            && !paused_on.contains(&tx)
        {
            paused_on.push(tx);
        }
    }
    Detections { rules: rules.into_iter().collect(), paused_on }
}

pub(crate) fn judge(kind: Kind, d: &Observed<'_>, guard: &GuardOutcome) -> Verdict {
    let guardian = Actor::Guardian.address();
    let name_of = |a: Option<Address>| {
        a.and_then(|a| d.book.contracts.iter().find(|(_, v)| **v == a).map(|(k, _)| k.clone()))
            .unwrap_or_else(|| "?".into())
    };
    let pauses: Vec<MinedPause> = d
        .blocks
        .iter()
        .flat_map(|b| {
            b.txs
                .iter()
                .enumerate()
                .filter(|(_, t)| t.from == guardian)
                .map(|(index, t)| MinedPause { block: b.number, index, to: t.to })
        })
        .collect();
    let found = detections(&guard.incidents);
    let label_of = |hash: &B256| {
        d.sent
            .iter()
            .find(|s| s.hash == *hash)
            .map(|s| s.label.clone())
            .unwrap_or_else(|| format!("{hash}"))
    };
    let mut notes: Vec<String> = pauses
        .iter()
        .map(|p| {
            format!("guardian tx ({}) in block {} at index {}", name_of(p.to), p.block, p.index)
        })
        .collect();
    if !guard.pool_pauses.is_empty() {
        notes.push(format!(
            "{} guardian tx(s) in the pool after the last block",
            guard.pool_pauses.len()
        ));
    }
    for hash in &found.paused_on {
        notes.push(format!("pause decided on `{}`", label_of(hash)));
    }
    if let Some(code) = guard.exit_code.filter(|c| *c != 0) {
        notes.push(format!("preempt run exited with {code}"));
    }
    let any_pause =
        !pauses.is_empty() || !guard.pool_pauses.is_empty() || !found.paused_on.is_empty();

    let outcome = match kind {
        Kind::Honest => if any_pause { "false-pause" } else { "clean" }.to_string(),
        Kind::Attack => {
            if let Some(split) = d.split {
                let taken = split.taken.unwrap_or_default();
                let limit = split.holdings_start * U256::from(2 * split.threshold_bps)
                    / U256::from(10_000u64);
                let pct = if split.holdings_start.is_zero() {
                    0.0
                } else {
                    (taken * U256::from(10_000u64) / split.holdings_start).saturating_to::<u64>()
                        as f64
                        / 100.0
                };
                notes.push(format!(
                    "attacker took {pct:.1}% of the holdings (limit {}%)",
                    2 * split.threshold_bps / 100
                ));
                match (pauses.is_empty(), taken <= limit) {
                    (false, true) => "prevented",
                    (true, _) if guard.pool_pauses.is_empty() => "missed",
                    _ => "paused-late",
                }
                .to_string()
            } else {
                let attacks: Vec<_> = d.sent.iter().filter(|s| s.role == TxRole::Attack).collect();
                let ahead = |block: Option<u64>, index: Option<usize>| {
                    pauses.iter().any(|p| match (block, index) {
                        (Some(b), Some(i)) => p.block < b || (p.block == b && p.index < i),
                        _ => false,
                    })
                };
                for a in &attacks {
                    let status = match a.success {
                        Some(true) => "succeeded",
                        Some(false) => "reverted",
                        None => "not mined",
                    };
                    notes.push(format!(
                        "attack `{}` in block {} at index {}: {status}",
                        a.label,
                        a.block.map(|b| b.to_string()).unwrap_or_else(|| "-".into()),
                        a.index.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
                    ));
                }
                let all_ahead = attacks.iter().all(|a| ahead(a.block, a.index));
                let all_reverted = attacks.iter().all(|a| a.success == Some(false));
                if !attacks.is_empty() && all_ahead && all_reverted {
                    "prevented"
                } else if pauses.is_empty() && guard.pool_pauses.is_empty() {
                    "missed"
                } else if all_ahead {
                    "paused-attack-succeeded"
                } else {
                    "paused-late"
                }
                .to_string()
            }
        }
    };
    // Honest calls interleaved with an attack must not be what a pause was decided on.
    if kind == Kind::Attack {
        for hash in &found.paused_on {
            if d.sent.iter().any(|s| s.hash == *hash && s.role == TxRole::Honest) {
                notes.push(format!("paused on an honest tx: `{}`", label_of(hash)));
            }
        }
    }
    Verdict { outcome, rules: found.rules, notes }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Honest => "honest",
        Kind::Attack => "attack",
    }
}

/// The report as a table: one line per scenario, then the totals.
pub fn table(report: &CorpusReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<44} {:<7} {:<12} {:<24} rules fired",
        "scenario", "kind", "shape", "outcome"
    );
    for s in &report.scenarios {
        let rules =
            if s.rules_fired.is_empty() { "-".to_string() } else { s.rules_fired.join(",") };
        let _ = writeln!(
            out,
            "{:<44} {:<7} {:<12} {:<24} {rules}",
            s.name,
            kind_name(s.kind),
            s.shape,
            s.outcome
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "honest {}  false pauses {}  attacks {}  prevented {}  errors {}  wall time {:.0} s",
        report.honest,
        report.false_pauses,
        report.attacks,
        report.prevented,
        report.errors,
        report.wall_time_s
    );
    out
}

/// `preempt devnet corpus`: the command-line arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct CorpusArgs {
    /// Where corpus.json and each scenario's config, log and incidents go.
    #[arg(long, default_value = "out/corpus")]
    pub out: PathBuf,
    /// Run only this scenario (repeatable).
    #[arg(long)]
    pub only: Vec<String>,
    /// Exit 1 unless every honest scenario stayed silent and every attack was prevented.
    #[arg(long)]
    pub strict: bool,
    /// Run the scenarios without preempt, checking each does what it claims.
    #[arg(long)]
    pub bare: bool,
    /// The anvil binary (default: $PREEMPT_TOOLS/bin/anvil, else .tools/bin/anvil).
    #[arg(long)]
    pub anvil: Option<PathBuf>,
    /// List the scenarios and exit.
    #[arg(long)]
    pub list: bool,
}

/// Runs `preempt devnet corpus`: 0 when the run completed (the targets are judged from the
/// report), 1 with `--strict` when a target is missed, 2 when the runner itself failed.
pub async fn command(args: CorpusArgs) -> std::process::ExitCode {
    use std::process::ExitCode;
    if args.list {
        for s in scenarios::all() {
            println!("{:<44} {:<7} {:<12} {}", s.name, kind_name(s.kind), s.shape.name(), s.about);
        }
        return ExitCode::SUCCESS;
    }
    // The guard is this very binary, unless told otherwise.
    let preempt = match std::env::var_os("PREEMPT_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => match std::env::current_exe() {
            Ok(exe) => exe,
            Err(e) => {
                eprintln!("error: cannot locate the preempt binary: {e} (set PREEMPT_BIN)");
                return ExitCode::from(2);
            }
        },
    };
    let anvil = args.anvil.unwrap_or_else(|| {
        std::env::var_os("PREEMPT_TOOLS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(".tools"))
            .join("bin/anvil")
    });
    let opts = CorpusOptions { out: args.out, only: args.only, anvil, preempt, bare: args.bare };
    match run_corpus(&opts).await {
        Ok(report) => {
            print!("{}", table(&report));
            println!("wrote {}", opts.out.join("corpus.json").display());
            if args.strict && !report.meets_targets() {
                ExitCode::from(1)
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
