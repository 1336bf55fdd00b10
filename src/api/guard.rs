//! What every request passes before and after its handler: the same-origin check on every
//! state-changing request, the per-address rate limit of the branch pages, and one error
//! shape per audience (the JSON error under `/api` and elsewhere, the console's HTML error
//! page under `/console` and `/b/`), whoever refused the request (an extractor, the router,
//! the body limit, the timeout, the rate limit).

use super::{ApiError, State};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State as Shared};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tower_governor::GovernorError;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;

/// Who reads a path's answers, and so the shape of its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The JSON API, health, metrics and anything unknown: the JSON error.
    Json,
    /// The console: its HTML error page.
    Console,
    /// The branch pages behind signed links: the HTML error page without the console's
    /// navigation.
    Branch,
}

impl Audience {
    /// The audience of a request path.
    pub fn of(path: &str) -> Audience {
        if path == "/console" || path.starts_with("/console/") {
            Audience::Console
        } else if path.starts_with("/b/") {
            Audience::Branch
        } else {
            Audience::Json
        }
    }
}

/// Why a request that changes state is refused as cross-site, or `None` to let it through.
///
/// Browsers mark every request with `Sec-Fetch-Site` (and every cross-origin POST with
/// `Origin`); a page of another site, or of another port of this host, cannot leave them
/// out or change them. `same-origin` and `none` (typed or bookmarked by the user) pass,
/// `same-site` and `cross-site` do not. Without that header the `Origin` must be this
/// server's: the request's `Host`, or the origin of `notify.link_base` (the address people
/// reach the server at behind a proxy). A request with neither header is not from a
/// browser's page (curl, scripts, which must carry a token or signed link anyway) and
/// passes. Reads (GET, HEAD, OPTIONS) are never refused here.
pub fn cross_site(
    method: &Method,
    headers: &HeaderMap,
    public_base: Option<&str>,
) -> Option<String> {
    if method.is_safe() {
        return None;
    }
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        match site.trim().to_ascii_lowercase().as_str() {
            "same-origin" | "none" => return None,
            "same-site" | "cross-site" => {
                return Some(format!(
                    "the request was sent from another site (Sec-Fetch-Site: {site})"
                ));
            }
            // Unknown values: decide on Origin.
            _ => {}
        }
    }
    let origin = text(header::ORIGIN)?.trim();
    let origin_lower = origin.trim_end_matches('/').to_ascii_lowercase();
    let Some((_, authority)) = origin_lower.split_once("://") else {
        return Some(format!(
            "the request's Origin `{origin}` is not this server's"
        ));
    };
    let host = text(header::HOST).map(|h| h.trim().to_ascii_lowercase());
    if host.as_deref() == Some(authority) {
        return None;
    }
    if let Some(base) = public_base.and_then(origin_of)
        && base == origin_lower
    {
        return None;
    }
    Some(format!(
        "the request's Origin `{origin}` is not this server's"
    ))
}

/// `scheme://host[:port]` of a URL, lowercase, or `None` when it is not one.
fn origin_of(url: &str) -> Option<String> {
    let url = url.trim().to_ascii_lowercase();
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    (!scheme.is_empty() && !authority.is_empty()).then(|| format!("{scheme}://{authority}"))
}

/// Middleware: refuse a state-changing request sent from another site with 403 (the JSON
/// error `cross_site`, or the HTML error page), before it reaches any handler.
pub(super) async fn same_origin(
    Shared(state): Shared<State>,
    req: Request,
    next: Next,
) -> Response {
    let base = state.engine.catalog().config.notify.link_base.clone();
    let Some(why) = cross_site(req.method(), req.headers(), base.as_deref()) else {
        return next.run(req).await;
    };
    let path = req.uri().path().to_string();
    tracing::warn!(method = %req.method(), path, reason = %why, "cross-site request refused");
    match Audience::of(&path) {
        Audience::Json => ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_site",
            format!("{why}; changes are accepted only from this server's own pages or from clients that send no Origin"),
        )
        .into_response(),
        audience => super::console::error_page(
            &state,
            audience == Audience::Branch,
            StatusCode::FORBIDDEN,
            "已拒绝来自其他网站的请求",
            "这个请求不是从本系统自己的页面发出的（可能来自其他网站，或同一主机上的其他端口），为防止伪造操作，已拒绝，未做任何修改。请回到本系统的页面重新操作。",
        ),
    }
}

