//! `cargo xtask doctor`: on-call's first command. One line per check
//! (`✓` ok, `!` warn, `✗` fail, `-` skipped), indented lines under it that
//! end in the exact fix, `--json` for machines; exit 0 when nothing failed,
//! 1 when a check failed, 2 when doctor itself cannot run (an unknown check
//! name lists the codes).
//!
//! Each check is a function in the module of what it looks at (`app.rs`,
//! `redis.rs`, `db.rs`, `aws_checks.rs`, `network.rs`, `alb.rs`,
//! `certs.rs`, `kinesis.rs`), listed once in [`CHECKS`]. Settings come from `--env`
//! (`environments/<env>.toml`) or from flags with environment fallbacks; a
//! check whose inputs are missing is skipped, naming the flag.

mod alb;
mod app;
mod aws_checks;
mod certs;
mod check;
mod db;
mod irsa_chain;
mod k8s;
mod kinesis;
mod network;
mod redis;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use tokio::sync::OnceCell;

pub use check::{Check, Finding, Outcome, Status};

use crate::environment::{self, Environment, EnvironmentError};
use crate::Verdict;

/// Every check, in the order they are shown.
pub const CHECKS: &[Check] = &[
    Check {
        code: "aws.credentials",
        about: "whose AWS credentials these are (STS), and the environment's account",
        run: |c| Box::pin(aws_checks::credentials(c)),
    },
    Check {
        code: "eks.cluster",
        about: "the EKS cluster exists and is ACTIVE",
        run: |c| Box::pin(aws_checks::cluster(c)),
    },
    Check {
        code: "eks.oidc",
        about: "the cluster's OIDC issuer is an IAM identity provider (IRSA needs it)",
        run: |c| Box::pin(aws_checks::oidc(c)),
    },
    Check {
        code: "network.subnet-tags",
        about: "the cluster's subnets carry the ELB role tags, in 2+ AZs, with free addresses",
        run: |c| Box::pin(network::subnet_tags(c)),
    },
    Check {
        code: "network.security-groups",
        about: "the cluster reaches Aurora on 3306 and the cache on 6379 by the security groups",
        run: |c| Box::pin(network::security_groups(c)),
    },
    Check {
        code: "alb.ingress",
        about: "the Ingress's ALB exists, listens, and has healthy targets",
        run: |c| Box::pin(alb::ingress(c)),
    },
    Check {
        code: "cert.expiry",
        about: "ACM certificates on the ALB listeners and Client VPN endpoints: none expires within 30 days",
        run: |c| Box::pin(certs::expiry(c)),
    },
    Check {
        code: "irsa.chain",
        about: "the app's role: trust for its ServiceAccount, Kinesis writes, and (--kubeconfig) the pods' web identity",
        run: |c| Box::pin(irsa_chain::chain(c)),
    },
    Check {
        code: "kinesis.stream",
        about: "the event log's stream is ACTIVE and its writes are not throttled",
        run: |c| Box::pin(kinesis::stream(c)),
    },
    Check {
        code: "k8s.ingress-finalizer",
        about: "no Ingress is stuck in deletion on the controller's finalizer with its ALB gone",
        run: |c| Box::pin(k8s::ingress_finalizer(c)),
    },
    Check {
        code: "k8s.rollout",
        about: "the app's Deployment rolled out (as kubectl rollout status decides)",
        run: |c| Box::pin(k8s::rollout(c)),
    },
    Check {
        code: "redis.cluster",
        about: "TLS, cluster mode, the app's keys in one slot, the server's CROSSSLOT count",
        run: |c| Box::pin(redis::cluster(c)),
    },
    Check {
        code: "db.schema",
        about: "the database's migrations are this checkout's, checksums equal",
        run: |c| Box::pin(db::schema(c)),
    },
    Check {
        code: "app.ready",
        about: "the app's /health/ready, and what it says is degraded",
        run: |c| Box::pin(app::ready(c)),
    },
    Check {
        code: "app.admission-loop",
        about: "no event with fans waiting and room is left unadmitted for 10 s",
        run: |c| Box::pin(app::admission_loop(c)),
    },
    Check {
        code: "app.event-log",
        about: "the outboxes ship: their length and oldest unshipped entry (/metrics)",
        run: |c| Box::pin(app::event_log(c)),
    },
];

