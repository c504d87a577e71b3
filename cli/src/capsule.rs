//! `wrenn capsule create|list|get|pause|resume|destroy|snapshot`.

use crate::cli::{CapsuleCommand, CreateArgs};
use crate::client::{segment, Answer, Client};
use crate::error::Result;
use crate::output::{self, text, Table};
use serde_json::{json, Map, Value};

pub async fn run(client: &Client, command: CapsuleCommand, json: bool) -> Result<i32> {
    match command {
        CapsuleCommand::Create(args) => {
            let answer = client.post("/v1/capsules", &create_body(&args)).await?;
            show(&answer, json)
        }
        CapsuleCommand::List => {
            let answer = client.get_all("/v1/capsules").await?;
            if json {
                output::raw_json(&answer.raw)?;
            } else {
                list(&answer.value)?;
            }
            Ok(0)
        }
        CapsuleCommand::Get { id } => {
            let answer = client
                .get(&format!("/v1/capsules/{}", segment(&id)))
                .await?;
            show(&answer, json)
        }
        CapsuleCommand::Pause { id } => {
            let answer = client
                .post(&format!("/v1/capsules/{}/pause", segment(&id)), &json!({}))
                .await?;
            short(&answer, json)
        }
        CapsuleCommand::Resume { id } => {
            let answer = client
                .post(&format!("/v1/capsules/{}/resume", segment(&id)), &json!({}))
                .await?;
            short(&answer, json)
        }
        CapsuleCommand::Destroy { id } => {
            client
                .delete(&format!("/v1/capsules/{}", segment(&id)))
                .await?;
            // The API answers 204 without a body; scripts still get one JSON line.
            if json {
                output::json_line(&json!({"id": id, "status": "stopped"}))?;
            } else {
                output::out(&format!("{id} destroyed\n"))?;
            }
            Ok(0)
        }
        CapsuleCommand::Snapshot { id, name } => {
            let mut body = json!({"sandbox_id": id});
            if let Some(name) = name {
                body["name"] = json!(name);
            }
            let answer = client.post("/v1/snapshots", &body).await?;
            if json {
                output::raw_json(&answer.raw)?;
            } else {
                let t = &answer.value;
                output::out(&format!(
                    "template {} ({}) saved from {id}; the capsule is paused\n",
                    text(t, "name"),
                    text(t, "id")
                ))?;
            }
            Ok(0)
        }
    }
}

/// The `POST /v1/capsules` body: only what was given, so the server's defaults apply.
fn create_body(args: &CreateArgs) -> Value {
    let mut body = Map::new();
    if let Some(t) = &args.template {
        body.insert("template".into(), json!(t));
    }
    if let Some(v) = args.vcpus {
        body.insert("vcpus".into(), json!(v));
    }
    if let Some(m) = args.memory_mb {
        body.insert("memory_mb".into(), json!(m));
    }
    if let Some(d) = args.disk_mb {
        body.insert("disk_mb".into(), json!(d));
    }
    if let Some(t) = args.timeout_sec {
        body.insert("timeout_sec".into(), json!(t));
    }
    if !args.env.is_empty() {
        let envs: Map<String, Value> = args
            .env
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        body.insert("envs".into(), Value::Object(envs));
    }
    Value::Object(body)
}

/// One capsule as `key  value` lines.
fn show(answer: &Answer, json: bool) -> Result<i32> {
    if json {
        output::raw_json(&answer.raw)?;
        return Ok(0);
    }
    let c = &answer.value;
    let meta = c.get("metadata").cloned().unwrap_or(Value::Null);
    let runtime = [text(&meta, "runtime"), text(&meta, "runtime_version")]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    output::out(&output::fields(&[
        ("id", text(c, "id")),
        ("status", text(c, "status")),
        ("reason", text(c, "reason")),
        ("template", text(c, "template")),
        ("vcpus", text(c, "vcpus")),
        ("memory", mib(c, "memory_mb")),
        ("disk", mib(c, "disk_mb")),
        ("timeout", timeout(c)),
        ("guest ip", text(c, "guest_ip")),
        ("runtime", runtime),
        ("created", text(c, "created_at")),
        ("last active", text(c, "last_active_at")),
    ]))?;
    Ok(0)
}

/// `sb_…  paused` after pause and resume.
fn short(answer: &Answer, json: bool) -> Result<i32> {
    if json {
        output::raw_json(&answer.raw)?;
    } else {
        let c = &answer.value;
        output::out(&format!("{}  {}\n", text(c, "id"), text(c, "status")))?;
    }
    Ok(0)
}

fn list(capsules: &Value) -> Result<()> {
    let mut table = Table::new(&["ID", "STATUS", "TEMPLATE", "VCPUS", "MEMORY", "AGE"]);
    for c in capsules.as_array().into_iter().flatten() {
        table.row(vec![
            text(c, "id"),
            text(c, "status"),
            text(c, "template"),
            text(c, "vcpus"),
            mib(c, "memory_mb"),
            output::age(&text(c, "created_at")),
        ]);
    }
    table.print()
}

fn mib(c: &Value, key: &str) -> String {
    match c.get(key).and_then(Value::as_u64) {
        Some(n) => format!("{n} MiB"),
        None => String::new(),
    }
}

fn timeout(c: &Value) -> String {
    match c.get("timeout_sec").and_then(Value::as_u64) {
        Some(0) => "none".into(),
        Some(n) => format!("{n}s of inactivity, then paused"),
        None => String::new(),
    }
}
