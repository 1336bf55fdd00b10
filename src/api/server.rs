//! Serving connections within limits: HTTP/1.1 through hyper with a header-read timeout
//! (which is also the idle timeout of kept-alive connections), a cap on open connections
//! taken at accept and one per client address, the peer's address for the per-address
//! rate limit, the security headers on every response, and a graceful stop.
//!
//! `axum::serve` sets no timer, so a client that sends half a request line keeps its
//! connection (and a task) for as long as it likes; here hyper closes it after
//! `[http] header_read_timeout_seconds`.

use crate::config::HttpConfig;
use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderName, HeaderValue, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::ServiceExt as _;
use tower_http::set_header::SetResponseHeaderLayer;

/// The `Content-Security-Policy` of every response. Pages load their one stylesheet and
/// one script from `/assets/` (no inline script, style or event handler); forms post only
/// to this origin; no page may be framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The security headers every response carries (unless its handler set its own).
pub fn security_headers() -> [(HeaderName, HeaderValue); 4] {
    [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        // A branch page's address is its credential: it must not travel in a Referer.
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ]
}

/// `app` with the security headers added to each of its responses.
pub fn with_security_headers(app: Router) -> Router {
    security_headers()
        .into_iter()
        .fold(app, |app, (name, value)| {
            app.layer(SetResponseHeaderLayer::if_not_present(name, value))
        })
}

/// The most a connection buffers of what it reads (a request's head must fit in it).
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Serve `app` on `listener` within the connection limits of `http` until `shutdown`
/// completes; then stop accepting, let in-flight requests finish and close idle
/// connections.
pub async fn serve_with_limits(
    listener: tokio::net::TcpListener,
    app: Router,
    http: &HttpConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = with_security_headers(app);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(http.header_read_timeout_seconds.max(1)))
        // hyper's read buffer grows to ~400 KiB on a fast client, per connection; 64 KiB
        // holds any real request head and keeps a streaming upload's buffers small.
        .max_buf_size(READ_BUFFER_BYTES)
        .keep_alive(true);
    let slots = Arc::new(tokio::sync::Semaphore::new(http.max_connections.max(1)));
    let per_address = Arc::new(PerAddress {
        open: Mutex::new(HashMap::new()),
        max: http.max_connections_per_address.max(1),
        exempt: http.trusted_proxies.clone(),
    });
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        // A slot first, then accept: over the cap a connection waits in the kernel's
        // listen queue, so a flood of idle connections costs queue entries, not tasks.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors or a connection reset before accept: wait a
                    // little rather than spin.
                    tracing::warn!(error = %e, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(address_slot) = per_address.enter(peer.ip()) else {
            // Over its own cap: closed at once (the client sees the connection end), so
            // that one address cannot hold every slot.
            tracing::debug!(peer = %peer, "connection refused: too many from this address");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service =
            app.clone()
                .map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    req
                });
        let conn =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(peer = %peer, error = %e, "http connection ended");
            }
            drop(address_slot);
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Open connections per client address. (A connection-level count: tower's layers see
/// requests, not connections.)
struct PerAddress {
    open: Mutex<HashMap<IpAddr, usize>>,
    max: usize,
    /// Trusted reverse proxies: every client comes through them.
    exempt: Vec<IpAddr>,
}

impl PerAddress {
    /// A slot for one more connection from `ip`, or `None` when it has its share.
    fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        if self.exempt.contains(&ip) {
            return Some(AddressSlot { owner: None, ip });
        }
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            owner: Some(self.clone()),
            ip,
        })
    }
}

/// One open connection of an address; dropping it gives the slot back.
struct AddressSlot {
    owner: Option<Arc<PerAddress>>,
    ip: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let Some(owner) = &self.owner else { return };
        let mut open = owner.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn per_address(max: usize, exempt: &[&str]) -> Arc<PerAddress> {
        Arc::new(PerAddress {
            open: Mutex::new(HashMap::new()),
            max,
            exempt: exempt.iter().map(|a| a.parse().expect("ip")).collect(),
        })
    }

    #[test]
    fn an_address_gets_its_share_of_connections_and_a_closed_one_frees_a_slot() {
        let p = per_address(2, &[]);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        let first = p.enter(a).expect("1st");
        let _second = p.enter(a).expect("2nd");
        assert!(p.enter(a).is_none(), "a third from the same address");
        assert!(p.enter(b).is_some(), "another address is not affected");
        drop(first);
        assert!(p.enter(a).is_some(), "a slot came back");
    }

    #[test]
    fn a_trusted_proxy_is_not_counted_and_no_address_is_kept_once_it_has_none_open() {
        let p = per_address(1, &["10.0.0.1"]);
        let proxy: IpAddr = "10.0.0.1".parse().expect("ip");
        let held: Vec<_> = (0..5).map(|_| p.enter(proxy).expect("proxy")).collect();
        assert_eq!(held.len(), 5);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        drop(p.enter(a).expect("one"));
        assert!(p.open.lock().expect("lock").is_empty());
    }
}
