//! Where the environment's ACM certificates are used, and when they
//! expire: the HTTPS listeners of its ALBs (elbv2) and its Client VPN
//! endpoints (ec2: the server certificate and the client root chain). A
//! self-signed VPN certificate that expired unnoticed is a seed incident;
//! `cert check` lists these, `cert rotate` replaces them.
//!
//! Who owns a listener decides how it may be changed: an ALB tagged
//! `elbv2.k8s.aws/cluster` belongs to the Load Balancer Controller, which
//! undoes changes made by hand (its certificate is changed through the
//! Ingress, i.e. the values file); any other listener takes
//! `ModifyListener` directly.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use serde::Serialize;

use crate::aws::CallError;

/// The Load Balancer Controller's tags on what it creates.
pub const CONTROLLER_CLUSTER_TAG: &str = "elbv2.k8s.aws/cluster";
pub const CONTROLLER_STACK_TAG: &str = "ingress.k8s.aws/stack";
/// `cert check`'s default horizon.
pub const DEFAULT_DAYS: i64 = 30;

/// Every failure of the certificate calls is one AWS call's.
pub type CertError = CallError;

/// Who may change a listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ListenerOwner {
    /// The Load Balancer Controller of `cluster` (for Ingress `stack`).
    LoadBalancerController {
        cluster: String,
        stack: Option<String>,
    },
    /// Nobody else: ModifyListener is the way.
    Unowned,
}

/// Where a certificate is attached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Holder {
    Listener {
        load_balancer_arn: String,
        load_balancer_name: String,
        listener_arn: String,
        port: Option<i32>,
        /// The listener's default certificate (others are SNI extras).
        is_default: bool,
        owner: ListenerOwner,
    },
    ClientVpn {
        endpoint_id: String,
        /// `server` or `client-root`.
        role: VpnRole,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VpnRole {
    Server,
    ClientRoot,
}

impl Holder {
    /// One line for humans.
    pub fn describe(&self) -> String {
        match self {
            Holder::Listener {
                load_balancer_name,
                port,
                is_default,
                owner,
                ..
            } => {
                let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                let extra = if *is_default { "" } else { " (SNI)" };
                let owner = match owner {
                    ListenerOwner::LoadBalancerController { cluster, .. } => {
                        format!(", owned by the Load Balancer Controller of {cluster}")
                    }
                    ListenerOwner::Unowned => String::new(),
                };
                format!("ALB {load_balancer_name}{port} HTTPS listener{extra}{owner}")
            }
            Holder::ClientVpn { endpoint_id, role } => match role {
                VpnRole::Server => format!("Client VPN {endpoint_id} server certificate"),
                VpnRole::ClientRoot => format!("Client VPN {endpoint_id} client root chain"),
            },
        }
    }
}

/// What ACM says about a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Details {
    pub domain: Option<String>,
    pub subject_alternative_names: Vec<String>,
    /// Unix seconds.
    pub not_after: Option<i64>,
    /// `IMPORTED`, `AMAZON_ISSUED`, `PRIVATE`.
    pub kind: Option<String>,
    pub status: Option<String>,
}

/// One certificate in one place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateUse {
    pub certificate_arn: String,
    pub holder: Holder,
    /// `None` when ACM does not know the ARN (deleted, or another account).
    pub details: Option<Details>,
}

impl CertificateUse {
    /// Whole days left at `now` (negative once expired).
    pub fn days_left(&self, now: i64) -> Option<i64> {
        let not_after = self.details.as_ref()?.not_after?;
        Some((not_after - now).div_euclid(86_400))
    }

