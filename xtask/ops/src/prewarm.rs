//! `prewarm --env prod --for DURATION`: before a sale, raise the floors
//! that otherwise scale too slowly for 100,000 fans at 20:00:00, and
//! `prewarm --undo` to put them back:
//!
//! - ElastiCache Serverless: the minimum ECPU/s (`ModifyServerlessCache`,
//!   `CacheUsageLimits.ECPUPerSecond.Minimum`), `--cache-ecpu`;
//! - Kinesis: the shard count of a provisioned stream (`UpdateShardCount`,
//!   in steps of at most double, as the API allows), `--shards`; or the
//!   warm throughput of an on-demand one (`UpdateStreamWarmThroughput`),
//!   `--warm-mibps`;
//! - Aurora: the readers' scaling minimum (Application Auto Scaling's
//!   `rds:cluster:ReadReplicaCount` target), `--readers`;
//! - the HPA's minimum replicas: `autoscaling.minReplicas` in the values
//!   file, committed, so ArgoCD keeps it, `--replicas`.
//!
//! What it changed, and until when, is recorded where any operator or
//! pipeline can read it back, never in a local file: a tag
//! `ops.tickets/prewarm = until=<RFC 3339>;previous=<value>` on the cache,
//! the stream and the Aurora cluster, and trailers in the commit
//! (`Prewarm-Until`, `Prewarm-Previous-Min-Replicas`). `--undo` restores
//! each from there and removes the tags. Doctor reads the same tags
//! ([`Record::parse`]) to warn about a prewarm that outlived its duration.
//! The Terraform modules ignore changes to exactly these attributes.

use std::io::Write;
use std::time::Duration;

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use serde::Serialize;

use crate::aws::CallError;
use crate::environment::Environment;
use crate::git::Git;
use crate::values::{self, Scalar};

/// The tag on each prewarmed resource.
pub const TAG: &str = "ops.tickets/prewarm";
const MIN_REPLICAS: &[&str] = &["autoscaling", "minReplicas"];
const TRAILER_UNTIL: &str = "Prewarm-Until";
const TRAILER_REPLICAS: &str = "Prewarm-Previous-Min-Replicas";

