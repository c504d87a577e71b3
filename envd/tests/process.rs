//! ProcessService against the real envd binary, over a Unix socket and over TCP.
mod support;

use std::time::{Duration, Instant};

use support::*;
use tonic::Code;
use wrenn_proto::envd::v1::process_event::Event;
use wrenn_proto::envd::v1::{
    process_input, ConnectRequest, ListRequest, ProcessInput, Pty, PtySize, SendInputRequest,
    SendSignalRequest, StartRequest, UpdateRequest,
};

#[tokio::test]
async fn exit_codes_output_and_signals() {
    for transport in TRANSPORTS {
        let envd = Envd::start(transport).await;
        let mut client = envd.process().await;

        let ok = run(&mut client, start(config("true", &[]))).await;
        assert_eq!(ok.exit_code(), 0, "{transport:?}");
        assert!(ok.end.as_ref().unwrap().exited);

        let out = run(&mut client, start(sh("echo out; echo err >&2; exit 3"))).await;
        assert_eq!(
            (out.stdout.as_slice(), out.stderr.as_slice()),
            (&b"out\n"[..], &b"err\n"[..])
        );
        assert_eq!(out.exit_code(), 3);
        assert_eq!(out.end.as_ref().unwrap().status, "exit status 3");
        assert!(out.pid > 0);

        // Killed by a signal: 128 + n, and the signal reported.
        let killed = run(&mut client, start(sh("kill -TERM $$; sleep 5"))).await;
        let end = killed.end.unwrap();
        assert_eq!(
            (end.exited, end.signal, end.exit_code),
            (false, Some(15), 143),
            "{transport:?}"
        );

        // SendSignal to a running process, found by tag.
        let mut req = start(config("sleep", &["30"]));
        req.tag = Some("sleeper".into());
        let mut stream = client.start(req).await.unwrap().into_inner();
        let first = stream
            .message()
            .await
            .unwrap()
            .unwrap()
            .event
            .unwrap()
            .event
            .unwrap();
        let Event::Start(started) = first else {
            panic!("first event must be start")
        };
        assert_eq!(started.tag, "sleeper");
        client
            .send_signal(SendSignalRequest {
                process: by_tag("sleeper"),
                signal: 9,
                process_group: false,
            })
            .await
            .unwrap();
        let mut out = Outcome::default();
        let mut offset = None;
        while let Some(m) = stream.message().await.unwrap() {
            out.record(m.event.unwrap(), &mut offset);
        }
        assert_eq!(out.end.unwrap().signal, Some(9));
    }
}

