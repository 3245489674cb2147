//! `pause --env dev` / `resume --env dev`: an idle dev environment costs
//! money (seed 004 saved about 67% a month by stopping it). `pause` stops
//! the Aurora cluster and scales every EKS node group to zero, recording
//! each group's sizes in a tag on the EKS cluster,
//! `ops.tickets/paused-sizes/<node group> = min,max,desired` (where any
//! operator or pipeline can read them back, as prewarm's records: never a
//! local file; on the cluster rather than the group, which moto cannot
//! tag);
//! `resume` starts the cluster and puts the recorded sizes back. The
//! monthly saving comes from the cost table in docs/infrastructure.md (its
//! `pause` column), a checked-in, dated price list.
//!
//! AWS starts a stopped Aurora cluster again by itself after 7 days: pause
//! says so.

use std::io::Write;
use std::path::Path;

use crate::aws::CallError;
use crate::environment::Environment;

/// The prefix of the EKS cluster's tag per paused node group (`/<group>`
/// follows): `min,max,desired` before the pause.
pub const SIZES_TAG: &str = "ops.tickets/paused-sizes";

fn sizes_tag(group: &str) -> String {
    format!("{SIZES_TAG}/{group}")
}
pub const COST_TABLE: &str = "docs/infrastructure.md";

