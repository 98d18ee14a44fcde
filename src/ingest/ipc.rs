//! An IPC (Unix socket) connection to a node: a byte stream with no message framing, cut into
//! top-level JSON values by a streaming splitter. Garbage between values is skipped and
//! counted; a value longer than the cap ends the connection (nothing to resynchronise on).

use std::path::Path;

use tokio::{
    io::AsyncReadExt,
    net::{
        UnixStream,
        unix::{OwnedReadHalf, OwnedWriteHalf},
    },
};

/// One piece of the stream.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Piece {
    /// A complete top-level JSON object or array (its text, not yet parsed).
    Value(Vec<u8>),
    /// This many bytes outside any object or array (not a JSON-RPC message).
    Garbage(usize),
}

/// A value grew past the cap without closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Oversize {
    pub(super) limit: usize,
}

/// Cuts a byte stream into top-level JSON objects/arrays by bracket depth, minding strings and
/// escapes. It does not validate: what it cuts is parsed (and may be rejected) above.
#[derive(Debug)]
pub(super) struct JsonSplitter {
    buf: Vec<u8>,
    /// Where the unread part of `buf` starts (consumed bytes are dropped in bulk on `push`).
    start: usize,
    /// Bytes of the current value already scanned.
    pos: usize,
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// Inside a value (it starts at `start`).
    in_value: bool,
    limit: usize,
}

impl JsonSplitter {
    pub(super) fn new(limit: usize) -> Self {
        Self {
            buf: Vec::with_capacity(64 * 1024),
            start: 0,
            pos: 0,
            depth: 0,
            in_string: false,
            escaped: false,
            in_value: false,
            limit,
        }
    }

    pub(super) fn push(&mut self, bytes: &[u8]) {
        // Drop what was consumed once it is most of the buffer: a copy per chunk, not per value.
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.pos = self.pos.saturating_sub(self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete piece, if the buffer holds one.
    pub(super) fn next_piece(&mut self) -> Result<Option<Piece>, Oversize> {
        if !self.in_value {
            // Between values: skip whitespace; anything else up to the next opener is garbage.
            let rest = &self.buf[self.start..];
            let skip = rest.iter().take_while(|b| b.is_ascii_whitespace()).count();
            let garbage = rest[skip..].iter().take_while(|b| !matches!(b, b'{' | b'[')).count();
            self.start += skip;
            if garbage > 0 {
                // Wait for the opener (or more bytes) before reporting a garbage run, so one
                // run read in two chunks counts once.
                if self.start + garbage == self.buf.len() && garbage < self.limit {
                    return Ok(None);
                }
                self.start += garbage;
                return Ok(Some(Piece::Garbage(garbage)));
            }
            if self.start == self.buf.len() {
                return Ok(None);
            }
            self.in_value = true;
            self.depth = 0;
            self.pos = self.start;
            self.in_string = false;
            self.escaped = false;
        }
        while self.pos < self.buf.len() {
            let b = self.buf[self.pos];
            self.pos += 1;
            if self.in_string {
                match b {
                    _ if self.escaped => self.escaped = false,
                    b'\\' => self.escaped = true,
                    b'"' => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        let value = self.buf[self.start..self.pos].to_vec();
                        self.start = self.pos;
                        self.in_value = false;
                        return Ok(Some(Piece::Value(value)));
                    }
                }
                _ => {}
            }
        }
        if self.buf.len() - self.start > self.limit {
            return Err(Oversize { limit: self.limit });
        }
        Ok(None)
    }
}

/// The read half of an IPC connection.
#[derive(Debug)]
pub(super) struct IpcReader {
    socket: OwnedReadHalf,
    splitter: JsonSplitter,
    chunk: Box<[u8]>,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum IpcReadError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("a message of more than {} bytes (the cap) never closed", .0.limit)]
    Oversize(Oversize),
}

