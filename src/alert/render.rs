//! An `AlertEvent` as a person reads it (title, one-line summary, labelled fields, urgency, an
//! incident key), and that alert as each service's body: Slack, Discord, PagerDuty, webhook.

use alloy::primitives::{Address, B256, U256, utils::format_units};
use serde_json::{Value, json};

use super::event::{AlertEvent, FailedAlert, FindingAlert, LandedAlert, PauseAlert};
use crate::{
    config::AlertLevel,
    incident::{DetectionSource, rfc3339_ms},
    types::Severity,
};

/// Slack's header block, Discord's embed title and PagerDuty's summary have length limits.
const TITLE_MAX: usize = 150;
const SUMMARY_MAX: usize = 1_000;
const FIELD_MAX: usize = 1_000;

/// Whether this alert opens (or adds to) an incident, or closes one (PagerDuty `resolve`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Trigger,
    Resolve,
}

/// One alert, ready to format for any sink.
#[derive(Debug, Clone)]
pub(crate) struct Alert {
    /// Unique per alert and the same on every attempt (`X-Preempt-Delivery`).
    pub(crate) id: String,
    /// `finding`, `pause-sent`, …, `guardian-balance-low`, `guardian-balance-ok`.
    pub(crate) kind: &'static str,
    pub(crate) level: AlertLevel,
    pub(crate) action: Action,
    /// One key per incident: every alert about one attack on one contract shares it.
    pub(crate) dedup_key: String,
    pub(crate) title: String,
    pub(crate) summary: String,
    /// Labelled values, most useful first.
    pub(crate) fields: Vec<(&'static str, String)>,
    /// The contract it is about, for PagerDuty's `component`.
    pub(crate) component: Option<String>,
    /// The event as data, for the webhook and PagerDuty's `custom_details`.
    pub(crate) details: Value,
    pub(crate) at_unix_ms: u64,
}

/// The incident key of an attack (or, without one, of a pause) on a contract.
pub(crate) fn incident_key(contract: Address, attack: Option<B256>, pause: Option<B256>) -> String {
    match (attack, pause) {
        (Some(a), _) => format!("preempt/{contract:#x}/attack/{a:#x}"),
        (None, Some(p)) => format!("preempt/{contract:#x}/pause/{p:#x}"),
        (None, None) => format!("preempt/{contract:#x}"),
    }
}

fn severity_level(s: Severity) -> AlertLevel {
    match s {
        Severity::Critical => AlertLevel::Critical,
        Severity::High => AlertLevel::Error,
        Severity::Medium => AlertLevel::Warning,
        Severity::Low | Severity::Info => AlertLevel::Info,
    }
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::High => "high",
        Severity::Medium => "medium",
        Severity::Low => "low",
        Severity::Info => "info",
    }
}

pub(crate) fn gwei(wei: u128) -> String {
    trim_units(format_units(U256::from(wei), 9).unwrap_or_default()) + " gwei"
}

pub(crate) fn eth(wei: U256) -> String {
    trim_units(format_units(wei, 18).unwrap_or_default()) + " ETH"
}

fn trim_units(s: String) -> String {
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

fn contract_field(name: &str, address: Address) -> (&'static str, String) {
    ("Contract", format!("{name} ({address})"))
}

fn source_text(source: DetectionSource) -> &'static str {
    match source {
        DetectionSource::Mempool => "pending tx (mempool)",
        DetectionSource::BlockGuard => "mined tx (block guard)",
    }
}

/// What a rule, severity and incident key remembered from earlier alerts add to a pause alert.
#[derive(Debug, Clone, Default)]
pub(crate) struct Context {
    pub(crate) rule: Option<String>,
    pub(crate) severity: Option<Severity>,
    pub(crate) dedup_key: Option<String>,
}

impl Alert {
    fn new(id: String, kind: &'static str, level: AlertLevel, dedup_key: String) -> Self {
        Self {
            id,
            kind,
            level,
            action: Action::Trigger,
            dedup_key,
            title: String::new(),
            summary: String::new(),
            fields: Vec::new(),
            component: None,
            details: Value::Null,
            at_unix_ms: crate::incident::unix_ms(),
        }
    }

    pub(crate) fn finding(id: String, f: &FindingAlert) -> Self {
        let key = incident_key(f.contract, Some(f.attack_tx), None);
        let mut a = Self::new(id, "finding", severity_level(f.severity), key);
        a.title = format!("{} on {}", f.rule, f.contract_name);
        a.summary = format!(
            "{} ({}) on {}: {} (attack {:#x}, {} at block {})",
            f.rule,
            severity_name(f.severity),
            f.contract_name,
            f.summary,
            f.attack_tx,
            source_text(f.source),
            f.block
        );
        a.fields = vec![
            contract_field(&f.contract_name, f.contract),
            ("Rule", f.rule.clone()),
            ("Severity", severity_name(f.severity).into()),
            ("Attack tx", format!("{:#x}", f.attack_tx)),
            ("Seen", source_text(f.source).into()),
            ("Block", f.block.to_string()),
            ("Evidence", f.summary.clone()),
        ];
        a.component = Some(f.contract_name.clone());
        a
    }

