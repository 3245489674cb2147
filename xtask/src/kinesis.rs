//! The Kinesis stream of `cargo xtask dev`, created with plain HTTP calls
//! to moto or LocalStack (the Kinesis JSON protocol: a POST with
//! `X-Amz-Target: Kinesis_20131202.<Operation>`), so that xtask never
//! compiles the AWS SDK. Neither emulator checks signatures; the
//! Authorization header only has to look like SigV4 for them to route the
//! call to Kinesis.
//!
//! The names here are the ones the app reads (`KINESIS_STREAM`, the AWS
//! chain) and the ones `localstack/` uses; a test holds the compose file
//! to them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use devstack::http_request;

use crate::Result;

/// The stream the app writes its events to, locally (`tickets-<env>-
/// admission-events` in AWS, see environments/).
pub const STREAM: &str = "tickets-local-admission-events";
/// Shards of the local stream: two, so that the audit reads more than one.
pub const SHARDS: u32 = 2;
pub const REGION: &str = "us-east-1";
/// Dummy credentials: the emulators accept any.
pub const ACCESS_KEY_ID: &str = "test";
pub const SECRET_ACCESS_KEY: &str = "test";

/// How long a new stream may take to become ACTIVE (LocalStack's kinesis
/// backend answers after a short delay; moto at once).
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(30);

/// One Kinesis call; returns the status and the body.
pub fn call(endpoint: SocketAddr, operation: &str, body: &str) -> Result<(u16, String)> {
    let target = format!("Kinesis_20131202.{operation}");
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/20260101/{REGION}/kinesis/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={}",
        "0".repeat(64)
    );
    let headers = [
        ("X-Amz-Target", target.as_str()),
        ("Content-Type", "application/x-amz-json-1.1"),
        ("X-Amz-Date", "20260101T000000Z"),
        ("Authorization", authorization.as_str()),
    ];
    Ok(http_request(endpoint, "POST", "/", &headers, Some(body))
        .map_err(|e| format!("Kinesis {operation} at {endpoint}: {e}"))?)
}

/// Creates `name` with `shards` shards unless it exists, and waits until it
/// is ACTIVE. Returns its open shard count.
pub fn ensure_stream(endpoint: SocketAddr, name: &str, shards: u32) -> Result<u64> {
    let (status, body) = call(
        endpoint,
        "CreateStream",
        &format!(r#"{{"StreamName":"{name}","ShardCount":{shards}}}"#),
    )?;
    if status != 200 && !body.contains("ResourceInUseException") {
        return Err(format!("creating the Kinesis stream {name}: {status} {body}").into());
    }
    let deadline = Instant::now() + ACTIVE_TIMEOUT;
    loop {
        let (status, body) = call(
            endpoint,
            "DescribeStreamSummary",
            &format!(r#"{{"StreamName":"{name}"}}"#),
        )?;
        if status == 200 && json_field(&body, "StreamStatus").as_deref() == Some("ACTIVE") {
            return json_field(&body, "OpenShardCount")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("stream {name}: no OpenShardCount in {body}").into());
        }
        if Instant::now() > deadline {
            return Err(format!("stream {name} is not ACTIVE after 30 s: {status} {body}").into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The value of `"key": "value"` or `"key": 12` in a JSON text, whatever
/// the spacing (moto writes `": "`, others `":"`).
pub fn json_field(text: &str, key: &str) -> Option<String> {
    let needle = format!("\"{key}\"");
    let rest = &text[text.find(&needle)? + needle.len()..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    match rest.strip_prefix('"') {
        Some(s) => Some(s[..s.find('"')?].to_string()),
        None => Some(
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
                .collect(),
        )
        .filter(|v: &String| !v.is_empty()),
    }
}

/// The variables that turn the app's event log on, pointed at `endpoint`.
/// `EVENT_HASH_KEY` (the key of `client_hash`) is new on every run.
pub fn app_env(endpoint: &str) -> Result<Vec<(&'static str, String)>> {
    Ok(vec![
        ("KINESIS_STREAM", STREAM.to_string()),
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("AWS_REGION", REGION.to_string()),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_string()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_string()),
        ("EVENT_HASH_KEY", crate::dev::random_hex(32)?),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_fields_whatever_the_spacing() {
        let moto = r#"{"StreamDescriptionSummary": {"StreamName": "s", "StreamStatus": "ACTIVE", "OpenShardCount": 2}}"#;
        assert_eq!(json_field(moto, "StreamStatus").as_deref(), Some("ACTIVE"));
        assert_eq!(json_field(moto, "OpenShardCount").as_deref(), Some("2"));
        let compact = r#"{"StreamStatus":"CREATING","OpenShardCount":0}"#;
        assert_eq!(
            json_field(compact, "StreamStatus").as_deref(),
            Some("CREATING")
        );
        assert_eq!(json_field(compact, "Missing"), None);
        assert_eq!(json_field(r#"{"a": null}"#, "a").as_deref(), Some("null"));
    }

    #[test]
    fn the_app_gets_the_event_log_settings_it_reads() {
        let env = app_env("http://127.0.0.1:5000").unwrap();
        let names: Vec<&str> = env.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            [
                "KINESIS_STREAM",
                "AWS_ENDPOINT_URL",
                "AWS_REGION",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "EVENT_HASH_KEY"
            ]
        );
        let key = &env[5].1;
        assert_eq!(key.len(), 64);
        assert_ne!(key, &app_env("x").unwrap()[5].1, "a new key every run");
    }
}
