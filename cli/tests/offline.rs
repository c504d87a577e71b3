//! `wrenn` behaviour that needs no control plane: completions, usage errors, the config
//! file's permission check, unreachable URLs.

mod support;

use support::{chmod, Wrenn};

#[tokio::test]
async fn completions_print_a_script() {
    let w = Wrenn::new();
    let run = w.run(&["completions", "bash"]).await;
    run.ok();
    assert!(run.stdout.contains("_wrenn()"), "{}", run.stdout);
    assert!(run.stdout.contains("complete -F _wrenn"), "{}", run.stdout);
    for shell in ["zsh", "fish"] {
        let run = w.run(&["completions", shell]).await;
        run.ok();
        assert!(run.stdout.contains("capsule"), "{shell}: {}", run.stdout);
    }
    let run = w.run(&["completions", "nosuchshell"]).await;
    assert_eq!(run.code, 2, "{run:?}");
}

#[tokio::test]
async fn usage_errors_exit_2() {
    let w = Wrenn::new();
    for args in [
        &["capsule", "frobnicate"][..],
        &["exec", "sb_x"],
        &["capsule", "create", "--env", "NOEQUALS"],
        &["cp", "./a", "./b"],
        &["cp", "sb_a:/x", "sb_b:/y"],
    ] {
        let run = w.run(args).await;
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        run.no_panic();
    }
    let run = w.run(&["cp", "./a", "./b"]).await;
    assert!(run.stderr.contains("CAPSULE_ID:PATH"), "{run:?}");
}

#[tokio::test]
async fn a_config_file_others_can_read_is_refused() {
    let w = Wrenn::new();
    std::fs::create_dir_all(w.config.parent().unwrap()).unwrap();
    std::fs::write(
        &w.config,
        "url = \"http://127.0.0.1:9\"\napi_key = \"wrn_00000000000000000000000000000000\"\n",
    )
    .unwrap();
    chmod(&w.config, 0o644);
    let run = w.run(&["capsule", "list"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    run.no_panic();
    let path = w.config.display().to_string();
    assert!(run.stderr.contains(&path), "names the file: {run:?}");
    assert!(
        run.stderr.contains(&format!("chmod 600 {path}")),
        "gives the fix: {run:?}"
    );
    assert!(run.stderr.contains("0644"), "{run:?}");
    // Group-readable is refused too; 0600 is accepted (and then the URL is unreachable).
    chmod(&w.config, 0o640);
    assert!(w
        .run(&["capsule", "list"])
        .await
        .stderr
        .contains("chmod 600"));
    chmod(&w.config, 0o600);
    let run = w.run(&["capsule", "list"]).await;
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("cannot reach http://127.0.0.1:9"),
        "{run:?}"
    );
    // With --json the error is the API's envelope shape, on stderr.
    chmod(&w.config, 0o644);
    let run = w.run(&["--json", "capsule", "list"]).await;
    let err: serde_json::Value = serde_json::from_str(run.stderr.trim()).expect("JSON error");
    assert_eq!(err["error"]["code"], "config_error", "{err}");
    assert!(run.stdout.is_empty());
}

#[tokio::test]
async fn no_credentials_say_how_to_log_in() {
    let w = Wrenn::new();
    let run = w.run(&["capsule", "list"]).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("wrenn login"), "{run:?}");
    assert!(run.stderr.contains("WRENN_URL"), "{run:?}");
}

#[tokio::test]
async fn bad_urls_are_named() {
    let w = Wrenn::new()
        .env("WRENN_URL", "http://no-such-host.invalid:8000")
        .env("WRENN_API_KEY", "wrn_00000000000000000000000000000000");
    let run = w.run(&["capsule", "get", "sb_abc"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    run.no_panic();
    assert!(
        run.stderr
            .contains("cannot reach http://no-such-host.invalid:8000/v1/capsules/sb_abc"),
        "{run:?}"
    );
    // The WebSocket commands name the URL too.
    let run = w.run(&["exec", "sb_abc", "--", "true"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("http://no-such-host.invalid:8000/v1/capsules/sb_abc/exec/stream"),
        "{run:?}"
    );
    let w = Wrenn::new()
        .env("WRENN_URL", "not-a-url")
        .env("WRENN_API_KEY", "wrn_x");
    let run = w.run(&["capsule", "list"]).await;
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("invalid control-plane URL 'not-a-url'"),
        "{run:?}"
    );
    // login checks the URL before saving anything.
    let w = Wrenn::new();
    let run = w
        .run(&["login", "--url", "http://127.0.0.1:9", "--api-key", "wrn_x"])
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("cannot reach http://127.0.0.1:9/v1/capsules"),
        "{run:?}"
    );
    assert!(!w.config.exists(), "nothing saved after a failed login");
}
