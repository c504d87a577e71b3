//! Template builds end to end: the real control plane, a real agent and gVisor capsules.
//! Recipes are submitted over HTTP, followed over SSE, and the templates they make are used
//! through the public API only.

use base64::Engine;
use cpserver::test_support::stack::{Account, Stack, PLATFORM};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

async fn submit(stack: &Stack, who: &Account, body: Value) -> (u16, Value) {
    let r = stack
        .req(who, Method::POST, "/v1/builds")
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(stack: &Stack, who: &Account, path: &str) -> (u16, Value) {
    let r = stack.req(who, Method::GET, path).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Polls the build until it ends (at most `secs`).
async fn wait_end(stack: &Stack, who: &Account, id: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (s, b) = get(stack, who, &format!("/v1/builds/{id}")).await;
        assert_eq!(s, 200, "{b}");
        if ["succeeded", "failed", "cancelled"].contains(&b["status"].as_str().unwrap()) {
            return b;
        }
        assert!(
            Instant::now() < deadline,
            "build {id} did not end in {secs} s: {b}\nagent log:\n{}",
            stack.agent_log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every log line of a build, joined.
async fn log_text(stack: &Stack, who: &Account, id: &str) -> String {
    let (s, entries) = get(stack, who, &format!("/v1/builds/{id}/logs")).await;
    assert_eq!(s, 200, "{entries}");
    entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"].as_str().unwrap().to_string())
        .collect()
}

/// Follows a build's SSE stream to its `end` event: (event name, data) in order.
async fn follow(stack: &Stack, who: &Account, id: &str) -> Vec<(String, Value)> {
    let r = stack
        .req(
            who,
            Method::GET,
            &format!("/v1/builds/{id}/logs?follow=true"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut body = r.bytes_stream();
    let mut buf = String::new();
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let chunk = tokio::time::timeout_at(deadline.into(), body.next())
            .await
            .expect("the stream ends within 240 s");
        let Some(chunk) = chunk else { break };
        buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(at) = buf.find("\n\n") {
            let block: String = buf.drain(..at + 2).collect();
            let mut name = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if !name.is_empty() {
                events.push((name, serde_json::from_str(&data).unwrap_or(Value::Null)));
            }
        }
    }
    events
}

fn runsc_count(stack: &Stack) -> usize {
    stack.agents[0].runsc_containers().len()
}

fn template_dir(team_wire: &str, template_wire: &str) -> std::path::PathBuf {
    let strip = |s: &str| s.split_once('_').map(|(_, d)| d.to_string()).unwrap();
    cpserver::test_support::stack::images_dir()
        .join("teams")
        .join(strip(team_wire))
        .join(strip(template_wire))
}

#[tokio::test]
async fn recipes_become_templates_and_failures_leave_nothing_behind() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let ada = stack.account("ada").await;
    let eve = stack.account("eve").await;
    let started = Instant::now();

    // ---- a snapshot template: a STARTed server answering in every capsule made from it
    let recipe = "# a tiny web server\n\
        FROM minimal-busybox\n\
        ENV GREETING=\"hello builds\" MODE=test\n\
        WORKDIR /srv/www\n\
        COPY site/index.html ./\n\
        RUN echo built-$((6*7)) | tee built.txt\n\
        RUN echo to-stderr >&2\n\
        START httpd -f -p 8080 -h /srv/www\n\
        HEALTHCHECK --interval=200ms --timeout=2s --retries=50 CMD wget -q -O - http://127.0.0.1:8080/index.html\n";
    let page = b"<h1>served from a template</h1>\n";
    let (s, build) = submit(
        &stack,
        &ada,
        json!({"name": "web", "recipe": recipe,
               "files": [{"path": "site/index.html", "content_base64": b64(page)}]}),
    )
    .await;
    assert_eq!(s, 202, "{build}");
    assert_eq!(build["reused"], false);
    assert!(["queued", "running"].contains(&build["status"].as_str().unwrap()));
    let id = build["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("bld_"));
    let team = build["team_id"].as_str().unwrap().to_string();
    let steps: Vec<&str> = build["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["instruction"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "FROM",
            "ENV",
            "WORKDIR",
            "COPY",
            "RUN",
            "RUN",
            "START",
            "HEALTHCHECK",
            "SAVE"
        ]
    );

    let events = follow(&stack, &ada, &id).await;
    let (last, end) = events.last().expect("events");
    assert_eq!(last, "end", "{events:?}");
    assert_eq!(
        end["status"],
        "succeeded",
        "{end}\n{}",
        log_text(&stack, &ada, &id).await
    );
    assert_eq!(end["template_type"], "snapshot");
    assert!(end["template_id"].as_str().unwrap().starts_with("tpl_"));
    assert!(end["steps"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["status"] == "succeeded"));
    let logs: String = events
        .iter()
        .filter(|(n, _)| n == "log")
        .map(|(_, e)| e["data"].as_str().unwrap().to_string())
        .collect();
    assert!(logs.contains("built-42"), "{logs}");
    assert!(logs.contains("Step 5/9: RUN"), "{logs}");
    assert!(events.iter().any(|(n, _)| n == "status"), "{events:?}");
    // The same lines as JSON, stdout and stderr apart.
    let (_, entries) = get(&stack, &ada, &format!("/v1/builds/{id}/logs")).await;
    let entries = entries.as_array().unwrap();
    assert!(entries
        .iter()
        .any(|e| e["stream"] == "stderr" && e["data"].as_str().unwrap().contains("to-stderr")));
    let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    let (_, tail) = get(
        &stack,
        &ada,
        &format!("/v1/builds/{id}/logs?after={}", seqs[seqs.len() - 2]),
    )
    .await;
    assert_eq!(tail.as_array().unwrap().len(), 1);
    eprintln!("snapshot build: {:?}", started.elapsed());

    // The build's capsule is gone; the template is listed and on the host.
    let (_, capsule) = get(
        &stack,
        &ada,
        &format!("/v1/capsules/{}", end["capsule_id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(capsule["status"], "stopped", "{capsule}");
    let (_, templates) = get(&stack, &ada, "/v1/snapshots").await;
    let web = templates
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "web")
        .expect("the template is listed")
        .clone();
    assert_eq!(web["type"], "snapshot");
    assert!(template_dir(&team, web["id"].as_str().unwrap()).is_dir());

    // A capsule of it: the server answers at once, the recipe's ENV and WORKDIR apply.
    let c = stack.create(&ada, json!({"template": "web"})).await;
    let cid = c["id"].as_str().unwrap();
    let out = stack
        .exec(
            &ada,
            cid,
            "wget",
            &["-q", "-O", "-", "http://127.0.0.1:8080/index.html"],
        )
        .await;
    assert_eq!(out["exit_code"], 0, "{out}");
    assert_eq!(out["stdout"], String::from_utf8_lossy(page).as_ref());
    let out = stack
        .exec(
            &ada,
            cid,
            "sh",
            &["-c", "echo \"$GREETING/$MODE\"; pwd; cat built.txt"],
        )
        .await;
    assert_eq!(
        out["stdout"], "hello builds/test\n/srv/www\nbuilt-42\n",
        "{out}"
    );

    // ---- the same recipe and files again: the template is reused
    let (s, again) = submit(
        &stack,
        &ada,
        json!({"name": "web", "recipe": recipe,
               "files": [{"path": "site/index.html", "content_base64": b64(page)}]}),
    )
    .await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(again["reused"], true);
    assert_eq!(again["id"], id.as_str());

    // ---- a rebuild while a capsule of the template lives fails, and changes nothing
    let (s, blocked) = submit(
        &stack,
        &ada,
        json!({"name": "web", "recipe": recipe, "rebuild": true,
               "files": [{"path": "site/index.html", "content_base64": b64(page)}]}),
    )
    .await;
    assert_eq!(s, 202, "{blocked}");
    let blocked = wait_end(&stack, &ada, blocked["id"].as_str().unwrap(), 180).await;
    assert_eq!(blocked["status"], "failed");
    assert!(
        blocked["error"].as_str().unwrap().contains("live capsule"),
        "{blocked}"
    );
    assert!(blocked["template_id"].is_null());
    let (_, templates) = get(&stack, &ada, "/v1/snapshots").await;
    assert!(templates
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["id"] == web["id"]));
    let r = stack
        .req(&ada, Method::DELETE, &format!("/v1/capsules/{cid}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    // ---- a flattened (base) template: no START
    let flat = "FROM minimal-busybox\nRUN mkdir -p /opt/app && echo flat-1 > /opt/app/v\nUSER wrenn-user\n";
    let (s, b) = submit(&stack, &ada, json!({"name": "flat", "recipe": flat})).await;
    assert_eq!(s, 202, "{b}");
    let b = wait_end(&stack, &ada, b["id"].as_str().unwrap(), 180).await;
    assert_eq!(
        b["status"],
        "succeeded",
        "{b}\n{}\nagent log:\n{}",
        log_text(&stack, &ada, b["id"].as_str().unwrap()).await,
        stack.agent_log()
    );
    assert_eq!(b["template_type"], "base");
    let old_dir = template_dir(&team, b["template_id"].as_str().unwrap());
    assert!(old_dir.join("rootfs/opt/app/v").is_file());
    let c = stack.create(&ada, json!({"template": "flat"})).await;
    let cid = c["id"].as_str().unwrap();
    let out = stack
        .exec(&ada, cid, "sh", &["-c", "cat /opt/app/v; id -un"])
        .await;
    assert_eq!(out["stdout"], "flat-1\nwrenn-user\n", "{out}");
    // Deleting a base template with a live capsule is refused.
    let r = stack
        .req(&ada, Method::DELETE, "/v1/snapshots/flat")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    stack
        .req(&ada, Method::DELETE, &format!("/v1/capsules/{cid}"))
        .send()
        .await
        .unwrap();
    // A changed recipe replaces the template; the old files go.
    let flat2 = flat.replace("flat-1", "flat-2");
    let (s, b2) = submit(&stack, &ada, json!({"name": "flat", "recipe": flat2})).await;
    assert_eq!(s, 202, "{b2}");
    let b2 = wait_end(&stack, &ada, b2["id"].as_str().unwrap(), 180).await;
    assert_eq!(b2["status"], "succeeded", "{b2}");
    assert_ne!(b2["template_id"], b["template_id"]);
    assert!(
        !old_dir.exists(),
        "the replaced template's files are removed"
    );
    let c = stack.create(&ada, json!({"template": "flat"})).await;
    let out = stack
        .exec(&ada, c["id"].as_str().unwrap(), "cat", &["/opt/app/v"])
        .await;
    assert_eq!(out["stdout"], "flat-2\n");
    stack
        .req(
            &ada,
            Method::DELETE,
            &format!("/v1/capsules/{}", c["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    let new_dir = template_dir(&team, b2["template_id"].as_str().unwrap());
    let r = stack
        .req(&ada, Method::DELETE, "/v1/snapshots/flat")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(!new_dir.exists());

    // ---- a failing RUN: failed with its line, no template, the capsule gone
    let before = runsc_count(&stack);
    let bad = "FROM minimal-busybox\nRUN echo first\nRUN echo boom >&2; exit 3\nRUN echo never\n";
    let (_, b) = submit(&stack, &ada, json!({"name": "broken", "recipe": bad})).await;
    let b = wait_end(&stack, &ada, b["id"].as_str().unwrap(), 120).await;
    assert_eq!(b["status"], "failed");
    assert_eq!(b["error"], "line 3: RUN exited with code 3");
    let statuses: Vec<&str> = b["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["succeeded", "succeeded", "failed", "pending", "pending"]
    );
    assert_eq!(b["steps"][2]["exit_code"], Value::Null);
    assert!(log_text(&stack, &ada, b["id"].as_str().unwrap())
        .await
        .contains("boom"));
    let (_, templates) = get(&stack, &ada, "/v1/snapshots").await;
    assert!(!templates
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "broken"));
    let (_, capsule) = get(
        &stack,
        &ada,
        &format!("/v1/capsules/{}", b["capsule_id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(capsule["status"], "stopped");
    assert_eq!(runsc_count(&stack), before);

    // ---- a failing healthcheck
    let (_, b) = submit(
        &stack,
        &ada,
        json!({"name": "unhealthy", "recipe": "FROM minimal-busybox\nHEALTHCHECK --interval=100ms --retries=3 CMD exit 9\n"}),
    )
    .await;
    let b = wait_end(&stack, &ada, b["id"].as_str().unwrap(), 120).await;
    assert_eq!(b["status"], "failed");
    assert_eq!(
        b["error"],
        "line 2: the healthcheck failed 3 times (last exit code 9)"
    );

    // ---- a STARTed process that exits fails the build
    let (_, b) = submit(
        &stack,
        &ada,
        json!({"name": "gone", "recipe": "FROM minimal-busybox\nSTART true\nRUN sleep 1\n"}),
    )
    .await;
    let b = wait_end(&stack, &ada, b["id"].as_str().unwrap(), 120).await;
    assert_eq!(b["status"], "failed");
    assert_eq!(b["error"], "line 2: the process STARTed here has exited");

    // ---- cancel: the step in flight stops, nothing is left
    let before = runsc_count(&stack);
    let (_, b) = submit(
        &stack,
        &ada,
        json!({"name": "slow", "recipe": "FROM minimal-busybox\nRUN echo sleeping; sleep 600\n"}),
    )
    .await;
    let bid = b["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, b) = get(&stack, &ada, &format!("/v1/builds/{bid}")).await;
        if b["steps"][1]["status"] == "running"
            && log_text(&stack, &ada, &bid).await.contains("sleeping")
        {
            break;
        }
        assert!(Instant::now() < deadline, "the RUN step never started: {b}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Another team cannot see or cancel it.
    let (s, _) = get(&stack, &eve, &format!("/v1/builds/{bid}")).await;
    assert_eq!(s, 404);
    let r = stack
        .req(&eve, Method::POST, &format!("/v1/builds/{bid}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let (s, _) = get(&stack, &eve, &format!("/v1/builds/{bid}/logs")).await;
    assert_eq!(s, 404);
    let (_, eves) = get(&stack, &eve, "/v1/builds").await;
    assert_eq!(eves, json!([]));
    let cancel_at = Instant::now();
    let r = stack
        .req(&ada, Method::POST, &format!("/v1/builds/{bid}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let b = wait_end(&stack, &ada, &bid, 30).await;
    eprintln!("cancel took {:?}", cancel_at.elapsed());
    assert_eq!(b["status"], "cancelled", "{b}");
    assert_eq!(b["steps"][1]["status"], "cancelled");
    assert!(cancel_at.elapsed() < Duration::from_secs(15));
    let (_, capsule) = get(
        &stack,
        &ada,
        &format!("/v1/capsules/{}", b["capsule_id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(capsule["status"], "stopped");
    assert_eq!(runsc_count(&stack), before);
    let r = stack
        .req(&ada, Method::POST, &format!("/v1/builds/{bid}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);

    // ---- listing: newest first, paged, a bare array
    let r = stack
        .req(&ada, Method::GET, "/v1/builds?limit=2")
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("x-next-cursor"));
    let page: Value = r.json().await.unwrap();
    assert_eq!(page.as_array().unwrap().len(), 2);
    assert_eq!(page[0]["id"], bid.as_str());
    let (s, _) = get(&stack, &ada, "/v1/builds?status=bogus").await;
    assert_eq!(s, 400);
    eprintln!("whole test: {:?}", started.elapsed());
    stack.shutdown().await;
}

#[tokio::test]
async fn bad_requests_are_refused_and_store_nothing() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let ada = stack.account("ada").await;
    let cases = [
        (
            json!({"name": "t", "recipe": "FROM minimal-busybox\nFETCH x\n"}),
            400,
            "invalid_recipe",
            "line 2: unknown instruction 'FETCH'",
        ),
        (
            json!({"name": "t", "recipe": "RUN true\n"}),
            400,
            "invalid_recipe",
            "line 1: the recipe must start with FROM <template>",
        ),
        (
            json!({"name": "t", "recipe": ""}),
            400,
            "invalid_recipe",
            "the recipe is empty: it must start with FROM <template>",
        ),
        (
            json!({"name": "t", "recipe": "FROM minimal-busybox\nCOPY a.txt /a\n"}),
            400,
            "invalid_recipe",
            "line 2: COPY names 'a.txt', which is not among the uploaded files",
        ),
        (
            json!({"name": "t", "recipe": "FROM no-such-template\n"}),
            404,
            "template_not_found",
            "line 1: template 'no-such-template' not found",
        ),
        (
            json!({"name": "bad name", "recipe": "FROM minimal-busybox\n"}),
            400,
            "invalid_request",
            "name must match ^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$",
        ),
        (
            json!({"name": "minimal-debian", "recipe": "FROM minimal-busybox\n"}),
            409,
            "name_reserved",
            "a platform template has this name",
        ),
        (
            json!({"name": "t", "recipe": "FROM minimal-busybox\n", "files": [{"path": "../x", "content_base64": ""}]}),
            400,
            "invalid_request",
            "file path '../x' must be a relative path without '..'",
        ),
        (
            json!({"name": "t", "recipe": "FROM minimal-busybox\n", "files": [{"path": "x", "content_base64": "***"}]}),
            400,
            "invalid_request",
            "file 'x' is not valid base64",
        ),
        (
            json!({"name": "t", "recipe": "FROM minimal-busybox\n", "scope": "galaxy"}),
            400,
            "invalid_request",
            "scope must be team or platform",
        ),
        (
            json!({"name": "t", "recipe": "FROM minimal-busybox\n", "scope": "platform"}),
            403,
            "admin_required",
            "platform templates are built by platform administrators (session)",
        ),
        (
            json!({"name": "t", "recipe": "FROM minimal-busybox\n", "extra": 1}),
            400,
            "invalid_request",
            "",
        ),
    ];
    for (body, status, code, message) in cases {
        let (s, e) = submit(&stack, &ada, body.clone()).await;
        assert_eq!(s, status, "{body}: {e}");
        assert_eq!(e["error"]["code"], code, "{body}: {e}");
        if !message.is_empty() {
            assert_eq!(e["error"]["message"], message, "{body}");
        }
    }
    let (_, list) = get(&stack, &ada, "/v1/builds").await;
    assert_eq!(list, json!([]));
    // Unknown and malformed ids are the same 404.
    for id in ["bld_zzz", "sb_0000000000000000000000001", "nope"] {
        let (s, e) = get(&stack, &ada, &format!("/v1/builds/{id}")).await;
        assert_eq!(s, 404, "{id}: {e}");
    }
    // Platform templates are the platform's: the platform team's directory is untouched.
    assert!(cpserver::test_support::stack::images_dir()
        .join("teams")
        .join(PLATFORM)
        .is_dir());
    stack.shutdown().await;
}

/// Only a team's owners and admins build its templates (for an API key: the role of the user
/// who made it), and only platform admins build platform templates. No agent is needed: the
/// refusals come before anything runs.
#[tokio::test]
async fn only_owners_and_admins_build() {
    use cpserver::test_support::TestServer;
    let server = TestServer::start().await;
    let owner = server
        .signed_in("owner@example.com", "Owner", "correct horse battery")
        .await;
    let member = server
        .signed_in("member@example.com", "Member", "correct horse battery")
        .await;
    let team = owner.get("/v1/teams").send().await.json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = owner
        .post(&format!("/v1/teams/{team}/members"))
        .json(json!({"email": "member@example.com"}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = member
        .post("/v1/auth/switch-team")
        .json(json!({"team_id": team}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = json!({"name": "t", "recipe": "FROM minimal-busybox\nRUN true\n"});
    // The member's session, and a key the member made, are refused; nothing is stored.
    member
        .post("/v1/builds")
        .json(body.clone())
        .send()
        .await
        .assert_error(403, "forbidden");
    let key = member.new_api_key("member key").await;
    let anon = server.client();
    anon.post("/v1/builds")
        .api_key(&key)
        .json(body.clone())
        .send()
        .await
        .assert_error(403, "forbidden");
    // The member still reads the team's builds.
    let list = member.get("/v1/builds").send().await;
    assert_eq!((list.status, list.json()), (200, json!([])));
    // The first account activated is the platform admin: its session may build platform
    // templates, its API key may not.
    let owner_key = owner.new_api_key("owner key").await;
    let mut platform = body.clone();
    platform["scope"] = json!("platform");
    platform["name"] = json!("platform-t");
    anon.post("/v1/builds")
        .api_key(&owner_key)
        .json(platform.clone())
        .send()
        .await
        .assert_error(403, "admin_required");
    // The owner's key builds the team's; with no host the build fails, and says why.
    let r = anon
        .post("/v1/builds")
        .api_key(&owner_key)
        .json(body.clone())
        .send()
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let again = anon
        .post("/v1/builds")
        .api_key(&owner_key)
        .json(body.clone())
        .send()
        .await;
    // A second build of the same name while the first is queued or running.
    if again.status != 202 {
        again.assert_error(409, "build_in_progress");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let ended = loop {
        let b = member.get(&format!("/v1/builds/{id}")).send().await.json();
        if b["status"] == "failed" {
            break b;
        }
        assert!(Instant::now() < deadline, "{b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(ended["error"].as_str().unwrap().contains("host"), "{ended}");
    assert_eq!(ended["steps"][0]["status"], "failed");
    let r = owner.post("/v1/builds").json(platform).send().await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json()["scope"], "platform");
    // The admin view lists both teams' builds; members are refused it.
    let all = owner.get("/v1/admin/builds").send().await;
    assert_eq!(all.status, 200);
    assert!(all.json().as_array().unwrap().len() >= 2);
    member
        .get("/v1/admin/builds")
        .send()
        .await
        .assert_error(403, "admin_required");
}