#[derive(Debug, thiserror::Error)]
pub enum PrewarmError {
    #[error(transparent)]
    Environment(#[from] crate::environment::EnvironmentError),
    #[error(transparent)]
    Aws(#[from] crate::aws::AwsError),
    #[error(transparent)]
    Git(#[from] crate::git::GitError),
    #[error(transparent)]
    Values(#[from] values::ValuesError),
    #[error(transparent)]
    Confirm(#[from] crate::confirm::ConfirmError),
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("{0}")]
    Refused(String),
    #[error("writing the report: {0}")]
    Output(#[from] std::io::Error),
}

/// What a prewarm tag says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    /// Unix seconds.
    pub until: i64,
    pub previous: i64,
}

impl Record {
    pub fn tag(&self) -> String {
        format!(
            "until={};previous={}",
            crate::cert::format_time(self.until),
            self.previous
        )
    }

    pub fn parse(tag: &str) -> Option<Record> {
        let mut until = None;
        let mut previous = None;
        for part in tag.split(';') {
            match part.split_once('=') {
                Some(("until", t)) => {
                    until = time::OffsetDateTime::parse(
                        t,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .ok()
                    .map(|t| t.unix_timestamp())
                }
                Some(("previous", p)) => previous = p.parse().ok(),
                _ => return None,
            }
        }
        Some(Record {
            until: until?,
            previous: previous?,
        })
    }

    /// Whether the prewarm has outlived its duration at `now`.
    pub fn expired(&self, now: i64) -> bool {
        now > self.until
    }
}

/// The prewarm records the stream, the cache and the Aurora cluster carry
/// (each name given), as (what, record); for doctor, which warns about one
/// that outlived its duration. A resource that cannot be read is left out
/// (the check that owns it reports that).
pub async fn records(
    config: &aws_config::SdkConfig,
    stream: Option<&str>,
    cache: Option<&str>,
    aurora: Option<&str>,
) -> Vec<(String, Record)> {
    let c = Clients {
        cache: aws_sdk_elasticache::Client::new(config),
        kinesis: aws_sdk_kinesis::Client::new(config),
        scaling: aws_sdk_applicationautoscaling::Client::new(config),
        rds: aws_sdk_rds::Client::new(config),
    };
    let mut found = Vec::new();
    if let Some(name) = stream {
        if let Ok(Some(r)) = stream_tag(&c, name).await {
            found.push((format!("stream {name}"), r));
        }
    }
    if let Some(name) = cache {
        if let Ok((arn, _, _)) = cache_limits(&c, name).await {
            if let Ok(Some(r)) = cache_tag(&c, &arn).await {
                found.push((format!("cache {name}"), r));
            }
        }
    }
    if let Some(name) = aurora {
        if let Ok((_, Some(r))) = cluster_arn_and_tag(&c, name).await {
            found.push((format!("Aurora cluster {name}"), r));
        }
    }
    found
}

/// `90m`, `3h`, `2d`, `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a duration like 3h or 90m"))?;
        number.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(format!("`{text}` is not a duration like 3h or 90m")),
        };
    }
    if !number.is_empty() || total == 0 {
        return Err(format!("`{text}` is not a duration like 3h or 90m"));
    }
    if total > 7 * 86_400 {
        return Err(format!(
            "{text} is more than 7 days: a prewarm is for a sale"
        ));
    }
    Ok(Duration::from_secs(total))
}

#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["for_", "undo"])))]
pub struct Args {
    /// The environment (environments/<ENV>.toml).
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// How long the floors stay up (e.g. 3h, 90m); recorded with them.
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    pub for_: Option<Duration>,
    /// Put back what the last prewarm changed, from its records.
    #[arg(long, conflicts_with_all = ["cache_ecpu", "shards", "warm_mibps", "readers", "replicas"])]
    pub undo: bool,
    /// ElastiCache Serverless minimum ECPU/s.
    #[arg(long, value_name = "N")]
    pub cache_ecpu: Option<i32>,
    /// Kinesis shard count (a provisioned stream).
    #[arg(long, value_name = "N", conflicts_with = "warm_mibps")]
    pub shards: Option<i32>,
    /// Kinesis warm throughput in MiB/s (an on-demand stream).
    #[arg(long, value_name = "N")]
    pub warm_mibps: Option<i32>,
    /// Aurora readers' scaling minimum.
    #[arg(long, value_name = "N")]
    pub readers: Option<i32>,
    /// The HPA's minimum replicas (values file, committed).
    #[arg(long, value_name = "N")]
    pub replicas: Option<i32>,
    /// Print the steps; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask before changing prod.
    #[arg(long)]
    pub yes: bool,
    /// Print one JSON object on stdout (the summary goes to stderr).
    #[arg(long)]
    pub json: bool,
}

/// One floor changed (or to change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub what: String,
    pub from: i64,
    pub to: i64,
}

struct Clients {
    cache: aws_sdk_elasticache::Client,
    kinesis: aws_sdk_kinesis::Client,
    scaling: aws_sdk_applicationautoscaling::Client,
    rds: aws_sdk_rds::Client,
}

/// The cache's ARN and its current ECPU/s limits (minimum, maximum).
async fn cache_limits(
    c: &Clients,
    name: &str,
) -> Result<(String, Option<i32>, Option<i32>), PrewarmError> {
    let out = c
        .cache
        .describe_serverless_caches()
        .serverless_cache_name(name)
        .send()
        .await
        .map_err(|e| match e.code() {
            Some("ServerlessCacheNotFoundFault") => {
                PrewarmError::Refused(format!("no ElastiCache Serverless cache {name}"))
            }
            _ => CallError::new("elasticache", "DescribeServerlessCaches", &e).into(),
        })?;
    let cache = out
        .serverless_caches()
        .first()
        .ok_or_else(|| PrewarmError::Refused(format!("no ElastiCache Serverless cache {name}")))?;
    let ecpu = cache.cache_usage_limits().and_then(|l| l.ecpu_per_second());
    Ok((
        cache.arn().unwrap_or_default().to_string(),
        ecpu.and_then(|e| e.minimum()),
        ecpu.and_then(|e| e.maximum()),
    ))
}

async fn set_cache_minimum(
    c: &Clients,
    name: &str,
    minimum: Option<i32>,
    maximum: Option<i32>,
) -> Result<(), PrewarmError> {
    use aws_sdk_elasticache::types::{CacheUsageLimits, EcpuPerSecond};
    let mut ecpu = EcpuPerSecond::builder().set_maximum(maximum);
    if let Some(m) = minimum {
        ecpu = ecpu.minimum(m);
    }
    c.cache
        .modify_serverless_cache()
        .serverless_cache_name(name)
        .cache_usage_limits(
            CacheUsageLimits::builder()
                .ecpu_per_second(ecpu.build())
                .build(),
        )
        .send()
        .await
        .map_err(|e| CallError::new("elasticache", "ModifyServerlessCache", &e))?;
    Ok(())
}

async fn cache_tag(c: &Clients, arn: &str) -> Result<Option<Record>, PrewarmError> {
    let out = c
        .cache
        .list_tags_for_resource()
        .resource_name(arn)
        .send()
        .await
        .map_err(|e| CallError::new("elasticache", "ListTagsForResource", &e))?;
    Ok(out
        .tag_list()
        .iter()
        .find(|t| t.key() == Some(TAG))
        .and_then(|t| t.value())
        .and_then(Record::parse))
}

/// The stream's mode, open shard count and warm throughput (MiB/s).
async fn stream_state(c: &Clients, name: &str) -> Result<(bool, i32, i32), PrewarmError> {
    let out = c
        .kinesis
        .describe_stream_summary()
        .stream_name(name)
        .send()
        .await
        .map_err(|e| CallError::new("kinesis", "DescribeStreamSummary", &e))?;
    let s = out
        .stream_description_summary()
        .ok_or_else(|| PrewarmError::Refused(format!("no Kinesis stream {name}")))?;
    let on_demand = s
        .stream_mode_details()
        .is_some_and(|m| m.stream_mode().as_str() == "ON_DEMAND");
    let warm = s
        .warm_throughput()
        .and_then(|w| w.target_mibps())
        .unwrap_or(0);
    Ok((on_demand, s.open_shard_count(), warm))
}

async fn wait_stream_active(c: &Clients, name: &str) -> Result<(), PrewarmError> {
    for _ in 0..300 {
        let out = c
            .kinesis
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .map_err(|e| CallError::new("kinesis", "DescribeStreamSummary", &e))?;
        if out
            .stream_description_summary()
            .is_some_and(|s| s.stream_status().as_str() == "ACTIVE")
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Err(PrewarmError::Refused(format!(
        "stream {name} did not become ACTIVE within 10 minutes"
    )))
}

/// Resharding in steps: UpdateShardCount takes at most double (or half)
/// the open shards per call.
async fn set_shards(
    c: &Clients,
    name: &str,
    mut current: i32,
    target: i32,
    progress: &mut crate::progress::Progress,
) -> Result<(), PrewarmError> {
    use aws_sdk_kinesis::types::ScalingType;
    while current != target {
        let next = if target > current {
            target.min(current * 2)
        } else {
            target.max((current + 1) / 2)
        };
        progress.line(&format!("kinesis {name}: {current} -> {next} shards"));
        c.kinesis
            .update_shard_count()
            .stream_name(name)
            .target_shard_count(next)
            .scaling_type(ScalingType::UniformScaling)
            .send()
            .await
            .map_err(|e| CallError::new("kinesis", "UpdateShardCount", &e))?;
        wait_stream_active(c, name).await?;
        current = next;
    }
    Ok(())
}

async fn stream_tag(c: &Clients, name: &str) -> Result<Option<Record>, PrewarmError> {
    let out = c
        .kinesis
        .list_tags_for_stream()
        .stream_name(name)
        .send()
        .await
        .map_err(|e| CallError::new("kinesis", "ListTagsForStream", &e))?;
    Ok(out
        .tags()
        .iter()
        .find(|t| t.key() == TAG)
        .and_then(|t| t.value())
        .and_then(Record::parse))
}

const READERS: &str = "rds:cluster:ReadReplicaCount";

/// The readers' scalable target: (min, max).
async fn readers(c: &Clients, cluster: &str) -> Result<(i32, i32), PrewarmError> {
    use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
    let out = c
        .scaling
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Rds)
        .resource_ids(format!("cluster:{cluster}"))
        .scalable_dimension(ScalableDimension::from(READERS))
        .send()
        .await
        .map_err(|e| CallError::new("application-autoscaling", "DescribeScalableTargets", &e))?;
    let target = out.scalable_targets().first().ok_or_else(|| {
        PrewarmError::Refused(format!(
            "Aurora cluster {cluster} has no reader auto scaling target (terraform/modules/aurora)"
        ))
    })?;
    Ok((target.min_capacity(), target.max_capacity()))
}

async fn set_readers(c: &Clients, cluster: &str, min: i32, max: i32) -> Result<(), PrewarmError> {
    use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
    c.scaling
        .register_scalable_target()
        .service_namespace(ServiceNamespace::Rds)
        .resource_id(format!("cluster:{cluster}"))
        .scalable_dimension(ScalableDimension::from(READERS))
        .min_capacity(min)
        .max_capacity(max.max(min))
        .send()
        .await
        .map_err(|e| CallError::new("application-autoscaling", "RegisterScalableTarget", &e))?;
    Ok(())
}

async fn cluster_arn_and_tag(
    c: &Clients,
    cluster: &str,
) -> Result<(String, Option<Record>), PrewarmError> {
    let out = c
        .rds
        .describe_db_clusters()
        .db_cluster_identifier(cluster)
        .send()
        .await
        .map_err(|e| match e.code() {
            Some("DBClusterNotFoundFault") => {
                PrewarmError::Refused(format!("no Aurora cluster {cluster}"))
            }
            _ => CallError::new("rds", "DescribeDBClusters", &e).into(),
        })?;
    let db = out
        .db_clusters()
        .first()
        .ok_or_else(|| PrewarmError::Refused(format!("no Aurora cluster {cluster}")))?;
    let record = db
        .tag_list()
        .iter()
        .find(|t| t.key() == Some(TAG))
        .and_then(|t| t.value())
        .and_then(Record::parse);
    Ok((db.db_cluster_arn().unwrap_or_default().to_string(), record))
}

impl Args {
    /// The floors of the flags, each one they leave out taken from the
    /// environment's `[prewarm]`; a stream flag (`--shards` or
    /// `--warm-mibps`) overrides both of the file's stream keys.
    pub fn with_defaults(&self, file: &crate::environment::Prewarm) -> Args {
        let mut a = self.clone();
        if a.undo {
            return a;
        }
        a.cache_ecpu = a.cache_ecpu.or(file.cache_ecpu);
        if a.shards.is_none() && a.warm_mibps.is_none() {
            a.shards = file.shards;
            a.warm_mibps = file.warm_mibps;
        }
        a.readers = a.readers.or(file.readers);
        a.replicas = a.replicas.or(file.replicas);
        a
    }
}

pub async fn run(args: &Args) -> Result<crate::Verdict, PrewarmError> {
    let root = crate::environment::repository_root()?;
    let env = Environment::load(&root, &args.env)?;
    if env.prewarm.shards.is_some() && env.prewarm.warm_mibps.is_some() {
        return Err(PrewarmError::Refused(format!(
            "environments/{}.toml: [prewarm] names both shards and warm_mibps; a stream is either provisioned or on-demand",
            env.name
        )));
    }
    let args = &args.with_defaults(&env.prewarm);
    if !args.undo
        && [
            args.cache_ecpu,
            args.shards,
            args.warm_mibps,
            args.readers,
            args.replicas,
        ]
        .iter()
        .all(Option::is_none)
    {
        return Err(PrewarmError::Refused(
            format!("name at least one floor: --cache-ecpu, --shards or --warm-mibps, --readers, --replicas (or their keys under [prewarm] in environments/{}.toml)", env.name),
        ));
    }
    let git = Git::new(&root);
    let touches_values = args.replicas.is_some() || args.undo;
    if touches_values && !args.dry_run {
        git.require_clean()?;
    }
    if !args.dry_run {
        crate::confirm::production_change(
            &env,
            if args.undo {
                "undo the prewarm"
            } else {
                "prewarm"
            },
            args.yes,
        )?;
    }
    let config = crate::aws::load_for(&env).await?;
    let c = Clients {
        cache: aws_sdk_elasticache::Client::new(&config),
        kinesis: aws_sdk_kinesis::Client::new(&config),
        scaling: aws_sdk_applicationautoscaling::Client::new(&config),
        rds: aws_sdk_rds::Client::new(&config),
    };
    let mut progress = crate::progress::Progress::new("prewarm");
    let now = crate::cert::now();
    let changes = if args.undo {
        undo(&c, &env, &git, args.dry_run, &mut progress).await?
    } else {
        let until = now + args.for_.map(|d| d.as_secs() as i64).unwrap_or(0);
        raise(&c, &env, &git, args, until, &mut progress).await?
    };
    let summary = format!(
        "prewarm {}{}: {} floors {}",
        env.name,
        if args.undo { " --undo" } else { "" },
        changes.len(),
        match (args.dry_run, args.undo) {
            (true, _) => "would change (dry run)".to_string(),
            (false, true) => "put back".to_string(),
            (false, false) => format!(
                "raised until {}",
                crate::cert::format_time(now + args.for_.map(|d| d.as_secs() as i64).unwrap_or(0))
            ),
        }
    );
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::json!({"dry_run": args.dry_run, "undo": args.undo, "changes": changes})
        )?;
        out.flush()?;
        eprintln!("{summary}");
    } else {
        for ch in &changes {
            writeln!(out, "{}: {} -> {}", ch.what, ch.from, ch.to)?;
        }
        writeln!(out, "{summary}")?;
    }
    Ok(crate::Verdict::Clean)
}

