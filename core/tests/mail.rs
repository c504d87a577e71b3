//! SMTP delivery through lettre, against a minimal SMTP server on loopback.

use cpserver::test_support::{token_in, TestServer};
use cpserver::Builder;
use serde_json::json;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Accepts SMTP sessions and records each message's envelope recipient and data.
async fn smtp_sink() -> (u16, Arc<Mutex<Vec<(String, String)>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(Mutex::new(Vec::new()));
    let store = received.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let store = store.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 sink ESMTP\r\n").await.ok()?;
                let mut rcpt = String::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        b"250 sink\r\n"
                    } else if upper.starts_with("RCPT TO:") {
                        rcpt = line[8..]
                            .trim()
                            .trim_matches(|c| c == '<' || c == '>')
                            .to_string();
                        b"250 OK\r\n"
                    } else if upper.starts_with("DATA") {
                        write.write_all(b"354 go ahead\r\n").await.ok()?;
                        let mut data = String::new();
                        while let Ok(Some(l)) = lines.next_line().await {
                            if l == "." {
                                break;
                            }
                            data.push_str(&l);
                            data.push('\n');
                        }
                        store.lock().unwrap().push((rcpt.clone(), data));
                        b"250 queued\r\n"
                    } else if upper.starts_with("QUIT") {
                        write.write_all(b"221 bye\r\n").await.ok()?;
                        break;
                    } else {
                        b"250 OK\r\n"
                    };
                    write.write_all(reply).await.ok()?;
                }
                Some(())
            });
        }
    });
    (port, received)
}

#[tokio::test]
async fn activation_mail_goes_over_smtp_when_configured() {
    let (port, received) = smtp_sink().await;
    let server = TestServer::start_with(Builder::new().without_inventory(), |c| {
        c.smtp.host = Some("127.0.0.1".into());
        c.smtp.port = port;
    })
    .await;
    let r = server
        .client()
        .post("/v1/auth/signup")
        .json(json!({"email": "smtp@example.com", "password": "correct horse", "name": "S"}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let mails = received.lock().unwrap().clone();
    assert_eq!(mails.len(), 1);
    let (rcpt, data) = &mails[0];
    assert_eq!(rcpt, "smtp@example.com");
    assert!(
        data.contains("Subject: Activate your Wrenn account"),
        "{data}"
    );
    // Long lines travel quoted-printable: undo soft breaks and =3D before reading the link.
    let decoded = data.replace("=\n", "").replace("=3D", "=");
    assert!(token_in(&decoded).is_some(), "{data}");
    assert!(
        server.mails_to("smtp@example.com").is_empty(),
        "nothing in the sink"
    );
}

#[tokio::test]
async fn signup_fails_cleanly_when_smtp_is_down() {
    // A port with nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = TestServer::start_with(Builder::new().without_inventory(), |c| {
        c.smtp.host = Some("127.0.0.1".into());
        c.smtp.port = port;
    })
    .await;
    let c = server.client();
    let body = json!({"email": "down@example.com", "password": "correct horse", "name": "D"});
    c.post("/v1/auth/signup")
        .json(body.clone())
        .send()
        .await
        .assert_error(503, "mail_unavailable");
    // Nothing was created, so no cooldown blocks a retry.
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM users")
        .fetch_one(server.ctx().db())
        .await
        .unwrap();
    assert_eq!(n, 0);
}