/// The error code of a status, for errors that no handler of ours produced.
fn code_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "no_route",
        405 => "method_not_allowed",
        408 => "timeout",
        409 => "wrong_state",
        413 => "too_large",
        415 => "unsupported_media_type",
        422 => "invalid",
        429 => "rate_limited",
        500..=599 => "internal",
        _ => "error",
    }
}

/// What an error without a body of its own says, for clients of the JSON API.
fn english_of(status: StatusCode, max_body: usize, retry: Option<&str>) -> String {
    match status.as_u16() {
        404 => "no such route; see /api/openapi.json".into(),
        405 => "this route does not take this method; see the Allow header".into(),
        408 => "the request took too long (its body was not sent in time)".into(),
        413 => format!("the request body is larger than {max_body} bytes"),
        429 => format!(
            "too many requests from this address; retry after {} s",
            retry.unwrap_or("a few")
        ),
        _ => status
            .canonical_reason()
            .unwrap_or("the request was refused")
            .to_string(),
    }
}

/// The title and text of the HTML error page for a status.
fn chinese_of(status: StatusCode, max_body: usize, retry: Option<&str>) -> (&'static str, String) {
    match status.as_u16() {
        400 => ("请求有误", "地址或提交的内容无法读取。".into()),
        404 => ("未找到", "没有这个页面。".into()),
        405 => ("不支持的操作", "这个地址不接受这种请求。".into()),
        408 => ("请求超时", "请求未能在时限内完成，请重试。".into()),
        413 => (
            "内容过大",
            format!("提交的内容超过了上限（{max_body} 字节），未做任何修改。"),
        ),
        415 => ("格式不支持", "提交的内容格式不对，未做任何修改。".into()),
        422 => (
            "内容无效",
            "提交的表单缺少内容或内容无效，未做任何修改。".into(),
        ),
        429 => (
            "请求过于频繁",
            format!(
                "来自您的地址的请求过多，请 {} 秒后再试。",
                retry.unwrap_or("稍等几")
            ),
        ),
        500..=599 => ("内部错误", "操作失败，详见守护进程日志。".into()),
        _ => ("无法完成请求", "请求未能完成。".into()),
    }
}

/// Headers of a refusal that tell the client what to do next; kept when its body is
/// replaced.
const KEPT: [header::HeaderName; 3] =
    [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE];

/// Middleware: an error response that is not already in its audience's shape (axum's
/// plain-text rejections, the router's empty 404 and 405, the body limit's 413, the
/// timeout's 408, the rate limit's 429) is replaced by the JSON error or the HTML error
/// page with the same status, keeping `Allow`, `Retry-After` and `WWW-Authenticate`.
pub(super) async fn uniform_errors(
    Shared(state): Shared<State>,
    req: Request,
    next: Next,
) -> Response {
    let audience = Audience::of(req.uri().path());
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let shaped = match audience {
        Audience::Json => content_type.starts_with("application/json"),
        Audience::Console | Audience::Branch => content_type.starts_with("text/html"),
    };
    if shaped {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    // The replaced body is for the log only (a rejection's English detail).
    let detail = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let retry = parts
        .headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok());
    let max_body = state.engine.catalog().config.http.max_body_bytes;
    let mut out = match audience {
        Audience::Json => {
            let message = if detail.is_empty() {
                english_of(status, max_body, retry)
            } else {
                detail
            };
            ApiError::new(status, code_of(status), message).into_response()
        }
        Audience::Console | Audience::Branch => {
            if !detail.is_empty() {
                tracing::debug!(status = status.as_u16(), detail, "console request refused");
            }
            let (title, text) = chinese_of(status, max_body, retry);
            super::console::error_page(&state, audience == Audience::Branch, status, title, &text)
        }
    };
    for name in KEPT {
        for value in parts.headers.get_all(&name) {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    out
}

/// The address a request counts against for the per-address rate limit: the peer, or,
/// when the peer is a trusted reverse proxy, the client that proxy names last in
/// `X-Forwarded-For` (the entries before it are the client's own say and could be
/// anything).
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    forwarded_for
        .into_iter()
        .flat_map(|h| h.rsplit(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .find(|a| !trusted.contains(a))
        .unwrap_or(peer)
}

/// The client address of a request ([`client_ip`]; `None` when it was not served by
/// [`serve_with_limits`](super::server::serve_with_limits)) and whether it came over
/// https: `X-Forwarded-Proto: https` counts only from a trusted proxy.
pub fn client_of(
    extensions: &axum::http::Extensions,
    headers: &HeaderMap,
    trusted: &[IpAddr],
) -> (Option<IpAddr>, bool) {
    let Some(peer) = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip())
    else {
        return (None, false);
    };
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let ip = client_ip(peer, text("x-forwarded-for"), trusted);
    let https = trusted.contains(&peer)
        && text("x-forwarded-proto").is_some_and(|p| {
            p.rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("https"))
        });
    (Some(ip), https)
}

/// Rate-limit key: the client address ([`client_ip`]) of a request served by
/// [`serve_with_limits`](super::server::serve_with_limits), which records the peer.
#[derive(Debug, Clone)]
pub struct ClientIp {
    trusted: Arc<Vec<IpAddr>>,
}

impl KeyExtractor for ClientIp {
    type Key = IpAddr;

    fn extract<T>(&self, req: &axum::http::Request<T>) -> Result<IpAddr, GovernorError> {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(a)| a.ip())
            .ok_or(GovernorError::UnableToExtractKey)?;
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        Ok(client_ip(peer, forwarded, &self.trusted))
    }
}