    /// Expired, or expiring within `days` of `now`; unknown expiry counts
    /// as expiring (it cannot be shown to be fine).
    pub fn expires_within(&self, now: i64, days: i64) -> bool {
        self.days_left(now).is_none_or(|left| left < days)
    }
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `2026-12-31T00:00:00Z` for a Unix time.
pub fn format_time(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

/// The certificates of every ALB HTTPS listener, with their holders.
pub async fn listener_certificates(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
) -> Result<Vec<(String, Holder)>, CertError> {
    let mut balancers = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let out = elb
            .describe_load_balancers()
            .set_marker(marker.clone())
            .send()
            .await
            .map_err(|e| CallError::new("elbv2", "DescribeLoadBalancers", &e))?;
        balancers.extend(out.load_balancers().iter().cloned());
        marker = out.next_marker().map(str::to_string);
        if marker.is_none() {
            break;
        }
    }
    let mut found = Vec::new();
    for lb in balancers {
        let Some(lb_arn) = lb.load_balancer_arn() else {
            continue;
        };
        if lb.r#type().is_some_and(|t| t.as_str() != "application") {
            continue;
        }
        let tags = elb
            .describe_tags()
            .resource_arns(lb_arn)
            .send()
            .await
            .map_err(|e| CallError::new("elbv2", "DescribeTags", &e))?;
        let tag = |key: &str| {
            tags.tag_descriptions()
                .iter()
                .flat_map(|d| d.tags())
                .find(|t| t.key() == Some(key))
                .and_then(|t| t.value().map(str::to_string))
        };
        let owner = match tag(CONTROLLER_CLUSTER_TAG) {
            Some(cluster) => ListenerOwner::LoadBalancerController {
                cluster,
                stack: tag(CONTROLLER_STACK_TAG),
            },
            None => ListenerOwner::Unowned,
        };
        let listeners = elb
            .describe_listeners()
            .load_balancer_arn(lb_arn)
            .send()
            .await
            .map_err(|e| CallError::new("elbv2", "DescribeListeners", &e))?;
        for listener in listeners.listeners() {
            if listener.protocol().map(|p| p.as_str()) != Some("HTTPS") {
                continue;
            }
            let Some(listener_arn) = listener.listener_arn() else {
                continue;
            };
            let certs = elb
                .describe_listener_certificates()
                .listener_arn(listener_arn)
                .send()
                .await
                .map_err(|e| CallError::new("elbv2", "DescribeListenerCertificates", &e))?;
            // DescribeListenerCertificates lists every certificate with
            // IsDefault; DescribeListeners names the default one (kept in
            // case the former leaves it out).
            let mut arns: Vec<(String, bool)> = certs
                .certificates()
                .iter()
                .filter_map(|c| {
                    c.certificate_arn()
                        .map(|a| (a.to_string(), c.is_default().unwrap_or(false)))
                })
                .collect();
            for c in listener.certificates().iter().take(1) {
                if let Some(arn) = c.certificate_arn() {
                    match arns.iter_mut().find(|(a, _)| a == arn) {
                        Some(_) => {}
                        None => arns.insert(0, (arn.to_string(), true)),
                    }
                }
            }
            for (arn, is_default) in arns {
                found.push((
                    arn,
                    Holder::Listener {
                        load_balancer_arn: lb_arn.to_string(),
                        load_balancer_name: lb.load_balancer_name().unwrap_or_default().to_string(),
                        listener_arn: listener_arn.to_string(),
                        port: listener.port(),
                        is_default,
                        owner: owner.clone(),
                    },
                ));
            }
        }
    }
    Ok(found)
}

