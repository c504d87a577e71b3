//! Runs one claimed build: a capsule of the `FROM` template, each step in it, the
//! healthcheck, then the template written on the capsule's host. Whatever happens the capsule
//! is destroyed at the end, and a build that did not succeed leaves no template behind.
//!
//! Creating the capsule and writing the template are never interrupted half-way (they are
//! guarded capsule transitions); a cancel takes effect in the step in flight otherwise, or
//! right after those two.

use super::model::{BuildStatus, StepState, StepStatus};
use super::recipe::{self, Defaults, Op};
use crate::app::App;
use crate::capsules::agent::{self, status_to_api, AgentClient};
use crate::capsules::lifecycle::{self, settle_after_failure, step, template_ref, wire};
use crate::capsules::model::CreateCapsule;
use crate::capsules::{outcome, state, CapsuleStatus};
use crate::db::builds::{self as db, BuildRow};
use crate::db::capsules::CapsuleRow;
use crate::db::templates::{self as tdb, NewBuilt, ReplaceError, TemplateRow};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wrenn_extension_api::{ids, ApiError, Principal};
use wrenn_proto::hostagent::v1 as pb;

/// Why a build stopped before its end.
enum Stop {
    Failed(String),
    Cancelled,
    /// The snapshot was written but a trial capsule of it did not come up: runsc (20240729)
    /// now and then writes checkpoint images that never restore. The build runs again.
    Unrestorable(String),
}

/// Runs of a build whose snapshot does not restore, before it fails.
const ATTEMPTS: u32 = 3;

impl From<ApiError> for Stop {
    fn from(e: ApiError) -> Self {
        if let Some(cause) = e.cause() {
            tracing::warn!(cause, "A build step failed.");
        }
        Stop::Failed(e.message.to_string())
    }
}

impl From<sqlx::Error> for Stop {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "Database error during a build.");
        Stop::Failed("internal error (database)".into())
    }
}

/// One build in progress.
struct Job<'a> {
    ctx: &'a App,
    row: BuildRow,
    principal: Principal,
    steps: Vec<StepState>,
    defaults: Defaults,
    capsule: Option<CapsuleRow>,
    client: Option<AgentClient>,
    /// Set by a user's cancel (or the build's end seen by the heartbeat).
    cancel: CancellationToken,
    /// Tags of `START`ed processes and their lines.
    started: Vec<(String, usize)>,
    log_full: bool,
}

