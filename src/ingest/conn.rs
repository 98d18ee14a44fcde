//! One connection to a node, WebSocket or IPC, as frames of text: what the session and the
//! request client read and write, whatever the transport.

use std::{path::Path, time::Duration};

use futures::{
    SinkExt, StreamExt,
    stream::{SplitSink, SplitStream},
};
use thiserror::Error;
use tokio::{io::AsyncWriteExt, net::unix::OwnedWriteHalf};
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

use super::{
    ipc::{self, IpcReadError, IpcReader, Piece},
    ws::{self, WsStream},
};

/// A transport failure: the connection is unusable and the session ends.
#[derive(Debug, Error)]
pub enum TransportError {
    #[error("websocket: {0}")]
    Ws(#[from] tungstenite::Error),
    #[error("ipc: {0}")]
    Io(#[from] std::io::Error),
    /// A message longer than the cap never ended; nothing to resynchronise on.
    #[error("ipc: a message of more than {limit} bytes (the cap)")]
    Oversize { limit: usize },
    #[error("{url} is not a ws://, wss:// or IPC endpoint (ingest needs subscriptions)")]
    Unsupported { url: String },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

impl From<IpcReadError> for TransportError {
    fn from(e: IpcReadError) -> Self {
        match e {
            IpcReadError::Io(e) => Self::Io(e),
            IpcReadError::Oversize(o) => Self::Oversize { limit: o.limit },
        }
    }
}

/// A frame's text, valid UTF-8.
#[derive(Debug)]
pub(super) enum Text {
    Ws(Utf8Bytes),
    Ipc(String),
}

impl Text {
    pub(super) fn as_str(&self) -> &str {
        match self {
            Self::Ws(t) => t.as_str(),
            Self::Ipc(t) => t.as_str(),
        }
    }
}

/// What came off the connection.
#[derive(Debug)]
pub(super) enum Incoming {
    Text(Text),
    /// A binary frame, invalid UTF-8 or garbage between IPC values: this many bytes.
    NotText(usize),
    /// Ping/pong: proof of life, nothing to handle.
    Control,
}

#[derive(Debug)]
pub(super) enum Reader {
    Ws(SplitStream<WsStream>),
    Ipc(IpcReader),
}

#[derive(Debug)]
pub(super) enum Writer {
    Ws(SplitSink<WsStream, Message>),
    Ipc(OwnedWriteHalf),
}

/// Whether ingest can subscribe over `url`.
pub(super) fn is_subscribable(url: &str) -> bool {
    url.starts_with("ws://") || url.starts_with("wss://") || is_ipc(url)
}

fn is_ipc(url: &str) -> bool {
    url.starts_with('/') || url.ends_with(".ipc")
}

/// Opens `url` with messages capped at `max_message` bytes.
pub(super) async fn connect(
    url: &str,
    max_message: usize,
) -> Result<(Writer, Reader), TransportError> {
    if url.starts_with("ws://") || url.starts_with("wss://") {
        let (sink, stream) = ws::connect(url, max_message).await?.split();
        Ok((Writer::Ws(sink), Reader::Ws(stream)))
    } else if is_ipc(url) {
        let (write, read) = ipc::connect(Path::new(url), max_message).await?;
        Ok((Writer::Ipc(write), Reader::Ipc(read)))
    } else {
        Err(TransportError::Unsupported { url: url.to_string() })
    }
}

impl Reader {
    /// The next frame; `None` when the node closed the connection.
    pub(super) async fn next(&mut self) -> Result<Option<Incoming>, TransportError> {
        match self {
            Self::Ws(stream) => match stream.next().await {
                None | Some(Ok(Message::Close(_))) => Ok(None),
                Some(Err(e)) => Err(e.into()),
                Some(Ok(Message::Text(t))) => Ok(Some(Incoming::Text(Text::Ws(t)))),
                Some(Ok(Message::Binary(b))) => Ok(Some(Incoming::NotText(b.len()))),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
                    Ok(Some(Incoming::Control))
                }
            },
            Self::Ipc(reader) => match reader.next_piece().await? {
                None => Ok(None),
                Some(Piece::Garbage(n)) => Ok(Some(Incoming::NotText(n))),
                Some(Piece::Value(bytes)) => match String::from_utf8(bytes) {
                    Ok(text) => Ok(Some(Incoming::Text(Text::Ipc(text)))),
                    Err(e) => Ok(Some(Incoming::NotText(e.as_bytes().len()))),
                },
            },
        }
    }
}

impl Writer {
    pub(super) async fn send(&mut self, text: String) -> Result<(), TransportError> {
        match self {
            Self::Ws(sink) => Ok(sink.send(Message::text(text)).await?),
            Self::Ipc(socket) => Ok(socket.write_all(text.as_bytes()).await?),
        }
    }

    /// A keep-alive probe where the transport has one (IPC needs none: a dead peer closes it).
    pub(super) async fn ping(&mut self) -> Result<(), TransportError> {
        match self {
            Self::Ws(sink) => Ok(sink.send(Message::Ping(Default::default())).await?),
            Self::Ipc(_) => Ok(()),
        }
    }
}