/// Checks what on-call looks at first, each in seconds, and says the fix.
///
/// Without --env, settings come from the flags or their environment
/// variables, so doctor works on any cluster; a check whose inputs are
/// missing is skipped and names the flag that would let it run.
#[derive(Debug, clap::Args)]
#[command(after_help = after_help())]
pub struct Args {
    /// Checks to run, by code (all when none): see the list below.
    #[arg(value_name = "CHECK")]
    pub checks: Vec<String>,
    /// Take names from environments/<ENV>.toml (cluster, region, namespace,
    /// stream, role, Ingress group, URL); flags given as well win.
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
    /// The EKS cluster.
    #[arg(long, env = "EKS_CLUSTER", value_name = "NAME")]
    pub cluster: Option<String>,
    /// The AWS region (else AWS_REGION or the profile's).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// The app's Kubernetes namespace.
    #[arg(long, env = "NAMESPACE", value_name = "NS")]
    pub namespace: Option<String>,
    /// The app's public base URL (https://tickets.example.com).
    #[arg(long, env = "APP_URL", value_name = "URL")]
    pub url: Option<String>,
    /// The database (read only: the migrations table).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Redis: a node URL, or several comma-separated (REDIS_CLUSTER_NODES
    /// is read when neither this nor REDIS_URL is set).
    #[arg(long, env = "REDIS_URL", hide_env_values = true, value_name = "URL")]
    pub redis_url: Option<String>,
    /// A CA certificate (PEM) to trust for rediss:// besides the system's.
    #[arg(long, env = "REDIS_CA_FILE", value_name = "FILE")]
    pub redis_ca_file: Option<PathBuf>,
    /// The event log's Kinesis stream.
    #[arg(long, env = "KINESIS_STREAM", value_name = "NAME")]
    pub stream: Option<String>,
    /// The kubeconfig for the Kubernetes checks.
    #[arg(long, env = "KUBECONFIG", value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The app's IAM role (its ServiceAccount's IRSA role), by name.
    #[arg(long, env = "APP_ROLE_NAME", value_name = "NAME")]
    pub role: Option<String>,
    /// The app's ServiceAccount (its IRSA subject).
    #[arg(long, env = "SERVICE_ACCOUNT", value_name = "NAME")]
    pub service_account: Option<String>,
    /// The app's Deployment (the Helm release's name).
    #[arg(long, env = "DEPLOYMENT", value_name = "NAME")]
    pub deployment: Option<String>,
    /// The Ingress's ALB: its IngressGroup, or NAMESPACE/NAME without one.
    #[arg(long, value_name = "GROUP")]
    pub ingress: Option<String>,
    /// The Aurora cluster's security group (for network.security-groups).
    #[arg(long, env = "DATABASE_SECURITY_GROUP", value_name = "SG")]
    pub database_security_group: Option<String>,
    /// The cache's security group (ElastiCache Serverless).
    #[arg(long, env = "CACHE_SECURITY_GROUP", value_name = "SG")]
    pub cache_security_group: Option<String>,
    /// Seconds each check may take before it is reported as timed out.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub timeout: u64,
    /// One JSON object on stdout: {"checks":[{"code","status","summary","fix"}]}.
    #[arg(long)]
    pub json: bool,
}

fn after_help() -> String {
    let mut text = String::from("Checks:\n");
    for c in CHECKS {
        text.push_str(&format!("  {:<25} {}\n", c.code, c.about));
    }
    text.push_str("\nExit: 0 nothing failed, 1 a check failed, 2 doctor could not run.");
    text
}

/// Why doctor could not run at all (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    #[error("unknown check{} {}; the checks are: {}", if .0.len() > 1 { "s" } else { "" }, .0.join(", "), codes())]
    UnknownCheck(Vec<String>),
    #[error(transparent)]
    Environment(#[from] EnvironmentError),
    #[error("--timeout must be at least 1 second")]
    Timeout,
}

