//! A TOML error as preempt prints it: file, line, column, the key path when it can be told, and
//! the parser's reason with anything it quoted from the file cut out. The `toml` crate's own
//! `Display` shows the offending line, which may hold a private key pasted by mistake.

use std::{collections::HashMap, path::Path};

use super::{
    ConfigError,
    error::{SyntaxAt, sanitize},
};

/// Keys whose values are secrets: a reason there gets a hint on how to give one.
const SECRET_KEYS: [&str; 3] = ["guardian.key", "guardian.password", "relay_auth.key"];

/// Longest key path an error prints; longer ones are cut (they are typos or garbage).
const MAX_KEY_CHARS: usize = 80;

/// Dotted parts of one key the scanner keeps: enough for any real key, and a hostile header
/// with thousands of parts stays linear to scan.
const MAX_KEY_PARTS: usize = 16;

pub(super) fn syntax_error(file: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let at = match e.span() {
        Some(span) => {
            let offset = char_floor(text, span.start);
            SyntaxAt { line: Some(line_column(text, offset)), key: key_path_at(text, offset) }
        }
        None => SyntaxAt::default(),
    };
    let mut reason = reason_of(e.message());
    if at.key.as_deref().is_some_and(|k| SECRET_KEYS.contains(&k)) {
        reason.push_str("; secrets are given by reference only: \"env:VAR\" or \"file:PATH\"");
    }
    ConfigError::Syntax { file: file.to_path_buf(), at, reason: sanitize(&reason) }
}

/// toml's message without what it quoted from the file. serde's shapes put the file's text
/// between quotes or backticks before `, expected …`, and the schema's names after it.
pub(super) fn reason_of(message: &str) -> String {
    let message = message.trim();
    // The field named here comes from preempt's own structs.
    if message.starts_with("missing field `") || message.starts_with("duplicate field `") {
        return message.to_string();
    }
    let (head, expected) = match message.rfind(", expected ") {
        Some(i) => (&message[..i], &message[i..]),
        None => (message, ""),
    };
    let mut head = head.split(['`', '"', '\'']).next().unwrap_or_default().trim_end();
    if head.starts_with("unexpected keys in table") {
        head = "unexpected keys in table";
    }
    let head = head.trim_end_matches(':').trim_end();
    let head = if head.is_empty() { "invalid value" } else { head };
    format!("{head}{expected}")
}

/// `i`, moved back to a char boundary and into the text.
fn char_floor(text: &str, i: usize) -> usize {
    let mut i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// 1-based line and column (in characters) of byte `offset`, a char boundary.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (before.matches('\n').count() + 1, before[line_start..].chars().count() + 1)
}

/// The dotted key path at `offset`: the table header above it (array tables with their index,
/// `protect[1].pause`), then the key on its line or the key whose multi-line value it is in.
pub(super) fn key_path_at(text: &str, offset: usize) -> Option<String> {
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = &text[line_start..line_end];
    let mut path = if header_of(line).is_some() {
        table_path(&text[..line_end])
    } else {
        let mut path = table_path(&text[..line_start]);
        let key = key_of_line(line).or_else(|| open_key_above(&text[..line_start]));
        path.extend(key.unwrap_or_default());
        path
    };
    path.retain(|c| !c.is_empty());
    if path.is_empty() {
        return None;
    }
    let path = sanitize(&path.join("."));
    Some(if path.chars().count() > MAX_KEY_CHARS {
        format!("{}…", path.chars().take(MAX_KEY_CHARS).collect::<String>())
    } else {
        path
    })
}

/// The table the last header in `text` opens, with each array table's current index.
fn table_path(text: &str) -> Vec<String> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut path = Vec::new();
    for line in text.lines() {
        let Some((parts, is_array)) = header_of(line) else { continue };
        if is_array {
            *counts.entry(parts.join(".")).or_default() += 1;
        }
        path = (0..parts.len())
            .map(|k| match counts.get(&parts[..=k].join(".")) {
                Some(n) => format!("{}[{}]", parts[k], n.saturating_sub(1)),
                None => parts[k].clone(),
            })
            .collect();
    }
    path
}

/// `[a.b]` → (`[a, b]`, false); `[[a]]` → (`[a]`, true); anything else → `None`.
fn header_of(line: &str) -> Option<(Vec<String>, bool)> {
    let t = line.trim();
    // Cut at the first `]`, so an unclosed `[[protect]` still names its table.
    let (inner, is_array) = match t.strip_prefix("[[") {
        Some(rest) => (rest, true),
        None => (t.strip_prefix('[')?, false),
    };
    let inner = inner.split(']').next()?;
    // `[1, 2]` on its own line is an array value, not a header.
    let parts = split_key(inner)?;
    Some((parts, is_array))
}

/// The key a `key = value` line (or a bare `key` line) sets.
fn key_of_line(line: &str) -> Option<Vec<String>> {
    let t = line.trim();
    if t.starts_with('#') || t.starts_with('[') {
        return None;
    }
    match t.find('=') {
        Some(eq) => split_key(&t[..eq]),
        None => split_key(t),
    }
}

/// Going up from the error's line to the header: the nearest `key = ` line, if its value opens
/// a multi-line array, inline table or string that the error's line is inside.
fn open_key_above(text: &str) -> Option<Vec<String>> {
    for line in text.lines().rev() {
        if header_of(line).is_some() {
            return None;
        }
        let t = line.trim();
        let Some(eq) = t.find('=') else { continue };
        let Some(key) = split_key(&t[..eq]) else { continue };
        let value = t[eq + 1..].trim();
        let opens = value.starts_with("\"\"\"")
            || value.starts_with("'''")
            || value.matches(['[', '{']).count() > value.matches([']', '}']).count();
        return opens.then_some(key);
    }
    None
}

/// `a.b."c d"` → `[a, b, c d]`; `None` when it does not look like a TOML key.
fn split_key(s: &str) -> Option<Vec<String>> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current.push(c),
            (None, '"' | '\'') => quote = Some(c),
            (None, '.') if parts.len() + 1 >= MAX_KEY_PARTS => break,
            (None, '.') => parts.push(std::mem::take(&mut current).trim().to_string()),
            (None, c) if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == ' ' => {
                current.push(c)
            }
            (None, _) => return None,
        }
    }
    parts.push(current.trim().to_string());
    Some(parts)
}
