//! Raw file structs → the typed `Config`, one section at a time; the first bad key is the error.

use std::{collections::HashSet, ops::RangeInclusive, path::Path, str::FromStr};

use super::{
    Config, ConfigError, GuardianKey, GuardianSafe, NodeConfig, ProtectedContract, RelayConfig,
    RespondConfig, SecretRef, SimulationConfig,
    limits::{self, shown},
    raw::{
        RawConfig, RawCumulative, RawFork, RawGuardian, RawNode, RawPolicy, RawRelay, RawRelayAuth,
        RawRespond, RawSimulation,
    },
};

pub(super) fn validate(raw: RawConfig, file: &Path) -> Result<Config, ConfigError> {
    let v = Validator { file };
    let nodes = v.nodes(raw.nodes)?;
    let safe = raw.guardian.as_ref().map(|g| v.guardian_safe(g)).transpose()?.flatten();
    let guardian = raw.guardian.map(|g| v.guardian(g)).transpose()?;
    let protected = v.protected(raw.protected)?;
    let simulation = v.simulation(&raw.simulation)?;
    let relays = v.relays(raw.relays)?;
    let relay_auth = v.relay_auth(raw.relay_auth, &relays, guardian.as_ref())?;
    let respond = RespondConfig { safe, ..v.respond(&raw.respond, &protected)? };
    let fork = v.fork(&raw.fork)?;
    let policy = v.policy(&raw.policy)?;
    let cumulative = v.cumulative(&raw.cumulative)?;
    let (incidents_path, incidents_store) = v.incidents(raw.incidents)?;
    let alerts = v.alerts(raw.alerts, guardian.as_ref(), relay_auth.as_ref())?;
    let metrics_listen = raw.metrics.map(|m| v.metrics_listen(&m.listen)).transpose()?;
    Ok(Config {
        file: file.to_path_buf(),
        nodes,
        guardian,
        protected,
        simulation,
        relays,
        relay_auth,
        respond,
        incidents_path,
        incidents_store,
        alerts,
        fork,
        policy,
        cumulative,
        metrics_listen,
    })
}

/// Validation of one file: every error it builds names that file.
pub(super) struct Validator<'a> {
    pub(super) file: &'a Path,
}