    pub(crate) fn pause_sent(id: String, p: &PauseAlert, ctx: &Context) -> Self {
        let key = ctx
            .dedup_key
            .clone()
            .unwrap_or_else(|| incident_key(p.contract, p.attack_tx, Some(p.pause_tx)));
        let mut a = Self::new(id, "pause-sent", AlertLevel::Critical, key);
        let destinations = p.accepted.len() + p.refused.len();
        let rule = p.rule.clone().or_else(|| ctx.rule.clone());
        let severity = p.severity.or(ctx.severity);
        a.title = format!("Pause sent: {}", p.contract_name);
        let attack = p.attack_tx.map(|t| format!("; attack {t:#x}")).unwrap_or_default();
        let capped = if p.attack_tx.is_some() && !p.outbids_attack {
            " (capped: does NOT outbid the attack)"
        } else {
            ""
        };
        a.summary = format!(
            "Pause sent for {}{}: tx {:#x} for block {}, max fee {} / tip {}{capped}, taken by {} \
             of {destinations} destination(s){attack}",
            p.contract_name,
            rule.as_deref().map(|r| format!(" ({r})")).unwrap_or_default(),
            p.pause_tx,
            p.target_block,
            gwei(p.max_fee_per_gas),
            gwei(p.max_priority_fee_per_gas),
            p.accepted.len(),
        );
        let worst = U256::from(p.max_fee_per_gas).saturating_mul(U256::from(p.gas_limit));
        a.fields = vec![contract_field(&p.contract_name, p.contract)];
        if let Some(r) = &rule {
            a.fields.push(("Rule", r.clone()));
        }
        if let Some(s) = severity {
            a.fields.push(("Severity", severity_name(s).into()));
        }
        if let Some(t) = p.attack_tx {
            a.fields.push(("Attack tx", format!("{t:#x}")));
        }
        a.fields.extend([
            ("Pause tx", format!("{:#x}", p.pause_tx)),
            (
                "Fees",
                format!(
                    "max fee {}, tip {}, gas limit {} (at most {}){capped}",
                    gwei(p.max_fee_per_gas),
                    gwei(p.max_priority_fee_per_gas),
                    p.gas_limit,
                    eth(worst)
                ),
            ),
            ("Nonce", p.nonce.to_string()),
            ("Block", format!("target {}", p.target_block)),
            ("Sent to", destinations_text(&p.accepted, &p.refused)),
        ]);
        a.component = Some(p.contract_name.clone());
        a
    }

    pub(crate) fn pause_landed(id: String, l: &LandedAlert, ctx: &Context) -> Self {
        let key = ctx
            .dedup_key
            .clone()
            .unwrap_or_else(|| incident_key(l.contract, l.attack_tx, Some(l.pause_tx)));
        let mut a = Self::new(id, "pause-landed", AlertLevel::Critical, key);
        let attack = match (l.attack_index, l.attack_succeeded) {
            (Some(i), Some(false)) => format!(", attack at index {i} reverted"),
            (Some(i), Some(true)) => format!(", attack at index {i} SUCCEEDED"),
            _ => ", attack not in this block".into(),
        };
        let value = match l.value_kept {
            Some(true) => "; value kept",
            Some(false) => "; VALUE LOST",
            None => "",
        };
        a.title = format!("Pause landed: {}", l.contract_name);
        a.summary = format!(
            "Pause for {} landed in block {} at index {}{attack}{value}; {} is paused: {}",
            l.contract_name,
            l.block,
            l.pause_index.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
            l.contract_name,
            l.contract_paused.map(|p| p.to_string()).unwrap_or_else(|| "unknown".into()),
        );
        a.fields = vec![contract_field(&l.contract_name, l.contract)];
        if let Some(r) = l.rule.as_ref().or(ctx.rule.as_ref()) {
            a.fields.push(("Rule", r.clone()));
        }
        if let Some(t) = l.attack_tx {
            a.fields.push(("Attack tx", format!("{t:#x}")));
        }
        a.fields.extend([
            ("Pause tx", format!("{:#x}", l.pause_tx)),
            ("Block", l.block.to_string()),
            (
                "Order",
                if l.pause_before_attack {
                    "same block, pause first".into()
                } else if l.attack_index.is_some() {
                    "same block, attack first".into()
                } else {
                    "attack not in this block".to_string()
                },
            ),
        ]);
        if let Some(kept) = l.value_kept {
            a.fields.push(("Value", if kept { "kept" } else { "LOST" }.into()));
        }
        a.component = Some(l.contract_name.clone());
        a
    }

