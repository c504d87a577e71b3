//! A typed HTTP client for tests: a cookie jar, automatic `X-CSRF-Token`, no redirects.

use reqwest::header::{HeaderMap, COOKIE, SET_COOKIE};
use reqwest::Method;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use wrenn_extension_api::{API_KEY_HEADER, CSRF_COOKIE, CSRF_HEADER};

/// Talks to a test server, remembering cookies like a browser (without domain rules: one host).
#[derive(Clone)]
pub struct TestClient {
    pub base: String,
    http: reqwest::Client,
    jar: Arc<Mutex<BTreeMap<String, String>>>,
}

/// A finished response, fully read.
#[derive(Debug)]
pub struct TestResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl TestResponse {
    /// The body as JSON (`Value::Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// `error.code` of an error envelope.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn location(&self) -> Option<String> {
        self.headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// Asserts the status and that the body is an error envelope with `code`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        let v = self.json();
        assert_eq!(v["error"]["code"], code, "body: {}", self.text);
        assert!(v["error"]["message"].is_string(), "body: {}", self.text);
    }
}

/// A request being built.
pub struct TestRequest<'a> {
    client: &'a TestClient,
    method: Method,
    url: String,
    body: Option<Value>,
    raw: Option<(String, String)>,
    api_key: Option<String>,
    csrf: CsrfMode,
    cookies: bool,
}

enum CsrfMode {
    FromJar,
    Omit,
    Value(String),
}

impl TestClient {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("http client"),
            jar: Arc::default(),
        }
    }

    /// A copy of the cookie jar's value for `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar.lock().expect("jar").get(name).cloned()
    }

    pub fn set_cookie(&self, name: &str, value: &str) {
        self.jar
            .lock()
            .expect("jar")
            .insert(name.into(), value.into());
    }

    pub fn clear_cookies(&self) {
        self.jar.lock().expect("jar").clear();
    }

    /// A client sharing nothing with this one (empty jar).
    pub fn fresh(&self) -> Self {
        Self::new(&self.base)
    }

    pub fn request(&self, method: Method, path_or_url: &str) -> TestRequest<'_> {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            format!("{}{path_or_url}", self.base)
        };
        TestRequest {
            client: self,
            method,
            url,
            body: None,
            raw: None,
            api_key: None,
            csrf: CsrfMode::FromJar,
            cookies: true,
        }
    }

    /// `POST /v1/api-keys` as this (signed-in) client: the new key, which must be created.
    pub async fn new_api_key(&self, name: &str) -> String {
        let r = self
            .post("/v1/api-keys")
            .json(serde_json::json!({ "name": name }))
            .send()
            .await;
        assert_eq!(r.status, 201, "creating API key {name:?}: {}", r.text);
        r.json()["key"].as_str().expect("key").to_string()
    }

    pub fn get(&self, path: &str) -> TestRequest<'_> {
        self.request(Method::GET, path)
    }
    pub fn post(&self, path: &str) -> TestRequest<'_> {
        self.request(Method::POST, path)
    }
    pub fn patch(&self, path: &str) -> TestRequest<'_> {
        self.request(Method::PATCH, path)
    }
    pub fn put(&self, path: &str) -> TestRequest<'_> {
        self.request(Method::PUT, path)
    }
    pub fn delete(&self, path: &str) -> TestRequest<'_> {
        self.request(Method::DELETE, path)
    }

    fn store_cookies(&self, headers: &HeaderMap) {
        let mut jar = self.jar.lock().expect("jar");
        for v in headers.get_all(SET_COOKIE) {
            let Ok(v) = v.to_str() else { continue };
            let mut attrs = v.split(';');
            let Some((name, value)) = attrs.next().and_then(|kv| kv.trim().split_once('=')) else {
                continue;
            };
            let expired = attrs.any(|a| a.trim().eq_ignore_ascii_case("max-age=0"));
            if expired || value.is_empty() {
                jar.remove(name);
            } else {
                jar.insert(name.to_string(), value.to_string());
            }
        }
    }
}

impl TestRequest<'_> {
    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    /// A raw body with a content type (for malformed-input tests).
    pub fn raw(mut self, content_type: &str, body: &str) -> Self {
        self.raw = Some((content_type.into(), body.into()));
        self
    }

    /// Sends `X-API-Key` and no cookies.
    pub fn api_key(mut self, key: &str) -> Self {
        self.api_key = Some(key.into());
        self.cookies = false;
        self
    }

    /// Leaves out `X-CSRF-Token`.
    pub fn no_csrf(mut self) -> Self {
        self.csrf = CsrfMode::Omit;
        self
    }

    /// Sends this `X-CSRF-Token` instead of the cookie's.
    pub fn csrf(mut self, value: &str) -> Self {
        self.csrf = CsrfMode::Value(value.into());
        self
    }

    pub async fn send(self) -> TestResponse {
        let c = self.client;
        let mut req = c.http.request(self.method, &self.url);
        if self.cookies {
            let jar = c.jar.lock().expect("jar").clone();
            if !jar.is_empty() {
                let header = jar
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                req = req.header(COOKIE, header);
            }
            match &self.csrf {
                CsrfMode::FromJar => {
                    if let Some(v) = jar.get(CSRF_COOKIE) {
                        req = req.header(CSRF_HEADER, v);
                    }
                }
                CsrfMode::Value(v) => req = req.header(CSRF_HEADER, v),
                CsrfMode::Omit => {}
            }
        }
        if let Some(key) = &self.api_key {
            req = req.header(API_KEY_HEADER, key);
        }
        if let Some(body) = &self.body {
            req = req.json(body);
        }
        if let Some((ct, body)) = self.raw {
            req = req.header(reqwest::header::CONTENT_TYPE, ct).body(body);
        }
        let response = req.send().await.expect("request reaches the server");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        c.store_cookies(&headers);
        let text = response.text().await.unwrap_or_default();
        TestResponse {
            status,
            headers,
            text,
        }
    }
}