/// Runs a claimed build to its end.
#[tracing::instrument(name = "build.run", skip_all, fields(build_id = %row.id, team_id = %row.team_id))]
pub async fn run(ctx: &App, row: BuildRow, shutdown: &CancellationToken) {
    let cancel = CancellationToken::new();
    let done = CancellationToken::new();
    // The heartbeat: keeps the claim alive and hears cancels (and shutdown).
    {
        let ctx = ctx.clone();
        let (cancel, done, shutdown) = (cancel.clone(), done.clone(), shutdown.clone());
        let id = row.id;
        ctx.clone().spawn(async move {
            loop {
                tokio::select! {
                    _ = done.cancelled() => return,
                    _ = shutdown.cancelled() => { cancel.cancel(); return; }
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                match db::heartbeat(ctx.db(), id).await {
                    Ok(Some(false)) => {}
                    Ok(_) => {
                        cancel.cancel();
                        return;
                    }
                    Err(e) => tracing::warn!(build_id = %id, error = %e, "Build heartbeat failed."),
                }
            }
        });
    }
    let principal = super::principal_of(&row);
    let mut job = Job {
        ctx,
        steps: row.steps.0.clone(),
        row,
        principal,
        defaults: Defaults::default(),
        capsule: None,
        client: None,
        cancel: cancel.clone(),
        started: Vec::new(),
        log_full: false,
    };
    job.system(None, format!("Build of '{}' started.", job.row.name))
        .await;
    let mut attempt = 1;
    let result = loop {
        match job.execute().await {
            Err(Stop::Unrestorable(why)) if attempt < ATTEMPTS && !cancel.is_cancelled() => {
                attempt += 1;
                job.system(
                    None,
                    format!("{why}; building again (attempt {attempt}/{ATTEMPTS})."),
                )
                .await;
                job.destroy_capsule().await;
                job.restart();
            }
            other => break other,
        }
    };
    let outcome = match result {
        Ok(t) => Ok(t),
        Err(_) if shutdown.is_cancelled() => Err((
            BuildStatus::Failed,
            "the control plane shut down during the build".to_string(),
        )),
        Err(Stop::Cancelled) => Err((BuildStatus::Cancelled, "cancelled".to_string())),
        Err(Stop::Failed(why)) | Err(Stop::Unrestorable(why)) => Err((BuildStatus::Failed, why)),
    };
    job.destroy_capsule().await;
    match outcome {
        Ok(template) => {
            job.system(
                None,
                format!(
                    "Template '{}' is ready ({}, {} bytes).",
                    template.name, template.kind, template.size_bytes
                ),
            )
            .await;
            let _ = db::finish(
                ctx.db(),
                job.row.id,
                BuildStatus::Succeeded,
                "",
                &job.steps,
                Some((template.id, template.kind.as_str())),
            )
            .await;
        }
        Err((status, why)) => {
            let mark = if status == BuildStatus::Cancelled {
                StepStatus::Cancelled
            } else {
                StepStatus::Failed
            };
            for s in job.steps.iter_mut() {
                if s.status == StepStatus::Running {
                    s.status = mark;
                    s.finished_at = Some(chrono::Utc::now());
                }
            }
            job.system(None, format!("Build {}: {why}", status.as_str()))
                .await;
            if let Err(e) = db::finish(ctx.db(), job.row.id, status, &why, &job.steps, None).await {
                tracing::error!(build_id = %job.row.id, error = %e, "Recording a build's end failed.");
            }
        }
    }
    done.cancel();
    tracing::info!(build_id = %job.row.id, "Build ended.");
}

/// Ends a build whose worker is gone: its capsule destroyed, a template it may have been
/// writing removed, the build failed.
pub async fn abandon(ctx: &App, row: BuildRow) {
    if let Some(capsule) = row.capsule_id {
        if let Ok(Some(c)) = crate::db::capsules::get(ctx.db(), capsule).await {
            if c.status != CapsuleStatus::Stopped {
                let actor = outcome::actor_of(ctx, Some(&super::principal_of(&row))).await;
                if let Err(e) = lifecycle::destroy_reported(ctx, c, actor).await {
                    tracing::warn!(build_id = %row.id, error = %e, "Destroying an abandoned build's capsule failed.");
                }
            }
        }
    }
    // A template row exists only for a succeeded build: any files are leftovers.
    if let (Some(t), Some(host)) = (row.template_id, row.host_id) {
        if matches!(tdb::get(ctx.db(), t).await, Ok(None)) {
            remove_files(ctx, host, row.template_team_id, t).await;
        }
    }
    let mut steps = row.steps.0.clone();
    for s in steps.iter_mut().filter(|s| s.status == StepStatus::Running) {
        s.status = StepStatus::Failed;
    }
    let why = "the worker running the build stopped (its control plane went away)";
    let _ = db::append_log(ctx.db(), row.id, None, "system", why, i64::MAX).await;
    let _ = db::finish(ctx.db(), row.id, BuildStatus::Failed, why, &steps, None).await;
}

impl Job<'_> {
    /// Back to the state before the first step (for another attempt).
    fn restart(&mut self) {
        for s in self.steps.iter_mut() {
            s.status = StepStatus::Pending;
            s.exit_code = None;
            s.started_at = None;
            s.finished_at = None;
        }
        self.defaults = Defaults::default();
        self.started.clear();
        self.client = None;
    }

    async fn execute(&mut self) -> Result<TemplateRow, Stop> {
        let text = self.row.recipe.clone();
        let parsed = recipe::parse(&text).map_err(|e| Stop::Failed(e.to_string()))?;
        // Step 0: the capsule.
        self.begin(0).await?;
        self.create_capsule(&parsed.from).await?;
        self.end(0, None).await;
        let mut index = 1;
        for s in &parsed.steps {
            self.check_cancel()?;
            self.begin(index).await?;
            let code = self.step(&s.op, s.line, index).await?;
            self.end(index, code).await;
            index += 1;
        }
        if let Some(hc) = &parsed.healthcheck {
            self.check_cancel()?;
            self.begin(index).await?;
            let code = self.healthcheck(hc, index).await?;
            self.end(index, Some(code)).await;
            index += 1;
        }
        self.check_cancel()?;
        self.begin(index).await?;
        let template = self.save(index).await?;
        self.end(index, None).await;
        Ok(template)
    }

    fn check_cancel(&self) -> Result<(), Stop> {
        if self.cancel.is_cancelled() {
            Err(Stop::Cancelled)
        } else {
            Ok(())
        }
    }

    fn sandbox(&self) -> String {
        self.capsule
            .as_ref()
            .map(|c| wire(c.id))
            .unwrap_or_default()
    }

    fn client(&self) -> Result<AgentClient, Stop> {
        self.client
            .clone()
            .ok_or_else(|| Stop::Failed("the build has no capsule".into()))
    }

    async fn begin(&mut self, index: usize) -> Result<(), Stop> {
        let total = self.steps.len();
        let s = &mut self.steps[index];
        s.status = StepStatus::Running;
        s.started_at = Some(chrono::Utc::now());
        let line = if s.args.is_empty() {
            format!("Step {}/{total}: {}", index + 1, s.instruction)
        } else {
            format!("Step {}/{total}: {} {}", index + 1, s.instruction, s.args)
        };
        db::set_steps(self.ctx.db(), self.row.id, &self.steps).await?;
        self.system(Some(index), line).await;
        Ok(())
    }

    async fn end(&mut self, index: usize, exit_code: Option<i32>) {
        let s = &mut self.steps[index];
        s.status = StepStatus::Succeeded;
        s.exit_code = exit_code;
        s.finished_at = Some(chrono::Utc::now());
        if let Err(e) = db::set_steps(self.ctx.db(), self.row.id, &self.steps).await {
            tracing::warn!(build_id = %self.row.id, error = %e, "Recording a step failed.");
        }
    }

    /// Appends to the log (output past the log's bound is dropped, once announced).
    async fn log(&mut self, step: Option<usize>, stream: &str, data: &str) {
        if data.is_empty() || self.log_full {
            return;
        }
        let max = self.ctx.config.builds.log_max_bytes;
        let step = step.map(|s| s as i32);
        match db::append_log(self.ctx.db(), self.row.id, step, stream, data, max).await {
            Ok(true) => {}
            Ok(false) => {
                self.log_full = true;
                let note =
                    format!("[the build log reached {max} bytes; further output is not kept]");
                let _ = db::append_log(self.ctx.db(), self.row.id, step, "system", &note, i64::MAX)
                    .await;
            }
            Err(e) => {
                tracing::warn!(build_id = %self.row.id, error = %e, "Storing build output failed.")
            }
        }
    }

    async fn system(&mut self, step: Option<usize>, text: String) {
        let text = format!("{text}\n");
        // The build's own lines are kept even once the output bound is reached.
        let _ = db::append_log(
            self.ctx.db(),
            self.row.id,
            step.map(|s| s as i32),
            "system",
            &text,
            i64::MAX,
        )
        .await;
    }

    async fn create_capsule(&mut self, from: &str) -> Result<(), Stop> {
        let template =
            crate::capsules::templates::resolve(self.ctx, self.row.team_id, Some(from)).await?;
        if self.row.template_team_id.is_nil() && !template.is_platform() {
            return Err(Stop::Failed(format!(
                "FROM {from}: a platform build starts from a platform template, and the team has \
                 its own template of this name"
            )));
        }
        self.defaults = crate::capsules::templates::defaults(&template);
        let req = CreateCapsule {
            template: Some(from.to_string()),
            vcpus: Some(self.row.vcpus as u32),
            memory_mb: Some(self.row.memory_mb as u32),
            timeout_sec: Some(0),
            ..Default::default()
        };
        // Never interrupted: a create dropped half-way would leave the capsule mid-transition.
        let capsule = lifecycle::create(self.ctx, &self.principal, req).await?;
        db::set_capsule(self.ctx.db(), self.row.id, capsule.id, capsule.host_id).await?;
        self.row.host_id = capsule.host_id;
        let host = capsule
            .host_id
            .ok_or_else(|| Stop::Failed("the capsule has no host".into()))?;
        self.client = Some(agent::client(self.ctx, host).await?);
        self.system(
            Some(0),
            format!("Capsule {} started on its host.", wire(capsule.id)),
        )
        .await;
        self.capsule = Some(capsule);
        Ok(())
    }

    async fn step(&mut self, op: &Op, line: usize, index: usize) -> Result<Option<i32>, Stop> {
        match op {
            Op::Run(cmd) => {
                let code = self
                    .run_streamed(index, shell(cmd), self.user(), true)
                    .await?;
                if code != 0 {
                    return Err(Stop::Failed(format!(
                        "line {line}: RUN exited with code {code}"
                    )));
                }
                Ok(Some(code))
            }
            Op::Env(pairs) => {
                for (k, v) in pairs {
                    self.defaults.env.insert(k.clone(), v.clone());
                }
                Ok(None)
            }
            Op::Workdir(dir) => {
                let dir = self.defaults.resolve(dir);
                self.as_root(index, line, &["mkdir", "-p", &dir]).await?;
                if let Some(user) = self.defaults.user.clone().filter(|u| u != "root") {
                    self.as_root(index, line, &["chown", &user, &dir]).await?;
                }
                self.defaults.workdir = Some(dir);
                Ok(None)
            }
            Op::User(user) => {
                let code = self
                    .run_streamed(index, argv(&["id", user]), "root".into(), true)
                    .await?;
                if code != 0 {
                    return Err(Stop::Failed(format!(
                        "line {line}: USER {user}: no such user in the image"
                    )));
                }
                self.defaults.user = Some(user.clone());
                Ok(None)
            }
            Op::Copy { src, dest } => {
                self.copy(index, line, src, dest).await?;
                Ok(None)
            }
            Op::Start(cmd) => {
                let tag = format!("build-start-{line}");
                let mut client = self.client()?;
                let resp = client
                    .start_background(pb::StartBackgroundRequest {
                        sandbox_id: self.sandbox(),
                        process: Some(self.spec(shell(cmd), self.user(), &tag)),
                    })
                    .await
                    .map_err(status_to_api)?
                    .into_inner();
                self.system(
                    Some(index),
                    format!("Started pid {} (tag {tag}).", resp.pid),
                )
                .await;
                self.started.push((tag, line));
                Ok(None)
            }
        }
    }

    fn user(&self) -> String {
        self.defaults.user.clone().unwrap_or_else(|| "root".into())
    }

    fn spec(&self, (cmd, args): (String, Vec<String>), user: String, tag: &str) -> pb::ProcessSpec {
        pb::ProcessSpec {
            cmd,
            args,
            envs: self
                .defaults
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            cwd: self.defaults.workdir.clone().unwrap_or_else(|| "/".into()),
            user,
            tag: tag.to_string(),
        }
    }

    async fn as_root(&mut self, index: usize, line: usize, words: &[&str]) -> Result<(), Stop> {
        let code = self
            .run_streamed(index, argv(words), "root".into(), true)
            .await?;
        if code != 0 {
            return Err(Stop::Failed(format!(
                "line {line}: `{}` exited with code {code}",
                words.join(" ")
            )));
        }
        Ok(())
    }

    /// Runs a command to its end with its output in the log; its exit code. A cancel stops
    /// it (the capsule's destruction ends the process).
    async fn run_streamed(
        &mut self,
        index: usize,
        command: (String, Vec<String>),
        user: String,
        cancellable: bool,
    ) -> Result<i32, Stop> {
        let timeout = self.ctx.config.builds.step_timeout_secs;
        let mut client = self.client()?;
        let spec = self.spec(command, user, "");
        let mut stream = client
            .exec_stream(pb::ExecStreamRequest {
                sandbox_id: self.sandbox(),
                process: Some(spec),
                timeout_sec: timeout,
            })
            .await
            .map_err(status_to_api)?
            .into_inner();
        let mut out = Utf8Carry::default();
        let mut err = Utf8Carry::default();
        let cancel = self.cancel.clone();
        let deadline = tokio::time::sleep(Duration::from_secs(u64::from(timeout) + 30));
        tokio::pin!(deadline);
        loop {
            let next = tokio::select! {
                _ = cancel.cancelled(), if cancellable => return Err(Stop::Cancelled),
                _ = &mut deadline => {
                    return Err(Stop::Failed(format!("the step took longer than {timeout} s")))
                }
                n = stream.message() => n,
            };
            let event = match next {
                Ok(Some(e)) => e.event,
                Ok(None) => {
                    return Err(Stop::Failed(
                        "the command's output ended without an exit status".into(),
                    ))
                }
                Err(s) => return Err(status_to_api(s).into()),
            };
            use pb::process_event::Event;
            match event {
                Some(Event::Stdout(b)) => {
                    let text = out.push(&b);
                    self.log(Some(index), "stdout", &text).await;
                }
                Some(Event::Stderr(b)) => {
                    let text = err.push(&b);
                    self.log(Some(index), "stderr", &text).await;
                }
                Some(Event::Exit(e)) => {
                    let (o, r) = (out.finish(), err.finish());
                    self.log(Some(index), "stdout", &o).await;
                    self.log(Some(index), "stderr", &r).await;
                    if e.status == "timeout" || e.error.contains("timed out") {
                        return Err(Stop::Failed(format!(
                            "the step took longer than {timeout} s"
                        )));
                    }
                    return Ok(e.exit_code);
                }
                Some(Event::Error(message)) => return Err(Stop::Failed(message)),
                Some(Event::Start(_)) | Some(Event::Keepalive(_)) | None => {}
            }
        }
    }

    async fn copy(&mut self, index: usize, line: usize, src: &str, dest: &str) -> Result<(), Stop> {
        let Some(content) = db::file(self.ctx.db(), self.row.id, src).await? else {
            return Err(Stop::Failed(format!(
                "line {line}: COPY {src}: the file was not uploaded"
            )));
        };
        let mut target = self.defaults.resolve(dest);
        if target.ends_with('/') {
            let name = src.rsplit('/').next().unwrap_or(src);
            target.push_str(name);
        }
        let parent = match target.rsplit_once('/') {
            Some(("", _)) | None => "/".to_string(),
            Some((p, _)) => p.to_string(),
        };
        self.as_root(index, line, &["mkdir", "-p", &parent]).await?;
        let size = content.len();
        let mut parts = vec![pb::WriteFileStreamRequest {
            part: Some(pb::write_file_stream_request::Part::Header(
                pb::WriteFileStreamHeader {
                    sandbox_id: self.sandbox(),
                    path: target.clone(),
                    user: "root".into(),
                },
            )),
        }];
        let content = axum::body::Bytes::from(content);
        let mut offset = 0;
        while offset < content.len() {
            let end = (offset + 1024 * 1024).min(content.len());
            parts.push(pb::WriteFileStreamRequest {
                part: Some(pb::write_file_stream_request::Part::Chunk(
                    content.slice(offset..end),
                )),
            });
            offset = end;
        }
        let mut client = self.client()?;
        client
            .write_file_stream(futures::stream::iter(parts))
            .await
            .map_err(status_to_api)?;
        if let Some(user) = self.defaults.user.clone().filter(|u| u != "root") {
            self.as_root(index, line, &["chown", &user, &target])
                .await?;
        }
        self.system(Some(index), format!("Wrote {target} ({size} bytes)."))
            .await;
        Ok(())
    }

    async fn healthcheck(&mut self, hc: &recipe::Healthcheck, index: usize) -> Result<i32, Stop> {
        let mut last = -1;
        for attempt in 1..=hc.retries {
            self.check_cancel()?;
            let mut client = self.client()?;
            let timeout = hc.timeout.as_secs().max(1) as u32;
            let call = client.exec(pb::ExecRequest {
                sandbox_id: self.sandbox(),
                process: Some(self.spec(shell(&hc.command), self.user(), "")),
                timeout_sec: timeout,
            });
            let answer = tokio::select! {
                _ = self.cancel.cancelled() => return Err(Stop::Cancelled),
                r = tokio::time::timeout(hc.timeout + Duration::from_secs(5), call) => r,
            };
            match answer {
                Ok(Ok(r)) => {
                    let r = r.into_inner();
                    if r.exit_code == 0 && !r.timed_out {
                        self.system(Some(index), format!("Healthy after {attempt} tries."))
                            .await;
                        return Ok(0);
                    }
                    last = r.exit_code;
                    let why = if r.timed_out {
                        format!("timed out after {} s", hc.timeout.as_secs_f32())
                    } else {
                        format!("exit code {}", r.exit_code)
                    };
                    self.system(Some(index), format!("Try {attempt}/{}: {why}.", hc.retries))
                        .await;
                    if attempt == hc.retries {
                        self.log(Some(index), "stdout", &String::from_utf8_lossy(&r.stdout))
                            .await;
                        self.log(Some(index), "stderr", &String::from_utf8_lossy(&r.stderr))
                            .await;
                    }
                }
                Ok(Err(s)) => return Err(status_to_api(s).into()),
                Err(_) => {
                    self.system(
                        Some(index),
                        format!("Try {attempt}/{}: no answer.", hc.retries),
                    )
                    .await;
                }
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return Err(Stop::Cancelled),
                _ = tokio::time::sleep(hc.interval) => {}
            }
        }
        Err(Stop::Failed(format!(
            "line {}: the healthcheck failed {} times (last exit code {last})",
            hc.line, hc.retries
        )))
    }

    /// Writes the template (snapshot when processes were `START`ed, else a flattened rootfs)
    /// and enters it under its name.
    async fn save(&mut self, index: usize) -> Result<TemplateRow, Stop> {
        let capsule = self
            .capsule
            .clone()
            .ok_or_else(|| Stop::Failed("the build has no capsule".into()))?;
        let host = capsule
            .host_id
            .ok_or_else(|| Stop::Failed("the capsule has no host".into()))?;
        let mut client = self.client()?;
        // Every STARTed process must still run.
        if !self.started.is_empty() {
            let list = client
                .list_processes(pb::ListProcessesRequest {
                    sandbox_id: self.sandbox(),
                })
                .await
                .map_err(status_to_api)?
                .into_inner();
            for (tag, line) in &self.started {
                if !list.processes.iter().any(|p| &p.tag == tag) {
                    return Err(Stop::Failed(format!(
                        "line {line}: the process STARTed here has exited"
                    )));
                }
            }
        }
        let template_team = self.row.template_team_id;
        let template_id = Uuid::new_v4();
        db::set_planned_template(self.ctx.db(), self.row.id, template_id).await?;
        let tref = template_ref(template_team, template_id);
        let from = crate::capsules::templates::resolve(
            self.ctx,
            self.row.team_id,
            Some(&self.row.from_template),
        )
        .await?;
        let snapshot = !self.started.is_empty();
        // A snapshot continues from this rootfs; a flattened one is self-contained, but its
        // stopped capsules are re-linked to it once the template goes (as for snapshots).
        let base = if from.is_snapshot() {
            from.base_template_id.unwrap_or(from.id)
        } else {
            from.id
        };
        let actor = outcome::actor_of(self.ctx, Some(&self.principal)).await;
        let (kind, size, base_template_id, source) = if snapshot {
            let t = state::SNAPSHOT;
            let Some(claimed) = step(
                self.ctx,
                &capsule,
                &[CapsuleStatus::Running],
                t.via,
                "",
                &actor,
            )
            .await?
            else {
                return Err(Stop::Failed(
                    "the build's capsule is no longer running".into(),
                ));
            };
            let written = client
                .create_snapshot(pb::CreateSnapshotRequest {
                    sandbox_id: wire(capsule.id),
                    template: Some(tref.clone()),
                })
                .await;
            match written {
                Ok(r) => {
                    let _ = step(self.ctx, &claimed, &[t.via], t.to, "", &actor).await;
                    let size = r.into_inner().size_bytes;
                    if !self.restores(&mut client, &capsule, base, &tref).await? {
                        remove_files(self.ctx, host, template_team, template_id).await;
                        return Err(Stop::Unrestorable(
                            "the saved snapshot did not restore in a trial capsule".into(),
                        ));
                    }
                    self.system(
                        Some(index),
                        "A trial capsule of the snapshot came up.".into(),
                    )
                    .await;
                    ("snapshot", size, Some(base), Some(capsule.id))
                }
                Err(s) => {
                    let e = status_to_api(s);
                    settle_after_failure(
                        self.ctx,
                        &claimed,
                        t.via,
                        &format!("snapshot failed: {}", e.message),
                        &actor,
                    )
                    .await;
                    remove_files(self.ctx, host, template_team, template_id).await;
                    return Err(e.into());
                }
            }
        } else {
            match client
                .flatten_rootfs(pb::FlattenRootfsRequest {
                    sandbox_id: wire(capsule.id),
                    template: Some(tref.clone()),
                })
                .await
            {
                Ok(r) => ("base", r.into_inner().size_bytes, Some(base), None),
                Err(s) => {
                    remove_files(self.ctx, host, template_team, template_id).await;
                    return Err(status_to_api(s).into());
                }
            }
        };
        self.system(
            Some(index),
            format!("Wrote a {kind} template of {size} bytes."),
        )
        .await;
        let metadata = serde_json::json!({
            "build_id": ids::encode(ids::BUILD, self.row.id),
            "recipe_hash": self.row.recipe_hash,
            "defaults": self.defaults,
        });
        let new = NewBuilt {
            id: template_id,
            team_id: template_team,
            name: self.row.name.clone(),
            kind,
            vcpus: self.row.vcpus,
            memory_mb: self.row.memory_mb,
            size_bytes: size as i64,
            base_template_id,
            source_capsule_id: source,
            host_id: host,
            metadata,
        };
        match tdb::insert_built(self.ctx.db(), &new).await {
            Ok((row, old)) => {
                if let Some(old) = old {
                    self.system(
                        Some(index),
                        format!(
                            "Replaced the template an earlier build made ({}).",
                            ids::encode(ids::TEMPLATE, old.id)
                        ),
                    )
                    .await;
                    remove_everywhere(self.ctx, &old).await;
                }
                Ok(row)
            }
            Err(e) => {
                remove_files(self.ctx, host, template_team, template_id).await;
                Err(match e {
                    ReplaceError::InUse(what) => Stop::Failed(format!(
                        "the template '{}' still has {what}; remove them, or build under another name",
                        self.row.name
                    )),
                    ReplaceError::Taken => Stop::Failed(format!(
                        "a template named '{}' was created meanwhile, not by a build",
                        self.row.name
                    )),
                    ReplaceError::Db(e) => e.into(),
                })
            }
        }
    }

    /// Whether a capsule restored from the snapshot just written comes up (envd answering):
    /// a throw-away sandbox on the same host, destroyed at once.
    async fn restores(
        &mut self,
        client: &mut AgentClient,
        source: &CapsuleRow,
        base: Uuid,
        snapshot: &pb::TemplateRef,
    ) -> Result<bool, Stop> {
        let base_team = tdb::get(self.ctx.db(), base)
            .await?
            .map(|b| b.team_id)
            .unwrap_or_default();
        let trial = wire(Uuid::new_v4());
        let created = client
            .create_sandbox(pb::CreateSandboxRequest {
                sandbox_id: trial.clone(),
                template: Some(template_ref(base_team, base)),
                snapshot: Some(snapshot.clone()),
                vcpus: self.row.vcpus as u32,
                memory_mb: self.row.memory_mb as u32,
                disk_mb: source.disk_mb.max(0) as u32,
                // envd keeps the source capsule's token in the snapshot's memory.
                access_token: source.access_token.clone(),
                network: Some(crate::capsules::model::NetworkPolicy::default().to_pb()),
                ..Default::default()
            })
            .await;
        match created {
            Ok(_) => {
                // Waited for: with the destroy in the background, `make bench`'s BUILD got slower.
                if let Err(e) = client
                    .destroy_sandbox(pb::DestroySandboxRequest { sandbox_id: trial })
                    .await
                {
                    tracing::warn!(error = %e, "Destroying a trial capsule failed; the host monitor reaps it.");
                }
                Ok(true)
            }
            Err(e) => {
                tracing::warn!(build_id = %self.row.id, error = %e, "A trial restore of a build's snapshot failed.");
                Ok(false)
            }
        }
    }

    /// Destroys the build's capsule (whatever its state), reported like any destroy.
    async fn destroy_capsule(&mut self) {
        let Some(capsule) = self.capsule.take() else {
            return;
        };
        let current = crate::db::capsules::get(self.ctx.db(), capsule.id)
            .await
            .ok()
            .flatten()
            .unwrap_or(capsule);
        if current.status == CapsuleStatus::Stopped {
            return;
        }
        let actor = outcome::actor_of(self.ctx, Some(&self.principal)).await;
        if let Err(e) = lifecycle::destroy_reported(self.ctx, current, actor).await {
            tracing::warn!(build_id = %self.row.id, error = %e, "Destroying a build's capsule failed; the host monitor will reap it.");
        }
    }
}

