//! Capsule lifecycle, snapshot and metrics RPCs.

use tonic::Status;
use wrenn_proto::hostagent::v1 as pb;

use super::AgentService;
use crate::capsules::State;
use crate::host::CreateParams;
use crate::metrics::Point;

fn metadata(svc: &AgentService, envd_version: String) -> pb::SandboxMetadata {
    let caps = svc.host.runtime.capabilities();
    pb::SandboxMetadata {
        envd_version,
        kernel_version: caps.kernel_version.clone(),
        runtime: caps.runtime.clone(),
        runtime_version: caps.runtime_version.clone(),
        agent_version: svc.host.agent_version.clone(),
    }
}

pub async fn create(
    svc: &AgentService,
    r: pb::CreateSandboxRequest,
) -> Result<pb::CreateSandboxResponse, Status> {
    let template = r
        .template
        .ok_or_else(|| Status::invalid_argument("template is required"))?;
    let params = CreateParams {
        id: r.sandbox_id.clone(),
        team_id: template.team_id,
        template_id: template.template_id,
        snapshot: r.snapshot.map(|s| (s.team_id, s.template_id)),
        vcpus: r.vcpus,
        memory_mb: r.memory_mb,
        disk_mb: r.disk_mb,
        timeout_sec: r.timeout_sec,
        env: r.env_vars.into_iter().collect(),
        access_token: r.access_token,
        default_user: r.default_user,
        default_workdir: r.default_workdir,
        network_mode: r
            .network
            .as_ref()
            .map(|n| n.mode.clone())
            .unwrap_or_default(),
        network_allow: r.network.map(|n| n.allow).unwrap_or_default(),
    };
    let (capsule, started) = svc.host.create(params).await?;
    let created = capsule.lock().record.created_at_unix;
    Ok(pb::CreateSandboxResponse {
        sandbox_id: r.sandbox_id,
        metadata: Some(metadata(svc, started.envd_version)),
        envd_address: started.envd_address,
        guest_ip: String::new(),
        host_ip: String::new(),
        started_at_unix: created,
    })
}

pub async fn resume(
    svc: &AgentService,
    r: pb::ResumeSandboxRequest,
) -> Result<pb::ResumeSandboxResponse, Status> {
    let started = svc.host.resume(&r.sandbox_id, r.timeout_sec).await?;
    Ok(pb::ResumeSandboxResponse {
        metadata: Some(metadata(svc, started.envd_version)),
    })
}

pub async fn set_network(
    svc: &AgentService,
    r: pb::SetSandboxNetworkRequest,
) -> Result<pb::SetSandboxNetworkResponse, Status> {
    let n = r.network.unwrap_or_default();
    let policy = svc
        .host
        .set_network(&r.sandbox_id, &n.mode, &n.allow)
        .await?;
    Ok(pb::SetSandboxNetworkResponse {
        resolved: policy.resolved,
    })
}

pub fn list(svc: &AgentService) -> pb::ListSandboxesResponse {
    let sandboxes = svc
        .host
        .capsules
        .all()
        .into_iter()
        .map(|c| {
            let live = c.lock();
            let r = &live.record;
            pb::SandboxInfo {
                sandbox_id: c.id.clone(),
                state: match r.state {
                    State::Running => pb::SandboxState::Running as i32,
                    State::Paused => pb::SandboxState::Paused as i32,
                },
                template: Some(pb::TemplateRef {
                    team_id: r.team_id.clone(),
                    template_id: r.template_id.clone(),
                }),
                vcpus: r.spec.vcpus,
                memory_mb: r.spec.memory_mb,
                timeout_sec: r.timeout_sec,
                created_at_unix: r.created_at_unix,
                last_active_at_unix: live.last_active_unix,
                auto_paused: r.auto_paused,
            }
        })
        .chain(
            svc.host
                .graveyard
                .ids()
                .into_iter()
                .map(|id| pb::SandboxInfo {
                    sandbox_id: id,
                    state: pb::SandboxState::Error as i32,
                    ..Default::default()
                }),
        )
        .collect();
    pb::ListSandboxesResponse {
        sandboxes,
        auto_paused_ids: svc.host.auto_paused_ids(),
    }
}

pub async fn create_snapshot(
    svc: &AgentService,
    r: pb::CreateSnapshotRequest,
) -> Result<pb::CreateSnapshotResponse, Status> {
    let t = r
        .template
        .ok_or_else(|| Status::invalid_argument("template is required"))?;
    let (size_bytes, vcpus, memory_mb) = svc
        .host
        .snapshot(&r.sandbox_id, &t.team_id, &t.template_id)
        .await?;
    Ok(pb::CreateSnapshotResponse {
        size_bytes,
        vcpus,
        memory_mb,
    })
}

fn point_pb(p: &Point) -> pb::MetricPoint {
    pb::MetricPoint {
        timestamp_unix: p.timestamp_unix,
        cpu_pct: p.cpu_pct,
        mem_bytes: p.mem_bytes,
        disk_bytes: p.disk_bytes,
    }
}

pub fn metrics(
    svc: &AgentService,
    r: pb::GetSandboxMetricsRequest,
) -> Result<pb::GetSandboxMetricsResponse, Status> {
    let capsule = svc.host.capsule(&r.sandbox_id)?;
    let range = if r.range.is_empty() {
        "10m".to_owned()
    } else {
        r.range
    };
    let now = chrono::Utc::now().timestamp();
    let points = capsule
        .rings
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .range(&range, now)
        .ok_or_else(|| {
            Status::invalid_argument(format!(
                "unknown range {range:?} (5m, 10m, 1h, 2h, 6h, 24h)"
            ))
        })?;
    Ok(pb::GetSandboxMetricsResponse {
        sandbox_id: r.sandbox_id,
        range,
        points: points.iter().map(point_pb).collect(),
    })
}

pub fn flush_metrics(
    svc: &AgentService,
    r: pb::FlushSandboxMetricsRequest,
) -> Result<pb::FlushSandboxMetricsResponse, Status> {
    let capsules = if r.sandbox_id.is_empty() {
        svc.host.capsules.all()
    } else {
        vec![svc.host.capsule(&r.sandbox_id)?]
    };
    let sandboxes = capsules
        .into_iter()
        .map(|c| {
            let points = c.rings.lock().unwrap_or_else(|e| e.into_inner()).flush();
            pb::SandboxMetrics {
                sandbox_id: c.id.clone(),
                points: points.iter().map(point_pb).collect(),
            }
        })
        .collect();
    Ok(pb::FlushSandboxMetricsResponse { sandboxes })
}
