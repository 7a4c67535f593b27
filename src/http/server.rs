//! The accept loop: a bounded number of connections, a deadline for request heads, and a
//! graceful stop. axum's own `serve` has neither a connection limit nor a header timeout, so
//! a flood of connections that never send a byte would hold file descriptors forever.

use axum::extract::connect_info::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

pub use super::framing::BodyDeadline;
use super::framing::{self, TimedBody};
use super::rejection::Rejection;
use crate::metrics::CONNECTIONS_REFUSED;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    /// How long a request body may take to arrive.
    pub body: BodyDeadline,
    pub socket_send_buffer: usize,
}

/// Serves `router` on `listener` until `stopping` turns true, then stops accepting, lets each
/// connection finish its request in flight and returns once every connection (upgraded
/// WebSockets included) has closed.
pub async fn run(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    mut stopping: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    // Every connection holds a clone; `recv` yields `None` once all of them are gone.
    let (open, mut all_closed) = mpsc::channel::<()>(1);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopping.wait_for(|stopping| *stopping) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, or a connection reset before it was accepted:
                // the listener itself is fine. Back off so that EMFILE does not spin.
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics::counter!(CONNECTIONS_REFUSED, "reason" => "max_connections").increment(1);
            drop(tcp);
            continue;
        };
        configure(&tcp, limits.socket_send_buffer);
        let io = TokioIo::new(Counted {
            tcp,
            _permit: permit,
            _open: open.clone(),
        });
        let routes = TowerToHyperService::new(router.clone());
        let body_deadline = limits.body;
        let service =
            hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let routes = routes.clone();
                async move {
                    if let Err(reason) = framing::check_head(&request) {
                        return Ok::<_, std::convert::Infallible>(closing(Rejection::bad_request(
                            reason,
                        )));
                    }
                    let expired = Arc::new(AtomicBool::new(false));
                    let mut request = request.map(|body| {
                        let body = axum::body::Body::new(body);
                        axum::body::Body::new(TimedBody::new(body, body_deadline, expired.clone()))
                    });
                    // Each request knows its peer: the rate limit of requests without a
                    // valid token.
                    request.extensions_mut().insert(ConnectInfo(peer));
                    let response = hyper::service::Service::call(&routes, request).await?;
                    if expired.load(Ordering::Acquire) {
                        metrics::counter!(CONNECTIONS_REFUSED, "reason" => "body_timeout")
                            .increment(1);
                        let refusal = Rejection::new(
                            axum::http::StatusCode::REQUEST_TIMEOUT,
                            "the request body did not arrive in time",
                        );
                        return Ok(closing(refusal));
                    }
                    Ok(response)
                }
            });
        let mut stopping = stopping.clone();
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let connection = builder.serve_connection(io, service).with_upgrades();
            tokio::pin!(connection);
            let stopped = tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                    false
                }
                _ = stopping.wait_for(|stopping| *stopping) => true,
            };
            if stopped {
                // Finishes the response in flight, then closes; idle ones close now.
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
            }
        });
    }
    drop(listener);
    drop(open);
    let _ = all_closed.recv().await;
}

/// A refusal after which the connection cannot be trusted to be in step: answered, then closed
/// (RFC 9112, section 9.6).
fn closing(refusal: Rejection) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut response = refusal.into_response();
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

/// Linux lets a send buffer grow to megabytes; a small one makes a client that stopped
/// reading show up as a stuck write within kilobytes.
fn configure(tcp: &TcpStream, send_buffer: usize) {
    let socket = socket2::SockRef::from(tcp);
    if let Err(error) = socket.set_send_buffer_size(send_buffer) {
        tracing::debug!(%error, "cannot set the socket send buffer");
    }
    let _ = tcp.set_nodelay(true);
}

/// A connection that holds its place under the limit, and keeps the server waiting at
/// shutdown, for as long as it is open — also after an upgrade to WebSocket, when hyper hands
/// the socket over.
struct Counted {
    tcp: TcpStream,
    _permit: OwnedSemaphorePermit,
    _open: mpsc::Sender<()>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