#[derive(Debug, thiserror::Error)]
pub enum PauseError {
    #[error(transparent)]
    Environment(#[from] crate::environment::EnvironmentError),
    #[error(transparent)]
    Aws(#[from] crate::aws::AwsError),
    #[error(transparent)]
    Confirm(#[from] crate::confirm::ConfirmError),
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("{0}")]
    Refused(String),
    #[error("writing the report: {0}")]
    Output(#[from] std::io::Error),
}

/// The monthly cost of what `pause` stops in `env`, from the cost table:
/// the sum of the `<env> USD` column over rows whose `pause` is `yes`.
pub fn monthly_saving(markdown: &str, env: &str) -> Result<f64, String> {
    let mut header: Option<Vec<String>> = None;
    let mut total = 0.0;
    let mut rows = 0;
    for line in markdown.lines() {
        let line = line.trim();
        if !line.starts_with('|') {
            if header.is_some() && rows > 0 {
                break;
            }
            continue;
        }
        let cells: Vec<String> = line
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect();
        match &header {
            None if cells.iter().any(|c| c == "pause") => header = Some(cells),
            None => {}
            Some(h) => {
                if cells
                    .iter()
                    .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
                {
                    continue;
                }
                let col = |name: &str| h.iter().position(|c| c == name);
                let (Some(usd), Some(pause)) = (col(&format!("{env} USD")), col("pause")) else {
                    return Err(format!("the cost table has no `{env} USD` column"));
                };
                if cells.get(pause).map(String::as_str) == Some("yes") {
                    let text = cells.get(usd).cloned().unwrap_or_default();
                    let value: f64 = text
                        .trim_matches('*')
                        .replace(',', "")
                        .parse()
                        .map_err(|_| format!("`{text}` is not a price"))?;
                    total += value;
                }
                rows += 1;
            }
        }
    }
    if header.is_none() {
        return Err("no table with a `pause` column".into());
    }
    Ok((total * 100.0).round() / 100.0)
}

fn saving_line(root: &Path, env: &str) -> String {
    match std::fs::read_to_string(root.join(COST_TABLE))
        .map_err(|e| e.to_string())
        .and_then(|text| monthly_saving(&text, env))
    {
        Ok(usd) => format!("about {usd:.2} USD a month while paused (cost table in {COST_TABLE})"),
        Err(why) => format!("saving unknown: {COST_TABLE}: {why}"),
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The environment (environments/<ENV>.toml); meant for dev.
    #[arg(long, value_name = "ENV")]
    pub env: String,
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

/// A node group's scaling sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Sizes {
    pub min: i32,
    pub max: i32,
    pub desired: i32,
}

impl Sizes {
    pub fn tag(&self) -> String {
        format!("{},{},{}", self.min, self.max, self.desired)
    }

    pub fn parse(tag: &str) -> Option<Sizes> {
        let mut parts = tag.split(',').map(|p| p.trim().parse::<i32>());
        let sizes = Sizes {
            min: parts.next()?.ok()?,
            max: parts.next()?.ok()?,
            desired: parts.next()?.ok()?,
        };
        (parts.next().is_none() && sizes.min >= 0 && sizes.max >= 1).then_some(sizes)
    }
}

struct Group {
    name: String,
    sizes: Sizes,
    recorded: Option<Sizes>,
}

/// The cluster's ARN and its node groups, with the sizes recorded on it.
async fn node_groups(
    eks: &aws_sdk_eks::Client,
    cluster: &str,
) -> Result<(String, Vec<Group>), PauseError> {
    let described = eks
        .describe_cluster()
        .name(cluster)
        .send()
        .await
        .map_err(|e| CallError::new("eks", "DescribeCluster", &e))?;
    let described = described.cluster();
    let cluster_arn = described
        .and_then(|c| c.arn())
        .unwrap_or_default()
        .to_string();
    let tags = described
        .and_then(|c| c.tags())
        .cloned()
        .unwrap_or_default();
    let list = eks
        .list_nodegroups()
        .cluster_name(cluster)
        .send()
        .await
        .map_err(|e| CallError::new("eks", "ListNodegroups", &e))?;
    let mut groups = Vec::new();
    for name in list.nodegroups() {
        let out = eks
            .describe_nodegroup()
            .cluster_name(cluster)
            .nodegroup_name(name)
            .send()
            .await
            .map_err(|e| CallError::new("eks", "DescribeNodegroup", &e))?;
        let Some(group) = out.nodegroup() else {
            continue;
        };
        let scaling = group.scaling_config();
        groups.push(Group {
            name: name.clone(),
            sizes: Sizes {
                min: scaling.and_then(|s| s.min_size()).unwrap_or(0),
                max: scaling.and_then(|s| s.max_size()).unwrap_or(1),
                desired: scaling.and_then(|s| s.desired_size()).unwrap_or(0),
            },
            recorded: tags.get(&sizes_tag(name)).and_then(|t| Sizes::parse(t)),
        });
    }
    Ok((cluster_arn, groups))
}

async fn scale(
    eks: &aws_sdk_eks::Client,
    cluster: &str,
    group: &str,
    sizes: Sizes,
) -> Result<(), PauseError> {
    eks.update_nodegroup_config()
        .cluster_name(cluster)
        .nodegroup_name(group)
        .scaling_config(
            aws_sdk_eks::types::NodegroupScalingConfig::builder()
                .min_size(sizes.min)
                .max_size(sizes.max)
                .desired_size(sizes.desired)
                .build(),
        )
        .send()
        .await
        .map_err(|e| CallError::new("eks", "UpdateNodegroupConfig", &e))?;
    Ok(())
}

/// The Aurora cluster's status (`available`, `stopped`, ...).
async fn cluster_status(rds: &aws_sdk_rds::Client, id: &str) -> Result<String, PauseError> {
    let out = rds
        .describe_db_clusters()
        .db_cluster_identifier(id)
        .send()
        .await
        .map_err(|e| CallError::new("rds", "DescribeDBClusters", &e))?;
    Ok(out
        .db_clusters()
        .first()
        .and_then(|c| c.status())
        .unwrap_or("unknown")
        .to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Pause,
    Resume,
}

pub async fn run(args: &Args, direction: Direction) -> Result<crate::Verdict, PauseError> {
    let root = crate::environment::repository_root()?;
    let env = Environment::load(&root, &args.env)?;
    let verb = match direction {
        Direction::Pause => "pause",
        Direction::Resume => "resume",
    };
    if !args.dry_run {
        crate::confirm::production_change(&env, &format!("{verb} the environment"), args.yes)?;
    }
    let config = crate::aws::load_for(&env).await?;
    let eks = aws_sdk_eks::Client::new(&config);
    let rds = aws_sdk_rds::Client::new(&config);
    let mut progress = crate::progress::Progress::new(verb);
    let db = &env.app.aurora_cluster;
    let status = cluster_status(&rds, db).await?;
    let (cluster_arn, groups) = node_groups(&eks, &env.kubernetes.cluster).await?;

    let mut steps = Vec::new();
    match direction {
        Direction::Pause => {
            match status.as_str() {
                "stopped" | "stopping" => steps.push(format!("Aurora {db} is {status} already")),
                "available" => steps.push(format!(
                    "rds StopDBCluster {db} (AWS starts it again after 7 days)"
                )),
                other => {
                    return Err(PauseError::Refused(format!(
                        "Aurora {db} is {other}: it can be stopped only when available"
                    )))
                }
            }
            for g in &groups {
                if g.sizes.desired == 0 && g.sizes.min == 0 {
                    steps.push(format!("node group {} is at zero already", g.name));
                } else {
                    steps.push(format!(
                        "node group {}: record {} in the cluster's tag {}, scale to 0 (min 0, desired 0, max {})",
                        g.name,
                        g.sizes.tag(),
                        sizes_tag(&g.name),
                        g.sizes.max
                    ));
                }
            }
        }
        Direction::Resume => {
            match status.as_str() {
                "available" | "starting" => steps.push(format!("Aurora {db} is {status} already")),
                "stopped" => steps.push(format!("rds StartDBCluster {db}")),
                other => {
                    return Err(PauseError::Refused(format!(
                        "Aurora {db} is {other}: it can be started only when stopped"
                    )))
                }
            }
            for g in &groups {
                match g.recorded {
                    Some(s) => steps.push(format!(
                        "node group {}: scale back to {} (from the cluster's tag {}), remove the tag",
                        g.name,
                        s.tag(),
                        sizes_tag(&g.name)
                    )),
                    None => steps.push(format!(
                        "node group {}: no recorded sizes, left as it is",
                        g.name
                    )),
                }
            }
        }
    }

    if !args.dry_run {
        for step in &steps {
            progress.line(step);
        }
        match direction {
            Direction::Pause => {
                if status == "available" {
                    rds.stop_db_cluster()
                        .db_cluster_identifier(db)
                        .send()
                        .await
                        .map_err(|e| CallError {
                            service: "rds",
                            call: "StopDBCluster",
                            message: crate::aws::explain(&e),
                        })?;
                }
                for g in groups
                    .iter()
                    .filter(|g| g.sizes.desired != 0 || g.sizes.min != 0)
                {
                    // The record first: a pause cut short can still be resumed.
                    eks.tag_resource()
                        .resource_arn(&cluster_arn)
                        .tags(sizes_tag(&g.name), g.sizes.tag())
                        .send()
                        .await
                        .map_err(|e| CallError::new("eks", "TagResource", &e))?;
                    scale(
                        &eks,
                        &env.kubernetes.cluster,
                        &g.name,
                        Sizes {
                            min: 0,
                            max: g.sizes.max,
                            desired: 0,
                        },
                    )
                    .await?;
                }
            }
            Direction::Resume => {
                if status == "stopped" {
                    rds.start_db_cluster()
                        .db_cluster_identifier(db)
                        .send()
                        .await
                        .map_err(|e| CallError {
                            service: "rds",
                            call: "StartDBCluster",
                            message: crate::aws::explain(&e),
                        })?;
                }
                for g in &groups {
                    let Some(sizes) = g.recorded else { continue };
                    scale(&eks, &env.kubernetes.cluster, &g.name, sizes).await?;
                    eks.untag_resource()
                        .resource_arn(&cluster_arn)
                        .tag_keys(sizes_tag(&g.name))
                        .send()
                        .await
                        .map_err(|e| CallError::new("eks", "UntagResource", &e))?;
                }
            }
        }
    }
    let saving = saving_line(&root, &env.name);
    let summary = format!(
        "{verb} {}: {}{}",
        env.name,
        if args.dry_run {
            "would change (dry run): "
        } else {
            ""
        },
        match direction {
            Direction::Pause => format!(
                "Aurora stopped, {} node groups at zero; saves {saving}",
                groups.len()
            ),
            Direction::Resume => format!(
                "Aurora started, {} node groups restored; costs {saving} again",
                groups.len()
            ),
        }
    );
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::json!({"dry_run": args.dry_run, "steps": steps, "saving": saving})
        )?;
        out.flush()?;
        eprintln!("{summary}");
    } else {
        for step in &steps {
            writeln!(out, "{}{step}", if args.dry_run { "would: " } else { "" })?;
        }
        writeln!(out, "{summary}")?;
    }
    Ok(crate::Verdict::Clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checked_in_cost_table_gives_dev_s_saving() {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let text = std::fs::read_to_string(root.join(COST_TABLE)).unwrap();
        // t3.medium nodes 75.92 + EBS 9.12 + Aurora 64.24 + I/O 1.20 +
        // ECPUs 1.35 + logs 3.80.
        assert_eq!(monthly_saving(&text, "dev").unwrap(), 155.63);
        assert!(monthly_saving(&text, "staging").is_err());
        assert!(monthly_saving("no table", "dev").is_err());
    }

    #[test]
    fn sizes_round_trip_through_the_tag() {
        let s = Sizes {
            min: 1,
            max: 4,
            desired: 2,
        };
        assert_eq!(Sizes::parse(&s.tag()), Some(s));
        assert_eq!(Sizes::parse("1,2"), None);
        assert_eq!(Sizes::parse("a,b,c"), None);
        assert_eq!(Sizes::parse("0,0,0"), None);
    }
}
