//! Running commands in a capsule: foreground exec (with the output encoding rule), background
//! processes with tags, listing and signalling, and the JSON frames of the process streams.

use crate::capsules::agent::{status_to_api, AgentClient};
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::ToSchema;
use wrenn_extension_api::ApiError;
use wrenn_proto::hostagent::v1 as pb;

/// `POST /v1/capsules/{id}/exec`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ExecRequest {
    pub cmd: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// Foreground only; default 30.
    #[serde(default)]
    pub timeout_sec: Option<u32>,
    #[serde(default)]
    pub background: bool,
    /// Background only; default `proc-` + 8 hex digits.
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub envs: HashMap<String, String>,
    #[serde(default)]
    pub cwd: Option<String>,
    /// User to run as (default root).
    #[serde(default)]
    pub user: Option<String>,
}

/// Foreground result. `encoding` is `utf-8`, or `base64` for both streams when either is not
/// valid UTF-8.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExecResult {
    pub sandbox_id: String,
    pub cmd: String,
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
    pub duration_ms: u64,
    pub encoding: String,
}

/// Background start.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BackgroundStarted {
    pub sandbox_id: String,
    pub cmd: String,
    pub pid: u32,
    pub tag: String,
}

/// A process in the capsule.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProcessInfo {
    pub pid: u32,
    pub tag: String,
    pub cmd: String,
    pub args: Vec<String>,
}

/// `GET /v1/capsules/{id}/processes`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProcessList {
    pub processes: Vec<ProcessInfo>,
}

/// A fresh tag with `prefix` (`proc` or `pty`) + 8 hex digits.
pub fn new_tag(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

/// Both streams as text when both are UTF-8, else both base64.
pub fn encode_output(stdout: Vec<u8>, stderr: Vec<u8>) -> (String, String, &'static str) {
    match (String::from_utf8(stdout), String::from_utf8(stderr)) {
        (Ok(o), Ok(e)) => (o, e, "utf-8"),
        (o, e) => {
            let raw = |r: Result<String, std::string::FromUtf8Error>| match r {
                Ok(s) => s.into_bytes(),
                Err(e) => e.into_bytes(),
            };
            let b64 = base64::engine::general_purpose::STANDARD;
            (b64.encode(raw(o)), b64.encode(raw(e)), "base64")
        }
    }
}

/// A process selector from a path segment: digits are a pid, anything else a tag.
pub fn selector(s: &str) -> pb::ProcessSelector {
    let selector = match s.parse::<u32>() {
        Ok(pid) => pb::process_selector::Selector::Pid(pid),
        Err(_) => pb::process_selector::Selector::Tag(s.to_string()),
    };
    pb::ProcessSelector {
        selector: Some(selector),
    }
}

/// A signal by name (`SIGTERM`, `TERM`) or number; `None` when unknown.
pub fn signal_number(name: &str) -> Option<i32> {
    if let Ok(n) = name.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    Some(match bare {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "KILL" => 9,
        "USR1" => 10,
        "USR2" => 12,
        "TERM" => 15,
        "CONT" => 18,
        "STOP" => 19,
        "TSTP" => 20,
        "WINCH" => 28,
        _ => return None,
    })
}

fn spec(req: &ExecRequest, tag: String) -> pb::ProcessSpec {
    pb::ProcessSpec {
        cmd: req.cmd.clone(),
        args: req.args.clone(),
        envs: req.envs.clone(),
        cwd: req.cwd.clone().unwrap_or_default(),
        user: req.user.clone().unwrap_or_default(),
        tag,
    }
}

/// Runs `req` in the foreground.
pub async fn run(
    client: &mut AgentClient,
    sandbox_id: &str,
    req: &ExecRequest,
) -> Result<ExecResult, ApiError> {
    let resp = client
        .exec(pb::ExecRequest {
            sandbox_id: sandbox_id.to_string(),
            process: Some(spec(req, String::new())),
            timeout_sec: req.timeout_sec.unwrap_or(30),
        })
        .await
        .map_err(status_to_api)?
        .into_inner();
    let (stdout, stderr, encoding) = encode_output(resp.stdout, resp.stderr);
    Ok(ExecResult {
        sandbox_id: sandbox_id.to_string(),
        cmd: req.cmd.clone(),
        stdout,
        stderr,
        exit_code: resp.exit_code,
        duration_ms: resp.duration_ms,
        encoding: encoding.to_string(),
    })
}

/// Starts `req` in the background.
pub async fn start_background(
    client: &mut AgentClient,
    sandbox_id: &str,
    req: &ExecRequest,
) -> Result<BackgroundStarted, ApiError> {
    let tag = req
        .tag
        .clone()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| new_tag("proc"));
    let resp = client
        .start_background(pb::StartBackgroundRequest {
            sandbox_id: sandbox_id.to_string(),
            process: Some(spec(req, tag.clone())),
        })
        .await
        .map_err(status_to_api)?
        .into_inner();
    Ok(BackgroundStarted {
        sandbox_id: sandbox_id.to_string(),
        cmd: req.cmd.clone(),
        pid: resp.pid,
        tag: if resp.tag.is_empty() { tag } else { resp.tag },
    })
}

