//! Process RPCs, relayed to envd's ProcessService.

use std::time::{Duration, Instant};

use futures::StreamExt;
use tonic::Status;
use wrenn_proto::envd::v1 as envd;
use wrenn_proto::hostagent::v1 as pb;

use super::{envd_status, AgentService, RpcStream};
use crate::capsules::Capsule;

const SIGKILL: i32 = 9;
/// How long a timed-out exec waits for envd to take the kill before it answers anyway.
const KILL_TIMEOUT: Duration = Duration::from_secs(2);

fn random_tag(prefix: &str) -> String {
    format!("{prefix}-{}", hex::encode(rand::random::<[u8; 4]>()))
}

fn config(p: pb::ProcessSpec) -> envd::ProcessConfig {
    envd::ProcessConfig {
        cmd: p.cmd,
        args: p.args,
        envs: p.envs,
        cwd: (!p.cwd.is_empty()).then_some(p.cwd),
        user: (!p.user.is_empty()).then_some(p.user),
    }
}

fn selector(s: Option<pb::ProcessSelector>) -> Result<envd::ProcessSelector, Status> {
    use envd::process_selector::Selector as Out;
    use pb::process_selector::Selector as In;
    match s.and_then(|s| s.selector) {
        Some(In::Pid(pid)) => Ok(envd::ProcessSelector {
            selector: Some(Out::Pid(pid)),
        }),
        Some(In::Tag(tag)) => Ok(envd::ProcessSelector {
            selector: Some(Out::Tag(tag)),
        }),
        None => Err(Status::invalid_argument(
            "process selector (pid or tag) is required",
        )),
    }
}

fn tag_selector(tag: String) -> envd::ProcessSelector {
    envd::ProcessSelector {
        selector: Some(envd::process_selector::Selector::Tag(tag)),
    }
}

/// envd event → hostagent event (None for events the caller does not need).
fn event(e: envd::ProcessEvent) -> Option<pb::ProcessEvent> {
    use envd::process_event::data_event::Output;
    use envd::process_event::Event;
    use pb::process_event::Event as Out;
    let out = match e.event? {
        Event::Start(s) => Out::Start(pb::ProcessStarted {
            pid: s.pid,
            tag: s.tag,
        }),
        Event::Data(d) => match d.output? {
            Output::Stdout(b) | Output::Pty(b) => Out::Stdout(b),
            Output::Stderr(b) => Out::Stderr(b),
        },
        Event::End(end) => Out::Exit(pb::ProcessExited {
            exit_code: end.exit_code,
            status: end.status,
            error: end.error.unwrap_or_default(),
        }),
        Event::Keepalive(_) => Out::Keepalive(true),
    };
    Some(pb::ProcessEvent { event: Some(out) })
}

fn pty_event(e: envd::ProcessEvent) -> Option<pb::PtyEvent> {
    use pb::process_event::Event as In;
    use pb::pty_event::Event as Out;
    let out = match event(e)?.event? {
        In::Start(s) => Out::Started(s),
        In::Stdout(b) | In::Stderr(b) => Out::Output(b),
        In::Exit(x) => Out::Exit(x),
        In::Error(m) => Out::Error(m),
        In::Keepalive(_) => return None,
    };
    Some(pb::PtyEvent { event: Some(out) })
}

/// Relays an envd event stream, marking the capsule active as output flows.
fn relay<T, U, F>(
    capsule: std::sync::Arc<Capsule>,
    stream: tonic::Streaming<T>,
    map: F,
) -> RpcStream<U>
where
    T: Send + 'static,
    U: Send + 'static,
    F: Fn(T) -> Option<U> + Send + 'static,
{
    Box::pin(stream.filter_map(move |item| {
        capsule.touch();
        let out = match item {
            Ok(v) => map(v).map(Ok),
            Err(s) => Some(Err(envd_status(s))),
        };
        futures::future::ready(out)
    }))
}