/// The certificates of every Client VPN endpoint: the server's and, with
/// mutual authentication, the client root chain.
pub async fn client_vpn_certificates(
    ec2: &aws_sdk_ec2::Client,
) -> Result<Vec<(String, Holder)>, CertError> {
    let mut found = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = ec2
            .describe_client_vpn_endpoints()
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| CallError::new("ec2", "DescribeClientVpnEndpoints", &e))?;
        for endpoint in out.client_vpn_endpoints() {
            let id = endpoint
                .client_vpn_endpoint_id()
                .unwrap_or_default()
                .to_string();
            if let Some(arn) = endpoint.server_certificate_arn() {
                found.push((
                    arn.to_string(),
                    Holder::ClientVpn {
                        endpoint_id: id.clone(),
                        role: VpnRole::Server,
                    },
                ));
            }
            for auth in endpoint.authentication_options() {
                if let Some(arn) = auth
                    .mutual_authentication()
                    .and_then(|m| m.client_root_certificate_chain())
                {
                    found.push((
                        arn.to_string(),
                        Holder::ClientVpn {
                            endpoint_id: id.clone(),
                            role: VpnRole::ClientRoot,
                        },
                    ));
                }
            }
        }
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    Ok(found)
}

/// ACM's details of one certificate; `None` when ACM does not know it.
pub async fn details(acm: &aws_sdk_acm::Client, arn: &str) -> Result<Option<Details>, CertError> {
    match acm.describe_certificate().certificate_arn(arn).send().await {
        Ok(out) => Ok(out.certificate().map(|c| Details {
            domain: c.domain_name().map(str::to_string),
            subject_alternative_names: c.subject_alternative_names().to_vec(),
            not_after: c.not_after().map(|t| t.secs()),
            kind: c.r#type().map(|t| t.as_str().to_string()),
            status: c.status().map(|s| s.as_str().to_string()),
        })),
        Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
        Err(e) => Err(CallError::new("acm", "DescribeCertificate", &e)),
    }
}

/// Every certificate on the ALB listeners and the Client VPN endpoints,
/// with ACM's details.
pub async fn inventory(config: &SdkConfig) -> Result<Vec<CertificateUse>, CertError> {
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(config);
    let ec2 = aws_sdk_ec2::Client::new(config);
    let acm = aws_sdk_acm::Client::new(config);
    let mut holders = listener_certificates(&elb).await?;
    holders.extend(client_vpn_certificates(&ec2).await?);
    let mut uses = Vec::with_capacity(holders.len());
    for (arn, holder) in holders {
        let details = details(&acm, &arn).await?;
        uses.push(CertificateUse {
            certificate_arn: arn,
            holder,
            details,
        });
    }
    Ok(uses)
}

// ---- `cert check` and `cert rotate` ------------------------------------

const CHECK_HELP: &str = "\
Lists every ACM certificate on the HTTPS listeners of the region's ALBs and on
its Client VPN endpoints (server certificate and client root chain), with days
left. Exit codes: 0 none expires within --days, 1 some do (or ACM does not know
them), 2 the check could not run.";

const ROTATE_HELP: &str = "\
For each certificate that expires within --days (or the one --arn names):
  1. the new certificate: an imported one is imported again from --certificate,
     --private-key (and --chain); an Amazon-issued one is requested again (DNS
     validation, same names) and waited for until ISSUED (--wait);
  2. put in place of the old, where it is used:
     - the app's ALB (owned by the Load Balancer Controller, which would undo a
       direct change): ingress.certificateArn in the environment's values file,
       committed (ArgoCD applies it; push the commit);
     - a listener nobody else owns: elbv2 ModifyListener (default certificate) or
       Add/RemoveListenerCertificates (SNI);
     - a Client VPN endpoint's server certificate: ec2 ModifyClientVpnEndpoint.
     A client root chain cannot be changed in place: it is reported with the fix.
