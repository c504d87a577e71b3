//! `process.Process`: E2B's process RPCs over [`ProcessRpc`], so processes started here are
//! the same as those of envd's own gRPC (same table, same limits, same output ring).
use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tonic::Code;
use wrenn_proto::envd::v1 as wrenn;
use wrenn_proto::envd::v1::process_event::{data_event, Event};
use wrenn_proto::envd::v1::process_service_server::ProcessService;

use super::connect::{self, json as pjson, ConnectError, Unary};
use super::{keepalive_interval, Caller, E2b};

pub fn router() -> Router<Arc<E2b>> {
    Router::new()
        .route("/process.Process/List", post(list))
        .route("/process.Process/Start", post(start))
        .route("/process.Process/Connect", post(connect_process))
        .route("/process.Process/SendInput", post(send_input))
        .route("/process.Process/StreamInput", post(stream_input))
        .route("/process.Process/CloseStdin", post(close_stdin))
        .route("/process.Process/SendSignal", post(send_signal))
        .route("/process.Process/Update", post(update))
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
struct ProcessConfig {
    cmd: String,
    args: Vec<String>,
    envs: HashMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cwd: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ProcessSelector {
    #[serde(deserialize_with = "pjson::opt_u32")]
    pid: Option<u32>,
    tag: Option<String>,
}

impl ProcessSelector {
    fn wrenn(self) -> Option<wrenn::ProcessSelector> {
        use wrenn::process_selector::Selector;
        let selector = match (self.pid, self.tag) {
            (Some(pid), _) => Selector::Pid(pid),
            (None, Some(tag)) => Selector::Tag(tag),
            (None, None) => return None,
        };
        Some(wrenn::ProcessSelector {
            selector: Some(selector),
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PtySize {
    #[serde(deserialize_with = "pjson::u32")]
    cols: u32,
    #[serde(deserialize_with = "pjson::u32")]
    rows: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Pty {
    size: Option<PtySize>,
}

impl Pty {
    fn wrenn_size(self) -> wrenn::PtySize {
        let size = self.size.unwrap_or_default();
        wrenn::PtySize {
            cols: size.cols,
            rows: size.rows,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StartRequest {
    process: Option<ProcessConfig>,
    pty: Option<Pty>,
    tag: Option<String>,
    stdin: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SelectorRequest {
    process: ProcessSelector,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ProcessInput {
    #[serde(deserialize_with = "opt_bytes")]
    stdin: Option<Vec<u8>>,
    #[serde(deserialize_with = "opt_bytes")]
    pty: Option<Vec<u8>>,
}

fn opt_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    pjson::bytes(d).map(Some)
}

impl ProcessInput {
    fn wrenn(self) -> Option<wrenn::process_input::Input> {
        use wrenn::process_input::Input;
        match (self.stdin, self.pty) {
            (Some(data), _) => Some(Input::Stdin(data)),
            (None, Some(data)) => Some(Input::Pty(data)),
            (None, None) => None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SendInputRequest {
    process: ProcessSelector,
    input: ProcessInput,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SendSignalRequest {
    process: ProcessSelector,
    #[serde(deserialize_with = "signal")]
    signal: i32,
}

fn signal<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    pjson::enum_value(
        d,
        &[
            ("SIGNAL_UNSPECIFIED", 0),
            ("SIGNAL_SIGTERM", 15),
            ("SIGNAL_SIGKILL", 9),
        ],
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct UpdateRequest {
    process: ProcessSelector,
    pty: Option<Pty>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
enum StreamInputEvent {
    Start {
        #[serde(default)]
        process: ProcessSelector,
    },
    Data {
        #[serde(default)]
        input: ProcessInput,
    },
    Keepalive {},
}

#[derive(Debug, Deserialize)]
struct StreamInputRequest {
    #[serde(default)]
    event: Option<StreamInputEvent>,
}

/// A process event as E2B's `ProcessEvent` JSON; keepalives are the stream's own business.
fn event_json(event: wrenn::ProcessEvent) -> Option<Value> {
    let event = match event.event? {
        Event::Start(s) => json!({ "start": { "pid": s.pid } }),
        Event::Data(d) => {
            let (stream, data) = match d.output? {
                data_event::Output::Stdout(b) => ("stdout", b),
                data_event::Output::Stderr(b) => ("stderr", b),
                data_event::Output::Pty(b) => ("pty", b),
            };
            json!({ "data": { stream: pjson::encode(&data) } })
        }
        Event::End(end) => {
            // E2B's envd reports a death by signal as exit code -1 (Go's ExitCode()).
            let exit_code = if end.exited { end.exit_code } else { -1 };
            let status = match end
                .signal
                .filter(|_| !end.exited)
                .and_then(signal_description)
            {
                Some(description) => format!("signal: {description}"),
                None => end.status,
            };
            let mut out = json!({
                "exitCode": exit_code,
                "exited": end.exited,
                "status": status,
            });
            if let Some(error) = end.error {
                out["error"] = json!(error);
            }
            json!({ "end": out })
        }
        Event::Keepalive(_) => return None,
    };
    Some(json!({ "event": event }))
}

/// How E2B's envd (Go's `os.ProcessState`) names the common terminating signals.
fn signal_description(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGHUP => "hangup",
        libc::SIGINT => "interrupt",
        libc::SIGQUIT => "quit",
        libc::SIGABRT => "aborted",
        libc::SIGKILL => "killed",
        libc::SIGSEGV => "segmentation fault",
        libc::SIGPIPE => "broken pipe",
        libc::SIGTERM => "terminated",
        _ => return None,
    })
}

fn events<S>(stream: S) -> futures::stream::BoxStream<'static, Result<Value, ConnectError>>
where
    S: futures::Stream<Item = Result<Option<wrenn::ProcessEvent>, tonic::Status>>
        + Send
        + Unpin
        + 'static,
{
    stream
        .filter_map(|item| async move {
            match item {
                Ok(event) => event.and_then(event_json).map(Ok),
                Err(status) => Some(Err(status.into())),
            }
        })
        .boxed()
}

fn keepalive(headers: &HeaderMap) -> Option<(std::time::Duration, Value)> {
    keepalive_interval(headers).map(|every| (every, json!({ "event": { "keepalive": {} } })))
}

async fn list(State(e2b): State<Arc<E2b>>, request: Request) -> Result<Unary<Value>, ConnectError> {
    let _: Value = connect::message(request).await?;
    let listed = e2b
        .processes
        .list(tonic::Request::new(wrenn::ListRequest {}))
        .await?
        .into_inner();
    // E2B lists running processes only.
    let processes: Vec<Value> = listed
        .processes
        .into_iter()
        .filter(|p| p.end.is_none())
        .map(|p| {
            let config = p.config.unwrap_or_default();
            let mut out = json!({
                "config": ProcessConfig {
                    cmd: config.cmd,
                    args: config.args,
                    envs: config.envs,
                    cwd: config.cwd,
                },
                "pid": p.pid,
            });
            if let Some(tag) = p.tag {
                out["tag"] = json!(tag);
            }
            out
        })
        .collect();
    Ok(Unary(json!({ "processes": processes })))
}

async fn start(
    State(e2b): State<Arc<E2b>>,
    Caller(user): Caller,
    headers: HeaderMap,
    request: Request,
) -> Response {
    let opened = async {
        let req: StartRequest = connect::message(request).await?;
        let config = req
            .process
            .ok_or_else(|| ConnectError::invalid_argument("process is required"))?;
        let start = wrenn::StartRequest {
            process: Some(wrenn::ProcessConfig {
                cmd: config.cmd,
                args: config.args,
                envs: config.envs,
                cwd: config.cwd.filter(|c| !c.is_empty()),
                user: Some(user),
            }),
            tag: req.tag,
            pty: req.pty.map(|p| wrenn::Pty {
                size: Some(p.wrenn_size()),
            }),
            stdin: req.stdin.unwrap_or(false),
            paced: false,
        };
        let stream = e2b
            .processes
            .start(tonic::Request::new(start))
            .await?
            .into_inner();
        Ok(events(stream.map(|r| r.map(|m| m.event))))
    }
    .await;
    connect::server_stream(opened, keepalive(&headers))
}

async fn connect_process(
    State(e2b): State<Arc<E2b>>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    let opened = async {
        let req: SelectorRequest = connect::message(request).await?;
        let stream = e2b
            .processes
            .connect_process(tonic::Request::new(wrenn::ConnectRequest {
                process: req.process.wrenn(),
                from_offset: None,
            }))
            .await?
            .into_inner();
        Ok(events(stream.map(|r| r.map(|m| m.event))))
    }
    .await;
    connect::server_stream(opened, keepalive(&headers))
}

async fn send_input(
    State(e2b): State<Arc<E2b>>,
    request: Request,
) -> Result<Unary<Value>, ConnectError> {
    let req: SendInputRequest = connect::message(request).await?;
    e2b.processes
        .send_input(tonic::Request::new(wrenn::SendInputRequest {
            process: req.process.wrenn(),
            input: Some(wrenn::ProcessInput {
                input: req.input.wrenn(),
            }),
        }))
        .await?;
    Ok(Unary(json!({})))
}

/// The client stream: `start` names the process, then `data` and `keepalive` follow. Input
/// goes to the process as each message arrives.
async fn stream_input(State(e2b): State<Arc<E2b>>, request: Request) -> Response {
    let mut messages = std::pin::pin!(connect::client_stream::<StreamInputRequest>(request));
    let outcome = async {
        let mut process = None;
        while let Some(message) = messages.next().await {
            match message?.event {
                Some(StreamInputEvent::Start { process: selector }) => {
                    process = Some(e2b.processes.processes.get(selector.wrenn().as_ref())?);
                }
                Some(StreamInputEvent::Data { input }) => {
                    let p = process
                        .as_ref()
                        .ok_or_else(|| ConnectError::invalid_argument("send `start` first"))?;
                    match input.wrenn() {
                        Some(wrenn::process_input::Input::Stdin(data)) => {
                            p.write_input(&data, false).await?
                        }
                        Some(wrenn::process_input::Input::Pty(data)) => {
                            p.write_input(&data, true).await?
                        }
                        None => return Err(ConnectError::invalid_argument("input is required")),
                    }
                }
                Some(StreamInputEvent::Keepalive {}) | None => {}
            }
        }
        Ok(json!({}))
    }
    .await;
    connect::single(outcome)
}

async fn close_stdin(
    State(e2b): State<Arc<E2b>>,
    request: Request,
) -> Result<Unary<Value>, ConnectError> {
    let req: SelectorRequest = connect::message(request).await?;
    e2b.processes
        .close_stdin(tonic::Request::new(wrenn::CloseStdinRequest {
            process: req.process.wrenn(),
        }))
        .await?;
    Ok(Unary(json!({})))
}

async fn send_signal(
    State(e2b): State<Arc<E2b>>,
    request: Request,
) -> Result<Unary<Value>, ConnectError> {
    let req: SendSignalRequest = connect::message(request).await?;
    if req.signal == 0 {
        return Err(ConnectError::invalid_argument("a signal is required"));
    }
    let sent = e2b
        .processes
        .send_signal(tonic::Request::new(wrenn::SendSignalRequest {
            process: req.process.wrenn(),
            signal: req.signal,
            process_group: false,
        }))
        .await;
    match sent {
        Ok(_) => Ok(Unary(json!({}))),
        // To E2B an exited process is gone: its SDK reads not_found as "was not running".
        Err(s) if s.code() == Code::FailedPrecondition => {
            Err(ConnectError::new(Code::NotFound, s.message()))
        }
        Err(s) => Err(s.into()),
    }
}

async fn update(
    State(e2b): State<Arc<E2b>>,
    request: Request,
) -> Result<Unary<Value>, ConnectError> {
    let req: UpdateRequest = connect::message(request).await?;
    e2b.processes
        .update(tonic::Request::new(wrenn::UpdateRequest {
            process: req.process.wrenn(),
            pty: req.pty.map(Pty::wrenn_size),
        }))
        .await?;
    Ok(Unary(json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_accept_proto3_json_spellings() {
        let req: SendSignalRequest =
            serde_json::from_str(r#"{"process":{"pid":"42"},"signal":"SIGNAL_SIGKILL"}"#).unwrap();
        assert_eq!((req.process.pid, req.signal), (Some(42), 9));
        let req: SendInputRequest =
            serde_json::from_str(r#"{"process":{"tag":"t"},"input":{"stdin":"aGk="}}"#).unwrap();
        assert_eq!(req.input.stdin.as_deref(), Some(&b"hi"[..]));
        let req: StreamInputRequest =
            serde_json::from_str(r#"{"event":{"keepalive":{}}}"#).unwrap();
        assert!(matches!(req.event, Some(StreamInputEvent::Keepalive {})));
    }

    #[test]
    fn a_signal_death_ends_with_exit_code_minus_one() {
        let end = wrenn::ProcessEvent {
            event: Some(Event::End(wrenn::process_event::EndEvent {
                exit_code: 137,
                exited: false,
                signal: Some(9),
                status: "signal: SIGKILL".into(),
                ..Default::default()
            })),
        };
        let v = event_json(end).unwrap();
        assert_eq!(v["event"]["end"]["exitCode"], -1);
        assert_eq!(v["event"]["end"]["status"], "signal: killed");
    }
}
