//! Reaching a capsule's host agent, and turning agent errors into API errors.

use crate::app::App;
use axum::http::StatusCode;
use tonic::Code;
use uuid::Uuid;
use wrenn_extension_api::ApiError;

/// A gRPC client of one host's agent (cheap to clone).
pub use crate::hosts::pool::AgentClient;

/// A client of `host_id`'s agent; an unknown or unreachable host is 503 `no_hosts_available`.
pub async fn client(ctx: &App, host_id: Uuid) -> Result<AgentClient, ApiError> {
    ctx.hosts.pool.client(host_id).await.map_err(ApiError::from)
}

/// Maps an agent error (API.md "Host agent gRPC"): NotFound 404 `not_found`, InvalidArgument
/// 400 `invalid_request`, FailedPrecondition/AlreadyExists 409 `conflict`, PermissionDenied 403
/// `forbidden`, Unavailable 503 `no_hosts_available`, anything else 502 `agent_error`.
///
/// The agent's message describes the capsule's side (a missing path, a bad argument) and is
/// passed on for client-facing codes; for 5xx only a generic text is returned and the
/// message is kept as the logged cause.
pub fn status_to_api(status: tonic::Status) -> ApiError {
    let message = status.message().to_string();
    // The capsule's sandbox died on its own: a state of the capsule, not of the host.
    if let Some(reason) = status
        .metadata()
        .get(wrenn_proto::hostagent::CAPSULE_DEAD_METADATA)
        .and_then(|v| v.to_str().ok())
    {
        return ApiError::conflict(
            "invalid_state",
            format!("the capsule is in error ({reason}): {message}"),
        )
        .with_cause(format!("agent: capsule dead: {reason}"));
    }
    // Nothing listens on a tunnelled port: the capsule is fine, the port is closed.
    if status
        .metadata()
        .contains_key(wrenn_proto::hostagent::PORT_CLOSED_METADATA)
    {
        return ApiError::new(StatusCode::BAD_GATEWAY, "port_closed", message)
            .with_cause("agent: port closed");
    }
    let client_text = if message.is_empty() {
        None
    } else {
        Some(message.clone())
    };
    let err = match status.code() {
        Code::NotFound => ApiError::not_found(
            "not_found",
            client_text.unwrap_or_else(|| "not found".into()),
        ),
        Code::InvalidArgument => {
            ApiError::invalid(client_text.unwrap_or_else(|| "invalid request".into()))
        }
        Code::FailedPrecondition | Code::AlreadyExists => {
            ApiError::conflict("conflict", client_text.unwrap_or_else(|| "conflict".into()))
        }
        Code::PermissionDenied => ApiError::forbidden(
            "forbidden",
            client_text.unwrap_or_else(|| "forbidden".into()),
        ),
        Code::Unavailable => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_hosts_available",
            "the capsule's host is not reachable",
        ),
        _ => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "agent_error",
            "the host agent failed to carry out the request",
        ),
    };
    err.with_cause(format!("agent: {:?}: {}", status.code(), message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_every_documented_code() {
        let cases = [
            (Code::NotFound, 404, "not_found"),
            (Code::InvalidArgument, 400, "invalid_request"),
            (Code::FailedPrecondition, 409, "conflict"),
            (Code::AlreadyExists, 409, "conflict"),
            (Code::PermissionDenied, 403, "forbidden"),
            (Code::Unavailable, 503, "no_hosts_available"),
            (Code::Internal, 502, "agent_error"),
            (Code::Unknown, 502, "agent_error"),
            (Code::DeadlineExceeded, 502, "agent_error"),
        ];
        for (code, http, name) in cases {
            let e = status_to_api(tonic::Status::new(code, "runsc said /var/lib/x"));
            assert_eq!(e.status.as_u16(), http, "{code:?}");
            assert_eq!(e.code, name, "{code:?}");
            if http >= 500 {
                assert!(!e.message.contains("/var/lib"), "5xx must not leak: {e}");
            }
        }
    }

    #[test]
    fn a_dead_capsule_is_a_conflict_with_its_reason() {
        let mut s = tonic::Status::failed_precondition("the host stopped it");
        s.metadata_mut().insert(
            wrenn_proto::hostagent::CAPSULE_DEAD_METADATA,
            "out_of_memory".parse().unwrap(),
        );
        let e = status_to_api(s);
        assert_eq!(e.status.as_u16(), 409);
        assert_eq!(e.code, "invalid_state");
        assert!(e.message.contains("out_of_memory"), "{e}");
    }
}
