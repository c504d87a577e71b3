//! Template builds: `wrenn template build` (submit, then follow with a progress display),
//! `wrenn logs BUILD [--follow]` and `wrenn builds list|get|cancel`.
//!
//! Following reads `GET /v1/builds/{id}/logs?follow=true` (Server-Sent Events: `log` entries,
//! `status` with the Build whenever it or a step changes, `end` with the final Build). A
//! stream that drops before `end` is resumed with `after=<last seq>`, and entries already
//! shown are skipped by their `seq`.

mod files;
mod progress;

use crate::cli::{BuildArgs, BuildsCommand, LogsArgs};
use crate::client::{segment, Client};
use crate::error::{fail, CliError, Result};
use crate::output::{self, text, Table};
use crate::sse;
use futures::StreamExt;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use std::io::Write;
use std::time::Duration;

/// How often a dropped log stream is resumed before giving up.
const RESUME_ATTEMPTS: u32 = 5;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Build {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub reused: bool,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub template_id: Option<String>,
    #[serde(default)]
    pub steps: Vec<Step>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Step {
    #[serde(default)]
    pub index: usize,
    #[serde(default)]
    pub line: Option<u64>,
    #[serde(default)]
    pub instruction: String,
    #[serde(default)]
    pub args: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub exit_code: Option<i64>,
}

impl Step {
    fn describe(&self) -> String {
        format!("{} {}", self.instruction, self.args)
            .trim()
            .to_string()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogEntry {
    pub seq: u64,
    #[serde(default)]
    pub step: Option<usize>,
    #[serde(default)]
    pub stream: String,
    #[serde(default)]
    pub data: String,
}

impl Build {
    pub fn finished(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "failed" | "cancelled")
    }
}

fn parse_build(raw: &str) -> Result<Build> {
    serde_json::from_str(raw).map_err(|e| fail(format!("unexpected build JSON: {e}")))
}

/// What a follower does with what arrives.
trait Sink {
    fn log(&mut self, entry: &LogEntry, raw: &str) -> Result<()>;
    fn status(&mut self, build: &Build) -> Result<()>;
}

/// Follows a build's log stream until its `end` event; returns the final Build (parsed and
/// as received).
async fn follow(client: &Client, id: &str, sink: &mut dyn Sink) -> Result<(Build, String)> {
    let mut last_seq: Option<u64> = None;
    let mut failures = 0;
    loop {
        let mut path = format!("/v1/builds/{}/logs?follow=true", segment(id));
        if let Some(seq) = last_seq {
            path.push_str(&format!("&after={seq}"));
        }
        let url = client.url(&path);
        let dropped = match client
            .send(
                client
                    .request(Method::GET, &path)
                    .header("Accept", "text/event-stream"),
            )
            .await
        {
            Ok(response) => {
                let mut parser = sse::Parser::new();
                let mut body = response.bytes_stream();
                let mut why = "the log stream ended before the build did".to_string();
                'stream: while let Some(chunk) = body.next().await {
                    let chunk = match chunk {
                        Ok(c) => c,
                        Err(e) => {
                            why = crate::client::network_error(&url, &e).to_string();
                            break 'stream;
                        }
                    };
                    failures = 0;
                    for event in parser.feed(&chunk) {
                        match event.event.as_str() {
                            "log" => {
                                let Ok(entry) = serde_json::from_str::<LogEntry>(&event.data)
                                else {
                                    continue;
                                };
                                if last_seq.is_some_and(|s| entry.seq <= s) {
                                    continue;
                                }
                                last_seq = Some(entry.seq);
                                sink.log(&entry, &event.data)?;
                            }
                            "status" => {
                                if let Ok(build) = serde_json::from_str::<Build>(&event.data) {
                                    sink.status(&build)?;
                                }
                            }
                            "end" => {
                                let build = parse_build(&event.data)?;
                                return Ok((build, event.data));
                            }
                            _ => {}
                        }
                    }
                }
                why
            }
            // Connection trouble is retried; an answer from the API is final.
            Err(e @ CliError::Network { .. }) => e.to_string(),
            Err(e) => return Err(e),
        };
        failures += 1;
        if failures > RESUME_ATTEMPTS {
            // One last look: the build may have ended while the stream was down.
            let answer = client.get(&format!("/v1/builds/{}", segment(id))).await?;
            let build = parse_build(&answer.raw)?;
            if build.finished() {
                return Ok((build, answer.raw));
            }
            return Err(fail(format!("following build {id}: {dropped}")));
        }
        tokio::time::sleep(Duration::from_millis(500 * u64::from(failures))).await;
    }
}

/// `wrenn logs BUILD [--follow]`: entries as they were written (stdout entries on stdout,
/// stderr entries on stderr, system lines as `==> …`); `--json` prints entries verbatim (the
/// array, or one JSON line per entry when following).
pub async fn logs(client: &Client, args: LogsArgs, json: bool) -> Result<i32> {
    if args.follow {
        let mut sink = PlainLogs { json };
        follow(client, &args.build_id, &mut sink).await?;
        return Ok(0);
    }
    // Pages by `after` until an empty page (a single page is printed as received).
    let mut pages: Vec<(String, Vec<Value>)> = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let mut path = format!("/v1/builds/{}/logs", segment(&args.build_id));
        if let Some(seq) = after {
            path.push_str(&format!("?after={seq}"));
        }
        let answer = client.get(&path).await?;
        let entries = answer.value.as_array().cloned().unwrap_or_default();
        let next = entries.iter().filter_map(|e| e["seq"].as_u64()).max();
        let advanced = matches!((next, after), (Some(n), Some(a)) if n > a)
            || (after.is_none() && next.is_some());
        if entries.is_empty() || !advanced {
            if pages.is_empty() {
                pages.push((answer.raw, entries));
            }
            break;
        }
        after = next;
        pages.push((answer.raw, entries));
    }
    if json {
        if pages.len() == 1 {
            output::raw_json(&pages[0].0)?;
        } else {
            let all: Vec<Value> = pages.into_iter().flat_map(|(_, e)| e).collect();
            output::json_line(&Value::Array(all))?;
        }
        return Ok(0);
    }
    let mut sink = PlainLogs { json: false };
    for entry in pages.into_iter().flat_map(|(_, e)| e) {
        if let Ok(parsed) = serde_json::from_value::<LogEntry>(entry) {
            sink.log(&parsed, "")?;
        }
    }
    Ok(0)
}