/// Removes a template's files from one host (missing files are fine).
async fn remove_files(ctx: &App, host: Uuid, team: Uuid, template: Uuid) {
    let Ok(mut client) = agent::client(ctx, host).await else {
        tracing::warn!(host_id = %host, template_id = %template, "Host unreachable: a build's template files stay until it is cleaned.");
        return;
    };
    match client
        .delete_snapshot(pb::DeleteSnapshotRequest {
            template: Some(template_ref(team, template)),
        })
        .await
    {
        Ok(_) => {}
        Err(s) if s.code() == tonic::Code::NotFound => {}
        Err(s) => {
            tracing::warn!(host_id = %host, template_id = %template, error = %s, "Removing a build's template files failed.")
        }
    }
}

/// Removes a replaced template's files from the host that holds it.
async fn remove_everywhere(ctx: &App, old: &TemplateRow) {
    if let Some(host) = old.host_id {
        remove_files(ctx, host, old.team_id, old.id).await;
    }
}

fn shell(cmd: &str) -> (String, Vec<String>) {
    ("/bin/sh".into(), vec!["-c".into(), cmd.into()])
}

fn argv(words: &[&str]) -> (String, Vec<String>) {
    (
        words[0].to_string(),
        words[1..].iter().map(|w| w.to_string()).collect(),
    )
}

/// Turns a byte stream into text without splitting a UTF-8 sequence across two chunks.
#[derive(Default)]
struct Utf8Carry {
    rest: Vec<u8>,
}

impl Utf8Carry {
    fn push(&mut self, bytes: &[u8]) -> String {
        self.rest.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.rest) {
            Ok(_) => self.rest.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => self.rest.len(),
        };
        let head: Vec<u8> = self.rest.drain(..valid).collect();
        String::from_utf8_lossy(&head).into_owned()
    }

    fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.rest);
        String::from_utf8_lossy(&rest).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::Utf8Carry;

    #[test]
    fn a_character_split_across_chunks_is_kept_whole() {
        let text = "héllo ✓";
        let bytes = text.as_bytes();
        let mut c = Utf8Carry::default();
        let mut got = String::new();
        for b in bytes {
            got.push_str(&c.push(&[*b]));
        }
        got.push_str(&c.finish());
        assert_eq!(got, text);
        let mut c = Utf8Carry::default();
        assert_eq!(c.push(&[0xff, b'a']), "\u{fffd}a");
    }
}
