//! HostAgentService over tonic: decodes requests, calls [`Host`], maps errors to codes.
//!
//! Submodules hold the RPC groups: [`lifecycle`] (capsules, snapshots, metrics,
//! terminate), [`process`] (exec, background processes, PTYs), [`files`] and [`tunnel`]
//! (the port proxy's byte tunnel).

mod files;
mod lifecycle;
mod process;
mod tunnel;

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tonic::{Request, Response, Status, Streaming};
use wrenn_proto::hostagent::v1 as pb;
use wrenn_proto::hostagent::v1::host_agent_service_server::HostAgentService;

use crate::envd::EnvdError;
use crate::host::{Host, HostError};
use crate::runtime::Capabilities;

pub use wrenn_proto::hostagent::v1::host_agent_service_server::HostAgentServiceServer;

type RpcStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The service object handed to tonic.
#[derive(Clone)]
pub struct AgentService {
    pub host: Arc<Host>,
    pub info: pb::HostInfo,
}

impl From<HostError> for Status {
    fn from(e: HostError) -> Status {
        match e {
            HostError::NotFound(m) => Status::not_found(m),
            HostError::InvalidArgument(m) => Status::invalid_argument(m),
            HostError::FailedPrecondition(m) => Status::failed_precondition(m),
            HostError::AlreadyExists(m) => Status::already_exists(m),
            HostError::Internal(m) => {
                // The control plane shows its caller only "the host agent failed"; the
                // operator finds the reason here.
                tracing::warn!(error = %m, "request failed on this host");
                Status::internal(m)
            }
            HostError::Dead { reason, detail } => {
                let mut status = Status::failed_precondition(detail);
                if let Ok(v) = reason.parse() {
                    status
                        .metadata_mut()
                        .insert(wrenn_proto::hostagent::CAPSULE_DEAD_METADATA, v);
                }
                status
            }
        }
    }
}

/// envd's own gRPC errors pass through with their code; transport errors are Unavailable.
pub(crate) fn envd_status(s: Status) -> Status {
    match s.code() {
        tonic::Code::Unknown | tonic::Code::Unavailable => {
            Status::unavailable(format!("envd: {}", s.message()))
        }
        _ => s,
    }
}

pub(crate) fn envd_error(e: EnvdError) -> Status {
    match e {
        EnvdError::Status { status: 404, body } => Status::not_found(body),
        EnvdError::Status { status: 400, body } => Status::invalid_argument(body),
        EnvdError::Status { status: 403, body } => Status::permission_denied(body),
        EnvdError::Status { status: 409, body } => Status::failed_precondition(body),
        EnvdError::Status { status: 413, body } => Status::resource_exhausted(body),
        other => Status::unavailable(other.to_string()),
    }
}

impl AgentService {
    /// `result`, with a failure that came from the capsule's sandbox having died told as
    /// such ([`Host::explain`]).
    async fn explained<T>(&self, id: &str, result: Result<T, Status>) -> Result<T, Status> {
        match result {
            Ok(v) => Ok(v),
            Err(e) => Err(self.host.explain(id, e).await),
        }
    }
}

pub fn capabilities_pb(c: &Capabilities) -> pb::Capabilities {
    pb::Capabilities {
        runtime: c.runtime.clone(),
        runtime_version: c.runtime_version.clone(),
        platforms: c.platforms.clone(),
        platform: c.platform.clone(),
        network_modes: c.network_modes.clone(),
        checkpoint_network_modes: c.checkpoint_network_modes.clone(),
        network_mode: c.network_mode.clone(),
        pause_keeps_memory: c.pause_keeps_memory,
        snapshots: c.snapshots,
        hardware_virtualization: c.hardware_virtualization,
        kernel_version: c.kernel_version.clone(),
        notes: c.notes.clone().into_iter().collect(),
    }
}

#[tonic::async_trait]
impl HostAgentService for AgentService {
    async fn get_host_info(
        &self,
        _: Request<pb::GetHostInfoRequest>,
    ) -> Result<Response<pb::HostInfo>, Status> {
        Ok(Response::new(self.info.clone()))
    }

    async fn create_sandbox(
        &self,
        r: Request<pb::CreateSandboxRequest>,
    ) -> Result<Response<pb::CreateSandboxResponse>, Status> {
        lifecycle::create(self, r.into_inner())
            .await
            .map(Response::new)
    }

    async fn destroy_sandbox(
        &self,
        r: Request<pb::DestroySandboxRequest>,
    ) -> Result<Response<pb::DestroySandboxResponse>, Status> {
        self.host.destroy(&r.into_inner().sandbox_id).await?;
        Ok(Response::new(pb::DestroySandboxResponse {}))
    }

