//! Invariant expressions (`f() op g()`, `f() op 123`, a bool `f()`) and view-call selectors.

use std::str::FromStr;

use alloy::primitives::U256;

/// A view-call expression evaluated before and after a tx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invariant {
    pub source: String,
    pub check: InvariantCheck,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvariantCheck {
    /// `f()` returning bool must be true.
    IsTrue(ViewCall),
    /// `lhs op rhs`, each side a `f()` returning uint256 or a number.
    Compare { lhs: Operand, op: CompareOp, rhs: Operand },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    Call(ViewCall),
    Literal(U256),
}

/// A zero-argument view on the protected contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewCall {
    pub signature: String,
    pub selector: [u8; 4],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum CompareOp {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
    Ne,
}

impl CompareOp {
    pub fn holds(self, lhs: U256, rhs: U256) -> bool {
        match self {
            Self::Ge => lhs >= rhs,
            Self::Gt => lhs > rhs,
            Self::Le => lhs <= rhs,
            Self::Lt => lhs < rhs,
            Self::Eq => lhs == rhs,
            Self::Ne => lhs != rhs,
        }
    }
}

impl ViewCall {
    fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let open = s.find('(').ok_or_else(|| format!("`{s}` is not a call like `name()`"))?;
        let name = &s[..open];
        if name.is_empty()
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || name.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(format!("`{s}`: `{name}` is not a function name"));
        }
        if &s[open..] != "()" {
            return Err(format!("`{s}`: invariant views take no arguments"));
        }
        Ok(Self { signature: s.to_string(), selector: selector(s) })
    }
}

fn operand(t: &str) -> Result<Operand, String> {
    let t = t.trim();
    if t.starts_with(|c: char| c.is_ascii_digit()) {
        U256::from_str(t).map(Operand::Literal).map_err(|e| format!("`{t}`: {e}"))
    } else {
        ViewCall::parse(t).map(Operand::Call)
    }
}

impl FromStr for Invariant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // Two-character operators first, so `>=` is not read as `>`.
        const OPS: [(&str, CompareOp); 6] = [
            (">=", CompareOp::Ge),
            ("<=", CompareOp::Le),
            ("==", CompareOp::Eq),
            ("!=", CompareOp::Ne),
            (">", CompareOp::Gt),
            ("<", CompareOp::Lt),
        ];
        for (token, op) in OPS {
            if let Some(at) = s.find(token) {
                let lhs = operand(&s[..at])?;
                let rhs = operand(&s[at + token.len()..])?;
                return Ok(Self {
                    source: s.trim().to_string(),
                    check: InvariantCheck::Compare { lhs, op, rhs },
                });
            }
        }
        Ok(Self {
            source: s.trim().to_string(),
            check: InvariantCheck::IsTrue(ViewCall::parse(s)?),
        })
    }
}

/// The 4-byte selector of a canonical signature such as `balanceOf(address)`.
pub fn selector(signature: &str) -> [u8; 4] {
    let h = alloy::primitives::keccak256(signature.as_bytes());
    [h[0], h[1], h[2], h[3]]
}