/// A per-address limit (tower_governor) as `Option<Arc<GovernorConfig>>`: a burst of
/// `burst` requests, then one every `60 s / per_minute`; over it, 429 with `Retry-After` in
/// whole seconds, rounded up. A task drops the addresses that have not been seen for a
/// while, once a minute, for as long as the limit is in use. (A macro: the config's
/// middleware type is not exported by tower_governor, so it cannot be named in a
/// function's signature.)
macro_rules! per_address_config {
    ($per_minute:expr, $burst:expr, $trusted:expr) => {{
        let period = Duration::from_secs(60) / ($per_minute).max(1);
        // `finish` refuses only a zero period or burst, which the `max`es rule out.
        GovernorConfigBuilder::default()
            .key_extractor(ClientIp {
                trusted: Arc::new(($trusted).to_vec()),
            })
            .period(period.max(Duration::from_millis(1)))
            .burst_size(($burst).max(1))
            .finish()
            .map(|config| {
                let config = Arc::new(config);
                let limiter = Arc::downgrade(config.limiter());
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        let mut every = tokio::time::interval(Duration::from_secs(60));
                        loop {
                            every.tick().await;
                            let Some(limiter) = limiter.upgrade() else {
                                break;
                            };
                            limiter.retain_recent();
                            limiter.shrink_to_fit();
                        }
                    });
                }
                config
            })
    }};
}

/// `routes` (the branch pages) behind a per-address rate limit (`tower_governor`): a burst of
/// `branch_burst` requests, then one every `60 s / branch_requests_per_minute`.
pub(super) fn branch_rate_limit(
    routes: axum::Router<State>,
    http: &crate::config::HttpConfig,
) -> axum::Router<State> {
    match per_address_config!(
        http.branch_requests_per_minute,
        http.branch_burst,
        http.trusted_proxies
    ) {
        Some(config) => {
            routes.layer(tower_governor::GovernorLayer::new(config).error_handler(too_many))
        }
        None => {
            tracing::error!(
                "the branch pages' rate limit cannot be built; they are served without it"
            );
            routes
        }
    }
}

/// The console's sign-in (`POST /console/login`) behind a per-address rate limit of
/// `login_attempts_per_minute` after a burst of `login_burst`: guessing tokens from one
/// address gets 429 long before it could matter.
pub(super) fn login_rate_limit(
    route: axum::routing::MethodRouter<State>,
    http: &crate::config::HttpConfig,
) -> axum::routing::MethodRouter<State> {
    match per_address_config!(
        http.login_attempts_per_minute,
        http.login_burst,
        http.trusted_proxies
    ) {
        Some(config) => {
            route.layer(tower_governor::GovernorLayer::new(config).error_handler(too_many))
        }
        None => {
            tracing::error!("the sign-in rate limit cannot be built; sign-in is refused");
            route.layer(axum::middleware::from_fn(|_: Request, _: Next| async {
                StatusCode::SERVICE_UNAVAILABLE.into_response()
            }))
        }
    }
}

