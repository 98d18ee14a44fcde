//! A loopback TCP proxy whose live connections can be cut, refused, or blackholed (accepted and
//! held open with nothing forwarded either way: a node that hangs), to test reconnects.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

pub struct TcpProxy {
    pub port: u16,
    accept: JoinHandle<()>,
    live: Arc<Mutex<Vec<JoinHandle<()>>>>,
    refusing: Arc<AtomicBool>,
    blackhole: watch::Sender<bool>,
}

impl TcpProxy {
    /// Forwards 127.0.0.1:<port> to `upstream`. Call inside a tokio runtime.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let live: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let refusing: Arc<AtomicBool> = Arc::default();
        let (blackhole, hole) = watch::channel(false);
        let conns = Arc::clone(&live);
        let refuse = Arc::clone(&refusing);
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if refuse.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut hole = hole.clone();
                let conn = tokio::spawn(async move {
                    if *hole.borrow() {
                        // Accepted, never answered: the client waits on an open socket.
                        let _held = inbound;
                        return std::future::pending().await;
                    }
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let hung = tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => false,
                        _ = hole.wait_for(|on| *on) => true,
                    };
                    if hung {
                        // Both sockets stay open and nothing moves either way, until cut.
                        let _held = (inbound, outbound);
                        std::future::pending::<()>().await;
                    }
                });
                conns.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
            }
        });
        Self { port, accept, live, refusing, blackhole }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// While set, new connections are closed at once (the node looks down).
    pub fn refuse(&self, on: bool) {
        self.refusing.store(on, Ordering::SeqCst);
    }

    /// While set, the node hangs: live connections stop forwarding (their sockets stay open)
    /// and new ones are accepted and never answered. Unset: new connections work again.
    pub fn blackhole(&self, on: bool) {
        self.blackhole.send_replace(on);
    }

    /// Cuts every connection open now; new ones are still accepted.
    pub fn cut_all(&self) -> usize {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let n = live.iter().filter(|c| !c.is_finished()).count();
        for c in live.drain(..) {
            c.abort();
        }
        n
    }

    /// Connections open now (forwarding or held by the blackhole).
    pub fn open(&self) -> usize {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|c| !c.is_finished())
            .count()
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut_all();
    }
}