--dry-run prints these steps and changes nothing. prod asks first (or --yes).";

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// List the certificates in use and fail on those expiring soon
    #[command(after_long_help = CHECK_HELP)]
    Check(CheckArgs),
    /// Replace the certificates that expire soon, where each is used
    #[command(after_long_help = ROTATE_HELP)]
    Rotate(RotateArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// The environment (environments/<ENV>.toml).
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// Expiring means: within this many days.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_DAYS)]
    pub days: i64,
    /// Print one JSON object on stdout (the summary goes to stderr).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RotateArgs {
    #[command(flatten)]
    pub check: CheckArgs,
    /// Rotate only this certificate (whatever its expiry).
    #[arg(long, value_name = "ARN")]
    pub arn: Option<String>,
    /// The new certificate (PEM), for an imported one.
    #[arg(long, value_name = "FILE", requires = "private_key")]
    pub certificate: Option<std::path::PathBuf>,
    /// The new certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "certificate")]
    pub private_key: Option<std::path::PathBuf>,
    /// The new certificate's chain (PEM), if any.
    #[arg(long, value_name = "FILE", requires = "certificate")]
    pub chain: Option<std::path::PathBuf>,
    /// How long to wait for a requested certificate to be issued.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub wait: u64,
    /// Print the steps; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask before changing prod.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Environment(#[from] crate::environment::EnvironmentError),
    #[error(transparent)]
    Aws(#[from] crate::aws::AwsError),
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error(transparent)]
    Values(#[from] crate::values::ValuesError),
    #[error(transparent)]
    Git(#[from] crate::git::GitError),
    #[error(transparent)]
    Confirm(#[from] crate::confirm::ConfirmError),
    #[error("cannot read {path}: {source}")]
    ReadFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
    #[error("writing the report: {0}")]
    Output(#[from] std::io::Error),
}

pub async fn run(command: &Command) -> Result<crate::Verdict, CommandError> {
    match command {
        Command::Check(args) => check(args).await,
        Command::Rotate(args) => rotate(args).await,
    }
}

fn expiry_text(u: &CertificateUse, now: i64) -> String {
    match (u.details.as_ref(), u.days_left(now)) {
        (None, _) => "unknown to ACM".to_string(),
        (Some(_), None) => "no expiry date".to_string(),
        (Some(d), Some(left)) if left < 0 => format!(
            "EXPIRED {} days ago ({})",
            -left,
            format_time(d.not_after.unwrap_or_default())
        ),
        (Some(d), Some(left)) => format!(
            "expires in {left} days ({})",
            format_time(d.not_after.unwrap_or_default())
        ),
    }
}

async fn check(args: &CheckArgs) -> Result<crate::Verdict, CommandError> {
    let root = crate::environment::repository_root()?;
    let env = crate::environment::Environment::load(&root, &args.env)?;
    let config = crate::aws::load_for(&env).await?;
    let mut progress = crate::progress::Progress::new("cert check");
    progress.line(&format!(
        "listing certificates at {}",
        crate::aws::describe_target(&config)
    ));
    let uses = inventory(&config).await?;
    progress.finish();
    let now = now();
    let expiring = uses
        .iter()
        .filter(|u| u.expires_within(now, args.days))
        .count();
    let summary = format!(
        "cert check {}: {} certificates in use, {expiring} expiring within {} days",
        env.name,
        uses.len(),
        args.days
    );
    let mut out = std::io::stdout().lock();
    use std::io::Write;
    if args.json {
        let items: Vec<serde_json::Value> = uses
            .iter()
            .map(|u| {
                serde_json::json!({
                    "certificate_arn": u.certificate_arn,
                    "holder": u.holder,
                    "details": u.details,
                    "days_left": u.days_left(now),
                    "expiring": u.expires_within(now, args.days),
                })
            })
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::json!({"days": args.days, "certificates": items})
        )?;
        out.flush()?;
        eprintln!("{summary}");
    } else {
        for u in &uses {
            let mark = if u.expires_within(now, args.days) {
                "✗"
            } else {
                "✓"
            };
            let domain = u
                .details
                .as_ref()
                .and_then(|d| d.domain.clone())
                .unwrap_or_else(|| "?".into());
            writeln!(
                out,
                "{mark} {domain} on {}: {}\n    {}",
                u.holder.describe(),
                expiry_text(u, now),
                u.certificate_arn
            )?;
            if u.expires_within(now, args.days) {
                writeln!(
                    out,
                    "    fix: cargo xtask cert rotate --env {} --arn {}",
                    env.name, u.certificate_arn
                )?;
            }
        }
        writeln!(out, "{summary}")?;
        out.flush()?;
    }
    Ok(if expiring > 0 {
        crate::Verdict::Findings
    } else {
        crate::Verdict::Clean
    })
}

/// How one use of an old certificate takes the new one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Swap {
    /// ingress.certificateArn in the values file, committed.
    ValuesFile {
        file: String,
    },
    ModifyListener {
        listener_arn: String,
    },
    ReplaceListenerCertificate {
        listener_arn: String,
    },
    ModifyClientVpnEndpoint {
        endpoint_id: String,
    },
    /// Cannot be done here; the fix says how.
    Manual {
        holder: String,
        fix: String,
    },
}

/// The swaps for one use, given the values file's current certificate.
pub fn swap_for(
    holder: &Holder,
    old_arn: &str,
    values_arn: Option<&str>,
    values_file: &str,
) -> Swap {
    match holder {
        Holder::Listener {
            owner: ListenerOwner::LoadBalancerController { .. },
            ..
        } => {
            if values_arn == Some(old_arn) {
                Swap::ValuesFile {
                    file: values_file.to_string(),
                }
            } else {
                Swap::Manual {
                    holder: holder.describe(),
                    fix: format!(
                        "the Load Balancer Controller owns this listener and {values_file} does not name {old_arn}: \
                         change the alb.ingress.kubernetes.io/certificate-arn of the Ingress that set it"
                    ),
                }
            }
        }
        Holder::Listener {
            listener_arn,
            is_default: true,
            ..
        } => Swap::ModifyListener {
            listener_arn: listener_arn.clone(),
        },
        Holder::Listener { listener_arn, .. } => Swap::ReplaceListenerCertificate {
            listener_arn: listener_arn.clone(),
        },
        Holder::ClientVpn {
            endpoint_id,
            role: VpnRole::Server,
        } => Swap::ModifyClientVpnEndpoint {
            endpoint_id: endpoint_id.clone(),
        },
        Holder::ClientVpn {
            endpoint_id,
            role: VpnRole::ClientRoot,
        } => Swap::Manual {
            holder: holder.describe(),
            fix: format!(
                "a Client VPN endpoint's client root chain cannot be modified: import the new CA, \
                 create a new endpoint ({endpoint_id}'s Terraform resource, client_root_certificate_chain_arn) \
                 and hand out its configuration"
            ),
        },
    }
}

/// Where the new certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Renewal {
    Import,
    Request {
        domain: String,
        alternative_names: Vec<String>,
    },
}

/// One old certificate's rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rotation {
    pub old_arn: String,
    pub renewal: Renewal,
    pub swaps: Vec<Swap>,
    pub new_arn: Option<String>,
}