impl Validator<'_> {
    pub(super) fn invalid(&self, key: &str, reason: &str) -> ConfigError {
        ConfigError::invalid(self.file, key, reason)
    }

    /// `value` as a `u64` inside `range`, or an error naming the key, the range and why.
    pub(super) fn in_range(
        &self,
        key: &str,
        value: i64,
        range: &RangeInclusive<u64>,
        why: &'static str,
    ) -> Result<u64, ConfigError> {
        match u64::try_from(value) {
            Ok(v) if range.contains(&v) => Ok(v),
            _ => Err(ConfigError::OutOfRange {
                file: self.file.to_path_buf(),
                key: key.to_string(),
                value: value.to_string(),
                allowed: shown(range),
                why,
            }),
        }
    }

    /// `[metrics] listen`: an IP and a port (a host name would resolve differently over time).
    fn metrics_listen(&self, listen: &str) -> Result<std::net::SocketAddr, ConfigError> {
        listen.trim().parse().map_err(|_| {
            self.invalid("metrics.listen", "give an IP address and a port, e.g. \"127.0.0.1:9464\"")
        })
    }

    fn nodes(&self, raw: Vec<RawNode>) -> Result<Vec<NodeConfig>, ConfigError> {
        let mut names = HashSet::new();
        let mut nodes = Vec::with_capacity(raw.len());
        for (i, n) in raw.into_iter().enumerate() {
            let url = n.url.trim().to_string();
            let is_ws = url.starts_with("ws://") || url.starts_with("wss://");
            let is_http = url.starts_with("http://") || url.starts_with("https://");
            let is_ipc = url.starts_with('/') || url.ends_with(".ipc");
            if !(is_ws || is_http || is_ipc) {
                let reason = format!(
                    "{} is neither ws://, wss://, http(s):// nor an IPC socket path",
                    scheme_of(&url)
                );
                return Err(self.invalid(&format!("node[{i}].url"), &reason));
            }
            let name = n.name.unwrap_or_else(|| format!("node{i}"));
            if !names.insert(name.clone()) {
                let reason = format!("`{name}` names two nodes; node names must be unique");
                return Err(self.invalid(&format!("node[{i}].name"), &reason));
            }
            nodes.push(NodeConfig { name, url, pending: n.pending });
        }
        Ok(nodes)
    }

    fn secret_ref(&self, key: &str, value: &str) -> Result<SecretRef, ConfigError> {
        SecretRef::from_str(value).map_err(|reason| self.invalid(key, &reason))
    }

    /// `[guardian] safe` and `safe_role`: a role needs a Safe, and the Safe a real address.
    fn guardian_safe(&self, g: &RawGuardian) -> Result<Option<GuardianSafe>, ConfigError> {
        let Some(text) = &g.safe else {
            if g.safe_role.is_some() {
                return Err(self.invalid(
                    "guardian.safe_role",
                    "a role in a Safe needs `safe`, the Safe's address",
                ));
            }
            return Ok(None);
        };
        let address = self.address("guardian.safe", text)?;
        if address.is_zero() {
            return Err(self.invalid("guardian.safe", "the zero address is not a Safe"));
        }
        Ok(Some(GuardianSafe { address, role: g.safe_role.unwrap_or_default() }))
    }

    fn guardian(&self, g: RawGuardian) -> Result<GuardianKey, ConfigError> {
        match (g.key, g.keystore, g.password) {
            (Some(key), None, None) => Ok(GuardianKey::Raw(self.secret_ref("guardian.key", &key)?)),
            (None, Some(path), Some(pw)) => Ok(GuardianKey::Keystore {
                path,
                password: self.secret_ref("guardian.password", &pw)?,
            }),
            (None, Some(_), None) => {
                Err(self.invalid("guardian.password", "a keystore needs a password reference"))
            }
            _ => Err(self.invalid("guardian", "give either `key` or `keystore` with `password`")),
        }
    }

    fn simulation(&self, s: &RawSimulation) -> Result<SimulationConfig, ConfigError> {
        Ok(SimulationConfig {
            view_gas_limit: self.in_range(
                "simulation.view_gas_limit",
                s.view_gas_limit,
                &limits::VIEW_GAS_LIMIT,
                "views run under the per-tx gas cap of 2^24, and with less than 100000 gas an \
                 invariant view runs out of gas",
            )?,
            max_tx_gas: self.in_range(
                "simulation.max_tx_gas",
                s.max_tx_gas,
                &limits::MAX_TX_GAS,
                "a tx is simulated with at most this much gas, so an attack that needs more is \
                 missed; no tx above 2^24 gas can be mined",
            )?,
            workers: self.in_range(
                "simulation.workers",
                s.workers,
                &limits::WORKERS,
                "one simulation thread at least",
            )? as usize,
            queue_capacity: self.in_range(
                "simulation.queue_capacity",
                s.queue_capacity,
                &limits::QUEUE_CAPACITY,
                "a smaller queue drops txs in an ordinary burst; a larger one only hides a backlog",
            )? as usize,
            keep_warm: match self.in_range(
                "simulation.keep_warm_ms",
                s.keep_warm_ms,
                &limits::KEEP_WARM_MS,
                "0 turns it off; after more than a second idle the caches are cold anyway",
            )? {
                0 => None,
                ms => Some(std::time::Duration::from_millis(ms)),
            },
            worker_nice: match s.worker_nice {
                n if limits::WORKER_NICE.contains(&n) => n as i32,
                n => {
                    return Err(ConfigError::OutOfRange {
                        file: self.file.to_path_buf(),
                        key: "simulation.worker_nice".into(),
                        value: n.to_string(),
                        allowed: format!(
                            "{}..={}",
                            limits::WORKER_NICE.start(),
                            limits::WORKER_NICE.end()
                        ),
                        why: "Linux's nice range: -20 is scheduled first, 19 last",
                    });
                }
            },
        })
    }

    fn policy(&self, p: &RawPolicy) -> Result<crate::respond::Policy, ConfigError> {
        use crate::{respond::Action, types::Severity};
        let action = |key: &str, v: &str| -> Result<Action, ConfigError> {
            match v.trim() {
                "pause" => Ok(Action::Pause),
                "alert" => Ok(Action::Alert),
                "record" => Ok(Action::Record),
                _ => Err(self.invalid(key, "is not one of \"pause\", \"alert\", \"record\"")),
            }
        };
        let mut policy = crate::respond::Policy::default();
        let by_severity = [
            (Severity::Critical, &p.critical),
            (Severity::High, &p.high),
            (Severity::Medium, &p.medium),
            (Severity::Low, &p.low),
            (Severity::Info, &p.info),
        ];
        for (severity, value) in by_severity {
            if let Some(v) = value {
                let key = format!("policy.{}", severity.as_str());
                policy.set_severity(severity, action(&key, v)?);
            }
        }
        for (name, value) in &p.rules {
            let key = format!("policy.rules.{name}");
            let (rule, severity) = match name.split_once('.') {
                Some((rule, s)) => {
                    let severity =
                        Severity::ALL.into_iter().find(|x| x.as_str() == s).ok_or_else(|| {
                            self.invalid(
                                &key,
                                "names no severity (critical, high, medium, low, info)",
                            )
                        })?;
                    (rule, Some(severity))
                }
                None => (name.as_str(), None),
            };
            if !crate::detect::rule_names::ALL.contains(&rule) {
                let known = crate::detect::rule_names::ALL.join(", ");
                return Err(self.invalid(&key, &format!("names no rule (one of {known})")));
            }
            policy.set_rule(rule, severity, action(&key, value)?);
        }
        Ok(policy)
    }

    fn cumulative(&self, c: &RawCumulative) -> Result<super::CumulativeConfig, ConfigError> {
        let window_blocks = self.in_range(
            "cumulative.window_blocks",
            c.window_blocks,
            &limits::CUMULATIVE_WINDOW,
            "blocks over which takes under the threshold are summed",
        )?;
        let threshold_bps = match c.threshold_bps {
            None => None,
            Some(t) => Some(self.in_range(
                "cumulative.threshold_bps",
                t,
                &limits::DRAIN_THRESHOLD_BPS,
                "basis points of the holdings a sum of takes may reach",
            )? as u32),
        };
        Ok(super::CumulativeConfig { window_blocks, threshold_bps })
    }

    fn fork(&self, f: &RawFork) -> Result<crate::fork::ForkLimits, ConfigError> {
        Ok(crate::fork::ForkLimits {
            max_entries: self.in_range(
                "fork.max_entries",
                f.max_entries,
                &limits::FORK_MAX_ENTRIES,
                "fewer entries than the protected state and a busy block refetch every block;                  more than 100M outgrow the host",
            )? as usize,
            max_age_blocks: self.in_range(
                "fork.max_age_blocks",
                f.max_age_blocks,
                &limits::FORK_MAX_AGE_BLOCKS,
                "under 64 blocks a reorg rewinds past the kept state",
            )?,
        })
    }

    fn relays(&self, raw: Vec<RawRelay>) -> Result<Vec<RelayConfig>, ConfigError> {
        let mut names = HashSet::new();
        let mut relays = Vec::with_capacity(raw.len());
        for (i, r) in raw.into_iter().enumerate() {
            let url = r.url.trim().to_string();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                let reason = format!("{} is not an http(s) URL", scheme_of(&url));
                return Err(self.invalid(&format!("relay[{i}].url"), &reason));
            }
            let name = r.name.unwrap_or_else(|| format!("relay{i}"));
            if !names.insert(name.clone()) {
                let reason = format!("`{name}` names two relays; relay names must be unique");
                return Err(self.invalid(&format!("relay[{i}].name"), &reason));
            }
            relays.push(RelayConfig { name, url });
        }
        Ok(relays)
    }

    fn relay_auth(
        &self,
        raw: Option<RawRelayAuth>,
        relays: &[RelayConfig],
        guardian: Option<&GuardianKey>,
    ) -> Result<Option<SecretRef>, ConfigError> {
        let Some(raw) = raw else {
            if relays.is_empty() {
                return Ok(None);
            }
            return Err(
                self.invalid("relay_auth", "relays need a [relay_auth] key to sign bundles")
            );
        };
        let key = self.secret_ref("relay_auth.key", &raw.key)?;
        if let Some(GuardianKey::Raw(guardian)) = guardian
            && *guardian == key
        {
            let reason = format!(
                "{key:?} is also `guardian.key`: the relay-auth key must be a separate key, \
                 so that what signs bundle headers can never sign a pause"
            );
            return Err(self.invalid("relay_auth.key", &reason));
        }
        Ok(Some(key))
    }

    fn respond(
        &self,
        r: &RawRespond,
        protected: &[ProtectedContract],
    ) -> Result<RespondConfig, ConfigError> {
        let max_fee = self.gwei("respond.max_fee_per_gas_gwei", r.max_fee_per_gas_gwei)?;
        let tip =
            self.gwei("respond.max_priority_fee_per_gas_gwei", r.max_priority_fee_per_gas_gwei)?;
        if tip > max_fee {
            let reason = format!(
                "{} gwei is above `respond.max_fee_per_gas_gwei` ({} gwei): a tip can never \
                 exceed the max fee",
                r.max_priority_fee_per_gas_gwei, r.max_fee_per_gas_gwei
            );
            return Err(self.invalid("respond.max_priority_fee_per_gas_gwei", &reason));
        }
        Ok(RespondConfig {
            mode: r.mode,
            max_fee_per_gas_cap: max_fee,
            max_priority_fee_per_gas_cap: tip,
            pause_gas_limit: self.pause_gas_limit(r.pause_gas_limit, protected)?,
            resend_blocks: self.in_range(
                "respond.resend_blocks",
                r.resend_blocks,
                &limits::RESEND_BLOCKS,
                "a pause is sent for at least its first block, and one that has not landed \
                 within 64 blocks needs a person",
            )?,
            safe: None,
        })
    }

    /// A fee cap in gwei as wei: finite, positive, at least 1 wei, at most `MAX_FEE_GWEI`.
    fn gwei(&self, key: &str, v: f64) -> Result<u128, ConfigError> {
        let wei = (v * 1e9).round();
        if !(v.is_finite() && v <= limits::MAX_FEE_GWEI && wei >= 1.0) {
            return Err(ConfigError::OutOfRange {
                file: self.file.to_path_buf(),
                key: key.to_string(),
                value: format!("{v}"),
                allowed: format!("0.000000001..={} gwei", limits::MAX_FEE_GWEI),
                why: "a cap of 0 pays nothing and no node takes the pause; above 1000000 gwei \
                      it is a unit mistake",
            });
        }
        Ok(wei as u128)
    }

    /// At least what the node needs to accept the largest configured pause call.
    fn pause_gas_limit(
        &self,
        value: i64,
        protected: &[ProtectedContract],
    ) -> Result<u64, ConfigError> {
        let floor = protected
            .iter()
            .map(|p| limits::pause_gas_floor(&p.pause.calldata))
            .max()
            .unwrap_or_else(|| limits::pause_gas_floor(&super::PAUSE_SELECTOR));
        self.in_range(
            "respond.pause_gas_limit",
            value,
            &(floor..=limits::TX_GAS_CAP),
            "the node refuses a pause below 21000 gas plus its calldata, and the call needs \
             gas to write; no tx above 2^24 gas can be mined",
        )
    }
}

/// What a URL starts with, for an error that must not print the URL: it may carry an API key.
fn scheme_of(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, _))
            if !scheme.is_empty()
                && scheme.len() <= 16
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || c == '+') =>
        {
            format!("`{scheme}://…`")
        }
        _ => "the URL".to_string(),
    }
}