pub async fn exec(svc: &AgentService, r: pb::ExecRequest) -> Result<pb::ExecResponse, Status> {
    let capsule = svc.host.running(&r.sandbox_id)?;
    let envd = capsule.envd();
    let spec = r
        .process
        .ok_or_else(|| Status::invalid_argument("process is required"))?;
    let tag = (!spec.tag.is_empty()).then(|| spec.tag.clone());
    let req = envd::StartRequest {
        process: Some(config(spec)),
        tag,
        pty: None,
        stdin: false,
        paced: false,
    };
    let started = Instant::now();
    let timeout = Duration::from_secs(u64::from(if r.timeout_sec == 0 {
        30
    } else {
        r.timeout_sec
    }));
    // The timeout counts from the request, starting the process included (a loaded
    // capsule can be slow to fork).
    let deadline = tokio::time::Instant::now() + timeout;
    let mut resp = pb::ExecResponse::default();
    let start = tokio::time::timeout_at(deadline, envd.process().start(envd.request(req))).await;
    let Ok(start) = start else {
        resp.timed_out = true;
        resp.exit_code = 128 + SIGKILL;
        resp.duration_ms = started.elapsed().as_millis() as u64;
        return Ok(resp);
    };
    let mut stream = start.map_err(envd_status)?.into_inner();
    let mut pid = 0;
    loop {
        let next = tokio::time::timeout_at(deadline, stream.next()).await;
        let item = match next {
            Ok(Some(item)) => item.map_err(envd_status)?,
            Ok(None) => {
                return Err(Status::unavailable(
                    "envd closed the process stream before the exit",
                ))
            }
            Err(_) => {
                let sig = envd::SendSignalRequest {
                    process: Some(envd::ProcessSelector {
                        selector: Some(envd::process_selector::Selector::Pid(pid)),
                    }),
                    signal: SIGKILL,
                    process_group: true,
                };
                // Bounded too: the answer must not wait for a capsule too busy to listen.
                let mut process = envd.process();
                let kill = process.send_signal(envd.request(sig));
                let _ = tokio::time::timeout(KILL_TIMEOUT, kill).await;
                resp.timed_out = true;
                resp.exit_code = 128 + SIGKILL;
                break;
            }
        };
        let Some(ev) = item.event.and_then(event) else {
            continue;
        };
        match ev.event {
            Some(pb::process_event::Event::Start(s)) => pid = s.pid,
            Some(pb::process_event::Event::Stdout(b)) => resp.stdout.extend_from_slice(&b),
            Some(pb::process_event::Event::Stderr(b)) => resp.stderr.extend_from_slice(&b),
            Some(pb::process_event::Event::Exit(x)) => {
                resp.exit_code = x.exit_code;
                break;
            }
            _ => {}
        }
    }
    resp.duration_ms = started.elapsed().as_millis() as u64;
    capsule.touch();
    Ok(resp)
}

pub async fn exec_stream(
    svc: &AgentService,
    r: pb::ExecStreamRequest,
) -> Result<RpcStream<pb::ProcessEvent>, Status> {
    let capsule = svc.host.running(&r.sandbox_id)?;
    let envd = capsule.envd();
    let spec = r
        .process
        .ok_or_else(|| Status::invalid_argument("process is required"))?;
    let tag = (!spec.tag.is_empty()).then(|| spec.tag.clone());
    let req = envd::StartRequest {
        process: Some(config(spec)),
        tag,
        pty: None,
        stdin: false,
        paced: false,
    };
    let stream = envd
        .process()
        .start(envd.request(req))
        .await
        .map_err(envd_status)?
        .into_inner();
    Ok(relay(capsule, stream, |m: envd::StartResponse| {
        m.event.and_then(event)
    }))
}

pub async fn start_background(
    svc: &AgentService,
    r: pb::StartBackgroundRequest,
) -> Result<pb::StartBackgroundResponse, Status> {
    let capsule = svc.host.running(&r.sandbox_id)?;
    let envd = capsule.envd();
    let spec = r
        .process
        .ok_or_else(|| Status::invalid_argument("process is required"))?;
    let tag = if spec.tag.is_empty() {
        random_tag("proc")
    } else {
        spec.tag.clone()
    };
    let req = envd::StartRequest {
        process: Some(config(spec)),
        tag: Some(tag.clone()),
        pty: None,
        stdin: false,
        paced: false,
    };
    let mut stream = envd
        .process()
        .start(envd.request(req))
        .await
        .map_err(envd_status)?
        .into_inner();
    while let Some(item) = stream.next().await {
        let item = item.map_err(envd_status)?;
        if let Some(envd::process_event::Event::Start(s)) = item.event.and_then(|e| e.event) {
            // The process keeps running (and buffering output) without a subscriber.
            return Ok(pb::StartBackgroundResponse {
                pid: s.pid,
                tag: if s.tag.is_empty() { tag } else { s.tag },
            });
        }
    }
    Err(Status::unavailable(
        "envd ended the stream before the process started",
    ))
}

pub async fn list(
    svc: &AgentService,
    r: pb::ListProcessesRequest,
) -> Result<pb::ListProcessesResponse, Status> {
    let capsule = svc.host.running(&r.sandbox_id)?;
    let envd = capsule.envd();
    let resp = envd
        .process()
        .list(envd.request(envd::ListRequest {}))
        .await
        .map_err(envd_status)?
        .into_inner();
    let processes = resp
        .processes
        .into_iter()
        .filter(|p| p.end.is_none())
        .map(|p| {
            let cfg = p.config.unwrap_or_default();
            pb::ProcessInfo {
                pid: p.pid,
                tag: p.tag.unwrap_or_default(),
                cmd: cfg.cmd,
                args: cfg.args,
            }
        })
        .collect();
    Ok(pb::ListProcessesResponse { processes })
}

