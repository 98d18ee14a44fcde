//! Secrets by reference (`env:VAR`, `file:PATH`); values never print and are wiped on drop.

use std::{fmt, path::PathBuf, str::FromStr};

use zeroize::Zeroizing;

/// Where a secret lives. Only the reference is ever shown.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(v) => write!(f, "env:{v}"),
            Self::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

impl FromStr for SecretRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(var) = s.strip_prefix("env:") {
            if var.is_empty() {
                return Err("`env:` needs a variable name".into());
            }
            if !is_variable_name(var) {
                // Not echoed either: a key pasted after `env:` lands here.
                return Err("`env:` must name an environment variable (letters, digits and \
                            `_`, not starting with a digit)"
                    .into());
            }
            Ok(Self::Env(var.to_string()))
        } else if let Some(path) = s.strip_prefix("file:") {
            if path.trim().is_empty() {
                return Err("`file:` needs a path".into());
            }
            Ok(Self::File(PathBuf::from(path)))
        } else {
            // Never echo the value: it may be the secret itself, pasted by mistake.
            Err("secrets are given by reference only: `env:VAR` or `file:PATH`".into())
        }
    }
}

/// A POSIX-style variable name that does not look like a key pasted after `env:`.
fn is_variable_name(s: &str) -> bool {
    s.len() <= 64
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !looks_like_a_key(s)
}

/// 40 or more hex digits in a row: a key or a hash, never a variable name.
fn looks_like_a_key(s: &str) -> bool {
    let mut run = 0;
    s.chars().any(|c| {
        run = if c.is_ascii_hexdigit() { run + 1 } else { 0 };
        run >= 40
    })
}

/// The config keys that hold a secret reference, as `Config::resolve_secret` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKey {
    GuardianKey,
    GuardianPassword,
    RelayAuthKey,
}

impl SecretKey {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GuardianKey => "guardian.key",
            Self::GuardianPassword => "guardian.password",
            Self::RelayAuthKey => "relay_auth.key",
        }
    }
}

impl SecretRef {
    /// Reads the secret. The error names the reference, never the value.
    pub fn resolve(&self) -> Result<SecretValue, String> {
        let raw = Zeroizing::new(match self {
            Self::Env(var) => std::env::var(var).map_err(|e| match e {
                std::env::VarError::NotPresent => format!("environment variable {var} is not set"),
                std::env::VarError::NotUnicode(_) => {
                    format!("environment variable {var} is not UTF-8")
                }
            })?,
            Self::File(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read secret file {}: {e}", path.display()))?,
        });
        let value = raw.trim();
        if value.is_empty() {
            return Err(format!("{self:?} is empty"));
        }
        Ok(SecretValue(Zeroizing::new(value.to_string())))
    }
}

/// A resolved secret. `Debug` and `Display` print a placeholder; memory is zeroed on drop.
pub struct SecretValue(Zeroizing<String>);

impl SecretValue {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(***)")
    }
}