async fn rotate(args: &RotateArgs) -> Result<crate::Verdict, CommandError> {
    let root = crate::environment::repository_root()?;
    let env = crate::environment::Environment::load(&root, &args.check.env)?;
    let config = crate::aws::load_for(&env).await?;
    let mut progress = crate::progress::Progress::new("cert rotate");
    let uses = inventory(&config).await?;
    let now = now();
    let values_file = env.kubernetes.values_file.clone();
    let values_arn = crate::values::rendered(&root, &values_file, &["ingress", "certificateArn"])?;

    // The old certificates to replace, each with its uses.
    let mut olds: Vec<(String, Vec<&CertificateUse>)> = Vec::new();
    for u in &uses {
        let wanted = match &args.arn {
            Some(arn) => &u.certificate_arn == arn,
            None => u.expires_within(now, args.check.days),
        };
        if !wanted {
            continue;
        }
        match olds.iter_mut().find(|(a, _)| a == &u.certificate_arn) {
            Some((_, list)) => list.push(u),
            None => olds.push((u.certificate_arn.clone(), vec![u])),
        }
    }
    if let Some(arn) = &args.arn {
        if olds.is_empty() {
            return Err(CommandError::Refused(format!(
                "{arn} is not used by any ALB HTTPS listener or Client VPN endpoint here"
            )));
        }
    }

    let mut plan = Vec::new();
    for (old, list) in &olds {
        let details = list[0].details.as_ref();
        let renewal = match details.and_then(|d| d.kind.as_deref()) {
            Some("IMPORTED") => Renewal::Import,
            Some("AMAZON_ISSUED") => Renewal::Request {
                domain: details.and_then(|d| d.domain.clone()).unwrap_or_default(),
                alternative_names: details
                    .map(|d| d.subject_alternative_names.clone())
                    .unwrap_or_default(),
            },
            other => {
                return Err(CommandError::Refused(format!(
                    "{old} is {}: rotate it by hand (ACM cannot re-issue it from here)",
                    other.unwrap_or("unknown to ACM")
                )))
            }
        };
        let swaps = list
            .iter()
            .map(|u| swap_for(&u.holder, old, values_arn.as_deref(), &values_file))
            .collect();
        plan.push(Rotation {
            old_arn: old.clone(),
            renewal,
            swaps,
            new_arn: None,
        });
    }
    let imports = plan.iter().filter(|r| r.renewal == Renewal::Import).count();
    if imports > 1 {
        return Err(CommandError::Refused(format!(
            "{imports} imported certificates expire: rotate them one at a time (--arn ARN with its --certificate and --private-key)"
        )));
    }
    if imports == 1 && args.certificate.is_none() && !args.dry_run {
        return Err(CommandError::Refused(
            "the expiring certificate is imported: give the new one with --certificate FILE --private-key FILE [--chain FILE]".into(),
        ));
    }
    let commits = plan
        .iter()
        .any(|r| r.swaps.iter().any(|s| matches!(s, Swap::ValuesFile { .. })));
    let git = crate::git::Git::new(&root);

    for r in &plan {
        for s in &r.swaps {
            progress.line(&format!("{}: {}", r.old_arn, describe_swap(s)));
        }
    }
    if args.dry_run || plan.is_empty() {
        return finish_rotate(&env, &plan, args, true);
    }
    if commits {
        git.require_clean()?;
    }
    crate::confirm::production_change(
        &env,
        &format!("rotate {} certificates", plan.len()),
        args.yes,
    )?;

    let acm = aws_sdk_acm::Client::new(&config);
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&config);
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let mut changed_values = false;
    for r in &mut plan {
        let new_arn = match &r.renewal {
            Renewal::Import => import(&acm, args).await?,
            Renewal::Request {
                domain,
                alternative_names,
            } => {
                let arn = request(&acm, domain, alternative_names).await?;
                progress.line(&format!("requested {arn}; waiting until ACM issues it"));
                wait_issued(
                    &acm,
                    &arn,
                    std::time::Duration::from_secs(args.wait),
                    &mut progress,
                )
                .await?;
                arn
            }
        };
        progress.line(&format!("new certificate {new_arn} replaces {}", r.old_arn));
        for s in &r.swaps {
            apply_swap(s, &r.old_arn, &new_arn, &root, &elb, &ec2).await?;
            changed_values |= matches!(s, Swap::ValuesFile { .. });
        }
        r.new_arn = Some(new_arn);
    }
    if changed_values {
        let rotated: Vec<String> = plan
            .iter()
            .filter(|r| r.swaps.iter().any(|s| matches!(s, Swap::ValuesFile { .. })))
            .map(|r| format!("{} -> {}", r.old_arn, r.new_arn.clone().unwrap_or_default()))
            .collect();
        let sha = git.commit(
            &[&values_file],
            &format!(
                "cert rotate {}: the ALB's certificate in {values_file}\n\n{}\n\nArgoCD applies it through the Ingress (the Load Balancer Controller owns the listener).",
                env.name,
                rotated.join("\n")
            ),
        )?;
        progress.line(&format!("committed {sha}: push it for ArgoCD (`git push`)"));
    }
    finish_rotate(&env, &plan, args, false)
}

