//! The dashboard (`web/`): the built single-page app embedded in the binary (`web/dist`, read from
//! disk in debug builds, embedded in release builds). Hashed assets under `/assets/` are cached for
//! a year; `index.html` answers every other non-`/api` path (client-side routes), never cached,
//! with a Content-Security-Policy that allows only the app's own scripts, styles and API.
//! Without a dashboard build, `/` answers a short page saying how to build it.

use std::path::PathBuf;

use poem::http::{header, Method, StatusCode};
use poem::{Endpoint, Request, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "web/dist"]
#[allow_missing = true]
struct Assets;

/// The HTML's policy: no inline scripts or styles, no other origins; SSE and fetch to ourselves.
pub const CSP: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; \
     frame-ancestors 'none'";

const MISSING: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Pressluft</title></head><body><h1>Pressluft</h1><p>The dashboard is not built into this \
binary. Build it with <code>scripts/build-web.sh</code> (or <code>cd web &amp;&amp; npm ci &amp;&amp; \
npm run build</code>), then rebuild the binary. The API is at <a href=\"/api/docs\">/api/docs</a>.</p>\
</body></html>";

/// Serves the dashboard: from `dir` when given (`pressluft serve --web-dir`), else embedded.
pub struct Dashboard {
    dir: Option<PathBuf>,
}

impl Dashboard {
    pub fn new(dir: Option<PathBuf>) -> Self {
        Dashboard { dir }
    }

    fn file(&self, path: &str) -> Option<Vec<u8>> {
        if path.is_empty() || path.split('/').any(|s| s == ".." || s.is_empty()) {
            return None;
        }
        match &self.dir {
            Some(dir) => std::fs::read(dir.join(path)).ok(),
            None => Assets::get(path).map(|f| f.data.into_owned()),
        }
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn html(body: Vec<u8>) -> Response {
    Response::builder()
        .content_type("text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("content-security-policy", CSP)
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "same-origin")
        .body(body)
}

impl Endpoint for Dashboard {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if !matches!(*req.method(), Method::GET | Method::HEAD) {
            return Err(poem::Error::from_status(StatusCode::METHOD_NOT_ALLOWED));
        }
        let path = req.uri().path().trim_start_matches('/');
        if path == "api" || path.starts_with("api/") {
            return Err(poem::Error::from_status(StatusCode::NOT_FOUND));
        }
        if let Some(body) = self.file(path).filter(|_| path != "index.html") {
            let cache = if path.starts_with("assets/") {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            };
            return Ok(Response::builder()
                .content_type(content_type(path))
                .header(header::CACHE_CONTROL, cache)
                .header("x-content-type-options", "nosniff")
                .body(body));
        }
        // A missing hashed asset is a 404, not the app (a stale page must not get HTML as JS).
        if path.starts_with("assets/") {
            return Err(poem::Error::from_status(StatusCode::NOT_FOUND));
        }
        Ok(html(
            self.file("index.html")
                .unwrap_or_else(|| MISSING.as_bytes().to_vec()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(ep: &Dashboard, path: &str) -> Response {
        match ep.call(Request::builder().uri_str(path).finish()).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        }
    }

    fn header<'a>(r: &'a Response, name: &str) -> &'a str {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[tokio::test]
    async fn serves_the_app_its_assets_and_client_routes() {
        let dir = std::env::temp_dir().join(format!("pressluft-web-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("assets")).unwrap();
        std::fs::write(dir.join("index.html"), "<!doctype html><p>app</p>").unwrap();
        std::fs::write(dir.join("assets/index-abc.js"), "export{}").unwrap();
        let ep = Dashboard::new(Some(dir.clone()));

        for path in ["/", "/sites/0193", "/jobs"] {
            let r = get(&ep, path).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert_eq!(header(&r, "cache-control"), "no-cache");
            assert_eq!(header(&r, "content-security-policy"), CSP);
            assert!(r.into_body().into_string().await.unwrap().contains("app"));
        }
        let r = get(&ep, "/assets/index-abc.js").await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(header(&r, "content-type").starts_with("text/javascript"));
        assert!(header(&r, "cache-control").contains("immutable"));
        // A missing hashed asset or an unknown API path is never the app.
        assert_eq!(
            get(&ep, "/assets/gone.js").await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(get(&ep, "/api/nope").await.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            get(&ep, "/assets/../index.html").await.status(),
            StatusCode::NOT_FOUND
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn without_a_build_it_says_how_to_make_one() {
        let dir = std::env::temp_dir().join(format!("pressluft-web-none-{}", std::process::id()));
        let r = get(&Dashboard::new(Some(dir)), "/").await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r
            .into_body()
            .into_string()
            .await
            .unwrap()
            .contains("scripts/build-web.sh"));
    }
}
