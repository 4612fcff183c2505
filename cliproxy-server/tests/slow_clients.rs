//! Slow and half-open clients: they cannot starve `/healthz`, they get closed after the header-read or
//! body-read timeout, and connections beyond the cap get 503 at once instead of hanging.

mod support;

use std::time::{Duration, Instant};

use cliproxy_mock::MockServer;
use cliproxy_server::ConnLimits;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SHORT: ConnLimits =
    ConnLimits { header_read: Duration::from_secs(1), body_read: Duration::from_secs(1), max_connections: 1024 };

async fn rig(limits: ConnLimits) -> Rig {
    start_with_limits(MockServer::start().await, &default_config(), limits).await
}

/// Reads until the server closes the connection (or `within` passes); returns what it sent and whether it
/// closed.
async fn read_until_closed(s: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut got = Vec::new();
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
        }
    }
}

#[tokio::test]
async fn three_hundred_half_open_connections_neither_starve_healthz_nor_stay_open() {
    let rig = rig(SHORT).await;
    let addr = rig.server.local_addr();
    let mut held = Vec::new();
    for i in 0..300 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let partial: String = match i % 3 {
            // Partial headers.
            0 => "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".into(),
            // Headers announcing a body that never comes.
            1 => format!(
                "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {CLIENT_KEY}\r\n\
                 Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"model\":"
            ),
            // Connected, silent.
            _ => String::new(),
        };
        s.write_all(partial.as_bytes()).await.unwrap();
        held.push(s);
    }
    let started = Instant::now();
    let r = rig.http.get(rig.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(1), "healthz took {:?}", started.elapsed());

    let mut closed = 0;
    for (i, s) in held.iter_mut().enumerate() {
        let (answer, was_closed) = read_until_closed(s, Duration::from_secs(5)).await;
        assert!(was_closed, "connection {i} still open");
        if i % 3 == 1 {
            assert!(answer.starts_with("HTTP/1.1 408"), "a body that never came gets 408: {answer:?}");
            assert!(answer.contains("request_timeout"), "{answer}");
        }
        closed += 1;
    }
    assert_eq!(closed, 300);
    assert_eq!(rig.mock.total_hits(), 0);
    // A fresh connection: the pooled one idled past the server's keep-alive limit while the loop above ran.
    assert_eq!(reqwest::get(rig.url("/healthz")).await.unwrap().status(), 200);
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let rig = rig(SHORT).await;
    let mut s = TcpStream::connect(rig.server.local_addr()).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
    let (answer, closed) = read_until_closed(&mut s, Duration::from_secs(4)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closed, "an idle keep-alive connection is closed after the header-read timeout");
}

#[tokio::test]
async fn connections_beyond_the_cap_get_503_not_a_hang() {
    let limits = ConnLimits { header_read: Duration::from_secs(10), max_connections: 8, ..SHORT };
    let rig = rig(limits).await;
    let addr = rig.server.local_addr();
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    // Let the server accept those eight before the ninth arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
    let (answer, closed) = read_until_closed(&mut s, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("server_overloaded"), "{answer}");
    assert!(closed);
    drop(held);
    // Capacity comes back once the held connections are gone.
    let mut ok = false;
    for _ in 0..50 {
        if rig.http.get(rig.url("/healthz")).send().await.is_ok_and(|r| r.status() == 200) {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok);
}
