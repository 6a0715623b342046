//! Bedrock's ambient AWS credentials through the real `aws-config` chain: from environment
//! variables, then from a profile in a temporary HOME, then none at all.
//!
//! A test binary of its own with one test, because it changes the process environment
//! (the chain reads it when it loads) and nothing else may run beside it. IMDS is
//! switched off (`AWS_EC2_METADATA_DISABLED=true`) so no step ever probes the network.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::{Duration, SystemTime};

use chatd_test_support::replay::{Recorded, ReplayServer, Reply};
use chaterror::{classify, ChatErrorKind};
use chatprovider::{
    decode_bedrock_body, encode_chunk_frame, sigv4_headers, AwsCredentials, AwsEnvironment,
    BedrockAuth, BedrockModel, ClientSettings, LanguageModel, Message, ModelRequest, SigV4Request,
    StreamPart,
};
use futures_util::StreamExt;

const MODEL: &str = "anthropic.claude-3-5-haiku-20241022-v1:0";

/// Every variable the chain reads that the machine running the test might have set.
const CLEARED: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_STS",
];

fn body() -> Vec<u8> {
    [
        r#"{"type":"message_start","message":{"id":"msg_bdrk_1","type":"message","role":"assistant","model":"claude-3-5-haiku-20241022","content":[],"stop_reason":null,"usage":{"input_tokens":9,"output_tokens":1}}}"#,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hello from bedrock"}}"#,
        r#"{"type":"content_block_stop","index":0}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":4}}"#,
        r#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":9,"outputTokenCount":4,"invocationLatency":310,"firstByteLatency":120}}"#,
    ]
    .iter()
    .flat_map(|e| encode_chunk_frame(e))
    .collect()
}

/// A server that answers only requests signed with `expected` credentials for `region`
/// (the signature recomputed with `aws-sigv4` from what arrived).
async fn verifying_server(expected: AwsCredentials, region: &'static str) -> ReplayServer {
    let ok = Reply {
        status: 200,
        headers: vec![(
            "content-type".into(),
            "application/vnd.amazon.eventstream".into(),
        )],
        chunks: vec![body()],
        delay_first_byte: Duration::ZERO,
    };
    ReplayServer::start_with_responder(Vec::new(), move |r| {
        Some(match verify(r, &expected, region) {
            Ok(()) => ok.clone(),
            Err(e) => Reply::status(
                403,
                vec![(
                    "x-amzn-errortype".into(),
                    "InvalidSignatureException".into(),
                )],
                serde_json::json!({ "message": e }).to_string().into_bytes(),
            ),
        })
    })
    .await
}

fn verify(r: &Recorded, creds: &AwsCredentials, region: &str) -> Result<(), String> {
    let date = r.header("x-amz-date").ok_or("no x-amz-date")?;
    let time: SystemTime = chrono::NaiveDateTime::parse_from_str(date, "%Y%m%dT%H%M%SZ")
        .map_err(|e| e.to_string())?
        .and_utc()
        .into();
    if r.header("x-amz-security-token") != creds.session_token() {
        return Err("session token differs".into());
    }
    let url = format!("http://{}{}", r.header("host").ok_or("no host")?, r.path);
    let headers = [("content-type", r.header("content-type").unwrap_or_default())];
    let want = sigv4_headers(
        &SigV4Request {
            method: &r.method,
            url: &url,
            headers: &headers,
            body: &r.body,
        },
        creds,
        region,
        "bedrock",
        time,
    )
    .map_err(|e| e.to_string())?;
    let want = want
        .iter()
        .find(|(n, _)| n == "authorization")
        .map(|(_, v)| v.as_str());
    if want == r.header("authorization") {
        Ok(())
    } else {
        Err(format!(
            "signature mismatch: {:?}",
            r.header("authorization")
        ))
    }
}

