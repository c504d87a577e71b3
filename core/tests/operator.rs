//! The operator's view with real gVisor capsules: the admin capsule listing across teams
//! (with hosts), deleting a team destroys its capsules on the host, and the Prometheus
//! metrics of the control plane and the agent count what happened, without ids in labels.
//! Run as root with runsc installed; otherwise the test prints why it skips.

use cpserver::test_support::stack::{Account, Stack};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const TOKEN: &str = "scrape-token-for-tests";

/// The value of the sample `name{labels}` in OpenMetrics `text` (labels as printed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_sees_every_team_and_deleting_a_team_destroys_its_capsules() {
    let Some(stack) = Stack::start_configured(
        |b| b,
        |c| {
            c.metrics_token = Some(TOKEN.into());
        },
    )
    .await
    else {
        return;
    };
    let admin = stack.account("admin").await;
    let alice = stack.account("alice").await;
    let bob = stack.account("bob").await;
    let a = stack.create(&alice, json!({})).await;
    let b = stack.create(&bob, json!({})).await;
    let a_id = a["id"].as_str().unwrap().to_string();
    let b_id = b["id"].as_str().unwrap().to_string();

    // The admin listing: both capsules, each with its team and host.
    let all = get_json(&stack, &admin, "/v1/admin/capsules").await;
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    for c in all {
        assert_eq!(c["status"], "running", "{c}");
        assert_eq!(
            c["host_id"].as_str(),
            Some(wire_host(&stack).as_str()),
            "{c}"
        );
        assert_eq!(
            c["host_address"].as_str(),
            Some(stack.agents[0].address.as_str())
        );
        assert!(
            c["team_name"]
                .as_str()
                .is_some_and(|n| n.ends_with("'s Team")),
            "{c}"
        );
    }
    // Filtered by team: only alice's.
    let alice_team = team_of(&stack, &alice).await;
    let mine: Value = get_json(
        &stack,
        &admin,
        &format!("/v1/admin/capsules?team_id={alice_team}"),
    )
    .await;
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(mine[0]["id"], a_id.as_str());
    // A team's own key never reaches the admin listing.
    let r = stack
        .req(&alice, Method::GET, "/v1/admin/capsules")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let usage: Value = get_json(&stack, &admin, "/v1/admin/teams?limit=200").await;
    let row = usage
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == alice_team.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["running_capsules"], 1, "{row}");
    assert_eq!(row["vcpus_in_use"], 1, "{row}");
    assert_eq!(row["memory_mb_in_use"], a["memory_mb"], "{row}");

    // Deleting alice's team destroys her capsule on the host; bob's keeps running.
    let containers_before = stack.agents[0].runsc_containers();
    assert_eq!(containers_before.len(), 2, "{containers_before:?}");
    let r = stack
        .session(
            &admin,
            Method::DELETE,
            &format!("/v1/admin/teams/{alice_team}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    let left = stack.agents[0].runsc_containers();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].contains(b_id.trim_start_matches("sb_")), "{left:?}");
    let stopped: Value = get_json(&stack, &admin, "/v1/admin/capsules?status=stopped").await;
    assert_eq!(stopped.as_array().unwrap().len(), 1, "{stopped}");
    assert_eq!(stopped[0]["id"], a_id.as_str());
    let r = stack
        .req(&bob, Method::GET, &format!("/v1/capsules/{b_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The destroy is in the audit trail, by the admin.
    let audit: Value = get_json(
        &stack,
        &admin,
        &format!("/v1/admin/audit-logs?team_id={alice_team}&action=capsule.destroy"),
    )
    .await;
    let rows = audit["audit_logs"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{audit}");
    assert_eq!(rows[0]["outcome"], "success");
    assert_eq!(rows[0]["actor"]["name"], admin.email.as_str());

    // The control plane's metrics: the operations and placements, by route pattern.
    let unauthorised = stack.http.get(stack.url("/metrics")).send().await.unwrap();
    assert_eq!(unauthorised.status(), 401);
    let wrong = stack
        .http
        .get(stack.url("/metrics"))
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let r = stack
        .http
        .get(stack.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = r.text().await.unwrap();
    let series = |s: &str| sample(&text, s).unwrap_or_else(|| panic!("no {s} in\n{text}"));
    assert_eq!(
        series(r#"wrenn_capsule_operations_total{operation="capsule.create",outcome="success"}"#),
        2.0
    );
    assert_eq!(
        series(r#"wrenn_capsule_operations_total{operation="capsule.destroy",outcome="success"}"#),
        1.0
    );
    assert_eq!(
        series(
            r#"wrenn_capsule_operation_duration_seconds_count{operation="capsule.create",outcome="success"}"#
        ),
        2.0
    );
    assert_eq!(
        series(r#"wrenn_scheduler_decisions_total{outcome="placed"}"#),
        2.0
    );
    assert_eq!(series(r#"wrenn_capsules{status="running"}"#), 1.0);
    assert_eq!(series(r#"wrenn_hosts{status="online"}"#), 1.0);
    assert!(
        series(r#"wrenn_http_requests_total{method="GET",route="/v1/capsules/{id}",status="200"}"#)
            >= 1.0
    );
    assert_eq!(
        series(r#"wrenn_http_requests_total{method="POST",route="/v1/capsules",status="201"}"#),
        2.0
    );
    for id in [&a_id, &b_id, &alice_team] {
        let digits = id.split('_').nth(1).unwrap();
        assert!(!text.contains(digits), "an id in the metrics: {id}");
    }

    // The agent's metrics: runsc commands, RPCs by method and code, capsules by state.
    let agent_text = agent_metrics(&stack).await;
    let series =
        |s: &str| sample(&agent_text, s).unwrap_or_else(|| panic!("no {s} in\n{agent_text}"));
    assert!(
        series(
            r#"wrenn_agent_runtime_command_duration_seconds_count{command="run",outcome="success"}"#
        ) >= 2.0
    );
    assert_eq!(
        series(r#"wrenn_agent_rpc_requests_total{method="CreateSandbox",code="ok"}"#),
        2.0
    );
    assert_eq!(
        series(r#"wrenn_agent_rpc_requests_total{method="DestroySandbox",code="ok"}"#),
        1.0
    );
    assert_eq!(series(r#"wrenn_agent_capsules{state="running"}"#), 1.0);
    assert!(!agent_text.contains(b_id.trim_start_matches("sb_")));
    let r = stack
        .http
        .get(format!("http://{}/other", stack.agents[0].metrics_address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    stack.shutdown().await;
}

/// `GET path` in `who`'s session, expecting 200 and JSON.
async fn get_json(stack: &Stack, who: &Account, path: &str) -> Value {
    let r = stack.session(who, Method::GET, path).send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

/// The agent's `/metrics`, waiting until it answers.
async fn agent_metrics(stack: &Stack) -> String {
    let url = format!("http://{}/metrics", stack.agents[0].metrics_address);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match stack.http.get(&url).send().await {
            Ok(r) if r.status() == 200 => return r.text().await.unwrap(),
            other => {
                assert!(Instant::now() < deadline, "agent metrics: {other:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

fn wire_host(stack: &Stack) -> String {
    wrenn_extension_api::ids::encode(wrenn_extension_api::ids::HOST, stack.host_id)
}

async fn team_of(stack: &Stack, who: &Account) -> String {
    let me: Value = stack
        .req(who, Method::GET, "/v1/me")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    me["auth"]["team_id"].as_str().expect("team id").to_string()
}
