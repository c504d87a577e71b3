//! Prometheus metrics of the agent, served as OpenMetrics text at `GET /metrics` on
//! `--metrics-listen` (off unless given; bind it to a private address).
//!
//! Labels come from fixed sets (gRPC method names, runsc subcommands, states, reasons); a
//! capsule id is never a label.
//!
//! | metric | labels |
//! |---|---|
//! | `wrenn_agent_rpc_requests_total`, `wrenn_agent_rpc_duration_seconds` | method, code |
//! | `wrenn_agent_runtime_command_duration_seconds` | command, outcome |
//! | `wrenn_agent_capsule_deaths_total` | reason |
//! | `wrenn_agent_capsules` (read at scrape time) | state |
//! | `wrenn_agent_warm_pool_takes_total` | result (`hit`, `miss`) |
//! | `wrenn_agent_warm_pool_ready` (read at scrape time) | pool (as configured) |

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::host::Host;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    method: String,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    command: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// The agent's metrics (one agent per process, so one set).
pub struct Telemetry {
    registry: Registry,
    rpc_requests: Family<RpcLabels, Counter>,
    rpc_duration: Histograms<RpcLabels>,
    commands: Histograms<CommandLabels>,
    deaths: Family<ReasonLabels, Counter>,
    capsules: Family<StateLabels, Gauge>,
    pool_takes: Family<ResultLabels, Counter>,
    pool_ready: Family<PoolLabels, Gauge>,
}

static TELEMETRY: LazyLock<Telemetry> = LazyLock::new(Telemetry::new);

/// The process's metrics.
pub fn get() -> &'static Telemetry {
    &TELEMETRY
}

impl Telemetry {
    fn new() -> Self {
        let mut registry = Registry::default();
        let rpc_requests = Family::<RpcLabels, Counter>::default();
        let rpc_duration: Histograms<RpcLabels> =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 2.0, 16)));
        let commands: Histograms<CommandLabels> =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.005, 2.0, 14)));
        let deaths = Family::<ReasonLabels, Counter>::default();
        let capsules = Family::<StateLabels, Gauge>::default();
        let pool_takes = Family::<ResultLabels, Counter>::default();
        let pool_ready = Family::<PoolLabels, Gauge>::default();
        let agent = registry.sub_registry_with_prefix("wrenn_agent");
        agent.register(
            "rpc_requests",
            "HostAgentService calls, by method and gRPC code",
            rpc_requests.clone(),
        );
        agent.register_with_unit(
            "rpc_duration",
            "Time to answer a HostAgentService call (to its response head; for streams, the start)",
            Unit::Seconds,
            rpc_duration.clone(),
        );
        agent.register_with_unit(
            "runtime_command_duration",
            "Duration of runtime commands (runsc subcommands), by command and outcome",
            Unit::Seconds,
            commands.clone(),
        );
        agent.register(
            "capsule_deaths",
            "Capsules whose sandbox ended on its own, by reason",
            deaths.clone(),
        );
        agent.register(
            "capsules",
            "Capsules on this host, by state",
            capsules.clone(),
        );
        agent.register(
            "warm_pool_takes",
            "Creates that matched a warm pool: served from it (hit) or booted because it was empty (miss)",
            pool_takes.clone(),
        );
        agent.register(
            "warm_pool_ready",
            "Pooled capsules booted and waiting, by pool",
            pool_ready.clone(),
        );
        Self {
            registry,
            rpc_requests,
            rpc_duration,
            commands,
            deaths,
            capsules,
            pool_takes,
            pool_ready,
        }
    }

    /// Records one runtime command (`op` is one of the runtime's fixed subcommand names).
    pub fn command(&self, op: &str, ok: bool, took: Duration) {
        self.commands
            .get_or_create(&CommandLabels {
                command: op.to_string(),
                outcome: if ok { "success" } else { "error" },
            })
            .observe(took.as_secs_f64());
    }

    /// Records a capsule found dead (`out_of_memory`, `crashed`).
    pub fn death(&self, reason: &str) {
        self.deaths
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Records a create that matched a warm pool.
    pub fn pool_take(&self, hit: bool) {
        self.pool_takes
            .get_or_create(&ResultLabels {
                result: if hit { "hit" } else { "miss" },
            })
            .inc();
    }

    fn rpc(&self, method: String, code: &'static str, took: Duration) {
        let labels = RpcLabels { method, code };
        self.rpc_requests.get_or_create(&labels).inc();
        self.rpc_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// The OpenMetrics text, with the capsule gauge read from `host` now.
    pub fn render(&self, host: &Host) -> String {
        let (running, paused) = host.state_counts();
        for (state, n) in [("running", running), ("paused", paused)] {
            self.capsules
                .get_or_create(&StateLabels { state })
                .set(n as i64);
        }
        let counts = host.pool.ready_counts();
        for (spec, n) in host.pool.specs().iter().zip(counts) {
            self.pool_ready
                .get_or_create(&PoolLabels {
                    pool: spec.label.clone(),
                })
                .set(n as i64);
        }
        let mut text = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// The gRPC code name of a `grpc-status` value.
fn code_name(status: Option<&[u8]>) -> &'static str {
    let code = status
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse::<i32>().ok())
        .unwrap_or(0);
    match tonic::Code::from_i32(code) {
        tonic::Code::Ok => "ok",
        tonic::Code::Cancelled => "cancelled",
        tonic::Code::Unknown => "unknown",
        tonic::Code::InvalidArgument => "invalid_argument",
        tonic::Code::DeadlineExceeded => "deadline_exceeded",
        tonic::Code::NotFound => "not_found",
        tonic::Code::AlreadyExists => "already_exists",
        tonic::Code::PermissionDenied => "permission_denied",
        tonic::Code::ResourceExhausted => "resource_exhausted",
        tonic::Code::FailedPrecondition => "failed_precondition",
        tonic::Code::Aborted => "aborted",
        tonic::Code::OutOfRange => "out_of_range",
        tonic::Code::Unimplemented => "unimplemented",
        tonic::Code::Internal => "internal",
        tonic::Code::Unavailable => "unavailable",
        tonic::Code::DataLoss => "data_loss",
        tonic::Code::Unauthenticated => "unauthenticated",
    }
}

/// The method name of a gRPC path (`/wrenn.hostagent.v1.HostAgentService/Exec` → `Exec`);
/// anything that is not a plain identifier is `other`.
fn method_of(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or("");
    if !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric()) {
        name.to_string()
    } else {
        "other".to_string()
    }
}