impl IpcReader {
    /// The next piece; `None` when the node closed the socket.
    pub(super) async fn next_piece(&mut self) -> Result<Option<Piece>, IpcReadError> {
        loop {
            if let Some(piece) = self.splitter.next_piece().map_err(IpcReadError::Oversize)? {
                return Ok(Some(piece));
            }
            let n = self.socket.read(&mut self.chunk).await?;
            if n == 0 {
                return Ok(None);
            }
            self.splitter.push(&self.chunk[..n]);
        }
    }
}

pub(super) async fn connect(
    path: &Path,
    max_message: usize,
) -> std::io::Result<(OwnedWriteHalf, IpcReader)> {
    let (read, write) = UnixStream::connect(path).await?.into_split();
    let reader = IpcReader {
        socket: read,
        splitter: JsonSplitter::new(max_message),
        chunk: vec![0u8; 64 * 1024].into_boxed_slice(),
    };
    Ok((write, reader))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(chunks: &[&[u8]], limit: usize) -> Vec<Result<Piece, Oversize>> {
        let mut s = JsonSplitter::new(limit);
        let mut out = Vec::new();
        for c in chunks {
            s.push(c);
            loop {
                match s.next_piece() {
                    Ok(Some(p)) => out.push(Ok(p)),
                    Ok(None) => break,
                    Err(e) => {
                        out.push(Err(e));
                        return out;
                    }
                }
            }
        }
        out
    }

    fn value(s: &str) -> Result<Piece, Oversize> {
        Ok(Piece::Value(s.as_bytes().to_vec()))
    }

    #[test]
    fn values_are_cut_whatever_the_chunking_and_separators() {
        let stream = br#"{"a":1}{"b":[1,{"c":"}{"}]}
[{"id":1},{"id":2}]  {"s":"quote \" and \\"}"#;
        let want = vec![
            value(r#"{"a":1}"#),
            value(r#"{"b":[1,{"c":"}{"}]}"#),
            value(r#"[{"id":1},{"id":2}]"#),
            value(r#"{"s":"quote \" and \\"}"#),
        ];
        assert_eq!(pieces(&[stream], 1 << 20), want);
        // One byte at a time: the same values.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(pieces(&bytes, 1 << 20), want);
    }

    #[test]
    fn garbage_between_values_is_skipped_and_reported_once_per_run() {
        let got = pieces(&[b"hello ", b"world {\"a\":1} 42 {\"b\":2}"], 1 << 20);
        assert_eq!(
            got,
            vec![
                Ok(Piece::Garbage(12)),
                value(r#"{"a":1}"#),
                Ok(Piece::Garbage(3)),
                value(r#"{"b":2}"#)
            ]
        );
    }

    #[test]
    fn consumed_bytes_are_dropped_without_losing_a_partial_value() {
        let mut s = JsonSplitter::new(1 << 20);
        let mut got = Vec::new();
        // Values and garbage in chunks that cut values in half, many times over.
        let one = br#"{"n":"}"} junk "#;
        let stream: Vec<u8> = one.iter().copied().cycle().take(one.len() * 500).collect();
        for chunk in stream.chunks(7) {
            s.push(chunk);
            while let Ok(Some(p)) = s.next_piece() {
                got.push(p);
            }
        }
        let values =
            got.iter().filter(|p| matches!(p, Piece::Value(v) if v == br#"{"n":"}"}"#)).count();
        let garbage: usize =
            got.iter().map(|p| if let Piece::Garbage(n) = p { *n } else { 0 }).sum();
        assert_eq!(values, 500);
        assert_eq!(garbage, 499 * 5, "the last run waits for an opener");
        assert!(s.buf.len() < 128, "consumed bytes are dropped: {}", s.buf.len());
    }

    #[test]
    fn a_value_that_never_closes_within_the_cap_is_oversize() {
        let got = pieces(&[b"{\"a\":\"", &[b'x'; 100], b"\"}"], 64);
        assert_eq!(got, vec![Err(Oversize { limit: 64 })]);
    }
}