async fn raise(
    c: &Clients,
    env: &Environment,
    git: &Git,
    args: &Args,
    until: i64,
    progress: &mut crate::progress::Progress,
) -> Result<Vec<Change>, PrewarmError> {
    let mut changes = Vec::new();
    if let Some(min) = args.cache_ecpu {
        let name = &env.app.cache_name;
        let (arn, current, max) = cache_limits(c, name).await?;
        changes.push(Change {
            what: format!("elasticache {name} minimum ECPU/s"),
            from: current.unwrap_or(0).into(),
            to: min.into(),
        });
        if !args.dry_run {
            let record = Record {
                until,
                previous: current.unwrap_or(0).into(),
            };
            c.cache
                .add_tags_to_resource()
                .resource_name(&arn)
                .tags(
                    aws_sdk_elasticache::types::Tag::builder()
                        .key(TAG)
                        .value(record.tag())
                        .build(),
                )
                .send()
                .await
                .map_err(|e| CallError::new("elasticache", "AddTagsToResource", &e))?;
            set_cache_minimum(c, name, Some(min), max.map(|m| m.max(min))).await?;
        }
    }
    let stream = &env.app.kinesis_stream;
    if args.shards.is_some() || args.warm_mibps.is_some() {
        let (on_demand, shards, warm) = stream_state(c, stream).await?;
        let (what, from, to) = match (args.shards, args.warm_mibps) {
            (Some(_), _) if on_demand => {
                return Err(PrewarmError::Refused(format!(
                    "stream {stream} is on-demand: warm it with --warm-mibps instead of --shards"
                )))
            }
            (Some(n), _) => ("shards", shards, n),
            (None, Some(_)) if !on_demand => {
                return Err(PrewarmError::Refused(format!(
                    "stream {stream} is provisioned: raise --shards instead of --warm-mibps"
                )))
            }
            (None, Some(n)) => ("warm throughput MiB/s", warm, n),
            (None, None) => unreachable!("checked above"),
        };
        changes.push(Change {
            what: format!("kinesis {stream} {what}"),
            from: from.into(),
            to: to.into(),
        });
        if !args.dry_run {
            let record = Record {
                until,
                previous: from.into(),
            };
            c.kinesis
                .add_tags_to_stream()
                .stream_name(stream)
                .tags(TAG, record.tag())
                .send()
                .await
                .map_err(|e| CallError::new("kinesis", "AddTagsToStream", &e))?;
            if what == "shards" {
                set_shards(c, stream, from, to, progress).await?;
            } else {
                c.kinesis
                    .update_stream_warm_throughput()
                    .stream_name(stream)
                    .warm_throughput_mibps(to)
                    .send()
                    .await
                    .map_err(|e| CallError::new("kinesis", "UpdateStreamWarmThroughput", &e))?;
            }
        }
    }
    if let Some(min) = args.readers {
        let cluster = &env.app.aurora_cluster;
        let (current, max) = readers(c, cluster).await?;
        changes.push(Change {
            what: format!("aurora {cluster} readers minimum"),
            from: current.into(),
            to: min.into(),
        });
        if !args.dry_run {
            let (arn, _) = cluster_arn_and_tag(c, cluster).await?;
            let record = Record {
                until,
                previous: current.into(),
            };
            c.rds
                .add_tags_to_resource()
                .resource_name(&arn)
                .tags(
                    aws_sdk_rds::types::Tag::builder()
                        .key(TAG)
                        .value(record.tag())
                        .build(),
                )
                .send()
                .await
                .map_err(|e| CallError::new("rds", "AddTagsToResource", &e))?;
            set_readers(c, cluster, min, max).await?;
        }
    }
    if let Some(min) = args.replicas {
        let file = &env.kubernetes.values_file;
        let current = values::rendered(git.root(), file, MIN_REPLICAS)?
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(1);
        changes.push(Change {
            what: format!("HPA minReplicas ({file})"),
            from: current,
            to: min.into(),
        });
        if !args.dry_run {
            values::set_in_file(git.root(), file, MIN_REPLICAS, Scalar::Int(min.into()))?;
            let lines: Vec<String> = changes
                .iter()
                .map(|c| format!("- {}: {} -> {}", c.what, c.from, c.to))
                .collect();
            let sha = git.commit(
                &[file],
                &format!(
                    "prewarm {} until {}\n\n{}\n\n{TRAILER_UNTIL}: {}\n{TRAILER_REPLICAS}: {current}",
                    env.name,
                    crate::cert::format_time(until),
                    lines.join("\n"),
                    crate::cert::format_time(until),
                ),
            )?;
            progress.line(&format!("committed {sha}: push it for ArgoCD (`git push`)"));
        }
    }
    Ok(changes)
}