    async fn pause_sandbox(
        &self,
        r: Request<pb::PauseSandboxRequest>,
    ) -> Result<Response<pb::PauseSandboxResponse>, Status> {
        let snapshot_bytes = self.host.pause(&r.into_inner().sandbox_id, false).await?;
        Ok(Response::new(pb::PauseSandboxResponse { snapshot_bytes }))
    }

    async fn set_sandbox_network(
        &self,
        r: Request<pb::SetSandboxNetworkRequest>,
    ) -> Result<Response<pb::SetSandboxNetworkResponse>, Status> {
        lifecycle::set_network(self, r.into_inner())
            .await
            .map(Response::new)
    }

    async fn resume_sandbox(
        &self,
        r: Request<pb::ResumeSandboxRequest>,
    ) -> Result<Response<pb::ResumeSandboxResponse>, Status> {
        lifecycle::resume(self, r.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_sandboxes(
        &self,
        _: Request<pb::ListSandboxesRequest>,
    ) -> Result<Response<pb::ListSandboxesResponse>, Status> {
        Ok(Response::new(lifecycle::list(self)))
    }

    async fn ping_sandbox(
        &self,
        r: Request<pb::PingSandboxRequest>,
    ) -> Result<Response<pb::PingSandboxResponse>, Status> {
        self.host.running(&r.into_inner().sandbox_id)?;
        Ok(Response::new(pb::PingSandboxResponse {}))
    }

    async fn exec(
        &self,
        r: Request<pb::ExecRequest>,
    ) -> Result<Response<pb::ExecResponse>, Status> {
        let r = r.into_inner();
        let id = r.sandbox_id.clone();
        let result = process::exec(self, r).await;
        self.explained(&id, result).await.map(Response::new)
    }

    type ExecStreamStream = RpcStream<pb::ProcessEvent>;
    async fn exec_stream(
        &self,
        r: Request<pb::ExecStreamRequest>,
    ) -> Result<Response<Self::ExecStreamStream>, Status> {
        let r = r.into_inner();
        let id = r.sandbox_id.clone();
        let result = process::exec_stream(self, r).await;
        self.explained(&id, result).await.map(Response::new)
    }

    async fn start_background(
        &self,
        r: Request<pb::StartBackgroundRequest>,
    ) -> Result<Response<pb::StartBackgroundResponse>, Status> {
        let r = r.into_inner();
        let id = r.sandbox_id.clone();
        let result = process::start_background(self, r).await;
        self.explained(&id, result).await.map(Response::new)
    }

    async fn list_processes(
        &self,
        r: Request<pb::ListProcessesRequest>,
    ) -> Result<Response<pb::ListProcessesResponse>, Status> {
        let r = r.into_inner();
        let id = r.sandbox_id.clone();
        let result = process::list(self, r).await;
        self.explained(&id, result).await.map(Response::new)
    }

    async fn kill_process(
        &self,
        r: Request<pb::KillProcessRequest>,
    ) -> Result<Response<pb::KillProcessResponse>, Status> {
        let r = r.into_inner();
        let id = r.sandbox_id.clone();
        let result = process::kill(self, r).await;
        self.explained(&id, result).await.map(Response::new)
    }

    type ConnectProcessStream = RpcStream<pb::ProcessEvent>;
    async fn connect_process(
        &self,
        r: Request<pb::ConnectProcessRequest>,
    ) -> Result<Response<Self::ConnectProcessStream>, Status> {
        let r = r.into_inner();
        let id = r.sandbox_id.clone();
        let result = process::connect(self, r).await;
        self.explained(&id, result).await.map(Response::new)
    }

    type PtyAttachStream = RpcStream<pb::PtyEvent>;
    async fn pty_attach(
        &self,
        r: Request<pb::PtyAttachRequest>,
    ) -> Result<Response<Self::PtyAttachStream>, Status> {
        let r = r.into_inner();
        let id = r.sandbox_id.clone();
        let result = process::pty_attach(self, r).await;
        self.explained(&id, result).await.map(Response::new)
    }

    async fn pty_send_input(
        &self,
        r: Request<pb::PtySendInputRequest>,
    ) -> Result<Response<pb::PtySendInputResponse>, Status> {
        let r = r.into_inner();
        let id = r.sandbox_id.clone();
        let result = process::pty_input(self, r).await;
        self.explained(&id, result).await.map(Response::new)
    }

    async fn pty_resize(
        &self,
        r: Request<pb::PtyResizeRequest>,
    ) -> Result<Response<pb::PtyResizeResponse>, Status> {
        let r = r.into_inner();
        let id = r.sandbox_id.clone();
        let result = process::pty_resize(self, r).await;
        self.explained(&id, result).await.map(Response::new)
    }

    async fn pty_kill(
        &self,
        r: Request<pb::PtyKillRequest>,
    ) -> Result<Response<pb::PtyKillResponse>, Status> {
        let r = r.into_inner();
        let id = r.sandbox_id.clone();
        let result = process::pty_kill(self, r).await;
        self.explained(&id, result).await.map(Response::new)
    }

    async fn write_file(
        &self,
        r: Request<pb::WriteFileRequest>,
    ) -> Result<Response<pb::WriteFileResponse>, Status> {
        let r = r.into_inner();
        let id = r.sandbox_id.clone();
        let result = files::write(self, r).await;
        self.explained(&id, result).await.map(Response::new)
    }

    async fn read_file(
        &self,
        r: Request<pb::ReadFileRequest>,
    ) -> Result<Response<pb::ReadFileResponse>, Status> {
        let r = r.into_inner();
        let id = r.sandbox_id.clone();
        let result = files::read(self, r).await;
        self.explained(&id, result).await.map(Response::new)
    }

    async fn write_file_stream(
        &self,
        r: Request<Streaming<pb::WriteFileStreamRequest>>,
    ) -> Result<Response<pb::WriteFileResponse>, Status> {
        files::write_stream(self, r.into_inner())
            .await
            .map(Response::new)
    }

    type ReadFileStreamStream = RpcStream<pb::FileChunk>;
    async fn read_file_stream(
        &self,
        r: Request<pb::ReadFileRequest>,
    ) -> Result<Response<Self::ReadFileStreamStream>, Status> {
        let r = r.into_inner();
        let id = r.sandbox_id.clone();
        let result = files::read_stream(self, r).await;
        self.explained(&id, result).await.map(Response::new)
    }

    async fn list_dir(
        &self,
        r: Request<pb::ListDirRequest>,
    ) -> Result<Response<pb::ListDirResponse>, Status> {
        let r = r.into_inner();
        let id = r.sandbox_id.clone();
        let result = files::list_dir(self, r).await;
        self.explained(&id, result).await.map(Response::new)
    }

    async fn make_dir(
        &self,
        r: Request<pb::MakeDirRequest>,
    ) -> Result<Response<pb::MakeDirResponse>, Status> {
        let r = r.into_inner();
        let id = r.sandbox_id.clone();
        let result = files::make_dir(self, r).await;
        self.explained(&id, result).await.map(Response::new)
    }

    async fn remove_path(
        &self,
        r: Request<pb::RemovePathRequest>,
    ) -> Result<Response<pb::RemovePathResponse>, Status> {
        let r = r.into_inner();
        let id = r.sandbox_id.clone();
        let result = files::remove(self, r).await;
        self.explained(&id, result).await.map(Response::new)
    }

    async fn create_snapshot(
        &self,
        r: Request<pb::CreateSnapshotRequest>,
    ) -> Result<Response<pb::CreateSnapshotResponse>, Status> {
        lifecycle::create_snapshot(self, r.into_inner())
            .await
            .map(Response::new)
    }

    async fn delete_snapshot(
        &self,
        r: Request<pb::DeleteSnapshotRequest>,
    ) -> Result<Response<pb::DeleteSnapshotResponse>, Status> {
        let t = r
            .into_inner()
            .template
            .ok_or_else(|| Status::invalid_argument("template is required"))?;
        self.host.delete_snapshot(&t.team_id, &t.template_id)?;
        Ok(Response::new(pb::DeleteSnapshotResponse {}))
    }

    async fn flatten_rootfs(
        &self,
        r: Request<pb::FlattenRootfsRequest>,
    ) -> Result<Response<pb::FlattenRootfsResponse>, Status> {
        files::flatten(self, r.into_inner())
            .await
            .map(Response::new)
    }

    async fn get_sandbox_metrics(
        &self,
        r: Request<pb::GetSandboxMetricsRequest>,
    ) -> Result<Response<pb::GetSandboxMetricsResponse>, Status> {
        lifecycle::metrics(self, r.into_inner()).map(Response::new)
    }

    async fn flush_sandbox_metrics(
        &self,
        r: Request<pb::FlushSandboxMetricsRequest>,
    ) -> Result<Response<pb::FlushSandboxMetricsResponse>, Status> {
        lifecycle::flush_metrics(self, r.into_inner()).map(Response::new)
    }

    async fn terminate(
        &self,
        r: Request<pb::TerminateRequest>,
    ) -> Result<Response<pb::TerminateResponse>, Status> {
        let (paused_ids, destroyed_ids) = self.host.stop_all(r.into_inner().pause, false).await;
        self.host.shutdown.cancel();
        Ok(Response::new(pb::TerminateResponse {
            paused_ids,
            destroyed_ids,
        }))
    }

    type TunnelStream = RpcStream<pb::TunnelFrame>;
    async fn tunnel(
        &self,
        r: Request<Streaming<pb::TunnelFrame>>,
    ) -> Result<Response<Self::TunnelStream>, Status> {
        tunnel::open(self, r.into_inner()).await.map(Response::new)
    }
}