/// Lists the capsule's processes.
pub async fn list(client: &mut AgentClient, sandbox_id: &str) -> Result<ProcessList, ApiError> {
    let resp = client
        .list_processes(pb::ListProcessesRequest {
            sandbox_id: sandbox_id.to_string(),
        })
        .await
        .map_err(status_to_api)?
        .into_inner();
    Ok(ProcessList {
        processes: resp
            .processes
            .into_iter()
            .map(|p| ProcessInfo {
                pid: p.pid,
                tag: p.tag,
                cmd: p.cmd,
                args: p.args,
            })
            .collect(),
    })
}

/// Signals a process selected by pid or tag.
pub async fn kill(
    client: &mut AgentClient,
    sandbox_id: &str,
    selector_text: &str,
    signal: i32,
) -> Result<(), ApiError> {
    client
        .kill_process(pb::KillProcessRequest {
            sandbox_id: sandbox_id.to_string(),
            process: Some(selector(selector_text)),
            signal,
        })
        .await
        .map_err(status_to_api)?;
    Ok(())
}

/// A client frame of `WS /exec/stream`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ExecClientFrame {
    Start {
        cmd: String,
        #[serde(default)]
        args: Vec<String>,
        #[serde(default)]
        envs: HashMap<String, String>,
        #[serde(default)]
        cwd: Option<String>,
        #[serde(default)]
        timeout_sec: Option<u32>,
        #[serde(default)]
        user: Option<String>,
    },
    Stop,
}

/// A server frame of the process streams (`start`, `stdout`, `stderr`, `exit`, `error`).
pub fn event_frame(event: pb::process_event::Event) -> Option<serde_json::Value> {
    use pb::process_event::Event;
    let lossy = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    Some(match event {
        Event::Start(s) => serde_json::json!({"type": "start", "pid": s.pid, "tag": s.tag}),
        Event::Stdout(b) => serde_json::json!({"type": "stdout", "data": lossy(b)}),
        Event::Stderr(b) => serde_json::json!({"type": "stderr", "data": lossy(b)}),
        Event::Exit(e) => serde_json::json!({"type": "exit", "exit_code": e.exit_code}),
        Event::Error(e) => serde_json::json!({"type": "error", "data": e}),
        Event::Keepalive(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_rule_applies_to_both_streams() {
        let (o, e, enc) = encode_output(b"hi\n".to_vec(), b"".to_vec());
        assert_eq!((o.as_str(), e.as_str(), enc), ("hi\n", "", "utf-8"));
        let (o, e, enc) = encode_output(b"ok".to_vec(), vec![0xff, 0xfe]);
        assert_eq!(enc, "base64");
        assert_eq!(o, "b2s=");
        assert_eq!(e, "//4=");
    }

    #[test]
    fn tags_selectors_and_signals() {
        let t = new_tag("proc");
        assert!(t.starts_with("proc-") && t.len() == 13, "{t}");
        assert!(matches!(
            selector("42").selector,
            Some(pb::process_selector::Selector::Pid(42))
        ));
        assert!(matches!(
            selector("proc-1a2b3c4d").selector,
            Some(pb::process_selector::Selector::Tag(_))
        ));
        assert_eq!(signal_number("SIGTERM"), Some(15));
        assert_eq!(signal_number("kill"), Some(9));
        assert_eq!(signal_number("2"), Some(2));
        assert_eq!(signal_number("SIGBOGUS"), None);
        assert_eq!(signal_number("0"), None);
    }
}
