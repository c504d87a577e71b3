//! `POST /v1/capsules` consults every extension's LimitsProvider (the strictest wins, usage
//! counted in the database) and AdmissionHook before scheduling, inside the insert
//! transaction under the team's lock, with API.md's 402 codes or the hook's own refusal, and
//! creates nothing when it refuses. `POST /v1/snapshots` holds the team's snapshot cap.

use cpserver::test_support::stack as capsules_support;

use capsules_support::Stack;
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use uuid::Uuid;
use wrenn_extension_api::{
    async_trait, Admission, AdmissionHook, AdmissionRequest, EffectiveLimits, Extension, HookError,
    LimitsProvider, ServerContext,
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
        Ok(EffectiveLimits::unlimited()
            .with_concurrent_sandboxes(1)
            .with_vcpus(2)
            .with_memory_mb(1024))
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

/// A fixed ceiling of concurrent capsules.
struct Ceiling(u32);

#[async_trait]
impl LimitsProvider for Ceiling {
    async fn effective_limits(
        &self,
        _ctx: &ServerContext,
        _team: Uuid,
    ) -> Result<EffectiveLimits, HookError> {
        Ok(EffectiveLimits::unlimited().with_concurrent_sandboxes(self.0))
    }
}

/// Refuses capsules of a template named `forbidden`, fails on `flaky`; counts its calls.
struct Gate(Arc<std::sync::atomic::AtomicU32>);

#[async_trait]
impl AdmissionHook for Gate {
    async fn admit(
        &self,
        _ctx: &ServerContext,
        conn: &mut sqlx::PgConnection,
        request: &AdmissionRequest,
    ) -> Result<Admission, HookError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        // The hook runs inside the insert transaction: its own query sees the lock held.
        let locked: bool = sqlx::query_scalar(
            "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
        )
        .fetch_one(&mut *conn)
        .await?;
        if !locked {
            return Err(HookError::new("admission ran outside the team lock"));
        }
        if request.vcpus == 3 {
            return Ok(Admission::deny(
                axum::http::StatusCode::FORBIDDEN,
                "odd_vcpus",
                "this platform does not run 3-vCPU capsules",
            ));
        }
        if request.vcpus == 4 {
            return Err(HookError::new("quota service down"));
        }
        Ok(Admission::Allow)
    }
}

struct Strict {
    ceilings: Vec<u32>,
    calls: Arc<std::sync::atomic::AtomicU32>,
}

impl Extension for Strict {
    fn name(&self) -> &str {
        "test-strict"
    }
    fn limits_provider(&self) -> Option<Arc<dyn LimitsProvider>> {
        Some(Arc::new(Ceiling(self.ceilings[0])))
    }
    fn admission_hook(&self) -> Option<Arc<dyn AdmissionHook>> {
        Some(Arc::new(Gate(self.calls.clone())))
    }
}

struct Loose(u32);

impl Extension for Loose {
    fn name(&self) -> &str {
        "test-loose"
    }
    fn limits_provider(&self) -> Option<Arc<dyn LimitsProvider>> {
        Some(Arc::new(Ceiling(self.0)))
    }
}