/// Tower layer timing every gRPC call for [`Telemetry`].
#[derive(Clone, Copy, Default)]
pub struct RpcLayer;

impl<S> tower::Layer<S> for RpcLayer {
    type Service = Rpc<S>;
    fn layer(&self, inner: S) -> Rpc<S> {
        Rpc { inner }
    }
}

#[derive(Clone)]
pub struct Rpc<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for Rpc<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = method_of(req.uri().path());
        let started = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let result = fut.await;
            // A failure before the body carries its status in the head ("trailers only");
            // otherwise the call got as far as answering.
            let code = match &result {
                Ok(r) => code_name(r.headers().get("grpc-status").map(|v| v.as_bytes())),
                Err(_) => "unavailable",
            };
            get().rpc(method, code, started.elapsed());
            result
        })
    }
}

/// Serves `GET /metrics` on `addr` until `shutdown`.
pub async fn serve(addr: SocketAddr, host: Arc<Host>, shutdown: CancellationToken) {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            warn!(address = %addr, error = %e, "cannot serve metrics");
            return;
        }
    };
    info!(address = %addr, "serving Prometheus metrics at /metrics");
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.cancelled() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let host = host.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                let host = host.clone();
                async move { Ok::<_, Infallible>(answer(&req, &host)) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

fn answer<B>(req: &hyper::Request<B>, host: &Host) -> hyper::Response<String> {
    let (status, content_type, body) = if req.uri().path() != "/metrics" {
        (
            404,
            "text/plain",
            "not found: the metrics are at /metrics\n".to_string(),
        )
    } else if req.method() != hyper::Method::GET && req.method() != hyper::Method::HEAD {
        (405, "text/plain", "method not allowed\n".to_string())
    } else {
        (
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            get().render(host),
        )
    };
    hyper::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(body)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_fixed_sets() {
        assert_eq!(
            method_of("/wrenn.hostagent.v1.HostAgentService/CreateSandbox"),
            "CreateSandbox"
        );
        assert_eq!(method_of("/x/sb_0k3m2x9q1v7c8b5n4z6y0w1p2-1"), "other");
        assert_eq!(method_of("/"), "other");
        assert_eq!(code_name(None), "ok");
        assert_eq!(code_name(Some(b"5")), "not_found");
        assert_eq!(code_name(Some(b"junk")), "ok");
    }
}