fn codes() -> String {
    CHECKS.iter().map(|c| c.code).collect::<Vec<_>>().join(", ")
}

/// What the checks read: the flags, completed from `--env`.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub env: Option<String>,
    pub account_id: Option<String>,
    pub cluster: Option<String>,
    pub region: Option<String>,
    pub namespace: Option<String>,
    pub url: Option<String>,
    pub database_url: Option<String>,
    pub redis_urls: Vec<String>,
    pub redis_ca_file: Option<PathBuf>,
    pub stream: Option<String>,
    pub kubeconfig: Option<PathBuf>,
    pub role: Option<String>,
    pub service_account: Option<String>,
    pub deployment: Option<String>,
    pub ingress: Option<String>,
    pub database_security_group: Option<String>,
    pub cache_security_group: Option<String>,
    /// From `--env` only: where a prewarm may have left its record.
    pub cache_name: Option<String>,
    pub aurora_cluster: Option<String>,
}

impl Settings {
    pub fn resolve(args: &Args, env: Option<&Environment>) -> Settings {
        let given = |s: &Option<String>| s.clone().filter(|v| !v.trim().is_empty());
        let from_env = |f: &dyn Fn(&Environment) -> String| env.map(f);
        let redis_urls = given(&args.redis_url)
            .or_else(|| std::env::var("REDIS_CLUSTER_NODES").ok())
            .map(|v| {
                v.split(',')
                    .map(|u| u.trim().to_string())
                    .filter(|u| !u.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Settings {
            env: env.map(|e| e.name.clone()),
            account_id: from_env(&|e| e.aws.account_id.clone()),
            cluster: given(&args.cluster).or_else(|| from_env(&|e| e.kubernetes.cluster.clone())),
            region: given(&args.region).or_else(|| from_env(&|e| e.aws.region.clone())),
            namespace: given(&args.namespace)
                .or_else(|| from_env(&|e| e.kubernetes.namespace.clone())),
            url: given(&args.url)
                .or_else(|| from_env(&|e| format!("https://{}", e.ingress.host)))
                .map(|u| u.trim_end_matches('/').to_string()),
            database_url: given(&args.database_url),
            redis_urls,
            redis_ca_file: args.redis_ca_file.clone(),
            stream: given(&args.stream).or_else(|| from_env(&|e| e.app.kinesis_stream.clone())),
            kubeconfig: args.kubeconfig.clone(),
            role: given(&args.role).or_else(|| from_env(&|e| e.app.role_name.clone())),
            deployment: given(&args.deployment)
                .or_else(|| from_env(&|e| e.kubernetes.release.clone())),
            service_account: given(&args.service_account)
                .or_else(|| from_env(&|e| e.kubernetes.service_account.clone())),
            ingress: given(&args.ingress).or_else(|| from_env(&|e| e.ingress.group_name.clone())),
            database_security_group: given(&args.database_security_group)
                .or_else(|| env.and_then(|e| e.network.database_security_group.clone())),
            cache_security_group: given(&args.cache_security_group)
                .or_else(|| env.and_then(|e| e.network.cache_security_group.clone())),
            cache_name: from_env(&|e| e.app.cache_name.clone()),
            aurora_cluster: from_env(&|e| e.app.aurora_cluster.clone()),
        }
    }
}

/// What every check shares: the settings, and what several checks ask AWS
/// (loaded once, by whichever check asks first).
pub struct Ctx {
    pub settings: Settings,
    aws: OnceCell<Result<SdkConfig, String>>,
    cluster: OnceCell<Result<aws_checks::Cluster, String>>,
}

impl Ctx {
    pub fn new(settings: Settings) -> Ctx {
        Ctx {
            settings,
            aws: OnceCell::new(),
            cluster: OnceCell::new(),
        }
    }

    /// The SDK configuration (the `--region` or the environment's region
    /// first), or why there is none.
    pub async fn aws(&self) -> Result<&SdkConfig, String> {
        self.aws
            .get_or_init(|| async {
                crate::aws::load_in(self.settings.region.clone())
                    .await
                    .map_err(|e| e.to_string())
            })
            .await
            .as_ref()
            .map_err(Clone::clone)
    }
}

pub async fn run(args: &Args) -> Result<Verdict, DoctorError> {
    let unknown: Vec<String> = args
        .checks
        .iter()
        .filter(|name| !CHECKS.iter().any(|c| c.code == name.as_str()))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(DoctorError::UnknownCheck(unknown));
    }
    if args.timeout == 0 {
        return Err(DoctorError::Timeout);
    }
    let env = match &args.env {
        Some(name) => {
            let root = environment::repository_root()?;
            Some(Environment::load(&root, name)?)
        }
        None => None,
    };
    let settings = Settings::resolve(args, env.as_ref());
    // rustls for rediss:// (the SDK brings its own configuration).
    admission::server::install_crypto_provider();
    let selected: Vec<Check> = CHECKS
        .iter()
        .filter(|c| args.checks.is_empty() || args.checks.iter().any(|n| n == c.code))
        .copied()
        .collect();
    let started = Instant::now();
    let findings = check::run_all(
        &selected,
        Arc::new(Ctx::new(settings)),
        Duration::from_secs(args.timeout),
    )
    .await;
    let mut out = std::io::stdout().lock();
    let _ = if args.json {
        writeln!(out, "{}", json(&findings))
    } else {
        write!(out, "{}", human(&findings))
    };
    let _ = out.flush();
    eprintln!(
        "doctor: {} ({:.1} s)",
        summary(&findings),
        started.elapsed().as_secs_f32()
    );
    Ok(
        if findings.iter().any(|f| f.outcome.status == Status::Fail) {
            Verdict::Findings
        } else {
            Verdict::Clean
        },
    )
}

/// flutter doctor's shape: a mark and the summary, then indented details,
/// and the fix last.
pub fn human(findings: &[Finding]) -> String {
    let mut text = String::new();
    for f in findings {
        let o = &f.outcome;
        text.push_str(&format!(
            "[{}] {}: {}\n",
            o.status.mark(),
            f.code,
            o.summary
        ));
        for d in &o.details {
            text.push_str(&format!("    • {d}\n"));
        }
        if let Some(fix) = &o.fix {
            let lead = match o.status {
                Status::Skip => "to run it",
                _ => "fix",
            };
            text.push_str(&format!("    → {lead}: {fix}\n"));
        }
    }
    text
}

pub fn json(findings: &[Finding]) -> serde_json::Value {
    serde_json::json!({
        "checks": findings.iter().map(|f| serde_json::json!({
            "code": f.code,
            "status": f.outcome.status.as_str(),
            "summary": f.outcome.summary,
            "fix": f.outcome.fix,
        })).collect::<Vec<_>>()
    })
}

fn summary(findings: &[Finding]) -> String {
    let n = |s: Status| findings.iter().filter(|f| f.outcome.status == s).count();
    let failed: Vec<&str> = findings
        .iter()
        .filter(|f| f.outcome.status == Status::Fail)
        .map(|f| f.code)
        .collect();
    let mut line = format!(
        "{} ok, {} warning{}, {} failed, {} skipped",
        n(Status::Ok),
        n(Status::Warn),
        if n(Status::Warn) == 1 { "" } else { "s" },
        n(Status::Fail),
        n(Status::Skip)
    );
    if !failed.is_empty() {
        line.push_str(&format!(" ({})", failed.join(", ")));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Arc<Ctx> {
        Arc::new(Ctx::new(Settings::default()))
    }

    const STEADY: Check = Check {
        code: "t.ok",
        about: "",
        run: |_| Box::pin(async { Outcome::ok("fine") }),
    };
    const CRASHES: Check = Check {
        code: "t.crash",
        about: "",
        run: |_| {
            Box::pin(async {
                let empty: Vec<u8> = Vec::new();
                Outcome::ok(format!("{}", empty[empty.len() + 3]))
            })
        },
    };
    const HANGS: Check = Check {
        code: "t.hang",
        about: "",
        run: |_| {
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Outcome::ok("never")
            })
        },
    };

    #[tokio::test]
    async fn a_crash_and_a_timeout_are_reported_and_the_others_still_run() {
        let at = Instant::now();
        let findings =
            check::run_all(&[CRASHES, HANGS, STEADY], ctx(), Duration::from_millis(300)).await;
        // The hang was cut at its deadline, not waited out (an hour). Not a
        // timing target: the crash's panic prints a backtrace (RUST_BACKTRACE
        // is set in CI), whose symbols in this debug binary took over 3 s
        // on a busy CI machine once.
        assert!(
            at.elapsed() < Duration::from_secs(120),
            "{:?}",
            at.elapsed()
        );
        let statuses: Vec<_> = findings
            .iter()
            .map(|f| (f.code, f.outcome.status))
            .collect();
        assert_eq!(
            statuses,
            [
                ("t.crash", Status::Fail),
                ("t.hang", Status::Warn),
                ("t.ok", Status::Ok)
            ]
        );
        assert!(findings[0].outcome.summary.contains("crashed"));
        assert!(findings[0].outcome.summary.contains("index out of bounds"));
        assert!(findings[1].outcome.summary.contains("timed out"));
        assert!(findings[1]
            .outcome
            .fix
            .as_deref()
            .unwrap()
            .contains("doctor t.hang --timeout"));
    }

    #[test]
    fn env_names_fill_what_the_flags_leave_and_flags_win() {
        use clap::Parser;
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            args: Args,
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dev = Environment::load(&root, "dev").unwrap();
        let args =
            Only::try_parse_from(["doctor", "--env", "dev", "--stream", "mine", "--region", ""])
                .unwrap()
                .args;
        let s = Settings::resolve(&args, Some(&dev));
        assert_eq!(s.cluster.as_deref(), Some(dev.kubernetes.cluster.as_str()));
        assert_eq!(
            s.region.as_deref(),
            Some(dev.aws.region.as_str()),
            "an empty flag is no value"
        );
        assert_eq!(s.stream.as_deref(), Some("mine"));
        assert_eq!(s.url, Some(format!("https://{}", dev.ingress.host)));
        assert_eq!(s.ingress.as_deref(), Some(dev.ingress.group_name.as_str()));
        assert_eq!(s.role.as_deref(), Some(dev.app.role_name.as_str()));
        assert_eq!(s.account_id.as_deref(), Some(dev.aws.account_id.as_str()));
    }

    #[test]
    fn codes_are_unique_and_dotted() {
        let mut seen = std::collections::BTreeSet::new();
        for c in CHECKS {
            assert!(seen.insert(c.code), "{} twice", c.code);
            assert!(c.code.contains('.') && !c.code.contains(' '), "{}", c.code);
        }
    }

    #[test]
    fn the_human_output_marks_each_check_and_ends_in_the_fix() {
        let findings = vec![
            Finding {
                code: "a.one",
                outcome: Outcome::ok("fine"),
            },
            Finding {
                code: "b.two",
                outcome: Outcome::fail("broken", "do this").detail("because"),
            },
            Finding {
                code: "c.three",
                outcome: Outcome::skip("no input", "--flag"),
            },
        ];
        assert_eq!(
            human(&findings),
            "[✓] a.one: fine\n[✗] b.two: broken\n    • because\n    → fix: do this\n\
             [-] c.three: no input\n    → to run it: --flag\n"
        );
        let j = json(&findings);
        assert_eq!(j["checks"][0]["fix"], serde_json::Value::Null);
        assert_eq!(j["checks"][1]["status"], "fail");
        assert_eq!(j["checks"][2]["fix"], "--flag");
        assert_eq!(
            j["checks"][0]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["code", "fix", "status", "summary"]
        );
        assert_eq!(
            summary(&findings),
            "1 ok, 0 warnings, 1 failed, 1 skipped (b.two)"
        );
    }
}