async fn team_of(stack: &Stack, account: &capsules_support::Account) -> Uuid {
    sqlx::query_scalar(
        "SELECT ut.team_id FROM users_teams ut JOIN users u ON u.id = ut.user_id WHERE u.email = $1",
    )
    .bind(&account.email)
    .fetch_one(stack.ctx().db())
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_creates_against_a_limit_of_five_admit_exactly_five() {
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let strict = Strict {
        ceilings: vec![5],
        calls: calls.clone(),
    };
    // Two providers: the stricter ceiling (5) wins over the looser one (50).
    let Some(stack) = Stack::start_with(move |b| b.extension(Loose(50)).extension(strict)).await
    else {
        return;
    };
    let team = stack.account("burst").await;
    let team_id = team_of(&stack, &team).await;

    let r = stack
        .req(&team, Method::POST, "/v1/capsules")
        .json(&json!({"vcpus": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "odd_vcpus"
    );
    let r = stack
        .req(&team, Method::POST, "/v1/capsules")
        .json(&json!({"vcpus": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "admission_unavailable"
    );

    let creates = (0..20).map(|_| {
        let req = stack
            .req(&team, Method::POST, "/v1/capsules")
            .json(&json!({"memory_mb": 128}));
        async move { req.send().await.unwrap().status().as_u16() }
    });
    let mut statuses = futures::future::join_all(creates).await;
    statuses.sort();
    let admitted = statuses.iter().filter(|s| **s == 201).count();
    let refused = statuses.iter().filter(|s| **s == 402).count();
    assert_eq!((admitted, refused), (5, 15), "{statuses:?}");
    let (live,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM capsules WHERE status NOT IN ('stopped', 'error')")
            .fetch_one(stack.ctx().db())
            .await
            .unwrap();
    assert_eq!(live, 5, "refused creates left no row behind");
    // The limits check refuses before the hook; the hook ran for the 5 admitted and the two
    // probes above.
    assert_eq!(calls.load(Ordering::SeqCst), 7);

    // The facade sees the same figures and acts as the extension.
    let usage = stack.ctx().capsules().usage(team_id).await.unwrap();
    assert_eq!(usage.concurrent_sandboxes, 5);
    let listed = stack.ctx().capsules().list(team_id).await.unwrap();
    assert_eq!(listed.len(), 5);
    assert!(listed.iter().all(|c| c.status == "running"), "{listed:?}");
    stack
        .ctx()
        .capsules()
        .pause("test-strict", team_id, listed[0].id)
        .await
        .unwrap();
    stack
        .ctx()
        .capsules()
        .destroy("test-strict", team_id, listed[1].id)
        .await
        .unwrap();
    let other = stack.account("other").await;
    let other_id = team_of(&stack, &other).await;
    let err = stack
        .ctx()
        .capsules()
        .destroy("test-strict", other_id, listed[2].id)
        .await
        .unwrap_err();
    assert_eq!(
        err.code, "not_found",
        "another team's capsule is not reachable"
    );
    let (actor,): (String,) = sqlx::query_as(
        "SELECT actor_type FROM audit_logs WHERE action = 'capsule.pause' ORDER BY created_at DESC LIMIT 1",
    )
    .fetch_one(stack.ctx().db())
    .await
    .unwrap();
    assert_eq!(actor, "extension");
    stack.shutdown().await;
}

/// `POST /v1/snapshots` beyond `--max-snapshots-per-team` answers 409 `snapshot_limit`,
/// writes nothing and leaves the capsule as it was; deleting one makes room again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_keeps_at_most_its_cap_of_snapshots() {
    let Some(stack) =
        Stack::start_configured(|b| b, |c| c.capsules.max_snapshots_per_team = 1).await
    else {
        return;
    };
    let ada = stack.account("ada").await;
    let capsule = stack.create(&ada, json!({})).await;
    let id = capsule["id"].as_str().unwrap();
    let snapshot = |name: &str| {
        stack
            .req(&ada, Method::POST, "/v1/snapshots")
            .json(&json!({"sandbox_id": id, "name": name}))
            .send()
    };
    let names = || async {
        let list: Vec<Value> = stack
            .req(&ada, Method::GET, "/v1/snapshots?type=snapshot")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list.iter()
            .filter_map(|t| t["name"].as_str().map(str::to_owned))
            .collect::<Vec<_>>()
    };

    let r = snapshot("first").await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = snapshot("second").await.unwrap();
    assert_eq!(r.status(), 409);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "snapshot_limit", "{body}");
    assert_eq!(names().await, vec!["first".to_owned()]);
    let now: Value = stack
        .req(&ada, Method::GET, &format!("/v1/capsules/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        now["status"], "paused",
        "the refusal left the capsule as it was"
    );

    let r = stack
        .req(&ada, Method::DELETE, "/v1/snapshots/first")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = snapshot("second").await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    assert_eq!(names().await, vec!["second".to_owned()]);
    stack.shutdown().await;
}