    pub(crate) fn pause_failed(id: String, f: &FailedAlert, ctx: &Context) -> Self {
        let key = ctx
            .dedup_key
            .clone()
            .unwrap_or_else(|| incident_key(f.contract, f.attack_tx, f.pause_tx));
        let mut a = Self::new(id, "pause-failed", AlertLevel::Critical, key);
        a.title = format!("Pause FAILED: {}", f.contract_name);
        let attack = f.attack_tx.map(|t| format!(" (attack {t:#x})")).unwrap_or_default();
        a.summary = format!("Pause for {} FAILED: {}{attack}", f.contract_name, f.reason);
        a.fields = vec![contract_field(&f.contract_name, f.contract)];
        if let Some(r) = f.rule.as_ref().or(ctx.rule.as_ref()) {
            a.fields.push(("Rule", r.clone()));
        }
        if let Some(t) = f.attack_tx {
            a.fields.push(("Attack tx", format!("{t:#x}")));
        }
        if let Some(t) = f.pause_tx {
            a.fields.push(("Pause tx", format!("{t:#x}")));
        }
        if let Some(b) = f.block {
            a.fields.push(("Block", b.to_string()));
        }
        a.fields.push(("Why", f.reason.clone()));
        a.component = Some(f.contract_name.clone());
        a
    }

    pub(crate) fn node(id: String, node: &str, down: Option<&str>) -> Self {
        let key = format!("preempt/node/{node}");
        match down {
            Some(reason) => {
                let mut a = Self::new(id, "node-down", AlertLevel::Error, key);
                a.title = format!("Node `{node}` lost");
                a.summary = format!("Node `{node}` connection lost: {reason}; reconnecting");
                a.fields = vec![("Node", node.into()), ("Why", reason.into())];
                a
            }
            None => {
                let mut a = Self::new(id, "node-up", AlertLevel::Info, key);
                a.action = Action::Resolve;
                a.title = format!("Node `{node}` back");
                a.summary = format!("Node `{node}` is subscribed again");
                a.fields = vec![("Node", node.into())];
                a
            }
        }
    }

    /// `pauses` is what the balance pays for at the caps; `keep` the sink's threshold.
    pub(crate) fn balance(
        id: String,
        guardian: Address,
        balance: U256,
        cost: U256,
        pauses: U256,
        keep: u64,
    ) -> Self {
        let key = format!("preempt/guardian/{guardian:#x}/balance");
        let (kind, level) = if pauses.is_zero() {
            ("guardian-balance-low", AlertLevel::Critical)
        } else if pauses < U256::from(keep) {
            ("guardian-balance-low", AlertLevel::Error)
        } else {
            ("guardian-balance-ok", AlertLevel::Info)
        };
        let mut a = Self::new(id, kind, level, key);
        a.fields = vec![
            ("Guardian", guardian.to_string()),
            ("Balance", eth(balance)),
            ("One pause at the caps", eth(cost)),
            ("Pauses it pays for", pauses.to_string()),
            ("Wanted", format!("at least {keep}")),
        ];
        if kind == "guardian-balance-ok" {
            a.action = Action::Resolve;
            a.title = "Guardian balance restored".into();
            a.summary = format!(
                "Guardian {guardian} can pay for {pauses} pause(s) at the fee caps again \
                 (balance {})",
                eth(balance)
            );
        } else {
            a.title = if pauses.is_zero() {
                "Guardian cannot pay for a pause".into()
            } else {
                "Guardian balance low".into()
            };
            a.summary = format!(
                "Guardian {guardian} can pay for {pauses} pause(s) at the fee caps (balance {}, \
                 one pause up to {}); keep at least {keep}",
                eth(balance),
                eth(cost)
            );
        }
        a
    }

    /// The generic webhook's body (the bytes that are signed).
    pub(crate) fn webhook_body(&self) -> Value {
        let fields: Vec<Value> =
            self.fields.iter().map(|(k, v)| json!({ "name": k, "value": v })).collect();
        json!({
            "version": 1,
            "id": self.id,
            "kind": self.kind,
            "severity": self.level.as_str(),
            "resolved": self.action == Action::Resolve,
            "dedup_key": self.dedup_key,
            "title": clip(&self.title, TITLE_MAX),
            "summary": clip(&self.summary, SUMMARY_MAX),
            "at_unix_ms": self.at_unix_ms,
            "at": rfc3339_ms(self.at_unix_ms),
            "fields": fields,
            "event": self.details,
        })
    }

