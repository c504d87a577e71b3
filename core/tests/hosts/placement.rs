//! The scheduler over seeded host and capsule rows.

use crate::fixtures::*;
use cpserver::hosts::scheduler::{pick_host, Requirements, SchedulerError};
use serde_json::json;
use wrenn_extension_api::{ids, ApiError};

#[tokio::test]
async fn least_loaded_right_type_with_admission_control() {
    let ts = server().await;
    let admin = admin(&ts).await;
    let bob = ts.signed_in("bob@wrenn.test", "Bob", PASSWORD).await;
    let admin_team = wire_to_uuid(ids::TEAM, &team_of(&admin).await);
    let bob_team_wire = team_of(&bob).await;
    let bob_team = wire_to_uuid(ids::TEAM, &bob_team_wire);

    // No hosts at all: 503 no_hosts_available.
    let err = pick_host(ts.app(), admin_team, &Requirements::new(1, 512))
        .await
        .unwrap_err();
    assert!(matches!(err, SchedulerError::NoHostsAvailable));
    let api: ApiError = err.into();
    assert_eq!(
        (api.status.as_u16(), api.code.as_ref()),
        (503, "no_hosts_available")
    );

    // Two regular hosts (4 cores, 8192 MB each) and a pending one that must never be picked.
    let a = registered_host(&ts, &admin, "127.0.0.1:7601").await;
    let b = registered_host(&ts, &admin, "127.0.0.1:7602").await;
    create_host(&admin, json!({"type": "regular"})).await;
    let a_id = wire_to_uuid(ids::HOST, a["host"]["id"].as_str().unwrap());
    let b_id = wire_to_uuid(ids::HOST, b["host"]["id"].as_str().unwrap());

    // A is busier than B.
    seed_capsule(&ts, admin_team, a_id, "running", 4, 2048).await;
    seed_capsule(&ts, admin_team, b_id, "running", 1, 512).await;
    let pick = pick_host(ts.app(), admin_team, &Requirements::new(1, 512))
        .await
        .unwrap();
    assert_eq!(pick, b_id);

    // Paused capsules count partially: 16 paused vCPUs on B weigh 4, making B busier.
    seed_capsule(&ts, admin_team, b_id, "paused", 16, 512).await;
    let pick = pick_host(ts.app(), admin_team, &Requirements::new(1, 512))
        .await
        .unwrap();
    assert_eq!(pick, a_id);
    // Stopped capsules weigh nothing.
    seed_capsule(&ts, admin_team, a_id, "stopped", 64, 65536).await;
    assert_eq!(
        pick_host(ts.app(), admin_team, &Requirements::new(1, 512))
            .await
            .unwrap(),
        a_id
    );

    // Capacity: (4 - 0.5 reserve) * 4 overcommit = 14 vCPUs; A uses 4 → 10 more fit, 11 do not
    // (B holds 1 + 4 weighted paused = 5 → 9 fit).
    assert_eq!(
        pick_host(ts.app(), admin_team, &Requirements::new(10, 512))
            .await
            .unwrap(),
        a_id
    );
    assert!(pick_host(ts.app(), admin_team, &Requirements::new(11, 512))
        .await
        .is_err());
    // Memory: 8192 - 1024 reserve = 7168 MB.
    assert!(pick_host(ts.app(), admin_team, &Requirements::new(1, 7169))
        .await
        .is_err());

    // Capability matching.
    let gvisor = Requirements::new(1, 512)
        .capability("runtime", "gvisor")
        .capability("network_modes", "none");
    assert!(pick_host(ts.app(), admin_team, &gvisor).await.is_ok());
    let microvm = Requirements::new(1, 512).capability("runtime", "cloud-hypervisor");
    assert!(pick_host(ts.app(), admin_team, &microvm).await.is_err());

    // BYOC: once Bob's team has its own host, it lands only there, and others never do.
    let (byoc, token) =
        create_host(&admin, json!({"type": "byoc", "team_id": bob_team_wire})).await;
    let byoc_id = wire_to_uuid(ids::HOST, byoc["id"].as_str().unwrap());
    // Still pending: a BYOC team has nowhere to go (never onto regular hosts).
    assert!(pick_host(ts.app(), bob_team, &Requirements::new(1, 512))
        .await
        .is_err());
    let (status, _) = post_json(
        &ts,
        "/v1/hosts/register",
        None,
        register_body(&token, "127.0.0.1:7603"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        pick_host(ts.app(), bob_team, &Requirements::new(1, 512))
            .await
            .unwrap(),
        byoc_id
    );
    for _ in 0..5 {
        assert_ne!(
            pick_host(ts.app(), admin_team, &Requirements::new(1, 512))
                .await
                .unwrap(),
            byoc_id
        );
    }
}
