//! HTTP plumbing shared by every route: security headers, size limits,
//! timeouts, structured access logs without PHI, and serving over TLS.

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower_http::set_header::SetResponseHeaderLayer;

/// Request limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body accepted.
    pub body_bytes: usize,
    /// Longest a request may take end to end.
    pub request_timeout: Duration,
    /// Requests processed at once (further ones queue).
    pub concurrency: usize,
    /// Longest request target (path and query) accepted, in bytes; longer
    /// is 414.
    pub uri_bytes: usize,
    /// Most request header fields accepted; more is 431.
    pub header_count: usize,
    /// Largest total size of the request's header fields (names and
    /// values), in bytes; larger is 431.
    pub header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            body_bytes: 1 << 20,
            request_timeout: Duration::from_secs(30),
            concurrency: 512,
            uri_bytes: 8 << 10,
            header_count: 64,
            header_bytes: 32 << 10,
        }
    }
}

/// What the HTTP/1 parser itself accepts, well above [`Limits`]: a request
/// the parser rejects gets hyper's bare automatic response, without the
/// security headers every other response carries, so the limits clients
/// meet are enforced by [`limit_head`] inside the layers instead. (hyper
/// fixes its own request-target limit at 64 KiB; only a request beyond that
/// still meets the parser's bare 414.)
const PARSER_MAX_HEADERS: usize = 256;
const PARSER_MAX_BUF: usize = 1 << 20;

/// Adds the layers every response gets: security headers, body limit,
/// timeout, concurrency limit, panic catching and the access log.
pub fn harden(router: Router, limits: Limits) -> Router {
    let headers: [(HeaderName, &'static str); 7] = [
        (
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=63072000; includeSubDomains",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ),
        // PHI must not be kept by browsers or proxies.
        (header::CACHE_CONTROL, "no-store"),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
    ];
    let mut router = router
        .layer(axum::middleware::from_fn(move |r, n| {
            limit_head(limits, r, n)
        }))
        .layer(axum::middleware::from_fn(access_log))
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            limits.body_bytes,
        ))
        .layer(tower::limit::ConcurrencyLimitLayer::new(limits.concurrency));
    for (name, value) in headers {
        router = router.layer(SetResponseHeaderLayer::overriding(
            name,
            HeaderValue::from_static(value),
        ));
    }
    router
}

/// 414 for a request target longer than `limits.uri_bytes`, 431 for more
/// or larger header fields than the limits allow: answered here, inside
/// the layers, so these responses carry the security headers too.
async fn limit_head(limits: Limits, request: Request, next: Next) -> Response {
    let fhir = request.uri().path().starts_with("/fhir");
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    let headers = request.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    let error = if target > limits.uri_bytes {
        crate::error::ApiError::new(
            axum::http::StatusCode::URI_TOO_LONG,
            "too-long",
            format!(
                "the request target is longer than {} bytes",
                limits.uri_bytes
            ),
        )
    } else if headers.len() > limits.header_count || header_bytes > limits.header_bytes {
        crate::error::ApiError::new(
            axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "too-large",
            format!(
                "at most {} header fields of {} bytes in all are accepted",
                limits.header_count, limits.header_bytes
            ),
        )
    } else {
        return next.run(request).await;
    };
    let error = if fhir { error.fhir() } else { error };
    axum::response::IntoResponse::into_response(error)
}

/// One structured log line per request: method, the matched route
/// template (`/fhir/Patient/{id}`, never the raw path or query, which carry
/// patient IDs and search values), status and latency.
async fn access_log(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "(unmatched)".to_string());
    let response = next.run(request).await;
    tracing::info!(
        target: "rxvault::http",
        %method,
        route,
        status = response.status().as_u16(),
        micros = start.elapsed().as_micros() as u64,
        "request"
    );
    response
}

/// Serves `router` over TLS on `listener` until `shutdown` completes.
pub async fn serve_tls(
    router: Router,
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        h.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    let config = axum_server::tls_rustls::RustlsConfig::from_config(tls);
    listener.set_nonblocking(true)?;
    let mut server = axum_server::from_tcp_rustls(listener, config)?.handle(handle);
    server
        .http_builder()
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .max_headers(PARSER_MAX_HEADERS)
        .max_buf_size(PARSER_MAX_BUF);
    server
        .serve(router.into_make_service_with_connect_info::<SocketAddr>())
        .await
}
