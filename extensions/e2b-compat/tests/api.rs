//! E2B's REST surface and data plane at the HTTP level, against a real control plane, agent
//! and gVisor capsules: error bodies, bad input changing nothing, team isolation, tokens,
//! timeouts with auto-pause, connect semantics, paging, and other ports.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use cpserver::test_support::stack::{Account, Stack};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use wrenn_ext_e2b::{E2b, E2bConfig};

struct Api {
    stack: Stack,
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn start() -> Option<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut config = E2bConfig::new(listener.local_addr().unwrap());
        config.domain = Some("e2b.test".into());
        let stack =
            Stack::start_with(move |b| b.extension(E2b::new(config).with_listener(listener)))
                .await?;
        Some(Self {
            stack,
            base,
            http: reqwest::Client::new(),
        })
    }

    fn req(&self, who: Option<&Account>, method: Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match who {
            Some(a) => r.header("X-API-KEY", a.api_key.replacen("wrn_", "e2b_", 1)),
            None => r,
        }
    }

    async fn send(
        &self,
        r: reqwest::RequestBuilder,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let resp = r.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
        };
        (status, body, headers)
    }

    /// Creates a `base` sandbox; returns its body.
    async fn create(&self, who: &Account, extra: Value) -> Value {
        let mut body = json!({"templateID": "base"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (s, v, _) = self
            .send(
                self.req(Some(who), Method::POST, "/v2/sandboxes")
                    .json(&body),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}\n{}", self.stack.agent_log());
        v
    }

    async fn state(&self, who: &Account, id: &str) -> (StatusCode, Value) {
        let (s, v, _) = self
            .send(self.req(Some(who), Method::GET, &format!("/sandboxes/{id}")))
            .await;
        (s, v)
    }

    /// A data-plane request routed by header.
    fn envd(&self, id: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header("E2b-Sandbox-Id", id)
            .header("E2b-Sandbox-Port", "49983")
    }
}

/// The E2B error body: `{"code": <the status>, "message": <text>}`.
fn assert_e2b_error(status: StatusCode, body: &Value, want: StatusCode) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["code"], want.as_u16(), "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_surface_refuses_bad_input_isolates_teams_and_follows_e2b_semantics() {
    let Some(api) = Api::start().await else {
        return;
    };
    let alice = api.stack.account("alice").await;
    let bob = api.stack.account("bob").await;

    // Credentials: none, a bad key, and Wrenn's own key shape.
    let (s, v, _) = api.send(api.req(None, Method::GET, "/v2/sandboxes")).await;
    assert_e2b_error(s, &v, StatusCode::UNAUTHORIZED);
    let (s, v, _) = api
        .send(
            api.req(None, Method::GET, "/v2/sandboxes")
                .header("X-API-KEY", "e2b_00000000000000000000000000000000"),
        )
        .await;
    assert_e2b_error(s, &v, StatusCode::UNAUTHORIZED);
    let (s, v, _) = api
        .send(
            api.req(None, Method::GET, "/v2/sandboxes")
                .header("X-API-KEY", &alice.api_key),
        )
        .await;
    assert_eq!((s, v), (StatusCode::OK, json!([])));

    // Bad input: an error in E2B's shape, and nothing created.
    for (body, want) in [
        (json!({}), StatusCode::BAD_REQUEST),
        (
            json!({"templateID": "base", "timeout": 0}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"templateID": "base", "timeout": 90000}),
            StatusCode::BAD_REQUEST,
        ),
        (json!({"templateID": 7}), StatusCode::BAD_REQUEST),
        (
            json!({"templateID": "no-such-template"}),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (s, v, _) = api
            .send(
                api.req(Some(&alice), Method::POST, "/sandboxes")
                    .json(&body),
            )
            .await;
        assert_e2b_error(s, &v, want);
    }
    let (s, v, _) = api
        .send(
            api.req(Some(&alice), Method::POST, "/v2/sandboxes")
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await;
    assert_e2b_error(s, &v, StatusCode::BAD_REQUEST);
    let (s, v, _) = api
        .send(api.req(Some(&alice), Method::GET, "/v2/sandboxes?state=dead"))
        .await;
    assert_e2b_error(s, &v, StatusCode::BAD_REQUEST);
    let capsules = api
        .stack
        .req(&alice, Method::GET, "/v1/capsules")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(capsules, json!([]), "bad creates left capsules behind");

    // A sandbox that pauses itself at its end.
    let sb = api
        .create(
            &alice,
            json!({"timeout": 3, "autoPause": true, "metadata": {"k": "v"}}),
        )
        .await;
    let id = sb["sandboxID"].as_str().unwrap().to_string();
    for field in ["templateID", "clientID", "envdVersion", "envdAccessToken"] {
        assert!(sb[field].is_string(), "{field} missing: {sb}");
    }
    assert_eq!(sb["domain"], "e2b.test");
    let token = sb["envdAccessToken"].as_str().unwrap().to_string();
    let (s, detail) = api.state(&alice, &id).await;
    assert_eq!(s, StatusCode::OK, "{detail}");
    assert_eq!(detail["state"], "running");
    assert_eq!(detail["metadata"], json!({"k": "v"}));
    for field in ["startedAt", "endAt", "cpuCount", "memoryMB", "diskSizeMB"] {
        assert!(!detail[field].is_null(), "{field} missing: {detail}");
    }

    // Another team sees nothing and can touch nothing.
    let (s, v) = api.state(&bob, &id).await;
    assert_e2b_error(s, &v, StatusCode::NOT_FOUND);
    for (method, path) in [
        (Method::DELETE, format!("/sandboxes/{id}")),
        (Method::POST, format!("/sandboxes/{id}/pause")),
        (Method::POST, format!("/sandboxes/{id}/timeout")),
        (Method::POST, format!("/v2/sandboxes/{id}/connect")),
        (Method::GET, format!("/sandboxes/{id}/metrics")),
    ] {
        let (s, v, _) = api
            .send(
                api.req(Some(&bob), method, &path)
                    .json(&json!({"timeout": 30})),
            )
            .await;
        assert_e2b_error(s, &v, StatusCode::NOT_FOUND);
    }
    let (_, listed, _) = api
        .send(api.req(Some(&bob), Method::GET, "/v2/sandboxes"))
        .await;
    assert_eq!(listed, json!([]));

    // The data plane: envd needs the sandbox's token (only /health is open).
    let (s, _, _) = api.send(api.envd(&id, Method::GET, "/health")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let list = |token: Option<&str>| {
        let mut r = api
            .envd(&id, Method::POST, "/process.Process/List")
            .header("content-type", "application/json")
            .body("{}");
        if let Some(t) = token {
            r = r.header("X-Access-Token", t);
        }
        r
    };
    let (s, v, _) = api.send(list(None)).await;
    assert_e2b_error(s, &v, StatusCode::UNAUTHORIZED);
    let (s, v, _) = api.send(list(Some("not-the-token"))).await;
    assert_e2b_error(s, &v, StatusCode::UNAUTHORIZED);
    let (s, v, _) = api.send(list(Some(&token))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["processes"].is_array() || v == json!({}), "{v}");
    let (s, v, _) = api
        .send(api.envd("unknownsandbox1", Method::GET, "/health"))
        .await;
    assert_eq!(s, StatusCode::BAD_GATEWAY);
    assert!(
        v["message"].as_str().unwrap().contains("was not found"),
        "{v}"
    );

    // At its end it pauses (autoPause), and stays listed as paused.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v) = api.state(&alice, &id).await;
        if v["state"] == "paused" {
            break;
        }
        assert!(Instant::now() < deadline, "not paused at its end: {v}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (s, v, _) = api
        .send(api.req(
            Some(&alice),
            Method::POST,
            &format!("/sandboxes/{id}/pause"),
        ))
        .await;
    assert_e2b_error(s, &v, StatusCode::CONFLICT);
    let (_, paused, _) = api
        .send(api.req(Some(&alice), Method::GET, "/v2/sandboxes?state=paused"))
        .await;
    assert_eq!(paused.as_array().unwrap().len(), 1, "{paused}");
    let (_, running, _) = api
        .send(api.req(Some(&alice), Method::GET, "/sandboxes"))
        .await;
    assert_eq!(running, json!([]), "v1 lists running sandboxes only");
    let (s, v, _) = api.send(list(Some(&token))).await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "a paused sandbox's envd: {v}");

    // Connect resumes a paused sandbox (201), and only extends a running one's end (200).
    let connect = |timeout: u32| {
        api.req(
            Some(&alice),
            Method::POST,
            &format!("/v2/sandboxes/{id}/connect"),
        )
        .json(&json!({"timeout": timeout}))
    };
    let (s, v, _) = api.send(connect(120)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, v) = api.state(&alice, &id).await;
    assert_eq!(v["state"], "running");
    let end = v["endAt"].as_str().unwrap().to_string();
    let (s, _, _) = api.send(connect(5)).await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = api.state(&alice, &id).await;
    assert_eq!(
        v["endAt"],
        end.as_str(),
        "a shorter connect moved the end earlier"
    );
    let (s, _, _) = api
        .send(
            api.req(
                Some(&alice),
                Method::POST,
                &format!("/sandboxes/{id}/timeout"),
            )
            .json(&json!({"timeout": 600})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v, _) = api
        .send(
            api.req(
                Some(&alice),
                Method::POST,
                &format!("/sandboxes/{id}/timeout"),
            )
            .json(&json!({})),
        )
        .await;
    assert_e2b_error(s, &v, StatusCode::BAD_REQUEST);

    // Pause and resume explicitly: 204, 201, then 409 for a running sandbox.
    let (s, _, _) = api
        .send(api.req(
            Some(&alice),
            Method::POST,
            &format!("/sandboxes/{id}/pause"),
        ))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, v) = api.state(&alice, &id).await;
    assert_eq!(v["state"], "paused", "{v}");
    let resume = || {
        api.req(
            Some(&alice),
            Method::POST,
            &format!("/sandboxes/{id}/resume"),
        )
        .json(&json!({"timeout": 600}))
    };
    let (s, v, _) = api.send(resume()).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["sandboxID"], id.as_str());
    let (s, v, _) = api.send(resume()).await;
    assert_e2b_error(s, &v, StatusCode::CONFLICT);

    // Other ports reach the capsule's port (public, as in E2B).
    let wire = format!("sb_{id}");
    let started = api
        .stack
        .req(&alice, Method::POST, &format!("/v1/capsules/{wire}/exec"))
        .json(
            &json!({"cmd": "python3", "args": ["-m", "http.server", "8000", "-d", "/etc"],
                      "background": true}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = api
            .http
            .get(format!("{}/os-release", api.base))
            .header("E2b-Sandbox-Id", &id)
            .header("E2b-Sandbox-Port", "8000")
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::OK {
            assert!(r.text().await.unwrap().contains("Debian"));
            break;
        }
        assert!(Instant::now() < deadline, "port 8000: {}", r.status());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let r = api
        .http
        .get(format!("{}/", api.base))
        .header("E2b-Sandbox-Id", &id)
        .header("E2b-Sandbox-Port", "8001")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let text = r.text().await.unwrap();
    assert!(text.contains("port 8001 is not open"), "{text}");

    // Paging: two sandboxes, one per page, with X-Next-Token.
    let second = api
        .create(
            &alice,
            json!({"metadata": {"k": "v"}, "allow_internet_access": false,
                   "network": {"allowPublicTraffic": false}}),
        )
        .await;
    // No internet asked for: the capsule's egress policy denies everything.
    let capsule: Value = api
        .stack
        .req(
            &alice,
            Method::GET,
            &format!("/v1/capsules/sb_{}", second["sandboxID"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(capsule["network"]["mode"], "deny_all", "{capsule}");
    // No public traffic asked for: its other ports need the trafficAccessToken.
    let traffic = second["trafficAccessToken"]
        .as_str()
        .expect("trafficAccessToken");
    let port = |token: Option<&str>| {
        let mut r = api
            .http
            .get(format!("{}/", api.base))
            .header("E2b-Sandbox-Id", second["sandboxID"].as_str().unwrap())
            .header("E2b-Sandbox-Port", "8001");
        if let Some(t) = token {
            r = r.header("e2b-traffic-access-token", t);
        }
        r
    };
    let (s, v, _) = api.send(port(None)).await;
    assert_e2b_error(s, &v, StatusCode::UNAUTHORIZED);
    let (s, v, _) = api.send(port(Some("not-the-token"))).await;
    assert_e2b_error(s, &v, StatusCode::UNAUTHORIZED);
    let (s, v, _) = api.send(port(Some(traffic))).await;
    assert_eq!(
        s,
        StatusCode::BAD_GATEWAY,
        "past the token, nothing listens: {v}"
    );
    assert!(v["message"].as_str().unwrap().contains("not open"), "{v}");
    let (_, page1, h) = api
        .send(api.req(
            Some(&alice),
            Method::GET,
            "/v2/sandboxes?limit=1&metadata=k%3Dv",
        ))
        .await;
    assert_eq!(page1.as_array().unwrap().len(), 1, "{page1}");
    let next = h["x-next-token"].to_str().unwrap().to_string();
    let (_, page2, h2) = api
        .send(api.req(
            Some(&alice),
            Method::GET,
            &format!("/v2/sandboxes?limit=1&metadata=k%3Dv&nextToken={next}"),
        ))
        .await;
    assert_eq!(page2.as_array().unwrap().len(), 1, "{page2}");
    assert!(h2.get("x-next-token").is_none());
    let mut ids = vec![
        page1[0]["sandboxID"].as_str().unwrap(),
        page2[0]["sandboxID"].as_str().unwrap(),
    ];
    ids.sort();
    let mut want = vec![id.as_str(), second["sandboxID"].as_str().unwrap()];
    want.sort();
    assert_eq!(ids, want);

    // Kill: 204, then 404; the data plane says it was not found.
    for sandbox in [id.as_str(), second["sandboxID"].as_str().unwrap()] {
        let (s, _, _) = api
            .send(api.req(
                Some(&alice),
                Method::DELETE,
                &format!("/sandboxes/{sandbox}"),
            ))
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, v, _) = api
            .send(api.req(
                Some(&alice),
                Method::DELETE,
                &format!("/sandboxes/{sandbox}"),
            ))
            .await;
        assert_e2b_error(s, &v, StatusCode::NOT_FOUND);
    }
    let (s, v, _) = api.send(list(Some(&token))).await;
    assert_eq!(s, StatusCode::BAD_GATEWAY);
    assert!(
        v["message"].as_str().unwrap().contains("was not found"),
        "{v}"
    );
    api.stack.shutdown().await;
}
