//! The reward server's connections, served by hyper directly: axum's own `serve` sets no
//! header timeout, no idle timeout and no connection cap, so a client that opens sockets
//! and sends nothing could hold them (and their memory) forever.

use super::{router, ServeConfig};
use crate::reward::Scorer;
use axum::Router;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Serves until the listener fails or `shutdown` resolves; then stops accepting, lets the
/// requests in flight finish (up to `read_timeout`), and returns.
pub async fn serve(listener: tokio::net::TcpListener, scorer: Scorer, cfg: ServeConfig, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    let app = router(scorer, cfg.clone());
    let max = cfg.max_connections.max(1);
    let open = Arc::new(tokio::sync::Semaphore::new(max));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A connection slot first: past the cap, new clients wait in the kernel's backlog
        // instead of costing memory here.
        let permit = tokio::select! {
            p = open.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                // Out of file descriptors and the like: back off instead of spinning.
                Err(e) if is_transient(&e) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(e) => return Err(e),
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, app.clone(), cfg.header_timeout, cfg.idle_timeout, stop_rx.clone(), permit));
    }
    let _ = stop_tx.send(true);
    // Every connection holds a permit until it ends.
    let _ = tokio::time::timeout(cfg.read_timeout, open.acquire_many(max as u32)).await;
    Ok(())
}

fn is_transient(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock) || e.raw_os_error().is_some_and(|c| c == 23 || c == 24 || c == 12 || c == 105)
}

/// One HTTP/1.1 connection: headers within `header_timeout` (hyper's timer), closed when
/// idle for `idle_timeout` or when the server stops (after the request in flight).
async fn connection(stream: tokio::net::TcpStream, app: Router, header_timeout: Duration, idle_timeout: Duration, mut stop: tokio::sync::watch::Receiver<bool>, _permit: tokio::sync::OwnedSemaphorePermit) {
    let activity = Arc::new(Activity::new());
    let io = hyper_util::rt::TokioIo::new(Tracked { inner: stream, activity: activity.clone() });
    let svc = hyper_util::service::TowerToHyperService::new(app);
    let conn = hyper::server::conn::http1::Builder::new().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(header_timeout).keep_alive(true).serve_connection(io, svc);
    let mut conn = std::pin::pin!(conn);
    let mut closing = false;
    let tick = (idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = stop.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep(tick), if !closing => {
                if activity.idle() >= idle_timeout {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// When a connection last moved a byte.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self { start: Instant::now(), last_ms: AtomicU64::new(0) }
    }
    fn touch(&self) {
        self.last_ms.store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    fn idle(&self) -> Duration {
        self.start.elapsed().saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// A socket that records its last read or write in an [`Activity`].
struct Tracked {
    inner: tokio::net::TcpStream,
    activity: Arc<Activity>,
}

impl tokio::io::AsyncRead for Tracked {
    fn poll_read(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl tokio::io::AsyncWrite for Tracked {
    fn poll_write(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, data: &[u8]) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }
    fn poll_flush(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