fn describe_swap(s: &Swap) -> String {
    match s {
        Swap::ValuesFile { file } => format!("write ingress.certificateArn in {file} and commit"),
        Swap::ModifyListener { listener_arn } => format!("elbv2 ModifyListener {listener_arn}"),
        Swap::ReplaceListenerCertificate { listener_arn } => {
            format!("elbv2 AddListenerCertificates + RemoveListenerCertificates on {listener_arn}")
        }
        Swap::ModifyClientVpnEndpoint { endpoint_id } => {
            format!("ec2 ModifyClientVpnEndpoint {endpoint_id} --server-certificate-arn <new>")
        }
        Swap::Manual { holder, fix } => format!("{holder}: by hand: {fix}"),
    }
}

fn finish_rotate(
    env: &crate::environment::Environment,
    plan: &[Rotation],
    args: &RotateArgs,
    dry_run: bool,
) -> Result<crate::Verdict, CommandError> {
    use std::io::Write;
    let manual = plan
        .iter()
        .flat_map(|r| &r.swaps)
        .filter(|s| matches!(s, Swap::Manual { .. }))
        .count();
    let summary = format!(
        "cert rotate {}: {} certificates {}{}",
        env.name,
        plan.len(),
        if dry_run {
            "would be rotated (dry run)"
        } else {
            "rotated"
        },
        if manual > 0 {
            format!(", {manual} uses left to change by hand")
        } else {
            String::new()
        }
    );
    let mut out = std::io::stdout().lock();
    if args.check.json {
        writeln!(
            out,
            "{}",
            serde_json::json!({"dry_run": dry_run, "rotations": plan})
        )?;
        out.flush()?;
        eprintln!("{summary}");
    } else {
        for r in plan {
            writeln!(
                out,
                "{} -> {}",
                r.old_arn,
                r.new_arn.as_deref().unwrap_or("(new)")
            )?;
            for s in &r.swaps {
                writeln!(out, "    {}", describe_swap(s))?;
            }
        }
        writeln!(out, "{summary}")?;
    }
    Ok(if manual > 0 {
        crate::Verdict::Findings
    } else {
        crate::Verdict::Clean
    })
}