/// The rate limit's refusal: 429 with `Retry-After` (the body becomes the HTML page in
/// [`uniform_errors`]).
fn too_many(e: GovernorError) -> Response<Body> {
    match e {
        GovernorError::TooManyRequests { wait_time, .. } => {
            // governor rounds the wait down; a client that waits that long would be refused again.
            let retry = wait_time.saturating_add(1);
            let mut r = (
                StatusCode::TOO_MANY_REQUESTS,
                format!("retry after {retry} s"),
            )
                .into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry));
            r
        }
        GovernorError::UnableToExtractKey => {
            tracing::error!(
                "rate limit: no peer address on the request (not served by serve_with_limits?)"
            );
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        GovernorError::Other { code, msg, .. } => (code, msg.unwrap_or_default()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn reads_are_never_refused_whatever_their_origin() {
        let h = headers(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "http://evil.example"),
        ]);
        for m in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert_eq!(cross_site(&m, &h, None), None, "{m}");
        }
    }

    #[test]
    fn sec_fetch_site_decides_when_present() {
        let post = Method::POST;
        for ok in ["same-origin", "none", "Same-Origin"] {
            let h = headers(&[
                ("sec-fetch-site", ok),
                ("host", "a:1"),
                ("origin", "http://b:2"),
            ]);
            assert_eq!(cross_site(&post, &h, None), None, "{ok}");
        }
        for bad in ["same-site", "cross-site"] {
            // Another port of the same host is same-site, not same-origin.
            let h = headers(&[
                ("sec-fetch-site", bad),
                ("host", "a:1"),
                ("origin", "http://a:1"),
            ]);
            assert!(cross_site(&post, &h, None).is_some(), "{bad}");
        }
    }

    #[test]
    fn without_sec_fetch_site_the_origin_must_be_the_host_or_the_public_base() {
        let post = Method::POST;
        let check = |origin: &str, base: Option<&str>| {
            cross_site(
                &post,
                &headers(&[("host", "127.0.0.1:8080"), ("origin", origin)]),
                base,
            )
        };
        assert_eq!(check("http://127.0.0.1:8080", None), None);
        assert!(
            check("http://127.0.0.1:9999", None).is_some(),
            "another port"
        );
        assert!(check("http://evil.example", None).is_some());
        assert!(check("null", None).is_some(), "an opaque origin");
        assert!(check("https://yanzhen.example.gov.cn", None).is_some());
        assert_eq!(
            check(
                "https://YANZHEN.example.gov.cn",
                Some("https://yanzhen.example.gov.cn/base/")
            ),
            None,
            "behind a proxy that rewrites Host, the configured public address counts"
        );
        assert!(
            check(
                "http://yanzhen.example.gov.cn",
                Some("https://yanzhen.example.gov.cn")
            )
            .is_some()
        );
    }

    #[test]
    fn a_request_with_neither_header_is_not_from_a_page_and_passes() {
        assert_eq!(
            cross_site(&Method::POST, &headers(&[("host", "a:1")]), None),
            None
        );
        assert_eq!(cross_site(&Method::DELETE, &HeaderMap::new(), None), None);
    }

    #[test]
    fn the_audience_of_a_path_picks_the_error_shape() {
        assert_eq!(Audience::of("/console"), Audience::Console);
        assert_eq!(Audience::of("/console/tasks/1"), Audience::Console);
        assert_eq!(Audience::of("/consoles"), Audience::Json);
        assert_eq!(Audience::of("/b/dongguan"), Audience::Branch);
        assert_eq!(Audience::of("/api/tasks/x"), Audience::Json);
        assert_eq!(Audience::of("/nowhere"), Audience::Json);
    }

    #[test]
    fn the_client_address_is_the_peer_unless_the_peer_is_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.1".parse().expect("ip");
        let client: IpAddr = "203.0.113.7".parse().expect("ip");
        let peer: IpAddr = "198.51.100.9".parse().expect("ip");
        // An untrusted peer cannot pick its own key by sending the header.
        assert_eq!(client_ip(peer, Some("203.0.113.7"), &[proxy]), peer);
        // Behind the proxy: the last address it appended, not what the client wrote first.
        assert_eq!(
            client_ip(proxy, Some("1.2.3.4, 203.0.113.7"), &[proxy]),
            client
        );
        assert_eq!(
            client_ip(proxy, Some("203.0.113.7, 10.0.0.1"), &[proxy]),
            client
        );
        assert_eq!(client_ip(proxy, None, &[proxy]), proxy);
        assert_eq!(client_ip(proxy, Some("garbage"), &[proxy]), proxy);
    }
}