#[tokio::test]
async fn signal_to_a_process_group_reaches_grandchildren() {
    let envd = Envd::start(Transport::Unix).await;
    let mut client = envd.process().await;
    let mut stream = client
        .start(start(sh("sleep 60 & echo $!; wait")))
        .await
        .unwrap()
        .into_inner();
    let mut out = Outcome::default();
    let mut offset = None;
    while out.stdout.is_empty() {
        out.record(
            stream.message().await.unwrap().unwrap().event.unwrap(),
            &mut offset,
        );
    }
    let grandchild: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    client
        .send_signal(SendSignalRequest {
            process: by_pid(out.pid),
            signal: 15,
            process_group: true,
        })
        .await
        .unwrap();
    while let Some(m) = stream.message().await.unwrap() {
        out.record(m.event.unwrap(), &mut offset);
    }
    assert_eq!(out.end.unwrap().signal, Some(15));
    // The grandchild got SIGTERM too, and envd (its subreaper) reaped it: no zombie remains.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::path::Path::new(&format!("/proc/{grandchild}")).exists() {
        assert!(
            Instant::now() < deadline,
            "grandchild {grandchild} still exists (zombie or alive)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn stdin_input_and_close() {
    for transport in TRANSPORTS {
        let envd = Envd::start(transport).await;
        let mut client = envd.process().await;
        let mut req = start(config("cat", &[]));
        req.stdin = true;
        let mut stream = client.start(req).await.unwrap().into_inner();
        let mut out = Outcome::default();
        let mut offset = None;
        out.record(
            stream.message().await.unwrap().unwrap().event.unwrap(),
            &mut offset,
        );
        for part in ["hello ", "world\n"] {
            client
                .send_input(SendInputRequest {
                    process: by_pid(out.pid),
                    input: Some(ProcessInput {
                        input: Some(process_input::Input::Stdin(part.as_bytes().to_vec())),
                    }),
                })
                .await
                .unwrap();
        }
        client
            .close_stdin(wrenn_proto::envd::v1::CloseStdinRequest {
                process: by_pid(out.pid),
            })
            .await
            .unwrap();
        while let Some(m) = stream.message().await.unwrap() {
            out.record(m.event.unwrap(), &mut offset);
        }
        assert_eq!(out.stdout, b"hello world\n", "{transport:?}");
        assert_eq!(out.exit_code(), 0);
    }
}

#[tokio::test]
async fn pty_shell_prompt_resize_and_ctrl_d() {
    if !std::path::Path::new("/bin/bash").exists() {
        eprintln!("skipping: /bin/bash is not installed");
        return;
    }
    let envd = Envd::start(Transport::Unix).await;
    let mut client = envd.process().await;
    let mut cfg = config("/bin/bash", &["--norc", "--noprofile", "-i"]);
    cfg.envs.insert("PS1".into(), "wrenn$ ".into());
    let req = StartRequest {
        process: Some(cfg),
        tag: Some("pty-1".into()),
        pty: Some(Pty {
            size: Some(PtySize { cols: 80, rows: 24 }),
        }),
        stdin: false,
        paced: false,
    };
    let mut stream = client.start(req).await.unwrap().into_inner();
    let mut out = Outcome::default();
    let mut offset = None;
    async fn until(
        stream: &mut tonic::Streaming<wrenn_proto::envd::v1::StartResponse>,
        out: &mut Outcome,
        offset: &mut Option<u64>,
        needle: &str,
    ) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !String::from_utf8_lossy(&out.pty).contains(needle) {
            let msg = tokio::time::timeout_at(deadline.into(), stream.message())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no {needle:?} in PTY output: {:?}",
                        String::from_utf8_lossy(&out.pty)
                    )
                });
            out.record(msg.unwrap().expect("stream ended").event.unwrap(), offset);
        }
    }
    until(&mut stream, &mut out, &mut offset, "wrenn$ ").await;
    let send = |data: &'static [u8]| SendInputRequest {
        process: by_tag("pty-1"),
        input: Some(ProcessInput {
            input: Some(process_input::Input::Pty(data.to_vec())),
        }),
    };
    client.send_input(send(b"stty size\n")).await.unwrap();
    until(&mut stream, &mut out, &mut offset, "24 80").await;
    client
        .update(UpdateRequest {
            process: by_tag("pty-1"),
            pty: Some(PtySize {
                cols: 100,
                rows: 30,
            }),
        })
        .await
        .unwrap();
    client.send_input(send(b"stty size\n")).await.unwrap();
    until(&mut stream, &mut out, &mut offset, "30 100").await;
    // Ctrl-D only once the shell is back at its prompt: readline flushes pending input when
    // it switches terminal modes, so an early Ctrl-D could be discarded; resend if so.
    let at_prompt = |out: &Outcome| {
        let text = String::from_utf8_lossy(&out.pty).into_owned();
        text.rfind("30 100")
            .is_some_and(|at| text[at..].contains("wrenn$ "))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !at_prompt(&out) {
        let msg = tokio::time::timeout_at(deadline.into(), stream.message())
            .await
            .expect("prompt after resize");
        out.record(
            msg.unwrap().expect("stream ended").event.unwrap(),
            &mut offset,
        );
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    'ended: loop {
        client.send_input(send(b"\x04")).await.unwrap();
        let resend = Instant::now() + Duration::from_secs(2);
        loop {
            match tokio::time::timeout_at(resend.min(deadline).into(), stream.message()).await {
                Ok(Ok(Some(m))) => out.record(m.event.unwrap(), &mut offset),
                Ok(_) => break 'ended,
                Err(_) if Instant::now() >= deadline => {
                    panic!(
                        "shell did not exit on Ctrl-D: {:?}",
                        String::from_utf8_lossy(&out.pty)
                    )
                }
                Err(_) => continue 'ended,
            }
        }
    }
    assert_eq!(out.exit_code(), 0, "Ctrl-D ends the shell");
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "PTY output only comes as `pty`"
    );

    // Resizing a process without a PTY is refused.
    let plain = run(&mut client, start(config("true", &[]))).await;
    let err = client
        .update(UpdateRequest {
            process: by_pid(plain.pid),
            pty: Some(PtySize { cols: 1, rows: 1 }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn reconnect_by_tag_resumes_without_loss() {
    for transport in TRANSPORTS {
        let envd = Envd::start(transport).await;
        let mut client = envd.process().await;
        let mut req = start(sh(
            "for i in $(seq 1 40); do echo line-$i; sleep 0.02; done",
        ));
        req.tag = Some("counter".into());
        let mut stream = client.start(req).await.unwrap().into_inner();
        // Read a little, then drop the stream (a dropped connection).
        let mut first = Outcome::default();
        let mut offset = None;
        while first.stdout.len() < 20 {
            first.record(
                stream.message().await.unwrap().unwrap().event.unwrap(),
                &mut offset,
            );
        }
        drop(stream);
        tokio::time::sleep(Duration::from_millis(200)).await;

        // Reconnect from where we stopped: nothing lost, nothing doubled.
        let mut again = client
            .connect_process(ConnectRequest {
                process: by_tag("counter"),
                from_offset: offset,
            })
            .await
            .unwrap()
            .into_inner();
        let mut rest = Outcome::default();
        let mut offset2 = None;
        while let Some(m) = again.message().await.unwrap() {
            rest.record(m.event.unwrap(), &mut offset2);
        }
        let mut all = first.stdout.clone();
        all.extend_from_slice(&rest.stdout);
        let expected: String = (1..=40).map(|i| format!("line-{i}\n")).collect();
        assert_eq!(String::from_utf8(all).unwrap(), expected, "{transport:?}");
        assert_eq!(rest.exit_code(), 0);

        // The exited process is still listed, and ConnectProcess reports its exit status.
        let list = client.list(ListRequest {}).await.unwrap().into_inner();
        let p = list
            .processes
            .iter()
            .find(|p| p.tag.as_deref() == Some("counter"))
            .expect("listed");
        assert_eq!(p.end.as_ref().map(|e| e.exit_code), Some(0));
        let late = client
            .connect_process(ConnectRequest {
                process: by_tag("counter"),
                from_offset: None,
            })
            .await
            .unwrap()
            .into_inner();
        let mut late_out = Outcome::default();
        let mut o = None;
        let mut late = late;
        while let Some(m) = late.message().await.unwrap() {
            late_out.record(m.event.unwrap(), &mut o);
        }
        assert_eq!((late_out.pid, late_out.exit_code()), (p.pid, 0));
        assert!(late_out.stdout.is_empty(), "no replay was asked for");
    }
}

#[tokio::test]
async fn fan_out_to_two_subscribers_and_a_stalled_one() {
    let envd = Envd::start(Transport::Unix).await;
    let mut client = envd.process().await;
    let mut req = start(sh(
        "sleep 0.3; head -c 8000000 /dev/zero | tr '\\0' x; echo; echo done",
    ));
    req.tag = Some("fan".into());
    let mut owner = client.start(req).await.unwrap().into_inner();
    owner.message().await.unwrap().unwrap(); // start
    let connect = || ConnectRequest {
        process: by_tag("fan"),
        from_offset: Some(0),
    };
    let second = client
        .connect_process(connect())
        .await
        .unwrap()
        .into_inner();
    // A third subscriber that never reads must not hold anyone up.
    let _stalled = envd
        .process()
        .await
        .connect_process(connect())
        .await
        .unwrap()
        .into_inner();

    let started = Instant::now();
    let drain = |mut s: tonic::Streaming<wrenn_proto::envd::v1::ConnectResponse>| async move {
        let mut out = Outcome::default();
        // Both streams start at offset 0: a gap before their first chunk is skipped output too.
        let mut o = Some(0);
        while let Some(m) = s.message().await.unwrap() {
            out.record(m.event.unwrap(), &mut o);
        }
        out
    };
    let owner_task = async {
        let mut out = Outcome::default();
        // Both streams start at offset 0: a gap before their first chunk is skipped output too.
        let mut o = Some(0);
        while let Some(m) = owner.message().await.unwrap() {
            out.record(m.event.unwrap(), &mut o);
        }
        out
    };
    let (a, b) = tokio::join!(owner_task, drain(second));
    for out in [&a, &b] {
        assert_eq!(out.exit_code(), 0);
        let total = out.end.as_ref().unwrap().output_bytes;
        assert_eq!(total, 8_000_000 + 6);
        assert_eq!(
            out.stdout.len() as u64 + out.skipped,
            total,
            "received + skipped = produced"
        );
        assert!(out.stdout.ends_with(b"done\n"));
    }
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn a_hundred_megabytes_of_output_keeps_envd_memory_bounded() {
    let envd = Envd::start(Transport::Unix).await;
    let mut client = envd.process().await;
    let baseline = envd.rss_kib();
    let mut stream = client
        .start(start(config("head", &["-c", "100000000", "/dev/zero"])))
        .await
        .unwrap()
        .into_inner();
    let mut received = 0u64;
    let mut peak = baseline;
    let mut end = None;
    let mut n = 0u64;
    while let Some(m) = stream.message().await.unwrap() {
        match m.event.unwrap().event {
            Some(Event::Data(d)) => {
                if let Some(wrenn_proto::envd::v1::process_event::data_event::Output::Stdout(b)) =
                    d.output
                {
                    received += b.len() as u64;
                }
            }
            Some(Event::End(e)) => end = Some(e),
            _ => {}
        }
        n += 1;
        if n.is_multiple_of(64) {
            peak = peak.max(envd.rss_kib());
        }
    }
    let end = end.expect("end event");
    assert_eq!((end.exit_code, end.output_bytes), (0, 100_000_000));
    assert!(received > 0 && received <= 100_000_000);
    eprintln!("received {received} of 100000000 bytes; envd RSS {baseline} KiB -> peak {peak} KiB");
    assert!(
        peak < baseline + 64 * 1024,
        "envd grew from {baseline} KiB to {peak} KiB"
    );
}

#[tokio::test]
async fn concurrent_execs() {
    for transport in TRANSPORTS {
        let envd = Envd::start(transport).await;
        let client = envd.process().await;
        let runs = (0..32).map(|i| {
            let mut c = client.clone();
            async move { run(&mut c, start(sh(&format!("echo {i}; exit {}", i % 7)))).await }
        });
        let results = futures::future::join_all(runs).await;
        for (i, out) in results.iter().enumerate() {
            assert_eq!(out.stdout, format!("{i}\n").as_bytes(), "{transport:?}");
            assert_eq!(out.exit_code(), (i % 7) as i32);
        }
    }
}

#[tokio::test]
async fn bad_input_is_rejected_with_the_right_codes() {
    let envd = Envd::start(Transport::Tcp).await;
    let mut client = envd.process().await;
    let mut cfg = config("true", &[]);
    cfg.cwd = Some("/does/not/exist".into());
    assert_eq!(
        client.start(start(cfg)).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let mut cfg = config("true", &[]);
    cfg.user = Some("no-such-user-here".into());
    assert_eq!(
        client.start(start(cfg)).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let cfg = config("/no/such/binary", &[]);
    assert_eq!(
        client.start(start(cfg)).await.unwrap_err().code(),
        Code::NotFound
    );
    let err = client
        .connect_process(ConnectRequest {
            process: by_pid(999_999),
            from_offset: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client
        .send_signal(SendSignalRequest {
            process: by_tag("nobody"),
            signal: 9,
            process_group: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // A tag held by a live process cannot be taken twice.
    let mut a = start(config("sleep", &["5"]));
    a.tag = Some("once".into());
    let _held = client.start(a.clone()).await.unwrap().into_inner();
    assert_eq!(
        client.start(a).await.unwrap_err().code(),
        Code::AlreadyExists
    );
}

#[tokio::test]
async fn user_env_and_cwd_are_applied() {
    let envd = Envd::start(Transport::Unix).await;
    let mut client = envd.process().await;
    let mut cfg = sh("id -u; pwd; echo $GREETING; echo $HOME");
    cfg.cwd = Some("/tmp".into());
    cfg.envs.insert("GREETING".into(), "hi".into());
    let out = run(&mut client, start(cfg)).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\n/tmp\nhi\n/root\n");

    // A non-root user from /etc/passwd, when this machine has one.
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    if let Some(line) = passwd
        .lines()
        .find(|l| l.split(':').nth(2) == Some("65534"))
    {
        let name = line.split(':').next().unwrap();
        let mut cfg = sh("id -u; id -g");
        cfg.user = Some(name.into());
        cfg.cwd = Some("/".into());
        let out = run(&mut client, start(cfg)).await;
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with("65534\n"),
            "{out:?}"
        );
    } else {
        eprintln!("skipping the non-root part: no uid 65534 in /etc/passwd");
    }
}

#[tokio::test]
async fn the_access_token_is_enforced_for_grpc() {
    let envd = Envd::start_with(Transport::Unix, &["--access-token", "letmein"]).await;
    let mut good = envd.process().await;
    assert_eq!(
        run(&mut good, start(config("true", &[]))).await.exit_code(),
        0
    );
    let mut anonymous = wrenn_proto::envd::v1::process_service_client::ProcessServiceClient::new(
        envd.channel().await,
    );
    let err = anonymous.list(ListRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}
