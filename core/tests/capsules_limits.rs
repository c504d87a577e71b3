//! `POST /v1/capsules` consults the extensions' LimitsProvider (usage defaulting to the
//! database count) before scheduling, with API.md's 402 codes, and creates nothing when it
//! refuses.

mod capsules_support;

use capsules_support::Stack;
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use uuid::Uuid;
use wrenn_extension_api::{
    async_trait, EffectiveLimits, Extension, HookError, LimitsProvider, ServerContext,
};

/// One capsule, 2 vCPUs, 1 GiB per team; fails on demand.
struct SmallPlan {
    broken: Arc<AtomicBool>,
}

#[async_trait]
impl LimitsProvider for SmallPlan {
    async fn effective_limits(
        &self,
        _ctx: &ServerContext,
        _team: Uuid,
    ) -> Result<EffectiveLimits, HookError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(HookError::new("billing backend unreachable"));
        }
        Ok(EffectiveLimits {
            max_concurrent_sandboxes: Some(1),
            max_vcpus: Some(2),
            max_memory_mb: Some(1024),
        })
    }
}

struct Plans(Arc<AtomicBool>);

impl Extension for Plans {
    fn name(&self) -> &str {
        "test-plans"
    }

    fn limits_provider(&self) -> Option<Arc<dyn LimitsProvider>> {
        Some(Arc::new(SmallPlan {
            broken: self.0.clone(),
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_enforced_with_402_codes() {
    let broken = Arc::new(AtomicBool::new(false));
    let ext = Plans(broken.clone());
    let Some(stack) = Stack::start_with(move |b| b.extension(ext)).await else {
        return;
    };
    let team = stack.account("plan").await;
    let refused = |body: Value, code: &'static str| {
        let stack = &stack;
        let team = &team;
        async move {
            let r = stack
                .req(team, Method::POST, "/v1/capsules")
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 402, "{body}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error"]["code"], code, "{body}");
        }
    };
    refused(json!({"vcpus": 3}), "vcpu_limit").await;
    refused(json!({"memory_mb": 2048}), "memory_limit").await;
    let capsules: i64 = sqlx::query_scalar("SELECT count(*) FROM capsules")
        .fetch_one(stack.ctx().db())
        .await
        .unwrap();
    assert_eq!(capsules, 0, "refused requests create nothing");

    let first = stack
        .create(&team, json!({"vcpus": 1, "memory_mb": 512}))
        .await;
    refused(
        json!({"vcpus": 1, "memory_mb": 256}),
        "concurrent_sandbox_limit",
    )
    .await;
    broken.store(true, Ordering::SeqCst);
    refused(json!({}), "usage_unavailable").await;
    broken.store(false, Ordering::SeqCst);

    // Destroying frees the slot (usage is the database count of live capsules).
    let id = first["id"].as_str().unwrap();
    let r = stack
        .req(&team, Method::DELETE, &format!("/v1/capsules/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    stack.create(&team, json!({"memory_mb": 256})).await;

    stack.shutdown().await;
}
