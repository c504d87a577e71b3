//! The gRPC ProcessService over the process table.
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};
use wrenn_proto::envd::v1::process_event::{data_event, DataEvent, Event, KeepAlive, StartEvent};
use wrenn_proto::envd::v1::process_service_server::ProcessService;
use wrenn_proto::envd::v1::{
    process_input, stream_input_request, CloseStdinRequest, CloseStdinResponse, ConnectRequest,
    ConnectResponse, ListRequest, ListResponse, ProcessEvent, ProcessInfo, SendInputRequest,
    SendInputResponse, SendSignalRequest, SendSignalResponse, StartRequest, StartResponse,
    StreamInputRequest, StreamInputResponse, UpdateRequest, UpdateResponse,
};

use super::output::Stream as OutputStream;
use super::{Process, Processes};
use crate::capsule::Capsule;

/// Idle streams get a keepalive this often.
pub const KEEPALIVE: Duration = Duration::from_secs(15);
/// Events buffered per subscriber before the stream waits for the client.
const SUBSCRIBER_QUEUE: usize = 16;

pub struct ProcessRpc {
    pub processes: Arc<Processes>,
    pub capsule: Arc<Capsule>,
}

type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Streams `start`, output from `from` on, then `end` into a response stream.
fn subscribe<T: Send + 'static>(
    process: Arc<Process>,
    from: Option<u64>,
    wrap: fn(ProcessEvent) -> T,
) -> EventStream<T> {
    let (tx, rx) = mpsc::channel::<Result<T, Status>>(SUBSCRIBER_QUEUE);
    tokio::spawn(async move {
        let send = |event: Event| {
            let tx = tx.clone();
            async move {
                tx.send(Ok(wrap(ProcessEvent { event: Some(event) })))
                    .await
                    .is_ok()
            }
        };
        let start = StartEvent {
            pid: process.pid,
            tag: process.tag.clone().unwrap_or_default(),
        };
        if !send(Event::Start(start)).await {
            return;
        }
        let mut subscription = process.output.subscribe(from);
        let mut keepalive =
            tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
        loop {
            tokio::select! {
                batch = subscription.next() => {
                    let Some(batch) = batch else { break };
                    for chunk in batch {
                        let output = match chunk.stream {
                            OutputStream::Stdout => data_event::Output::Stdout(chunk.data.to_vec()),
                            OutputStream::Stderr => data_event::Output::Stderr(chunk.data.to_vec()),
                            OutputStream::Pty => data_event::Output::Pty(chunk.data.to_vec()),
                        };
                        if !send(Event::Data(DataEvent { output: Some(output), offset: chunk.offset })).await {
                            return;
                        }
                    }
                }
                _ = keepalive.tick() => {
                    if !send(Event::Keepalive(KeepAlive {})).await {
                        return;
                    }
                }
                _ = tx.closed() => return,
            }
        }
        let end = tokio::select! {
            end = process.wait_end() => end,
            _ = tx.closed() => return,
        };
        send(Event::End(end)).await;
    });
    Box::pin(ReceiverStream::new(rx))
}

fn info(p: &Process) -> ProcessInfo {
    ProcessInfo {
        config: Some(p.config.clone()),
        pid: p.pid,
        tag: p.tag.clone(),
        pty: p.is_pty(),
        end: p.end(),
    }
}

#[tonic::async_trait]
impl ProcessService for ProcessRpc {
    type StartStream = EventStream<StartResponse>;
    type ConnectProcessStream = EventStream<ConnectResponse>;

    async fn list(&self, _: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let processes = self.processes.list().iter().map(|p| info(p)).collect();
        Ok(Response::new(ListResponse { processes }))
    }

    async fn start(
        &self,
        request: Request<StartRequest>,
    ) -> Result<Response<Self::StartStream>, Status> {
        let req = request.into_inner();
        let config = req
            .process
            .ok_or_else(|| Status::invalid_argument("process is required"))?;
        let pty = req.pty.map(|p| {
            let size = p.size.unwrap_or_default();
            (clamp_dim(size.cols, 80), clamp_dim(size.rows, 24))
        });
        let process = self.processes.start(
            config,
            req.tag,
            pty,
            req.stdin,
            req.paced,
            &self.capsule.defaults(),
        )?;
        Ok(Response::new(subscribe(process, Some(0), |e| {
            StartResponse { event: Some(e) }
        })))
    }

    async fn connect_process(
        &self,
        request: Request<ConnectRequest>,
    ) -> Result<Response<Self::ConnectProcessStream>, Status> {
        let req = request.into_inner();
        let process = self.processes.get(req.process.as_ref())?;
        Ok(Response::new(subscribe(process, req.from_offset, |e| {
            ConnectResponse { event: Some(e) }
        })))
    }

    async fn send_input(
        &self,
        request: Request<SendInputRequest>,
    ) -> Result<Response<SendInputResponse>, Status> {
        let req = request.into_inner();
        let process = self.processes.get(req.process.as_ref())?;
        write(&process, req.input.and_then(|i| i.input)).await?;
        Ok(Response::new(SendInputResponse {}))
    }

    async fn stream_input(
        &self,
        request: Request<Streaming<StreamInputRequest>>,
    ) -> Result<Response<StreamInputResponse>, Status> {
        let mut stream = request.into_inner();
        let mut process = None;
        while let Some(msg) = stream.next().await {
            match msg?.event {
                Some(stream_input_request::Event::Start(start)) => {
                    process = Some(self.processes.get(start.process.as_ref())?);
                }
                Some(stream_input_request::Event::Data(data)) => {
                    let p = process
                        .as_ref()
                        .ok_or_else(|| Status::invalid_argument("send `start` first"))?;
                    write(p, data.input.and_then(|i| i.input)).await?;
                }
                Some(stream_input_request::Event::Keepalive(_)) | None => {}
            }
        }
        Ok(Response::new(StreamInputResponse {}))
    }

    async fn close_stdin(
        &self,
        request: Request<CloseStdinRequest>,
    ) -> Result<Response<CloseStdinResponse>, Status> {
        let process = self.processes.get(request.get_ref().process.as_ref())?;
        process.close_stdin().await?;
        Ok(Response::new(CloseStdinResponse {}))
    }

    async fn send_signal(
        &self,
        request: Request<SendSignalRequest>,
    ) -> Result<Response<SendSignalResponse>, Status> {
        let req = request.into_inner();
        let process = self.processes.get(req.process.as_ref())?;
        process.signal(req.signal, req.process_group)?;
        Ok(Response::new(SendSignalResponse {}))
    }

    async fn update(
        &self,
        request: Request<UpdateRequest>,
    ) -> Result<Response<UpdateResponse>, Status> {
        let req = request.into_inner();
        let process = self.processes.get(req.process.as_ref())?;
        if let Some(size) = req.pty {
            process.resize(clamp_dim(size.cols, 80), clamp_dim(size.rows, 24))?;
        }
        Ok(Response::new(UpdateResponse {}))
    }
}

fn clamp_dim(v: u32, default: u16) -> u16 {
    if v == 0 {
        default
    } else {
        v.min(u16::MAX as u32) as u16
    }
}

async fn write(process: &Process, input: Option<process_input::Input>) -> Result<(), Status> {
    match input {
        Some(process_input::Input::Stdin(data)) => process.write_input(&data, false).await,
        Some(process_input::Input::Pty(data)) => process.write_input(&data, true).await,
        None => Err(Status::invalid_argument("input is required")),
    }
}