async fn undo(
    c: &Clients,
    env: &Environment,
    git: &Git,
    dry_run: bool,
    progress: &mut crate::progress::Progress,
) -> Result<Vec<Change>, PrewarmError> {
    let mut changes = Vec::new();
    // The cache.
    let name = &env.app.cache_name;
    match cache_limits(c, name).await {
        Ok((arn, current, max)) => {
            if let Some(record) = cache_tag(c, &arn).await? {
                changes.push(Change {
                    what: format!("elasticache {name} minimum ECPU/s"),
                    from: current.unwrap_or(0).into(),
                    to: record.previous,
                });
                if !dry_run {
                    let previous = (record.previous > 0).then_some(record.previous as i32);
                    set_cache_minimum(c, name, previous, max).await?;
                    c.cache
                        .remove_tags_from_resource()
                        .resource_name(&arn)
                        .tag_keys(TAG)
                        .send()
                        .await
                        .map_err(|e| CallError::new("elasticache", "RemoveTagsFromResource", &e))?;
                }
            }
        }
        Err(PrewarmError::Refused(why)) => progress.line(&format!("skipped: {why}")),
        Err(e) => return Err(e),
    }
    // The stream.
    let stream = &env.app.kinesis_stream;
    if let Some(record) = stream_tag(c, stream).await? {
        let (on_demand, shards, warm) = stream_state(c, stream).await?;
        let (what, from) = if on_demand {
            ("warm throughput MiB/s", warm)
        } else {
            ("shards", shards)
        };
        changes.push(Change {
            what: format!("kinesis {stream} {what}"),
            from: from.into(),
            to: record.previous,
        });
        if !dry_run {
            if on_demand {
                c.kinesis
                    .update_stream_warm_throughput()
                    .stream_name(stream)
                    .warm_throughput_mibps(record.previous as i32)
                    .send()
                    .await
                    .map_err(|e| CallError::new("kinesis", "UpdateStreamWarmThroughput", &e))?;
            } else {
                set_shards(c, stream, shards, record.previous as i32, progress).await?;
            }
            c.kinesis
                .remove_tags_from_stream()
                .stream_name(stream)
                .tag_keys(TAG)
                .send()
                .await
                .map_err(|e| CallError::new("kinesis", "RemoveTagsFromStream", &e))?;
        }
    }
    // Aurora's readers.
    let cluster = &env.app.aurora_cluster;
    let (arn, record) = match cluster_arn_and_tag(c, cluster).await {
        Ok(found) => found,
        Err(PrewarmError::Refused(why)) => {
            progress.line(&format!("skipped: {why}"));
            (String::new(), None)
        }
        Err(e) => return Err(e),
    };
    if let Some(record) = record {
        let (current, max) = readers(c, cluster).await?;
        changes.push(Change {
            what: format!("aurora {cluster} readers minimum"),
            from: current.into(),
            to: record.previous,
        });
        if !dry_run {
            set_readers(c, cluster, record.previous as i32, max).await?;
            c.rds
                .remove_tags_from_resource()
                .resource_name(&arn)
                .tag_keys(TAG)
                .send()
                .await
                .map_err(|e| CallError::new("rds", "RemoveTagsFromResource", &e))?;
        }
    }
    // The HPA: the last prewarm commit's trailer, unless undone since.
    let file = &env.kubernetes.values_file;
    let last = git.run(&["log", "-1", "--format=%B", "--grep=^prewarm ", "--", file])?;
    if last.starts_with("prewarm ") && !last.starts_with(&format!("prewarm {} undo", env.name)) {
        let previous = last
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{TRAILER_REPLICAS}: ")))
            .and_then(|v| v.trim().parse::<i64>().ok());
        if let Some(previous) = previous {
            let current = values::rendered(git.root(), file, MIN_REPLICAS)?
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(1);
            changes.push(Change {
                what: format!("HPA minReplicas ({file})"),
                from: current,
                to: previous,
            });
            if !dry_run {
                values::set_in_file(git.root(), file, MIN_REPLICAS, Scalar::Int(previous))?;
                let sha = git.commit(
                    &[file],
                    &format!(
                        "prewarm {} undo: HPA minReplicas {current} -> {previous}",
                        env.name
                    ),
                )?;
                progress.line(&format!("committed {sha}: push it for ArgoCD (`git push`)"));
            }
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_records_read_back() {
        assert_eq!(parse_duration("90m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        for bad in ["", "3", "h", "3x", "0h", "8d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        let r = Record {
            until: 1_800_000_000,
            previous: 4,
        };
        assert_eq!(r.tag(), "until=2027-01-15T08:00:00Z;previous=4");
        assert_eq!(Record::parse(&r.tag()), Some(r.clone()));
        assert!(r.expired(1_800_000_001) && !r.expired(1_800_000_000));
        assert_eq!(Record::parse("until=soon;previous=4"), None);
    }

    fn args(extra: &[&str]) -> Args {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        let mut argv = vec!["prewarm", "--env", "prod"];
        argv.extend_from_slice(extra);
        <Cli as clap::Parser>::try_parse_from(argv).unwrap().args
    }

    #[test]
    fn the_environments_floors_fill_what_the_flags_leave_and_flags_win() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let prod = Environment::load(&root, "prod").unwrap().prewarm;
        assert!(
            prod.cache_ecpu.is_some() && prod.readers.is_some() && prod.replicas.is_some(),
            "prod names its sale floors: {prod:?}"
        );
        assert!(prod.shards.is_some() != prod.warm_mibps.is_some());
        // `prewarm --env prod --for 3h` alone raises prod's floors.
        let a = args(&["--for", "3h"]).with_defaults(&prod);
        assert_eq!(
            (a.cache_ecpu, a.shards, a.warm_mibps, a.readers, a.replicas),
            (
                prod.cache_ecpu,
                prod.shards,
                prod.warm_mibps,
                prod.readers,
                prod.replicas
            )
        );
        // A flag wins over its key; a stream flag over both stream keys.
        let a =
            args(&["--for", "3h", "--replicas", "7", "--warm-mibps", "50"]).with_defaults(&prod);
        assert_eq!(
            (a.replicas, a.warm_mibps, a.shards),
            (Some(7), Some(50), None)
        );
        assert_eq!(a.cache_ecpu, prod.cache_ecpu);
        // --undo takes nothing from the file.
        let a = args(&["--undo"]).with_defaults(&prod);
        assert_eq!((a.cache_ecpu, a.shards, a.replicas), (None, None, None));
        // No file floors: the flags alone.
        let dev = Environment::load(&root, "dev").unwrap().prewarm;
        assert_eq!(dev, crate::environment::Prewarm::default());
        let a = args(&["--for", "1h", "--readers", "2"]).with_defaults(&dev);
        assert_eq!((a.cache_ecpu, a.shards, a.readers), (None, None, Some(2)));
    }
}