    /// A Slack incoming-webhook message: `text` (the notification line) and Block Kit blocks.
    pub(crate) fn slack_body(&self) -> Value {
        let fields: Vec<Value> = self
            .fields
            .iter()
            .take(10) // Slack's limit per section
            .map(|(k, v)| {
                json!({ "type": "mrkdwn", "text": format!("*{k}*\n{}", slack_escape(&clip(v, 500))) })
            })
            .collect();
        json!({
            "text": slack_escape(&format!("[{}] {}", self.level.as_str().to_uppercase(), clip(&self.summary, SUMMARY_MAX))),
            "blocks": [
                { "type": "header", "text": { "type": "plain_text", "text": clip(&self.title, TITLE_MAX) } },
                { "type": "section", "text": { "type": "mrkdwn", "text": slack_escape(&clip(&self.summary, SUMMARY_MAX)) } },
                { "type": "section", "fields": fields },
                { "type": "context", "elements": [ { "type": "mrkdwn", "text": slack_escape(&format!(
                    "preempt · {} · {} · {}", self.level.as_str(), self.kind, rfc3339_ms(self.at_unix_ms)
                )) } ] },
            ],
        })
    }

    /// A Discord incoming-webhook message: one embed, colour by urgency, mentions disabled.
    pub(crate) fn discord_body(&self) -> Value {
        let color = match self.level {
            AlertLevel::Critical => 0xD0_00_00,
            AlertLevel::Error => 0xE6_7E_22,
            AlertLevel::Warning => 0xF1_C4_0F,
            AlertLevel::Info => 0x2E_CC_71,
        };
        let fields: Vec<Value> = self
            .fields
            .iter()
            .take(25) // Discord's limit per embed
            .map(|(k, v)| json!({ "name": k, "value": clip(v, FIELD_MAX), "inline": false }))
            .collect();
        json!({
            "username": "preempt",
            "content": clip(&format!("**[{}]** {}", self.level.as_str().to_uppercase(), self.summary), 1_900),
            "allowed_mentions": { "parse": [] },
            "embeds": [{
                "title": clip(&self.title, TITLE_MAX),
                "description": clip(&self.summary, SUMMARY_MAX),
                "color": color,
                "timestamp": rfc3339_ms(self.at_unix_ms),
                "fields": fields,
                "footer": { "text": format!("preempt · {}", self.kind) },
            }],
        })
    }

    /// A PagerDuty Events API v2 event: `trigger` with the incident's dedup key, or `resolve`.
    pub(crate) fn pagerduty_body(&self, routing_key: &str) -> Value {
        if self.action == Action::Resolve {
            return json!({
                "routing_key": routing_key,
                "event_action": "resolve",
                "dedup_key": clip(&self.dedup_key, 255),
            });
        }
        let mut details = serde_json::Map::new();
        for (k, v) in &self.fields {
            details.insert((*k).to_string(), Value::String(v.clone()));
        }
        details.insert("event".into(), self.details.clone());
        let mut payload = json!({
            "summary": clip(&self.summary, 1_024),
            "source": "preempt",
            "severity": self.level.as_str(),
            "timestamp": rfc3339_ms(self.at_unix_ms),
            "group": "preempt",
            "class": self.kind,
            "custom_details": details,
        });
        if let (Some(c), Some(p)) = (&self.component, payload.as_object_mut()) {
            p.insert("component".into(), Value::String(c.clone()));
        }
        json!({
            "routing_key": routing_key,
            "event_action": "trigger",
            "dedup_key": clip(&self.dedup_key, 255),
            "client": "preempt",
            "payload": payload,
        })
    }
}

fn destinations_text(accepted: &[String], refused: &[(String, String)]) -> String {
    let mut parts: Vec<String> = accepted.iter().map(|d| format!("{d} ok")).collect();
    parts.extend(refused.iter().map(|(d, e)| format!("{d} refused: {e}")));
    if parts.is_empty() { "nowhere".into() } else { parts.join("; ") }
}

/// At most `max` characters (not bytes), with `…` when cut.
pub(crate) fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max.saturating_sub(1)) {
        Some((at, _)) if s.chars().count() > max => format!("{}…", &s[..at]),
        _ => s.to_string(),
    }
}

/// Slack reads `&`, `<` and `>` as markup (links, mentions).
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The details of an event for payloads (it holds no secret: see `AlertEvent`).
pub(crate) fn details(event: &AlertEvent) -> Value {
    serde_json::to_value(event).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_counts_characters_and_marks_the_cut() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 3), "ab…");
        assert_eq!(clip("ééééé", 4), "ééé…");
        assert_eq!(clip("", 0), "");
    }

    #[test]
    fn units_drop_trailing_zeros() {
        assert_eq!(gwei(12_500_000_000), "12.5 gwei");
        assert_eq!(gwei(2_000_000_000), "2 gwei");
        assert_eq!(eth(U256::from(10u128.pow(17))), "0.1 ETH");
    }
}
