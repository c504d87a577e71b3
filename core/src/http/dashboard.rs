//! The dashboard (`web/`, built by Vite into `web/dist`) served as the router's fallback.
//!
//! Only requests no API route matched arrive here. API paths (`/v1/*`, `/health`,
//! `/openapi.json`, `/docs`) and methods other than GET/HEAD are never answered with the
//! dashboard: they get the API's own 404 envelope. Everything else is a file of the build, or,
//! for client-side routes such as `/capsules/sb_…` or the mailed `/activate?token=…` link, the
//! app's `index.html`.
//!
//! Caching: Vite names everything under `/assets/` by content hash, so those files are cached
//! for a year as immutable; `index.html` (and any other file) must be revalidated so a new
//! deployment is picked up at once.
//!
//! The directory is `WRENN_WEB_DIR` when set, else the first of `web/dist` under the working
//! directory and `web/dist` next to the `wrenn-cp` binary that holds an `index.html`.

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Service, ServiceExt};
use tower_http::services::{ServeDir, ServeFile};
use wrenn_extension_api::ApiError;

/// Environment variable naming the built dashboard's directory.
pub const WEB_DIR_ENV: &str = "WRENN_WEB_DIR";

/// Path prefixes that belong to the API and must never be answered with the dashboard.
pub const API_PREFIXES: [&str; 4] = ["/v1", "/health", "/openapi.json", "/docs"];

/// Content-hashed build output.
const ASSETS_PREFIX: &str = "/assets/";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";
/// The app loads only its own scripts and styles and talks only to its own origin. The one
/// exception is `<style>` elements made by script: the terminal (xterm.js) writes its
/// measurements and theme into some, with no way to give them a nonce. Style attributes and
/// every script stay `'self'` only.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                   style-src-elem 'self' 'unsafe-inline'; img-src 'self' data:; \
                   connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; \
                   frame-ancestors 'none'";