async fn turn(
    env: AwsEnvironment,
    base: &str,
) -> Result<Vec<StreamPart>, chaterror::ProviderError> {
    let model = BedrockModel::new(
        MODEL,
        BedrockAuth::Aws(env),
        Some(base),
        ClientSettings::default(),
    );
    let mut s = model.stream(ModelRequest {
        messages: vec![Message::user_text("hi")],
        ..Default::default()
    });
    let mut out = Vec::new();
    while let Some(p) = s.next().await {
        out.push(p?);
    }
    Ok(out)
}

#[tokio::test]
async fn ambient_credentials_from_the_environment_a_profile_and_none() {
    let home = std::env::temp_dir().join(format!("chatd-aws-env-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(home.join(".aws")).unwrap();
    let credentials_file = home.join("credentials");
    let config_file = home.join("config");
    for name in CLEARED {
        std::env::remove_var(name);
    }
    std::env::set_var("HOME", &home);
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", &credentials_file);
    std::env::set_var("AWS_CONFIG_FILE", &config_file);
    let expected_parts = decode_bedrock_body(&body()).unwrap();

    // 1. Environment variables (with a session token).
    let from_env = AwsCredentials::new(
        "AKIDENVTEST000001",
        "env-secret-key-SECRET-000000000000000000",
        Some("env-session-token-SECRET".to_owned()),
        None,
        "expected",
    );
    std::env::set_var("AWS_ACCESS_KEY_ID", from_env.access_key_id());
    std::env::set_var("AWS_SECRET_ACCESS_KEY", from_env.secret_access_key());
    std::env::set_var("AWS_SESSION_TOKEN", from_env.session_token().unwrap());
    std::env::set_var("AWS_REGION", "eu-west-1");
    let server = verifying_server(from_env.clone(), "eu-west-1").await;
    let parts = turn(AwsEnvironment::chain(), &server.base_url)
        .await
        .unwrap();
    assert_eq!(parts, expected_parts);
    assert_eq!(server.requests().len(), 1);

    // 2. A shared profile in the temporary HOME: credentials file and config region.
    for name in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
    ] {
        std::env::remove_var(name);
    }
    let from_profile = AwsCredentials::new(
        "AKIDPROFILETEST01",
        "profile-secret-key-SECRET-0000000000000",
        None,
        None,
        "expected",
    );
    std::fs::write(
        &credentials_file,
        format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            from_profile.access_key_id(),
            from_profile.secret_access_key()
        ),
    )
    .unwrap();
    std::fs::write(&config_file, "[default]\nregion = ap-southeast-2\n").unwrap();
    let server = verifying_server(from_profile.clone(), "ap-southeast-2").await;
    // The process-wide chain is loaded lazily, at the first request, and then kept.
    let process = AwsEnvironment::process();
    assert!(format!("{process:?}").contains("not loaded"), "{process:?}");
    let parts = turn(process.clone(), &server.base_url).await.unwrap();
    assert_eq!(parts, expected_parts);
    assert!(format!("{:?}", AwsEnvironment::process()).contains("(loaded)"));
    let parts = turn(AwsEnvironment::process(), &server.base_url)
        .await
        .unwrap();
    assert_eq!(parts, expected_parts);
    assert_eq!(server.requests().len(), 2);

    // 3. Nothing configured: an auth error, fast (no IMDS probe), never retried.
    std::fs::write(&credentials_file, "").unwrap();
    std::fs::write(&config_file, "[default]\nregion = ap-southeast-2\n").unwrap();
    let started = std::time::Instant::now();
    let err = turn(AwsEnvironment::chain(), &server.base_url)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let c = classify(&err);
    assert_eq!(c.kind(), Some(&ChatErrorKind::Auth), "{c:?} {err}");
    assert!(!c.is_retryable());
    assert!(err.to_string().contains("load AWS credentials"), "{err}");
    assert_eq!(server.requests().len(), 2, "nothing was sent");

    let _ = std::fs::remove_dir_all(&home);
}
