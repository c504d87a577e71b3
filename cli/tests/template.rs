//! `wrenn template build`, `wrenn logs` and `wrenn builds` against a real control plane with
//! the template-builds API (`/v1/builds`), a real agent and gVisor capsules.
//!
//! These depend on the builds API in core: without it `/v1/builds` answers 404 and the first
//! assertion fails showing that answer.

mod support;

use cpserver::test_support::stack::Stack;
use serde_json::Value;
use std::time::Instant;
use support::Wrenn;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_builds_end_to_end() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let started = Instant::now();
    let alice = stack.account("alice").await;
    let w = Wrenn::new()
        .env("WRENN_URL", &stack.url(""))
        .env("WRENN_API_KEY", &alice.api_key);
    let dir = tempfile::tempdir().unwrap();
    let tpl = dir.path().join("tpl");
    std::fs::create_dir_all(tpl.join("conf")).unwrap();
    std::fs::write(tpl.join("app.txt"), "copied app\n").unwrap();
    std::fs::write(tpl.join("conf/settings.ini"), "x=1\n").unwrap();
    let recipe = tpl.join("Recipe");
    std::fs::write(
        &recipe,
        "FROM minimal-busybox\n\
         RUN echo built > /etc/built\n\
         COPY app.txt /opt/app.txt\n\
         RUN echo step-three-output && echo to-stderr >&2\n",
    )
    .unwrap();
    let recipe_arg = recipe.to_str().unwrap();

    // ---- a build that succeeds, followed live; exit 0
    let run = w
        .run(&[
            "template",
            "build",
            recipe_arg,
            "--name",
            "cli-built",
            "--file",
            tpl.join("app.txt").to_str().unwrap(),
        ])
        .await;
    run.no_panic();
    assert_eq!(
        run.code,
        0,
        "{run:?}\nagent log (end):\n{}",
        log_tail(&stack)
    );
    assert!(run.stdout.contains("built template cli-built"), "{run:?}");
    assert!(
        run.stdout.contains("step-three-output"),
        "step logs shown: {run:?}"
    );
    assert!(
        run.stderr.contains("to-stderr"),
        "stderr logs on stderr: {run:?}"
    );
    assert_eq!(
        run.stderr.matches("Step 2/").count(),
        1,
        "step 2 introduced once: {run:?}"
    );
    assert!(
        run.stderr.contains("RUN echo built > /etc/built"),
        "{run:?}"
    );
    let build_id = run
        .stdout
        .split("(build ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no build id in {run:?}"))
        .to_string();
    assert!(build_id.starts_with("bld_"), "{build_id}");

    // The template is listed and boots with what the recipe made.
    let listed = w.run(&["--json", "template", "list"]).await.json();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "cli-built"),
        "{listed}"
    );
    let capsule = w
        .run(&["--json", "capsule", "create", "--template", "cli-built"])
        .await
        .json();
    let id = capsule["id"].as_str().expect("capsule id").to_string();
    let run = w
        .run(&["exec", &id, "--", "cat", "/etc/built", "/opt/app.txt"])
        .await;
    assert_eq!(run.ok().stdout, "built\ncopied app\n");
    w.run(&["capsule", "destroy", &id]).await.ok();

    // ---- logs of the finished build, plain, JSON and followed (ends by itself)
    let run = w.run(&["logs", &build_id]).await;
    assert!(run.ok().stdout.contains("step-three-output"), "{run:?}");
    let logs = w.run(&["--json", "logs", &build_id]).await.json();
    let entries = logs.as_array().expect("an array of entries");
    assert!(entries.iter().all(|e| e["seq"].is_u64()), "{logs}");
    let run = w.run(&["logs", &build_id, "--follow"]).await;
    assert!(run.ok().stdout.contains("step-three-output"), "{run:?}");

    // ---- builds list / get
    let run = w.run(&["builds", "list"]).await;
    assert!(
        run.ok()
            .stdout
            .lines()
            .any(|l| l.starts_with(&build_id) && l.contains("succeeded")),
        "{run:?}"
    );
    let got = w.run(&["--json", "builds", "get", &build_id]).await.json();
    assert_eq!(got["status"], "succeeded", "{got}");
    assert!(got["steps"].as_array().unwrap().len() >= 3, "{got}");

    // ---- the same recipe again: reused, exit 0
    let run = w
        .run(&[
            "template",
            "build",
            recipe_arg,
            "--name",
            "cli-built",
            "--file",
            tpl.join("app.txt").to_str().unwrap(),
        ])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("reused template cli-built from build bld_"),
        "{run:?}"
    );

    // ---- --json prints only the final Build; a directory --file is sent file by file
    let json_recipe = tpl.join("Recipe.json-test");
    std::fs::write(
        &json_recipe,
        "FROM minimal-busybox\nCOPY conf/settings.ini /etc/settings.ini\nRUN cat /etc/settings.ini\n",
    )
    .unwrap();
    let run = w
        .run(&[
            "--json",
            "template",
            "build",
            json_recipe.to_str().unwrap(),
            "--name",
            "cli-json",
            "--file",
            tpl.join("conf").to_str().unwrap(),
        ])
        .await;
    assert_eq!(
        run.code,
        0,
        "{run:?}\nagent log (end):\n{}",
        log_tail(&stack)
    );
    let build: Value = run.json();
    assert_eq!(build["status"], "succeeded", "{build}");
    assert_eq!(build["name"], "cli-json");

    // ---- a recipe error: the line-numbered message, exit 1
    let bad = tpl.join("Bad");
    std::fs::write(&bad, "FROM minimal-busybox\nRUN true\nFOO bar\n").unwrap();
    let run = w
        .run(&[
            "template",
            "build",
            bad.to_str().unwrap(),
            "--name",
            "cli-bad",
        ])
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    run.no_panic();
    assert!(run.stderr.contains("line 3"), "{run:?}");
    assert!(run.stderr.contains("FOO"), "{run:?}");

    // ---- a failing step: exit 1 with the build's error, naming the step
    let failing = tpl.join("Failing");
    std::fs::write(
        &failing,
        "FROM minimal-busybox\nRUN echo before\nRUN exit 3\n",
    )
    .unwrap();
    let run = w
        .run(&[
            "template",
            "build",
            failing.to_str().unwrap(),
            "--name",
            "cli-fails",
        ])
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    run.no_panic();
    assert!(run.stderr.contains("failed"), "{run:?}");
    assert!(
        run.stderr.contains("RUN exit 3"),
        "names the failing step: {run:?}"
    );

    // ---- cancel: a long build submitted detached, cancelled by id
    let slow = tpl.join("Slow");
    std::fs::write(&slow, "FROM minimal-busybox\nRUN sleep 120\n").unwrap();
    let run = w
        .run(&[
            "--json",
            "template",
            "build",
            slow.to_str().unwrap(),
            "--name",
            "cli-slow",
            "--detach",
        ])
        .await;
    let slow_id = run.ok().json()["id"]
        .as_str()
        .expect("build id")
        .to_string();
    let cancelled = w
        .run(&["--json", "builds", "cancel", &slow_id])
        .await
        .json();
    assert_eq!(cancelled["id"], slow_id.as_str());
    let run = w.run(&["--json", "logs", &slow_id, "--follow"]).await;
    run.ok();
    let got = w.run(&["--json", "builds", "get", &slow_id]).await.json();
    assert_eq!(got["status"], "cancelled", "{got}");
    let run = w.run(&["builds", "cancel", &slow_id]).await;
    assert_eq!(run.code, 1, "cancelling a finished build: {run:?}");

    // ---- Ctrl-C while following: the build is cancelled and wrenn exits 130
    let slower = tpl.join("Slower");
    std::fs::write(&slower, "FROM minimal-busybox\nRUN sleep 121\n").unwrap();
    let mut child = w
        .command()
        .args([
            "template",
            "build",
            slower.to_str().unwrap(),
            "--name",
            "cli-interrupted",
        ])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + std::time::Duration::from_secs(120);
    let interrupted_id = loop {
        let builds = w.run(&["--json", "builds", "list"]).await.json();
        let running = builds
            .as_array()
            .into_iter()
            .flatten()
            .find(|b| b["name"] == "cli-interrupted" && b["status"] == "running");
        if let Some(b) = running {
            break b["id"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "the build never ran: {builds}");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait())
        .await
        .expect("wrenn exits after Ctrl-C")
        .unwrap();
    assert_eq!(status.code(), Some(130));
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let got = w
            .run(&["--json", "builds", "get", &interrupted_id])
            .await
            .json();
        if got["status"] == "cancelled" {
            break;
        }
        assert!(Instant::now() < deadline, "not cancelled: {got}");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }

    // ---- delete the built templates
    for name in ["cli-built", "cli-json"] {
        w.run(&["template", "delete", name]).await.ok();
    }
    let listed = w.run(&["--json", "template", "list"]).await.json();
    assert!(
        !listed
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "cli-built"),
        "{listed}"
    );

    eprintln!("template build sections took {:?}", started.elapsed());
    stack.shutdown().await;
}

/// The last lines of the agents' logs (why a build step failed on the host).
fn log_tail(stack: &Stack) -> String {
    let log = stack.agent_log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