fn read_file(path: &std::path::Path) -> Result<Vec<u8>, CommandError> {
    std::fs::read(path).map_err(|source| CommandError::ReadFile {
        path: path.display().to_string(),
        source,
    })
}

async fn import(acm: &aws_sdk_acm::Client, args: &RotateArgs) -> Result<String, CommandError> {
    use aws_sdk_acm::primitives::Blob;
    let (Some(cert), Some(key)) = (&args.certificate, &args.private_key) else {
        return Err(CommandError::Refused(
            "an imported certificate needs --certificate FILE --private-key FILE".into(),
        ));
    };
    let mut call = acm
        .import_certificate()
        .certificate(Blob::new(read_file(cert)?))
        .private_key(Blob::new(read_file(key)?));
    if let Some(chain) = &args.chain {
        call = call.certificate_chain(Blob::new(read_file(chain)?));
    }
    let out = call
        .send()
        .await
        .map_err(|e| CallError::new("acm", "ImportCertificate", &e))?;
    Ok(out.certificate_arn().unwrap_or_default().to_string())
}

async fn request(
    acm: &aws_sdk_acm::Client,
    domain: &str,
    names: &[String],
) -> Result<String, CommandError> {
    let out = acm
        .request_certificate()
        .domain_name(domain)
        .validation_method(aws_sdk_acm::types::ValidationMethod::Dns)
        .set_subject_alternative_names((!names.is_empty()).then(|| names.to_vec()))
        .send()
        .await
        .map_err(|e| CallError::new("acm", "RequestCertificate", &e))?;
    Ok(out.certificate_arn().unwrap_or_default().to_string())
}

