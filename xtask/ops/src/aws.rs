//! What every ops command shares about AWS: the SDK configuration (one
//! HTTP client, rustls with ring, no aws-lc), how a failed call is classed
//! (retry, wait, or give up), and the backoff between retries.
//!
//! The standard chain applies: `AWS_REGION`, `AWS_ENDPOINT_URL` (moto,
//! LocalStack), credentials from the environment, a profile, IRSA's web
//! identity or the instance role.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_kinesis::config::http::HttpResponse;
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls;
use rand::Rng;

/// A connection that does not open in this long is not going to.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One attempt of one call (GetRecords answers in well under a second).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error(
        "no AWS region: set AWS_REGION (or a region in your AWS profile){}",
        endpoint_hint()
    )]
    NoRegion,
    #[error(
        "cannot tell whose AWS credentials these are (STS GetCallerIdentity: {0}): set AWS_PROFILE or credentials for the environment's account"
    )]
    NoCredentials(String),
    #[error(
        "these AWS credentials are for account {found}, but {env} is account {expected} (environments/{env}.toml): use the environment's profile"
    )]
    WrongAccount {
        env: String,
        expected: String,
        found: String,
    },
}

fn endpoint_hint() -> String {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) => format!(" (AWS_ENDPOINT_URL is {url})"),
        Err(_) => String::new(),
    }
}

/// The SDK configuration every client of a command is built from.
pub async fn load() -> Result<SdkConfig, AwsError> {
    load_in(None).await
}

/// As [`load`], in `region` when given (else the chain's region).
pub async fn load_in(region: Option<String>) -> Result<SdkConfig, AwsError> {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        );
    let loader = match region {
        Some(r) => loader.region(aws_config::Region::new(r)),
        None => loader,
    };
    let config = loader.load().await;
    if config.region().is_none() {
        return Err(AwsError::NoRegion);
    }
    Ok(config)
}

/// The configuration for an environment's commands: its region (from
/// `environments/<env>.toml`, unless `AWS_REGION` overrides it), and only
/// once STS confirms the credentials belong to its account, so that a
/// command meant for dev never runs against prod's account by mistake.
pub async fn load_for(env: &crate::environment::Environment) -> Result<SdkConfig, AwsError> {
    let region = std::env::var_os("AWS_REGION")
        .is_none()
        .then(|| env.aws.region.clone());
    let config = load_in(region).await?;
    let sts = aws_sdk_sts::Client::new(&config);
    let who = sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| AwsError::NoCredentials(explain(&e)))?;
    let found = who.account().unwrap_or_default().to_string();
    if found != env.aws.account_id {
        return Err(AwsError::WrongAccount {
            env: env.name.clone(),
            expected: env.aws.account_id.clone(),
            found,
        });
    }
    Ok(config)
}

/// Where the calls go, for messages: the endpoint override or the region.
pub fn describe_target(config: &SdkConfig) -> String {
    let region = config.region().map(|r| r.to_string()).unwrap_or_default();
    match config.endpoint_url() {
        Some(url) => format!("{url} (region {region})"),
        None => format!("AWS region {region}"),
    }
}

/// What to do about a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The service asks us to slow down: wait, then try again.
    Throttled,
    /// A Kinesis shard iterator outlived its five minutes: get a new one.
    ExpiredIterator,
    /// The network or the service failed this once: try again.
    Transient,
    /// Retrying will not help (no such stream, access denied, …).
    Fatal,
}

/// Error codes that mean "too fast" across the services this crate calls.
const THROTTLING_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
    "KMSThrottlingException",
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "SlowDown",
];

pub fn classify<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Failure {
    match err {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => Failure::Transient,
        SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() => Failure::Transient,
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            match err.code() {
                Some(code) if THROTTLING_CODES.contains(&code) => Failure::Throttled,
                Some("ExpiredIteratorException") => Failure::ExpiredIterator,
                Some("InternalFailureException" | "ServiceUnavailable" | "InternalError") => {
                    Failure::Transient
                }
                _ if status == 429 => Failure::Throttled,
                _ if status >= 500 => Failure::Transient,
                _ => Failure::Fatal,
            }
        }
        _ => Failure::Fatal,
    }
}

/// The whole story of a failed call, sources included (the SDK's own
/// `Display` says only "service error").
pub fn explain<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: std::error::Error + 'static,
{
    let text = DisplayErrorContext(err).to_string();
    match err {
        SdkError::DispatchFailure(_) => format!("{text}{}", endpoint_hint()),
        _ => text,
    }
}

/// A failed call in one line: the service's code and message when it
/// answered, else [`explain`]'s whole story.
pub fn describe<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err.code() {
        Some(code) => format!("{code}: {}", err.message().unwrap_or("(no message)")),
        None => explain(err),
    }
}

/// One AWS call that failed: the service, the call and what AWS said
/// (see [`describe`]), shared by every command's error type.
#[derive(Debug, thiserror::Error)]
#[error("{service} {call}: {message}")]
pub struct CallError {
    pub service: &'static str,
    pub call: &'static str,
    pub message: String,
}

impl CallError {
    pub fn new<E>(
        service: &'static str,
        call: &'static str,
        err: &SdkError<E, HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        CallError {
            service,
            call,
            message: describe(err),
        }
    }
}

/// Exponential backoff with jitter: the n-th wait is drawn from
/// `[d/2, d]` with `d = min(cap, base * 2^n)`, so waiters spread out but
/// each still waits.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The next wait; each call doubles the ceiling up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.cap);
        self.attempt += 1;
        let half = ceiling / 2;
        half + rand::thread_rng().gen_range(Duration::ZERO..=half)
    }

    /// Failures in a row so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// After a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let ceilings = [100, 200, 400, 800, 1000, 1000];
        for ceiling in ceilings {
            let d = b.next_delay().as_millis() as u64;
            assert!(
                (ceiling / 2..=ceiling).contains(&d),
                "{d} ms for ceiling {ceiling}"
            );
        }
        assert_eq!(b.attempts(), 6);
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn jitter_spreads_the_waits() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
            seen.insert(b.next_delay().as_millis());
        }
        assert!(seen.len() > 10, "{seen:?}");
    }
}
