//! Prometheus metrics of the control plane, served as OpenMetrics text at `GET /metrics`
//! when `WRENN_METRICS_TOKEN` is set (scrapers send `Authorization: Bearer <token>`).
//!
//! Labels are low-cardinality by construction: a route is its matched pattern
//! (`/v1/capsules/{id}`), never the path; operations, outcomes and statuses come from fixed
//! sets. No capsule, team or user id is ever a label.
//!
//! | metric | labels |
//! |---|---|
//! | `wrenn_http_requests_total`, `wrenn_http_request_duration_seconds` | method, route, status |
//! | `wrenn_capsule_operations_total`, `wrenn_capsule_operation_duration_seconds` | operation, outcome |
//! | `wrenn_scheduler_decisions_total` | outcome (`placed`, `no_hosts_available`, `error`) |
//! | `wrenn_event_deliveries_total` | event, outcome (`delivered`, `failed`, `dropped`) |
//! | `wrenn_capsules` (read from the database at scrape time) | status |
//! | `wrenn_hosts` (same) | status |

use crate::capsules::state::CapsuleStatus;
use crate::hosts::HostStatus;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wrenn_extension_api::ApiError;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub event: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: &'static str,
}

fn histogram(start: f64) -> Histogram {
    Histogram::new(exponential_buckets(start, 2.0, 14))
}

/// Every metric of one control plane (one per server: several may share a process).
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Family<HttpLabels, Histogram, fn() -> Histogram>,
    pub operations: Family<OperationLabels, Counter>,
    pub operation_duration: Family<OperationLabels, Histogram, fn() -> Histogram>,
    pub scheduler: Family<OutcomeLabels, Counter>,
    pub deliveries: Family<DeliveryLabels, Counter>,
    capsules: Family<StatusLabels, Gauge>,
    hosts: Family<StatusLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration: Family<HttpLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| histogram(0.001));
        let operations = Family::<OperationLabels, Counter>::default();
        let operation_duration: Family<OperationLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| histogram(0.01));
        let scheduler = Family::<OutcomeLabels, Counter>::default();
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        let capsules = Family::<StatusLabels, Gauge>::default();
        let hosts = Family::<StatusLabels, Gauge>::default();
        let wrenn = registry.sub_registry_with_prefix("wrenn");
        wrenn.register(
            "http_requests",
            "HTTP requests answered, by method, matched route and status",
            http_requests.clone(),
        );
        wrenn.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request (to its response head)",
            Unit::Seconds,
            http_duration.clone(),
        );
        wrenn.register(
            "capsule_operations",
            "Capsule and template lifecycle operations, by operation and outcome",
            operations.clone(),
        );
        wrenn.register_with_unit(
            "capsule_operation_duration",
            "Duration of lifecycle operations, by operation and outcome",
            Unit::Seconds,
            operation_duration.clone(),
        );
        wrenn.register(
            "scheduler_decisions",
            "Host placement decisions, by outcome",
            scheduler.clone(),
        );
        wrenn.register(
            "event_deliveries",
            "Notification channel delivery attempts, by event type and outcome",
            deliveries.clone(),
        );
        wrenn.register(
            "capsules",
            "Capsules by status (stopped ones excluded)",
            capsules.clone(),
        );
        wrenn.register("hosts", "Hosts by status", hosts.clone());
        Self {
            registry,
            http_requests,
            http_duration,
            operations,
            operation_duration,
            scheduler,
            deliveries,
            capsules,
            hosts,
        }
    }

    /// Records one lifecycle operation (`capsule.create`, `template.snapshot.delete`, ...).
    pub fn operation(&self, event: &str, ok: bool, took: Duration) {
        let Some(operation) = OPERATIONS.iter().copied().find(|o| *o == event) else {
            return;
        };
        let labels = OperationLabels {
            operation,
            outcome: if ok { "success" } else { "error" },
        };
        self.operations.get_or_create(&labels).inc();
        self.operation_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// Records one placement decision.
    pub fn scheduled(&self, outcome: &'static str) {
        self.scheduler
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Records one delivery attempt (`status` as stored: delivered, failed or dropped).
    pub fn delivered(&self, event: &str, status: &str) {
        let Some(outcome) = ["delivered", "failed", "dropped"]
            .into_iter()
            .find(|s| *s == status)
        else {
            return;
        };
        // Event types are a fixed set; anything else (a test message) is counted as `other`.
        let event = if crate::channels::SUBSCRIBABLE.contains(&event) {
            event.to_string()
        } else {
            "other".into()
        };
        self.deliveries
            .get_or_create(&DeliveryLabels { event, outcome })
            .inc();
    }

    /// The OpenMetrics text, with the gauges read from the database now.
    pub async fn render(&self, db: &sqlx::PgPool) -> Result<String, ApiError> {
        let capsules = crate::db::capsules::count_by_status(db).await?;
        for status in CapsuleStatus::ALL {
            if status == CapsuleStatus::Stopped {
                continue;
            }
            let n = capsules
                .iter()
                .find(|(s, _)| *s == status)
                .map_or(0, |c| c.1);
            self.capsules
                .get_or_create(&StatusLabels {
                    status: status.as_str(),
                })
                .set(n);
        }
        let hosts = crate::db::hosts::count_by_status(db).await?;
        for status in HostStatus::ALL {
            let n = hosts.iter().find(|(s, _)| *s == status).map_or(0, |c| c.1);
            self.hosts
                .get_or_create(&StatusLabels {
                    status: status.as_str(),
                })
                .set(n);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .map_err(ApiError::internal)?;
        Ok(text)
    }
}

/// The operations [`Metrics::operation`] counts (the lifecycle events with an outcome).
const OPERATIONS: &[&str] = &[
    "capsule.create",
    "capsule.pause",
    "capsule.resume",
    "capsule.destroy",
    "template.snapshot.create",
    "template.snapshot.delete",
];

/// Middleware: counts and times every request by method, matched route and status.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| unmatched(req.uri().path()), |p| p.as_str().to_string());
    let method = match req.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => m.to_string(),
        _ => "other".to_string(),
    };
    let started = Instant::now();
    let response = next.run(req).await;
    let labels = HttpLabels {
        method,
        route,
        status: response.status().as_u16(),
    };
    metrics.http_requests.get_or_create(&labels).inc();
    metrics
        .http_duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}

/// The label of a request no route matched: the dashboard's pages and assets, or nothing.
fn unmatched(path: &str) -> String {
    if path.starts_with("/v1/") {
        "unmatched".into()
    } else {
        "dashboard".into()
    }
}

/// `GET /metrics`: 404 unless a token is configured, 401 without the right bearer token.
pub async fn serve(
    State(app): State<crate::app::App>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(token) = app.config.metrics_token.as_deref() else {
        return Err(ApiError::not_found(
            "not_found",
            "metrics are off (set WRENN_METRICS_TOKEN)",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let matches: bool = subtle::ConstantTimeEq::ct_eq(given.as_bytes(), token.as_bytes()).into();
    if !matches {
        return Err(ApiError::unauthorized());
    }
    let text = app.metrics.render(app.db()).await?;
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