async fn wait_issued(
    acm: &aws_sdk_acm::Client,
    arn: &str,
    timeout: std::time::Duration,
    progress: &mut crate::progress::Progress,
) -> Result<(), CommandError> {
    let started = std::time::Instant::now();
    loop {
        let status = details(acm, arn)
            .await?
            .and_then(|d| d.status)
            .unwrap_or_default();
        if status == "ISSUED" {
            return Ok(());
        }
        if status != "PENDING_VALIDATION" || started.elapsed() >= timeout {
            return Err(CommandError::Refused(format!(
                "{arn} is {status} after {}s: nothing was switched to it; once its DNS validation record \
                 (aws acm describe-certificate --certificate-arn {arn}) is in the zone and it is ISSUED, \
                 run `cert rotate` again with --arn of the old certificate",
                started.elapsed().as_secs()
            )));
        }
        progress.status(|| format!("{arn}: {status} for {}s", started.elapsed().as_secs()));
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

async fn apply_swap(
    swap: &Swap,
    old_arn: &str,
    new_arn: &str,
    root: &std::path::Path,
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    ec2: &aws_sdk_ec2::Client,
) -> Result<(), CommandError> {
    use aws_sdk_elasticloadbalancingv2::types::Certificate;
    let cert = |arn: &str| Certificate::builder().certificate_arn(arn).build();
    match swap {
        Swap::ValuesFile { file } => {
            crate::values::set_in_file(
                root,
                file,
                &["ingress", "certificateArn"],
                crate::values::Scalar::Str(new_arn),
            )?;
        }
        Swap::ModifyListener { listener_arn } => {
            elb.modify_listener()
                .listener_arn(listener_arn)
                .certificates(cert(new_arn))
                .send()
                .await
                .map_err(|e| CallError::new("elbv2", "ModifyListener", &e))?;
        }
        Swap::ReplaceListenerCertificate { listener_arn } => {
            elb.add_listener_certificates()
                .listener_arn(listener_arn)
                .certificates(cert(new_arn))
                .send()
                .await
                .map_err(|e| CallError::new("elbv2", "AddListenerCertificates", &e))?;
            elb.remove_listener_certificates()
                .listener_arn(listener_arn)
                .certificates(cert(old_arn))
                .send()
                .await
                .map_err(|e| CallError::new("elbv2", "RemoveListenerCertificates", &e))?;
        }
        Swap::ModifyClientVpnEndpoint { endpoint_id } => {
            ec2.modify_client_vpn_endpoint()
                .client_vpn_endpoint_id(endpoint_id)
                .server_certificate_arn(new_arn)
                .send()
                .await
                .map_err(|e| CallError::new("ec2", "ModifyClientVpnEndpoint", &e))?;
        }
        Swap::Manual { .. } => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_left_and_the_horizon() {
        let now = 1_800_000_000;
        let with = |not_after: Option<i64>| CertificateUse {
            certificate_arn: "arn".into(),
            holder: Holder::ClientVpn {
                endpoint_id: "cvpn-endpoint-1".into(),
                role: VpnRole::Server,
            },
            details: not_after.map(|n| Details {
                domain: None,
                subject_alternative_names: vec![],
                not_after: Some(n),
                kind: None,
                status: None,
            }),
        };
        assert_eq!(with(Some(now + 10 * 86_400)).days_left(now), Some(10));
        assert!(with(Some(now + 10 * 86_400)).expires_within(now, 30));
        assert!(!with(Some(now + 31 * 86_400)).expires_within(now, 30));
        assert_eq!(with(Some(now - 1)).days_left(now), Some(-1));
        assert!(with(None).expires_within(now, 30));
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
    }
}
