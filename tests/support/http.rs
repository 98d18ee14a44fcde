//! A small HTTP/1.1 server on hyper for the stand-ins (relay, webhook receiver): keep-alive
//! connections on 127.0.0.1, each request read whole and handed to a handler; stops (with every
//! open connection) when its task is aborted.

use std::{convert::Infallible, future::Future, net::SocketAddr, sync::Arc};

use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    Request, Response, StatusCode, body::Bytes, header::CONTENT_TYPE, server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use tokio::{
    net::TcpListener,
    task::{JoinHandle, JoinSet},
};

/// Larger request bodies are refused; what the stand-ins receive is a few KB at most.
const MAX_BODY: usize = 1 << 20;

/// A request as the handler sees it: head and whole body.
#[derive(Debug)]
pub struct Incoming {
    pub method: hyper::Method,
    pub path: String,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

/// What the handler answers.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

/// Binds a free loopback port and serves `handler` on the current tokio runtime.
pub fn serve<H, F>(handler: H) -> (SocketAddr, JoinHandle<()>)
where
    H: Fn(Incoming) -> F + Send + Sync + 'static,
    F: Future<Output = Answer> + Send + 'static,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.set_nonblocking(true).expect("non-blocking listener");
    let addr = listener.local_addr().expect("bound address");
    let listener = TcpListener::from_std(listener).expect("inside a tokio runtime");
    let task = tokio::spawn(accept_loop(listener, Arc::new(handler)));
    (addr, task)
}

async fn accept_loop<H, F>(listener: TcpListener, handler: Arc<H>)
where
    H: Fn(Incoming) -> F + Send + Sync + 'static,
    F: Future<Output = Answer> + Send + 'static,
{
    // The connections live in this set and are aborted with the accept task.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { return };
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let service = service_fn(move |request| answer(handler.clone(), request));
                connections.spawn(
                    http1::Builder::new().serve_connection(TokioIo::new(stream), service),
                );
            }
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn answer<H, F>(
    handler: Arc<H>,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible>
where
    H: Fn(Incoming) -> F,
    F: Future<Output = Answer>,
{
    let (head, body) = request.into_parts();
    let answer = match Limited::new(body, MAX_BODY).collect().await {
        Ok(body) => {
            handler(Incoming {
                method: head.method,
                path: head.uri.path().to_string(),
                headers: head.headers,
                body: body.to_bytes(),
            })
            .await
        }
        Err(e) => Answer {
            status: 413,
            content_type: "text/plain",
            body: format!("cannot read the body: {e}"),
        },
    };
    let mut response = Response::new(Full::new(Bytes::from(answer.body)));
    *response.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = answer.content_type.parse() {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    Ok(response)
}
