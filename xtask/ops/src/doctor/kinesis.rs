//! `kinesis.stream`: the event log's stream is ACTIVE and its writes are
//! not throttled now (CloudWatch's WriteProvisionedThroughputExceeded over
//! the last five minutes), and no prewarm of it outlived its duration
//! (`prewarm.rs`'s tag).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_kinesis::types::StreamStatus;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

use super::aws_checks::no_aws;
use super::{Ctx, Outcome};
use crate::aws::explain;

/// How far back "now" looks for throttled writes.
const RECENT: Duration = Duration::from_secs(300);

pub async fn stream(ctx: Arc<Ctx>) -> Outcome {
    let Some(name) = &ctx.settings.stream else {
        return Outcome::skip(
            "no stream given",
            "--stream NAME (or KINESIS_STREAM, or --env ENV)",
        );
    };
    let config = match ctx.aws().await {
        Ok(c) => c,
        Err(why) => return no_aws(why),
    };
    let kinesis = aws_sdk_kinesis::Client::new(config);
    let summary = match kinesis
        .describe_stream_summary()
        .stream_name(name)
        .send()
        .await
    {
        Ok(s) => s,
        Err(e) => {
            let missing = e
                .as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception());
            return if missing {
                Outcome::fail(
                    format!(
                        "no stream {name}: the app keeps events in its outboxes until it exists"
                    ),
                    "terraform apply the environment (terraform/modules/stream)",
                )
            } else {
                Outcome::fail(
                    format!("DescribeStreamSummary {name}: {}", explain(&e)),
                    "use credentials allowed kinesis:DescribeStreamSummary",
                )
            };
        }
    };
    let Some(s) = summary.stream_description_summary() else {
        return Outcome::fail(
            format!("DescribeStreamSummary {name}: an empty answer"),
            "retry; report it if it stays",
        );
    };
    let status = s.stream_status();
    if *status != StreamStatus::Active && *status != StreamStatus::Updating {
        return Outcome::fail(
            format!("stream {name} is {}, not ACTIVE", status.as_str()),
            format!("wait for it or recreate it: aws kinesis describe-stream-summary --stream-name {name}"),
        );
    }
    let mode = s
        .stream_mode_details()
        .map(|m| m.stream_mode().as_str().to_lowercase())
        .unwrap_or_else(|| "provisioned".into());
    let shards = s.open_shard_count();
    let head = format!("{name} {} ({mode}, {shards} shards)", status.as_str());

    let throttled = throttled_writes(config, name).await;
    let throttled = match throttled {
        Ok(sum) => sum,
        Err(e) => {
            return Outcome::warn(
                format!("{head}; cannot read its throttling: {e}"),
                "use credentials allowed cloudwatch:GetMetricStatistics",
            )
        }
    };
    if throttled > 0.0 {
        return Outcome::fail(
            format!("{head}: {throttled:.0} writes throttled in the last 5 minutes"),
            format!(
                "raise its write capacity now: aws kinesis update-shard-count --stream-name {name} \
                 --target-shard-count {} --scaling-type UNIFORM_SCALING (before a sale: cargo xtask prewarm)",
                (shards.max(1) * 2)
            ),
        );
    }
    // A prewarm records its end in a tag on each resource it raised (the
    // stream, the cache, the Aurora cluster; prewarm.rs): one that outlived
    // it keeps paying for capacity nobody asked for.
    let settings = &ctx.settings;
    let outlived: Vec<(String, crate::prewarm::Record)> = crate::prewarm::records(
        config,
        Some(name),
        settings.cache_name.as_deref(),
        settings.aurora_cluster.as_deref(),
    )
    .await
    .into_iter()
    .filter(|(_, r)| r.expired(crate::cert::now()))
    .collect();
    if let Some((what, r)) = outlived.first() {
        let env = settings.env.as_deref().unwrap_or("<env>");
        return Outcome::warn(
            format!(
                "{head}; a prewarm outlived its time: {what} was raised until {}, which has passed (it was {} before)",
                crate::cert::format_time(r.until),
                r.previous
            ),
            format!("put the floors back: cargo xtask prewarm --env {env} --undo"),
        )
        .details(outlived.iter().skip(1).map(|(what, r)| {
            format!(
                "also {what}, until {} (was {})",
                crate::cert::format_time(r.until),
                r.previous
            )
        }));
    }
    Outcome::ok(format!("{head}, no throttled writes in the last 5 minutes"))
}

/// CloudWatch's sum of `WriteProvisionedThroughputExceeded` for `stream`
/// over the last five minutes, through GetMetricStatistics in the Query
/// protocol, signed with SigV4 from the SDK's credentials.
async fn throttled_writes(config: &SdkConfig, stream: &str) -> Result<f64, String> {
    let region = config.region().map(|r| r.to_string()).ok_or("no region")?;
    let endpoint = match config.endpoint_url() {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => format!("https://monitoring.{region}.amazonaws.com"),
    };
    let provider = config
        .credentials_provider()
        .ok_or("no credentials provider")?;
    let credentials = provider
        .provide_credentials()
        .await
        .map_err(|e| format!("no credentials: {e}"))?;
    let now = SystemTime::now();
    let iso = |t: SystemTime| {
        time::OffsetDateTime::from(t)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let form: Vec<(&str, String)> = vec![
        ("Action", "GetMetricStatistics".into()),
        ("Version", "2010-08-01".into()),
        ("Namespace", "AWS/Kinesis".into()),
        ("MetricName", "WriteProvisionedThroughputExceeded".into()),
        ("Dimensions.member.1.Name", "StreamName".into()),
        ("Dimensions.member.1.Value", stream.into()),
        ("StartTime", iso(now - RECENT)),
        ("EndTime", iso(now + Duration::from_secs(60))),
        ("Period", "60".into()),
        ("Statistics.member.1", "Sum".into()),
    ];
    let body = form
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let url = format!("{endpoint}/");
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&region)
        .name("monitoring")
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let signable = SignableRequest::new(
        "POST",
        url.as_str(),
        [("content-type", content_type)].into_iter(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let mut request = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?
        .post(&url)
        .header("content-type", content_type)
        .body(body);
    for (name, value) in instructions.headers() {
        request = request.header(name, value);
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("GetMetricStatistics: {e}"))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        let message = between(&text, "<Message>", "</Message>").unwrap_or(text.as_str());
        return Err(format!("GetMetricStatistics answered {status}: {message}"));
    }
    Ok(sums(&text))
}

/// The `<Sum>` of every datapoint of a GetMetricStatistics answer.
fn sums(xml: &str) -> f64 {
    xml.split("<Sum>")
        .skip(1)
        .filter_map(|rest| rest.split("</Sum>").next()?.trim().parse::<f64>().ok())
        .sum()
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(&text[start..end])
}

/// Percent-encoding of a form value (RFC 3986 unreserved characters kept).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_the_datapoints_and_encodes_form_values() {
        let xml = "<GetMetricStatisticsResult><Datapoints><member><Sum>20.0</Sum></member>\
                   <member><Sum>5</Sum></member></Datapoints></GetMetricStatisticsResult>";
        assert_eq!(sums(xml), 25.0);
        assert_eq!(sums("<Datapoints/>"), 0.0);
        assert_eq!(
            encode("AWS/Kinesis 2026-12-02T13:00:00Z"),
            "AWS%2FKinesis%202026-12-02T13%3A00%3A00Z"
        );
    }
}