pub async fn kill(
    svc: &AgentService,
    r: pb::KillProcessRequest,
) -> Result<pb::KillProcessResponse, Status> {
    let capsule = svc.host.running(&r.sandbox_id)?;
    let envd = capsule.envd();
    let req = envd::SendSignalRequest {
        process: Some(selector(r.process)?),
        signal: if r.signal == 0 { SIGKILL } else { r.signal },
        process_group: true,
    };
    envd.process()
        .send_signal(envd.request(req))
        .await
        .map_err(envd_status)?;
    Ok(pb::KillProcessResponse {})
}

pub async fn connect(
    svc: &AgentService,
    r: pb::ConnectProcessRequest,
) -> Result<RpcStream<pb::ProcessEvent>, Status> {
    let capsule = svc.host.running(&r.sandbox_id)?;
    let envd = capsule.envd();
    let req = envd::ConnectRequest {
        process: Some(selector(r.process)?),
        from_offset: None,
    };
    let stream = envd
        .process()
        .connect_process(envd.request(req))
        .await
        .map_err(envd_status)?
        .into_inner();
    Ok(relay(capsule, stream, |m: envd::ConnectResponse| {
        m.event.and_then(event)
    }))
}

pub async fn pty_attach(
    svc: &AgentService,
    r: pb::PtyAttachRequest,
) -> Result<RpcStream<pb::PtyEvent>, Status> {
    let capsule = svc.host.running(&r.sandbox_id)?;
    let envd = capsule.envd();
    match r.target {
        Some(pb::pty_attach_request::Target::Start(s)) => {
            let size = envd::PtySize {
                cols: if s.cols == 0 { 80 } else { s.cols },
                rows: if s.rows == 0 { 24 } else { s.rows },
            };
            let spec = pb::ProcessSpec {
                cmd: s.cmd,
                args: s.args,
                envs: s.envs,
                cwd: s.cwd,
                user: s.user,
                tag: String::new(),
            };
            let req = envd::StartRequest {
                process: Some(config(spec)),
                tag: Some(random_tag("pty")),
                pty: Some(envd::Pty { size: Some(size) }),
                stdin: false,
                paced: false,
            };
            let stream = envd
                .process()
                .start(envd.request(req))
                .await
                .map_err(envd_status)?
                .into_inner();
            Ok(relay(capsule, stream, |m: envd::StartResponse| {
                m.event.and_then(pty_event)
            }))
        }
        Some(pb::pty_attach_request::Target::Tag(tag)) => {
            let req = envd::ConnectRequest {
                process: Some(tag_selector(tag)),
                from_offset: Some(0),
            };
            let stream = envd
                .process()
                .connect_process(envd.request(req))
                .await
                .map_err(envd_status)?
                .into_inner();
            Ok(relay(capsule, stream, |m: envd::ConnectResponse| {
                m.event.and_then(pty_event)
            }))
        }
        None => Err(Status::invalid_argument("start or tag is required")),
    }
}

pub async fn pty_input(
    svc: &AgentService,
    r: pb::PtySendInputRequest,
) -> Result<pb::PtySendInputResponse, Status> {
    let capsule = svc.host.running(&r.sandbox_id)?;
    let envd = capsule.envd();
    let req = envd::SendInputRequest {
        process: Some(tag_selector(r.tag)),
        input: Some(envd::ProcessInput {
            input: Some(envd::process_input::Input::Pty(r.data)),
        }),
    };
    envd.process()
        .send_input(envd.request(req))
        .await
        .map_err(envd_status)?;
    Ok(pb::PtySendInputResponse {})
}

pub async fn pty_resize(
    svc: &AgentService,
    r: pb::PtyResizeRequest,
) -> Result<pb::PtyResizeResponse, Status> {
    let capsule = svc.host.running(&r.sandbox_id)?;
    let envd = capsule.envd();
    let req = envd::UpdateRequest {
        process: Some(tag_selector(r.tag)),
        pty: Some(envd::PtySize {
            cols: r.cols,
            rows: r.rows,
        }),
    };
    envd.process()
        .update(envd.request(req))
        .await
        .map_err(envd_status)?;
    Ok(pb::PtyResizeResponse {})
}

pub async fn pty_kill(
    svc: &AgentService,
    r: pb::PtyKillRequest,
) -> Result<pb::PtyKillResponse, Status> {
    let capsule = svc.host.running(&r.sandbox_id)?;
    let envd = capsule.envd();
    let req = envd::SendSignalRequest {
        process: Some(tag_selector(r.tag)),
        signal: SIGKILL,
        process_group: true,
    };
    envd.process()
        .send_signal(envd.request(req))
        .await
        .map_err(envd_status)?;
    Ok(pb::PtyKillResponse {})
}
