//! Requests the router refuses before a handler runs answer the documented error envelope
//! `{"error":{"code","message"}}` as JSON, like every other error (found by the contract run,
//! scripts/contract.sh).

use cpserver::test_support::TestServer;

#[tokio::test]
async fn an_upload_that_is_not_multipart_is_a_json_400() {
    let server = TestServer::start().await;
    let alice = server
        .signed_in("alice@example.com", "Alice", "correct horse battery")
        .await;
    let key = alice.new_api_key("k").await;
    for route in ["files/write", "files/stream/write"] {
        for content_type in ["multipart/form-data", "text/plain"] {
            let r = alice
                .post(&format!("/v1/capsules/sb_0/{route}"))
                .api_key(&key)
                .raw(content_type, "x")
                .send()
                .await;
            r.assert_error(400, "invalid_request");
            assert_eq!(
                r.headers["content-type"], "application/json",
                "{route} {content_type}"
            );
        }
    }
}
