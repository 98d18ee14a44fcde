//! Config errors: each names the file and, where one applies, the key; none carries a secret.

use std::{fmt, path::PathBuf};

use thiserror::Error;

/// Errors from loading or checking a config. Each names the file, and the key where one applies.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read { file: PathBuf, source: std::io::Error },
    /// Not TOML, or not the shape preempt reads. Built from the error's position, never from
    /// the text around it: that line may hold a key pasted by mistake.
    #[error("{file}: {at}{reason}")]
    Syntax { file: PathBuf, at: SyntaxAt, reason: String },
    #[error("{file}: key `{key}`: {reason}")]
    Invalid { file: PathBuf, key: String, reason: String },
    #[error("{file}: key `{key}`: {value} is outside {allowed}: {why}")]
    OutOfRange { file: PathBuf, key: String, value: String, allowed: String, why: &'static str },
    /// A secret reference that cannot be resolved (unset variable, unreadable file).
    #[error("{file}: key `{key}`: {reason}")]
    Secret { file: PathBuf, key: &'static str, reason: String },
    #[error(
        "{file}: key `respond.max_fee_per_gas_gwei`: {} cannot pay the next block: its base fee \
         is {}, and a pause needs at least 2 x base fee + 1 gwei = {}",
        gwei(*cap_wei), gwei(*base_fee_wei), gwei(*min_wei)
    )]
    FeeCapBelowBaseFee { file: PathBuf, cap_wei: u128, base_fee_wei: u128, min_wei: u128 },
}

impl ConfigError {
    /// An invalid value; key and reason are sanitized (they may quote what the user typed).
    pub(super) fn invalid(file: &std::path::Path, key: &str, reason: &str) -> Self {
        Self::Invalid { file: file.to_path_buf(), key: sanitize(key), reason: sanitize(reason) }
    }

    pub(super) fn secret(file: &std::path::Path, key: &'static str, reason: &str) -> Self {
        Self::Secret { file: file.to_path_buf(), key, reason: sanitize(reason) }
    }
}

/// Where in the file a syntax error is: line, column and the key path when known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyntaxAt {
    /// 1-based line and column (in characters); absent when the parser gave no position.
    pub line: Option<(usize, usize)>,
    pub key: Option<String>,
}

impl fmt::Display for SyntaxAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((line, column)) = self.line {
            write!(f, "line {line}, column {column}: ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "key `{key}`: ")?;
        }
        Ok(())
    }
}

fn gwei(wei: u128) -> String {
    let whole = wei / 1_000_000_000;
    let frac = wei % 1_000_000_000;
    if frac == 0 {
        format!("{whole} gwei")
    } else {
        let frac = format!("{frac:09}");
        format!("{whole}.{} gwei", frac.trim_end_matches('0'))
    }
}

/// Text from the file made fit for an error line: long hex runs redacted, control characters
/// (newlines, terminal escapes) shown as `?`.
pub(super) fn sanitize(text: &str) -> String {
    redact(text).chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// The longest hex run a config holds for a good reason: a 40-digit address.
const LONGEST_PUBLIC_HEX: usize = 40;

/// `text` with every run of more than 40 hex digits replaced: a longer run is a private key or
/// a hash pasted by mistake, and an error must not carry it to a log.
pub(super) fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() > LONGEST_PUBLIC_HEX {
            out.push_str("<redacted>");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_hexdigit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}