/// True for paths of the API (`/v1`, `/v1/...`, `/health`, `/docs/...`, ...).
pub fn is_api_path(path: &str) -> bool {
    API_PREFIXES.iter().any(|prefix| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// The directory to serve: `configured` (`WRENN_WEB_DIR`), else `web/dist` in the working
/// directory or next to the binary, whichever holds an `index.html`.
pub fn web_dir(configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(dir) = configured.filter(|d| !d.as_os_str().is_empty()) {
        return Some(dir.to_path_buf());
    }
    let mut candidates = vec![PathBuf::from("web/dist")];
    if let Some(bin_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        candidates.push(bin_dir.join("web/dist"));
    }
    candidates
        .into_iter()
        .find(|d| d.join("index.html").is_file())
}

/// The fallback service serving the dashboard.
#[derive(Clone)]
pub struct Dashboard {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` when no build was found: non-API paths then answer 404 `dashboard_not_built`.
    files: Option<(ServeDir, PathBuf)>,
}

impl Dashboard {
    /// Serves the directory found by [`web_dir`].
    pub fn find(configured: Option<&Path>) -> Self {
        Self::new(web_dir(configured))
    }

    /// Serves `dir` (or nothing).
    pub fn new(dir: Option<PathBuf>) -> Self {
        let files = dir.map(|dir| {
            let index = dir.join("index.html");
            if index.is_file() {
                tracing::info!(dir = %dir.display(), "Serving the dashboard.");
            } else {
                tracing::warn!(dir = %dir.display(), "The dashboard directory has no index.html; build it with scripts/web.sh build.");
            }
            (ServeDir::new(&dir), index)
        });
        if files.is_none() {
            tracing::info!(
                "No dashboard build found (set {WEB_DIR_ENV} or build web/); serving the API only."
            );
        }
        Self {
            inner: Arc::new(Inner { files }),
        }
    }

    /// Answers one request that no API route matched.
    pub async fn serve(&self, req: Request) -> Response {
        let path = req.uri().path().to_owned();
        if is_api_path(&path) || !matches!(*req.method(), Method::GET | Method::HEAD) {
            return super::not_found().await.into_response();
        }
        let Some((files, index)) = &self.inner.files else {
            return ApiError::not_found(
                "dashboard_not_built",
                "the dashboard is not built on this server",
            )
            .into_response();
        };
        let is_asset = path.starts_with(ASSETS_PREFIX);
        let (parts, body) = req.into_parts();
        let probe = Request::from_parts(parts.clone(), Body::empty());
        let found = match files.clone().oneshot(probe).await {
            Ok(res) => res.map(Body::new),
            Err(never) => match never {},
        };
        let response = if found.status() == StatusCode::NOT_FOUND {
            if is_asset || looks_like_file(&path) {
                return ApiError::not_found("not_found", "no such file").into_response();
            }
            // A client-side route: the app's shell decides what to show.
            let req = Request::from_parts(parts, body);
            match ServeFile::new(index).oneshot(req).await {
                Ok(res) => res.map(Body::new),
                Err(never) => match never {},
            }
        } else {
            found
        };
        with_headers(response, is_asset)
    }
}

/// A last path segment with an extension names a file, not an app route.
fn looks_like_file(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|last| last.contains('.'))
}

fn with_headers(mut response: Response, is_asset: bool) -> Response {
    let ok = response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED;
    let headers = response.headers_mut();
    let cache = if is_asset && ok {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let is_html = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_html {
        headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        // Keeps one-time tokens in `/activate?token=` out of any Referer.
        headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    }
    response
}

impl Service<Request> for Dashboard {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.serve(req).await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header::LOCATION;

    /// A build in `<tmp>/dist`, with a secret in `<tmp>` that traversal must not reach.
    fn built() -> (tempfile::TempDir, Dashboard) {
        let base = tempfile::tempdir().unwrap();
        let dist = base.path().join("dist");
        std::fs::create_dir_all(dist.join("assets")).unwrap();
        std::fs::write(
            dist.join("index.html"),
            "<!doctype html><title>Wrenn</title>",
        )
        .unwrap();
        std::fs::write(dist.join("assets/index-Ab12.js"), "console.log(1)").unwrap();
        std::fs::write(dist.join("robots.txt"), "User-agent: *").unwrap();
        std::fs::write(base.path().join("secret.txt"), "top-secret").unwrap();
        (base, Dashboard::new(Some(dist)))
    }

    async fn call(
        d: &Dashboard,
        method: Method,
        uri: &str,
    ) -> (StatusCode, axum::http::HeaderMap, String) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let res = d.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    #[test]
    fn api_paths_are_recognised() {
        for p in [
            "/v1",
            "/v1/capsules",
            "/health",
            "/openapi.json",
            "/docs",
            "/docs/x",
        ] {
            assert!(is_api_path(p), "{p}");
        }
        for p in [
            "/",
            "/v10",
            "/healthz",
            "/documents",
            "/capsules",
            "/activate",
        ] {
            assert!(!is_api_path(p), "{p}");
        }
    }

    #[tokio::test]
    async fn index_and_client_routes_revalidate() {
        let (_dir, d) = built();
        for uri in ["/", "/capsules/sb_123", "/activate?token=abc", "/settings"] {
            let (status, headers, body) = call(&d, Method::GET, uri).await;
            assert_eq!(status, StatusCode::OK, "{uri}");
            assert!(body.contains("<title>Wrenn</title>"), "{uri}: {body}");
            assert_eq!(headers[CACHE_CONTROL], REVALIDATE, "{uri}");
            assert!(headers[CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("default-src 'self'"));
            assert_eq!(headers[REFERRER_POLICY], "same-origin");
        }
    }

    #[tokio::test]
    async fn hashed_assets_are_immutable() {
        let (_dir, d) = built();
        let (status, headers, body) = call(&d, Method::GET, "/assets/index-Ab12.js").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "console.log(1)");
        assert_eq!(headers[CACHE_CONTROL], IMMUTABLE);
        assert!(headers[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .contains("javascript"));
        let (status, headers, _) = call(&d, Method::HEAD, "/assets/index-Ab12.js").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[CACHE_CONTROL], IMMUTABLE);
        let (status, headers, _) = call(&d, Method::GET, "/robots.txt").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[CACHE_CONTROL], REVALIDATE);
    }

    #[tokio::test]
    async fn missing_files_are_404_not_the_app() {
        let (_dir, d) = built();
        for uri in ["/assets/gone-123.js", "/favicon.ico", "/assets/x"] {
            let (status, _, body) = call(&d, Method::GET, uri).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
            assert!(body.contains(r#""code":"not_found""#), "{uri}: {body}");
        }
    }

    #[tokio::test]
    async fn api_paths_and_other_methods_get_the_api_404() {
        let (_dir, d) = built();
        for (method, uri) in [
            (Method::GET, "/v1/nope"),
            (Method::GET, "/v1"),
            (Method::GET, "/docs/extra"),
            (Method::GET, "/health/deep"),
            (Method::POST, "/capsules"),
            (Method::DELETE, "/"),
        ] {
            let (status, headers, body) = call(&d, method.clone(), uri).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {uri}");
            assert!(headers[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/json"));
            assert!(
                body.contains(r#""code":"not_found""#),
                "{method} {uri}: {body}"
            );
        }
    }

    #[tokio::test]
    async fn traversal_stays_inside_the_directory() {
        let (_base, d) = built();
        for uri in [
            "/../secret.txt",
            "/%2e%2e/secret.txt",
            "/assets/..%2f..%2fsecret.txt",
            "/assets/../../secret.txt",
        ] {
            let (status, headers, body) = call(&d, Method::GET, uri).await;
            assert!(!body.contains("top-secret"), "{uri}: {status}");
            assert!(headers.get(LOCATION).is_none(), "{uri}");
        }
    }

    #[tokio::test]
    async fn without_a_build_the_api_still_answers_in_its_envelope() {
        let d = Dashboard::new(None);
        let (status, _, body) = call(&d, Method::GET, "/capsules").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("dashboard_not_built"), "{body}");
        let (status, _, body) = call(&d, Method::GET, "/v1/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains(r#""code":"not_found""#), "{body}");
    }
}
