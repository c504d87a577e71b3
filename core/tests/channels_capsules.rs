//! Channels and hooks with real capsules: a team with a webhook and a Slack channel creates
//! and pauses a gVisor capsule; the webhook receiver gets signed `capsule.create` and
//! `capsule.pause` deliveries, the Slack receiver their text, and an extension's
//! `SandboxEventHook` sees both.

use cpserver::test_support::stack as capsules_support;

use capsules_support::Stack;
use cpserver::test_support::receiver::Receiver;
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wrenn_extension_api::{Extension, HookError, SandboxEvent, SandboxEventHook, ServerContext};

#[derive(Default)]
struct Seen(Mutex<Vec<SandboxEvent>>);

#[async_trait::async_trait]
impl SandboxEventHook for Seen {
    async fn on_sandbox_event(&self, _: &ServerContext, e: &SandboxEvent) -> Result<(), HookError> {
        self.0.lock().unwrap().push(e.clone());
        Ok(())
    }
}

struct Metering(Arc<Seen>);

impl Extension for Metering {
    fn name(&self) -> &str {
        "metering"
    }
    fn sandbox_event_hook(&self) -> Option<Arc<dyn SandboxEventHook>> {
        Some(self.0.clone())
    }
}

fn hmac_hex(secret: &str, message: &[u8]) -> String {
    // Python's hmac module: an implementation independent of the control plane's signer.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m");
    std::fs::write(&path, message).unwrap();
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg("import hmac,hashlib,sys;print(hmac.new(sys.argv[1].encode(),open(sys.argv[2],'rb').read(),hashlib.sha256).hexdigest())")
        .arg(secret)
        .arg(&path)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn capsule_lifecycle_events_reach_webhooks_chat_and_hooks() {
    let seen = Arc::new(Seen::default());
    let ext = seen.clone();
    let Some(stack) = Stack::start_with(move |b| b.extension(Metering(ext))).await else {
        return;
    };
    let who = stack.account("events").await;
    let webhook = Receiver::start().await;
    let slack = Receiver::start().await;
    let mut secret = String::new();
    for (provider, url) in [("webhook", &webhook.url), ("slack", &slack.url)] {
        let r = stack
            .req(&who, Method::POST, "/v1/channels")
            .json(
                &json!({"name": provider, "provider": provider, "config": {"url": url},
                          "events": ["capsule.create", "capsule.pause"]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let body: Value = r.json().await.unwrap();
        if provider == "webhook" {
            secret = body["signing_secret"].as_str().unwrap().to_string();
        }
    }
    let capsule = stack.create(&who, json!({"memory_mb": 128})).await;
    let id = capsule["id"].as_str().unwrap().to_string();
    let r = stack
        .req(&who, Method::POST, &format!("/v1/capsules/{id}/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    let got = webhook.wait_for(2, 20).await;
    assert_eq!(got.len(), 2, "{got:?}");
    for (r, event) in got.iter().zip(["capsule.create", "capsule.pause"]) {
        let body = r.json();
        assert_eq!(body["event"], event);
        assert_eq!(body["outcome"], "success");
        assert_eq!(body["resource"]["id"], id.as_str());
        assert_eq!(body["actor"]["type"], "api_key");
        let ts = r.header("x-wrenn-timestamp");
        let mut signed = ts.clone().into_bytes();
        signed.push(b'.');
        signed.extend_from_slice(&r.body);
        assert_eq!(
            r.header("x-wrenn-signature"),
            format!("sha256={}", hmac_hex(&secret, &signed))
        );
    }
    let texts = slack.wait_for(2, 20).await;
    let texts: Vec<String> = texts
        .iter()
        .map(|r| r.json()["text"].as_str().unwrap().to_string())
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("✅ capsule.create succeeded") && t.contains(&id)),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("✅ capsule.pause succeeded")),
        "{texts:?}"
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.0.lock().unwrap().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let hooked: Vec<(String, String)> = seen
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e.event.clone(),
                wrenn_extension_api::ids::encode(wrenn_extension_api::ids::CAPSULE, e.capsule_id),
            )
        })
        .collect();
    assert_eq!(
        hooked,
        vec![
            ("capsule.create".to_string(), id.clone()),
            ("capsule.pause".to_string(), id.clone())
        ]
    );
    stack.shutdown().await;
}
