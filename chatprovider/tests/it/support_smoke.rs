//! The replay server itself works (status, headers, chunked body, request recording).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use chatd_test_support::fixtures::stream_body;
use chatd_test_support::replay::{chunk, ReplayServer, Reply};

#[tokio::test]
async fn replays_chunked_bodies_and_records_requests() {
    let body = stream_body("openai-chat--text--usage.sse");
    let server = ReplayServer::start(vec![
        Reply::sse(chunk(&body, Some(0), 7)),
        Reply::status(
            429,
            vec![("retry-after".into(), "3".into())],
            b"{}".to_vec(),
        ),
    ])
    .await;
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}/v1/chat/completions", server.base_url))
        .body("{\"a\":1}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().to_vec(), body);
    let resp = http
        .post(format!("{}/v1/chat/completions", server.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "3");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].path, "/v1/chat/completions");
    assert_eq!(reqs[0].json()["a"], 1);
}

#[test]
fn jsonl_fixtures_become_sse() {
    let body = String::from_utf8(stream_body("anthropic-messages--text.jsonl")).unwrap();
    assert!(body.starts_with("event: message_start\ndata: {"));
    let chat =
        String::from_utf8(stream_body("openai-chat--text--obfuscation-usage.jsonl")).unwrap();
    assert!(chat.ends_with("data: [DONE]\n\n"));
}
