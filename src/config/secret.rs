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
            Ok(Self::Env(var.to_string()))
        } else if let Some(path) = s.strip_prefix("file:") {
            Ok(Self::File(PathBuf::from(path)))
        } else {
            // Never echo the value: it may be the secret itself, pasted by mistake.
            Err("secrets are given by reference only: `env:VAR` or `file:PATH`".into())
        }
    }
}

impl SecretRef {
    pub fn resolve(&self) -> Result<SecretValue, String> {
        match self {
            Self::Env(var) => std::env::var(var)
                .map(|v| SecretValue(Zeroizing::new(v.trim().to_string())))
                .map_err(|_| format!("environment variable {var} is not set")),
            Self::File(path) => std::fs::read_to_string(path)
                .map(|v| SecretValue(Zeroizing::new(v.trim().to_string())))
                .map_err(|e| format!("cannot read secret file {}: {e}", path.display())),
        }
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