/// Log entries written as they come.
struct PlainLogs {
    json: bool,
}

impl Sink for PlainLogs {
    fn log(&mut self, entry: &LogEntry, raw: &str) -> Result<()> {
        if self.json {
            return output::out(&format!("{}\n", raw.trim_end()));
        }
        write_entry(entry)
    }

    fn status(&mut self, _build: &Build) -> Result<()> {
        Ok(())
    }
}

fn write_entry(entry: &LogEntry) -> Result<()> {
    match entry.stream.as_str() {
        "stderr" => {
            let mut err = std::io::stderr().lock();
            err.write_all(entry.data.as_bytes())?;
            err.flush()?;
            Ok(())
        }
        "system" => output::out(&format!("==> {}\n", entry.data.trim_end())),
        _ => output::out(&entry.data),
    }
}

/// `wrenn template build`.
pub async fn build(client: &Client, args: BuildArgs, json: bool) -> Result<i32> {
    let recipe = std::fs::read_to_string(&args.recipe)
        .map_err(|e| fail(format!("{}: {e}", args.recipe.display())))?;
    let files = files::collect_files(&args.recipe, &args.files)?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let files: Vec<Value> = files
        .into_iter()
        .map(|(key, path)| {
            let content =
                std::fs::read(&path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
            Ok(json!({"path": key, "content_base64": base64::Engine::encode(&b64, content)}))
        })
        .collect::<Result<_>>()?;
    let body = json!({
        "name": args.name,
        "recipe": recipe,
        "files": files,
        "rebuild": args.rebuild,
        "scope": if args.platform { "platform" } else { "team" },
    });
    let answer = match client.post("/v1/builds", &body).await {
        Ok(a) => a,
        Err(CliError::Api {
            status,
            code,
            message,
            raw,
        }) if code == "invalid_recipe" => {
            return Err(CliError::Api {
                status,
                code,
                message: format!("{}: {message}", args.recipe.display()),
                raw,
            })
        }
        Err(e) => return Err(e),
    };
    let submitted = parse_build(&answer.raw)?;
    if submitted.reused {
        if json {
            output::raw_json(&answer.raw)?;
        } else {
            output::out(&format!(
                "reused template {} from build {}\n",
                submitted.name, submitted.id
            ))?;
        }
        return Ok(0);
    }
    if args.detach {
        if json {
            output::raw_json(&answer.raw)?;
        } else {
            output::out(&format!(
                "build {} queued; follow it with: wrenn logs {} --follow\n",
                submitted.id, submitted.id
            ))?;
        }
        return Ok(0);
    }

    let mut display = progress::Progress::new(&submitted, json);
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let followed = tokio::select! {
        r = follow(client, &submitted.id, &mut display) => Some(r),
        _ = interrupt.recv() => None,
    };
    display.finish()?;
    let Some(followed) = followed else {
        // Ctrl-C: cancel the build rather than leave it running unseen.
        if !json {
            eprintln!("cancelling build {}", submitted.id);
        }
        let cancel = format!("/v1/builds/{}/cancel", segment(&submitted.id));
        match client.post(&cancel, &json!({})).await {
            Ok(answer) if json => output::raw_json(&answer.raw)?,
            Ok(_) | Err(CliError::Api { status: 409, .. }) => {}
            Err(e) => e.report(json),
        }
        return Ok(130);
    };
    let (build, raw) = followed?;
    if json {
        output::raw_json(&raw)?;
    }
    if build.status == "succeeded" {
        if !json {
            let took = match (&build.started_at, &build.finished_at) {
                (Some(a), Some(b)) => output::seconds_between(a, b)
                    .map(|s| format!(" in {}", output::duration(s)))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            let template = build.template_id.clone().unwrap_or_default();
            output::out(&format!(
                "built template {}{}{took} (build {})\n",
                build.name,
                if template.is_empty() {
                    String::new()
                } else {
                    format!(" ({template})")
                },
                build.id
            ))?;
        }
        return Ok(0);
    }
    if !json {
        eprintln!("error: {}", failure(&build));
    }
    Ok(1)
}

/// Why a build did not succeed, naming the failing step.
fn failure(build: &Build) -> String {
    let total = build.steps.len();
    let mut text = format!("build {} {}", build.id, build.status);
    if let Some(step) = build.steps.iter().find(|s| s.status == "failed") {
        text.push_str(&format!(" at step {}/{total}", step.index + 1));
        if let Some(line) = step.line.filter(|&l| l > 0) {
            text.push_str(&format!(" (line {line}: {})", step.describe()));
        } else {
            text.push_str(&format!(" ({})", step.describe()));
        }
        if let Some(code) = step.exit_code {
            text.push_str(&format!(", exit code {code}"));
        }
    }
    if let Some(error) = build.error.as_deref().filter(|e| !e.is_empty()) {
        text.push_str(&format!(": {error}"));
    }
    text
}

/// `wrenn builds list|get|cancel`.
pub async fn run(client: &Client, command: BuildsCommand, json: bool) -> Result<i32> {
    match command {
        BuildsCommand::List => {
            let answer = client.get_all("/v1/builds").await?;
            if json {
                output::raw_json(&answer.raw)?;
                return Ok(0);
            }
            let mut table = Table::new(&["ID", "NAME", "STATUS", "STEPS", "AGE"]);
            for b in answer.value.as_array().into_iter().flatten() {
                let steps = b["steps"].as_array().cloned().unwrap_or_default();
                let done = steps.iter().filter(|s| s["status"] == "succeeded").count();
                let mut status = text(b, "status");
                if b["reused"] == true {
                    status.push_str(" (reused)");
                }
                table.row(vec![
                    text(b, "id"),
                    text(b, "name"),
                    status,
                    format!("{done}/{}", steps.len()),
                    output::age(&text(b, "created_at")),
                ]);
            }
            table.print()?;
            Ok(0)
        }
        BuildsCommand::Get { id } => {
            let answer = client.get(&format!("/v1/builds/{}", segment(&id))).await?;
            if json {
                output::raw_json(&answer.raw)?;
                return Ok(0);
            }
            let b = &answer.value;
            output::out(&output::fields(&[
                ("id", text(b, "id")),
                ("name", text(b, "name")),
                ("status", text(b, "status")),
                ("error", text(b, "error")),
                ("from", text(b, "from")),
                ("template", text(b, "template_id")),
                ("created", text(b, "created_at")),
                ("started", text(b, "started_at")),
                ("finished", text(b, "finished_at")),
            ]))?;
            let build = parse_build(&answer.raw)?;
            if !build.steps.is_empty() {
                let mut table = Table::new(&["STEP", "LINE", "STATUS", "EXIT", "INSTRUCTION"]);
                let total = build.steps.len();
                for s in &build.steps {
                    table.row(vec![
                        format!("{}/{total}", s.index + 1),
                        s.line.map(|l| l.to_string()).unwrap_or_default(),
                        s.status.clone(),
                        s.exit_code.map(|c| c.to_string()).unwrap_or_default(),
                        s.describe(),
                    ]);
                }
                output::out("\n")?;
                table.print()?;
            }
            Ok(0)
        }
        BuildsCommand::Cancel { id } => {
            let answer = client
                .post(&format!("/v1/builds/{}/cancel", segment(&id)), &json!({}))
                .await?;
            if json {
                output::raw_json(&answer.raw)?;
            } else {
                output::out(&format!(
                    "{}  {}\n",
                    text(&answer.value, "id"),
                    text(&answer.value, "status")
                ))?;
            }
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_the_step() {
        let build: Build = serde_json::from_value(json!({
            "id": "bld_1", "status": "failed", "error": "step 2 exited with 3",
            "steps": [
                {"index": 0, "line": 1, "instruction": "FROM", "args": "x", "status": "succeeded"},
                {"index": 1, "line": 2, "instruction": "RUN", "args": "false", "status": "failed", "exit_code": 3}
            ]
        }))
        .unwrap();
        assert_eq!(
            failure(&build),
            "build bld_1 failed at step 2/2 (line 2: RUN false), exit code 3: step 2 exited with 3"
        );
    }
}
