//! IRSA, checked end to end: does the app's role let the app's pods in,
//! and let them do what the app needs? The role, its trust policy and its
//! policies are fetched from IAM; the evaluation is ours (moto has no
//! policy simulation, and `SimulatePrincipalPolicy` would need more
//! permissions than on-call has), for the two questions that broke seeds:
//!
//! - the trust policy federates the cluster's OIDC provider for
//!   `sts:AssumeRoleWithWebIdentity`, with `<issuer>:sub =
//!   system:serviceaccount:<ns>:<sa>` and `<issuer>:aud = sts.amazonaws.com`;
//! - the role's policies (inline and attached managed) allow Kinesis
//!   `PutRecord`/`PutRecords` on the stream's ARN, and `kms:GenerateDataKey`
//!   on its key when the stream is encrypted with a customer key.
//!
//! The evaluator knows `Effect`, `Action`/`NotAction`,
//! `Resource`/`NotResource` with IAM's `*` and `?` wildcards: an explicit
//! `Deny` wins, an `Allow` counts only when it has no `Condition` (we do
//! not know the request's context; a conditional allow is a warning).
//! Each problem is a [`Finding`] that names its fix.

use std::collections::BTreeMap;

use aws_sdk_iam::error::ProvideErrorMetadata;
use serde::Deserialize;
use serde_json::Value;

use crate::aws::CallError;
use crate::finding::Finding;
use crate::kube::PodIdentity;

/// The audience EKS's pod identity webhook requests tokens for.
pub const AUDIENCE: &str = "sts.amazonaws.com";
pub const WEB_IDENTITY_ACTION: &str = "sts:AssumeRoleWithWebIdentity";
/// What the app does with Kinesis (app/src/events/kinesis.rs).
pub const KINESIS_ACTIONS: &[&str] = &["kinesis:PutRecord", "kinesis:PutRecords"];
/// What writing to a CMK-encrypted stream needs on the key.
pub const KMS_ACTION: &str = "kms:GenerateDataKey";

#[derive(Debug, thiserror::Error)]
pub enum IrsaError {
    #[error("IAM {call}: {message}")]
    Iam { call: String, message: String },
    #[error("{what} of role {role} is not a policy document: {message}")]
    Document {
        role: String,
        what: String,
        message: String,
    },
}

/// A policy document (only what the evaluator reads).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PolicyDocument {
    #[serde(rename = "Statement")]
    pub statements: OneOrMany<Statement>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        match self {
            OneOrMany::One(t) => std::slice::from_ref(t).iter(),
            OneOrMany::Many(v) => v.iter(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Statement {
    #[serde(rename = "Sid", default)]
    pub sid: Option<String>,
    #[serde(rename = "Effect")]
    pub effect: String,
    #[serde(rename = "Principal", default)]
    pub principal: Option<Value>,
    #[serde(rename = "Action", default)]
    pub action: Option<OneOrMany<String>>,
    #[serde(rename = "NotAction", default)]
    pub not_action: Option<OneOrMany<String>>,
    #[serde(rename = "Resource", default)]
    pub resource: Option<OneOrMany<String>>,
    #[serde(rename = "NotResource", default)]
    pub not_resource: Option<OneOrMany<String>>,
    /// operator → key → values.
    #[serde(rename = "Condition", default)]
    pub condition: Option<BTreeMap<String, BTreeMap<String, OneOrMany<String>>>>,
}

impl PolicyDocument {
    /// Parses a document as IAM returns it (URL-encoded JSON) or as written.
    pub fn parse(text: &str) -> Result<PolicyDocument, String> {
        let decoded = percent_encoding::percent_decode_str(text)
            .decode_utf8()
            .map_err(|e| e.to_string())?;
        serde_json::from_str(&decoded).map_err(|e| e.to_string())
    }
}

impl Statement {
    fn allows(&self) -> bool {
        self.effect.eq_ignore_ascii_case("Allow")
    }

    fn denies(&self) -> bool {
        self.effect.eq_ignore_ascii_case("Deny")
    }

    /// Whether the statement covers `action` (IAM actions ignore case).
    pub fn covers_action(&self, action: &str) -> bool {
        let action = action.to_ascii_lowercase();
        let hit = |patterns: &OneOrMany<String>| {
            patterns
                .iter()
                .any(|p| wildcard(&p.to_ascii_lowercase(), &action))
        };
        match (&self.action, &self.not_action) {
            (Some(a), _) => hit(a),
            (None, Some(n)) => !hit(n),
            (None, None) => false,
        }
    }

    /// Whether the statement covers `resource` (ARNs are case-sensitive).
    pub fn covers_resource(&self, resource: &str) -> bool {
        let hit = |patterns: &OneOrMany<String>| patterns.iter().any(|p| wildcard(p, resource));
        match (&self.resource, &self.not_resource) {
            (Some(r), _) => hit(r),
            (None, Some(n)) => !hit(n),
            // Trust policies have no Resource: the role itself.
            (None, None) => true,
        }
    }

    /// `Principal.Federated`, as a list.
    pub fn federated(&self) -> Vec<String> {
        let Some(f) = self.principal.as_ref().and_then(|p| p.get("Federated")) else {
            return Vec::new();
        };
        match f {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The values a condition key is tested against, under
    /// `StringEquals` (exact) and `StringLike` (wildcards), with the
    /// operator's name.
    fn condition_values(&self, key: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (op, keys) in self.condition.iter().flatten() {
            for (k, values) in keys {
                if k.eq_ignore_ascii_case(key) {
                    out.extend(values.iter().map(|v| (op.clone(), v.clone())));
                }
            }
        }
        out
    }
}

/// IAM's wildcard match: `*` any run of characters, `?` any one.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Where a policy comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    Inline,
    Managed { arn: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct NamedPolicy {
    pub name: String,
    pub source: PolicySource,
    pub document: PolicyDocument,
}

/// A role as IAM returns it: the trust policy and every policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Role {
    pub name: String,
    pub arn: String,
    pub trust: PolicyDocument,
    pub policies: Vec<NamedPolicy>,
}

/// The role's name from its ARN (`arn:aws:iam::1:role/path/name`).
pub fn role_name(arn: &str) -> Option<&str> {
    let resource = arn.split(':').nth(5)?;
    let rest = resource.strip_prefix("role/")?;
    rest.rsplit('/').next().filter(|n| !n.is_empty())
}

fn iam_error<E: ProvideErrorMetadata>(call: &str, e: &E) -> IrsaError {
    IrsaError::Iam {
        call: call.to_string(),
        message: format!(
            "{}: {}",
            e.code().unwrap_or("error"),
            e.message().unwrap_or("(no message)")
        ),
    }
}

/// Fetches the role and all its policies; `None` when no such role.
pub async fn fetch_role(iam: &aws_sdk_iam::Client, name: &str) -> Result<Option<Role>, IrsaError> {
    let role = match iam.get_role().role_name(name).send().await {
        Ok(out) => out.role,
        Err(e) => {
            let service = e.into_service_error();
            if service.is_no_such_entity_exception() {
                return Ok(None);
            }
            return Err(iam_error("GetRole", &service));
        }
    };
    let Some(role) = role else { return Ok(None) };
    let doc = |what: &str, text: &str| {
        PolicyDocument::parse(text).map_err(|message| IrsaError::Document {
            role: name.to_string(),
            what: what.to_string(),
            message,
        })
    };
    let trust = doc(
        "the trust policy",
        role.assume_role_policy_document()
            .unwrap_or("{\"Statement\":[]}"),
    )?;
    let mut policies = Vec::new();
    let inline = iam
        .list_role_policies()
        .role_name(name)
        .send()
        .await
        .map_err(|e| iam_error("ListRolePolicies", &e))?;
    for policy in inline.policy_names() {
        let got = iam
            .get_role_policy()
            .role_name(name)
            .policy_name(policy)
            .send()
            .await
            .map_err(|e| iam_error("GetRolePolicy", &e))?;
        policies.push(NamedPolicy {
            name: policy.clone(),
            source: PolicySource::Inline,
            document: doc(&format!("inline policy {policy}"), got.policy_document())?,
        });
    }
    let attached = iam
        .list_attached_role_policies()
        .role_name(name)
        .send()
        .await
        .map_err(|e| iam_error("ListAttachedRolePolicies", &e))?;
    for policy in attached.attached_policies() {
        let arn = policy.policy_arn().unwrap_or_default().to_string();
        let meta = iam
            .get_policy()
            .policy_arn(&arn)
            .send()
            .await
            .map_err(|e| iam_error("GetPolicy", &e))?;
        let version = meta
            .policy()
            .and_then(|p| p.default_version_id())
            .unwrap_or("v1")
            .to_string();
        let got = iam
            .get_policy_version()
            .policy_arn(&arn)
            .version_id(&version)
            .send()
            .await
            .map_err(|e| iam_error("GetPolicyVersion", &e))?;
        let text = got
            .policy_version()
            .and_then(|v| v.document())
            .unwrap_or("{\"Statement\":[]}");
        policies.push(NamedPolicy {
            name: policy.policy_name().unwrap_or_default().to_string(),
            source: PolicySource::Managed { arn: arn.clone() },
            document: doc(&format!("managed policy {arn}"), text)?,
        });
    }
    Ok(Some(Role {
        name: name.to_string(),
        arn: role.arn().to_string(),
        trust,
        policies,
    }))
}

/// Who may assume the role: the cluster's OIDC provider, for one
/// ServiceAccount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustTarget {
    /// The cluster's issuer URL, `https://oidc.eks.<region>.amazonaws.com/id/<ID>`.
    pub issuer: String,
    pub account_id: String,
    pub namespace: String,
    pub service_account: String,
}

impl TrustTarget {
    /// The issuer without its scheme: the IAM provider's name and the
    /// prefix of the condition keys.
    pub fn issuer_host_path(&self) -> &str {
        self.issuer
            .strip_prefix("https://")
            .unwrap_or(&self.issuer)
            .trim_end_matches('/')
    }

    /// `arn:aws:iam::<account>:oidc-provider/<issuer host path>`.
    pub fn provider_arn(&self) -> String {
        format!(
            "arn:aws:iam::{}:oidc-provider/{}",
            self.account_id,
            self.issuer_host_path()
        )
    }

    pub fn subject(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}",
            self.namespace, self.service_account
        )
    }
}

/// The trust policy's findings: one `Ok`, or what is wrong and its fix.
pub fn evaluate_trust(role: &Role, target: &TrustTarget) -> Vec<Finding> {
    let provider = target.provider_arn();
    let host = target.issuer_host_path();
    let sub_key = format!("{host}:sub");
    let aud_key = format!("{host}:aud");
    let subject = target.subject();
    let fix_file =
        "the app role's assume_role_policy in terraform/modules/eks (then `terraform apply`)";
    let candidates: Vec<&Statement> = role
        .trust
        .statements
        .iter()
        .filter(|s| s.allows() && s.covers_action(WEB_IDENTITY_ACTION))
        .filter(|s| s.federated().iter().any(|f| f == &provider))
        .collect();
    if candidates.is_empty() {
        let federated: Vec<String> = role
            .trust
            .statements
            .iter()
            .flat_map(|s| s.federated())
            .collect();
        let now = if federated.is_empty() {
            "no federated principal".to_string()
        } else {
            format!("it federates {}", federated.join(", "))
        };
        return vec![Finding::error(
            "irsa.trust.provider",
            format!(
                "role {} does not let the cluster's OIDC provider assume it ({now})",
                role.name
            ),
            format!(
                "allow {WEB_IDENTITY_ACTION} for Principal.Federated = {provider} in {fix_file}"
            ),
        )];
    }
    let mut best: Option<Vec<Finding>> = None;
    for statement in candidates {
        let mut findings = Vec::new();
        let subs = statement.condition_values(&sub_key);
        let sub_ok = subs
            .iter()
            .any(|(op, v)| matches_condition(op, v, &subject));
        if subs.is_empty() {
            findings.push(Finding::warning(
                "irsa.trust.sub",
                format!(
                    "role {}'s trust has no {sub_key} condition: every ServiceAccount of the cluster may assume it",
                    role.name
                ),
                format!("add StringEquals {sub_key} = {subject} to {fix_file}"),
            ));
        } else if !sub_ok {
            let found: Vec<&str> = subs.iter().map(|(_, v)| v.as_str()).collect();
            findings.push(Finding::error(
                "irsa.trust.sub",
                format!(
                    "role {}'s trust allows {sub_key} = {}, not {subject}",
                    role.name,
                    found.join(", ")
                ),
                format!("set StringEquals {sub_key} = {subject} in {fix_file}"),
            ));
        }
        let auds = statement.condition_values(&aud_key);
        if auds.is_empty() {
            findings.push(Finding::warning(
                "irsa.trust.aud",
                format!("role {}'s trust has no {aud_key} condition", role.name),
                format!("add StringEquals {aud_key} = {AUDIENCE} to {fix_file}"),
            ));
        } else if !auds
            .iter()
            .any(|(op, v)| matches_condition(op, v, AUDIENCE))
        {
            let found: Vec<&str> = auds.iter().map(|(_, v)| v.as_str()).collect();
            findings.push(Finding::error(
                "irsa.trust.aud",
                format!(
                    "role {}'s trust wants {aud_key} = {}, but EKS tokens say {AUDIENCE}",
                    role.name,
                    found.join(", ")
                ),
                format!("set StringEquals {aud_key} = {AUDIENCE} in {fix_file}"),
            ));
        }
        let errors = |f: &Vec<Finding>| {
            f.iter()
                .filter(|f| f.severity != crate::finding::Severity::Ok)
                .count()
        };
        if best.as_ref().is_none_or(|b| errors(&findings) < errors(b)) {
            best = Some(findings);
        }
    }
    let findings = best.unwrap_or_default();
    if findings.is_empty() {
        vec![Finding::ok(
            "irsa.trust",
            format!(
                "role {} trusts {subject} through the cluster's OIDC provider",
                role.name
            ),
        )]
    } else {
        findings
    }
}

fn matches_condition(operator: &str, pattern: &str, value: &str) -> bool {
    match operator {
        "StringEquals" => pattern == value,
        "StringLike" => wildcard(pattern, value),
        // ForAnyValue:/ForAllValues: over a one-valued key behave alike.
        op if op.ends_with(":StringEquals") => pattern == value,
        op if op.ends_with(":StringLike") => wildcard(pattern, value),
        _ => false,
    }
}

/// One permission the app needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub action: String,
    pub resource: String,
}

/// What the policies say about one need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allowed {
        by: String,
    },
    /// Allowed only by statements with a `Condition`.
    Conditional {
        by: String,
    },
    Denied {
        by: String,
    },
    NotAllowed,
}

/// IAM's rule for one request over the role's policies (identity policies
/// only: no permissions boundary or SCP here).
pub fn decide(policies: &[NamedPolicy], need: &Need) -> Decision {
    let mut conditional = None;
    let mut allowed = None;
    for policy in policies {
        for statement in policy.document.statements.iter() {
            if !statement.covers_action(&need.action) || !statement.covers_resource(&need.resource)
            {
                continue;
            }
            let by = match &statement.sid {
                Some(sid) => format!("{} ({sid})", policy.name),
                None => policy.name.clone(),
            };
            if statement.denies() {
                return Decision::Denied { by };
            }
            if statement.allows() {
                if statement.condition.is_some() {
                    conditional.get_or_insert(by);
                } else {
                    allowed.get_or_insert(by);
                }
            }
        }
    }
    match (allowed, conditional) {
        (Some(by), _) => Decision::Allowed { by },
        (None, Some(by)) => Decision::Conditional { by },
        (None, None) => Decision::NotAllowed,
    }
}

/// The stream the app writes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamTarget {
    pub arn: String,
    /// The KMS key ARN when the stream is encrypted with a customer key
    /// (`None` unencrypted or with AWS's own `alias/aws/kinesis`).
    pub kms_key_arn: Option<String>,
}

/// The app's needs on the stream.
pub fn needs(stream: &StreamTarget) -> Vec<Need> {
    let mut needs: Vec<Need> = KINESIS_ACTIONS
        .iter()
        .map(|a| Need {
            action: a.to_string(),
            resource: stream.arn.clone(),
        })
        .collect();
    if let Some(key) = &stream.kms_key_arn {
        needs.push(Need {
            action: KMS_ACTION.to_string(),
            resource: key.clone(),
        });
    }
    needs
}

/// The policy findings: one per need.
pub fn evaluate_permissions(role: &Role, stream: &StreamTarget) -> Vec<Finding> {
    let fix_file = "the app role's policy in terraform/modules/eks (then `terraform apply`)";
    needs(stream)
        .into_iter()
        .map(|need| {
            let code = if need.action.starts_with("kms:") {
                "irsa.policy.kms"
            } else {
                "irsa.policy.kinesis"
            };
            let what = format!("{} on {}", need.action, need.resource);
            match decide(&role.policies, &need) {
                Decision::Allowed { by } => {
                    Finding::ok(code, format!("role {} may {what} (policy {by})", role.name))
                }
                Decision::Conditional { by } => Finding::warning(
                    code,
                    format!(
                        "role {} may {what} only under the conditions of policy {by}",
                        role.name
                    ),
                    format!(
                        "allow {} on {} without conditions in {fix_file}",
                        need.action, need.resource
                    ),
                ),
                Decision::Denied { by } => Finding::error(
                    code,
                    format!("role {} is denied {what} by policy {by}", role.name),
                    format!("remove the Deny of {} from policy {by}", need.action),
                ),
                Decision::NotAllowed => Finding::error(
                    code,
                    format!("no policy of role {} allows {what}", role.name),
                    format!("allow {} on {} in {fix_file}", need.action, need.resource),
                ),
            }
        })
        .collect()
}

/// The ServiceAccount's `eks.amazonaws.com/role-arn` against the role.
pub fn evaluate_annotation(annotation: Option<&str>, role_arn: &str, whence: &str) -> Finding {
    match annotation {
        Some(a) if a == role_arn => Finding::ok(
            "irsa.annotation",
            format!("the ServiceAccount ({whence}) names role {role_arn}"),
        ),
        Some("") | None => Finding::error(
            "irsa.annotation",
            format!("the ServiceAccount ({whence}) has no eks.amazonaws.com/role-arn annotation"),
            format!("set serviceAccount.roleArn: {role_arn} in the environment's values file"),
        ),
        Some(other) => Finding::error(
            "irsa.annotation",
            format!("the ServiceAccount ({whence}) names role {other}, not {role_arn}"),
            format!("set serviceAccount.roleArn: {role_arn} in the environment's values file"),
        ),
    }
}

/// The running pods of the ServiceAccount: each container must have the
/// webhook's variables, with the right role.
pub fn evaluate_pods(pods: &[PodIdentity], role_arn: &str, service_account: &str) -> Vec<Finding> {
    let running: Vec<&PodIdentity> = pods.iter().filter(|p| p.is_running()).collect();
    if running.is_empty() {
        return vec![Finding::warning(
            "irsa.pod",
            format!("no running pod of ServiceAccount {service_account} to check"),
            "deploy the app (`cargo xtask deploy dev`) and run the check again",
        )];
    }
    let fix = "the variables are injected at pod creation: restart the pods (`kubectl rollout restart deployment/<release>`) \
         once the ServiceAccount carries eks.amazonaws.com/role-arn, and check that the EKS pod identity webhook runs"
        .to_string();
    let mut findings = Vec::new();
    for pod in running {
        for c in &pod.containers {
            let problem = match (&c.role_arn, &c.token_file) {
                (None, _) | (_, None) => Some(format!(
                    "pod {} container {} lacks {}",
                    pod.name,
                    c.name,
                    [
                        c.role_arn.is_none().then_some(crate::kube::ROLE_ARN_VAR),
                        c.token_file
                            .is_none()
                            .then_some(crate::kube::TOKEN_FILE_VAR)
                    ]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" and ")
                )),
                (Some(arn), Some(_)) if arn != role_arn => Some(format!(
                    "pod {} container {} runs as {arn}, not {role_arn}",
                    pod.name, c.name
                )),
                _ => None,
            };
            if let Some(problem) = problem {
                findings.push(Finding::error("irsa.pod", problem, fix.clone()));
            }
        }
    }
    if findings.is_empty() {
        findings.push(Finding::ok(
            "irsa.pod",
            format!(
                "every running pod of {service_account} has {} and {}",
                crate::kube::ROLE_ARN_VAR,
                crate::kube::TOKEN_FILE_VAR
            ),
        ));
    }
    findings
}

// ---- `irsa check` ----------------------------------------------------

const CHECK_HELP: &str = "\
Checks, for the app's ServiceAccount (name and role from the rendered Helm
values: values.yaml under the environment's values file):
  irsa.annotation      the values give serviceAccount.roleArn, the environment's role
  irsa.oidc-provider   IAM has the cluster's OIDC provider, for audience sts.amazonaws.com
  irsa.role            the role exists
  irsa.trust*          its trust federates that provider with sub = system:serviceaccount:NS:SA
                       and aud = sts.amazonaws.com
  irsa.policy.*        its inline and attached policies allow kinesis:PutRecord(s) on the stream
                       (and kms:GenerateDataKey on its key when it is encrypted with a CMK)
  irsa.pod             where the cluster is reachable: the live ServiceAccount's annotation, and
                       every running pod has AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE
Policies are evaluated here (explicit Deny wins; an Allow under a Condition is only a warning).

Exit codes: 0 nothing wrong, 1 something is (each line ends with its fix), 2 the check could not run.";

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Check the app's IRSA chain: annotation, role, trust, policies, pods
    #[command(after_long_help = CHECK_HELP)]
    Check(CheckArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// The environment (environments/<ENV>.toml).
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// The kubeconfig for the pod-side checks (default: KUBECONFIG or
    /// ~/.kube/config). An unreachable cluster skips them with a warning.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// The kubeconfig context (default: its current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Print one JSON object on stdout (the summary goes to stderr).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Environment(#[from] crate::environment::EnvironmentError),
    #[error(transparent)]
    Values(#[from] crate::values::ValuesError),
    #[error(transparent)]
    Aws(#[from] crate::aws::AwsError),
    #[error(transparent)]
    Irsa(#[from] IrsaError),
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("writing the report: {0}")]
    Output(#[from] std::io::Error),
}

pub async fn run(command: &Command) -> Result<crate::Verdict, CheckError> {
    let Command::Check(args) = command;
    let mut progress = crate::progress::Progress::new("irsa check");
    let root = crate::environment::repository_root()?;
    let env = crate::environment::Environment::load(&root, &args.env)?;
    let values_file = env.kubernetes.values_file.clone();
    let sa_name = crate::values::rendered(&root, &values_file, &["serviceAccount", "name"])?
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| env.kubernetes.service_account.clone());
    let namespace = env.kubernetes.namespace.clone();
    let expected_arn = format!(
        "arn:aws:iam::{}:role/{}",
        env.aws.account_id, env.app.role_name
    );
    let values_arn = crate::values::rendered(&root, &values_file, &["serviceAccount", "roleArn"])?;
    let mut findings = vec![evaluate_annotation(
        values_arn.as_deref(),
        &expected_arn,
        &format!("serviceAccount.roleArn in {values_file}"),
    )];
    let role_arn = values_arn
        .filter(|a| !a.is_empty())
        .unwrap_or(expected_arn.clone());

    let config = crate::aws::load_for(&env).await?;
    progress.line(&format!(
        "{namespace}/{sa_name} in {}",
        crate::aws::describe_target(&config)
    ));
    let eks = aws_sdk_eks::Client::new(&config);
    let iam = aws_sdk_iam::Client::new(&config);
    let kinesis = aws_sdk_kinesis::Client::new(&config);

    // The cluster's OIDC issuer, and IAM's provider for it.
    let issuer = match eks
        .describe_cluster()
        .name(&env.kubernetes.cluster)
        .send()
        .await
    {
        Ok(out) => out
            .cluster()
            .and_then(|c| c.identity())
            .and_then(|i| i.oidc())
            .and_then(|o| o.issuer())
            .map(str::to_string),
        Err(e) if e.code() == Some("ResourceNotFoundException") => {
            findings.push(Finding::error(
                "irsa.cluster",
                format!("no EKS cluster {}", env.kubernetes.cluster),
                "create it: `terraform -chdir=terraform/envs/<env> apply`",
            ));
            None
        }
        Err(e) => return Err(CallError::new("eks", "DescribeCluster", &e).into()),
    };
    let trust_target = issuer.map(|issuer| TrustTarget {
        issuer,
        account_id: env.aws.account_id.clone(),
        namespace: namespace.clone(),
        service_account: sa_name.clone(),
    });
    if let Some(t) = &trust_target {
        let arn = t.provider_arn();
        match iam.get_open_id_connect_provider().open_id_connect_provider_arn(&arn).send().await {
            Ok(p) if p.client_id_list().iter().any(|c| c == AUDIENCE) => {
                findings.push(Finding::ok("irsa.oidc-provider", format!("IAM has OIDC provider {arn}")))
            }
            Ok(_) => findings.push(Finding::error(
                "irsa.oidc-provider",
                format!("OIDC provider {arn} does not list the audience {AUDIENCE}"),
                format!("add client id {AUDIENCE} to the provider (aws_iam_openid_connect_provider.client_id_list in terraform/modules/eks)"),
            )),
            Err(e) if e.code() == Some("NoSuchEntity") => findings.push(Finding::error(
                "irsa.oidc-provider",
                format!("IAM has no OIDC provider for the cluster's issuer {}", t.issuer),
                "create it (aws_iam_openid_connect_provider in terraform/modules/eks), then `terraform apply`",
            )),
            Err(e) => return Err(CallError::new("iam", "GetOpenIDConnectProvider", &e).into()),
        }
    }

    // The stream the app writes to, and its key.
    let stream = match kinesis
        .describe_stream_summary()
        .stream_name(&env.app.kinesis_stream)
        .send()
        .await
    {
        Ok(out) => out.stream_description_summary().map(|d| StreamTarget {
            arn: d.stream_arn().to_string(),
            kms_key_arn: customer_key(
                d.encryption_type().map(|t| t.as_str()),
                d.key_id(),
                &env.aws.region,
                &env.aws.account_id,
            ),
        }),
        Err(e) if e.code() == Some("ResourceNotFoundException") => {
            findings.push(Finding::error(
                "irsa.stream",
                format!("no Kinesis stream {}", env.app.kinesis_stream),
                "create it: `terraform -chdir=terraform/envs/<env> apply`",
            ));
            None
        }
        Err(e) => return Err(CallError::new("kinesis", "DescribeStreamSummary", &e).into()),
    };

    let name = role_name(&role_arn)
        .unwrap_or(&env.app.role_name)
        .to_string();
    match fetch_role(&iam, &name).await? {
        None => findings.push(Finding::error(
            "irsa.role",
            format!("IAM has no role {name}"),
            "create it (the app role in terraform/modules/eks), then `terraform apply`",
        )),
        Some(role) => {
            findings.push(Finding::ok(
                "irsa.role",
                format!(
                    "role {} exists ({} policies)",
                    role.arn,
                    role.policies.len()
                ),
            ));
            if let Some(t) = &trust_target {
                findings.extend(evaluate_trust(&role, t));
            }
            if let Some(s) = &stream {
                findings.extend(evaluate_permissions(&role, s));
            }
        }
    }

    // The pod side, where a cluster answers.
    match crate::kube::Kube::connect(args.kubeconfig.as_deref(), args.context.as_deref()).await {
        Err(e) => findings.push(Finding::warning(
            "irsa.pod",
            format!("the pod side was not checked: {e}"),
            format!(
                "`aws eks update-kubeconfig --name {}` and run the check again",
                env.kubernetes.cluster
            ),
        )),
        Ok(kube) => match kube.service_account(&namespace, &sa_name).await {
            Ok(sa) => {
                findings.push(evaluate_annotation(
                    sa.role_arn(),
                    &role_arn,
                    &format!("live {namespace}/{sa_name}"),
                ));
                match kube.pods_of_service_account(&namespace, &sa_name).await {
                    Ok(pods) => findings.extend(evaluate_pods(&pods, &role_arn, &sa_name)),
                    Err(e) => findings.push(Finding::warning(
                        "irsa.pod",
                        format!("cannot list the pods: {e}"),
                        "check your access to the cluster (`kubectl auth can-i list pods -n <namespace>`)",
                    )),
                }
            }
            Err(crate::kube::KubeError::NotFound { .. }) => findings.push(Finding::error(
                "irsa.pod",
                format!("the cluster has no ServiceAccount {namespace}/{sa_name}"),
                "sync the app in ArgoCD (the chart creates the ServiceAccount)",
            )),
            Err(e) => findings.push(Finding::warning(
                "irsa.pod",
                format!("the pod side was not checked: {e}"),
                format!(
                    "`aws eks update-kubeconfig --name {}` and run the check again",
                    env.kubernetes.cluster
                ),
            )),
        },
    }

    progress.finish();
    let failed = crate::finding::any_error(&findings);
    let summary = format!(
        "irsa check {}: {} for {namespace}/{sa_name} ({})",
        env.name,
        if failed { "broken" } else { "ok" },
        crate::finding::tally(&findings)
    );
    crate::finding::print(&findings, args.json, &summary)?;
    Ok(if failed {
        crate::Verdict::Findings
    } else {
        crate::Verdict::Clean
    })
}

/// The stream's customer key as an ARN, or `None` when unencrypted or
/// encrypted with AWS's own key.
pub fn customer_key(
    encryption: Option<&str>,
    key_id: Option<&str>,
    region: &str,
    account: &str,
) -> Option<String> {
    if encryption != Some("KMS") {
        return None;
    }
    let key = key_id?;
    if key == "alias/aws/kinesis" || key.ends_with(":alias/aws/kinesis") {
        return None;
    }
    Some(if key.starts_with("arn:") {
        key.to_string()
    } else {
        format!(
            "arn:aws:kms:{region}:{account}:{}",
            if key.starts_with("alias/") {
                key.to_string()
            } else {
                format!("key/{key}")
            }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Severity;
    use crate::kube::ContainerIdentity;

    const ISSUER: &str = "https://oidc.eks.ap-northeast-2.amazonaws.com/id/ABC123";
    const HOST: &str = "oidc.eks.ap-northeast-2.amazonaws.com/id/ABC123";
    const STREAM: &str =
        "arn:aws:kinesis:ap-northeast-2:111111111111:stream/tickets-dev-admission-events";

    fn target() -> TrustTarget {
        TrustTarget {
            issuer: ISSUER.into(),
            account_id: "111111111111".into(),
            namespace: "admission".into(),
            service_account: "admission".into(),
        }
    }

    fn role(trust: &str, policies: &[&str]) -> Role {
        Role {
            name: "tickets-dev-admission".into(),
            arn: "arn:aws:iam::111111111111:role/tickets-dev-admission".into(),
            trust: PolicyDocument::parse(trust).unwrap(),
            policies: policies
                .iter()
                .enumerate()
                .map(|(i, p)| NamedPolicy {
                    name: format!("p{i}"),
                    source: PolicySource::Inline,
                    document: PolicyDocument::parse(p).unwrap(),
                })
                .collect(),
        }
    }

    fn trust(condition: &str) -> String {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow",
            "Principal":{{"Federated":"arn:aws:iam::111111111111:oidc-provider/{HOST}"}},
            "Action":"sts:AssumeRoleWithWebIdentity","Condition":{condition}}}]}}"#
        )
    }

    fn codes(findings: &[Finding]) -> Vec<(&'static str, Severity)> {
        findings.iter().map(|f| (f.code, f.severity)).collect()
    }

    #[test]
    fn wildcards_match_as_iam_does() {
        assert!(wildcard("kinesis:Put*", "kinesis:PutRecords"));
        assert!(wildcard("*", ""));
        assert!(wildcard("arn:aws:kinesis:*:*:stream/tickets-?ev-*", STREAM));
        assert!(!wildcard("arn:aws:kinesis:*:*:stream/other", STREAM));
        assert!(!wildcard("kinesis:Get*", "kinesis:PutRecord"));
    }

    #[test]
    fn a_trust_with_the_right_subject_and_audience_passes() {
        let r = role(
            &trust(&format!(
                r#"{{"StringEquals":{{"{HOST}:sub":"system:serviceaccount:admission:admission","{HOST}:aud":"sts.amazonaws.com"}}}}"#
            )),
            &[],
        );
        assert_eq!(
            codes(&evaluate_trust(&r, &target())),
            [("irsa.trust", Severity::Ok)]
        );
        // URL-encoded, as IAM returns it.
        let encoded: String = percent_encoding::utf8_percent_encode(
            &trust(&format!(r#"{{"StringLike":{{"{HOST}:sub":"system:serviceaccount:admission:*","{HOST}:aud":"sts.amazonaws.com"}}}}"#)),
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string();
        let r = Role {
            trust: PolicyDocument::parse(&encoded).unwrap(),
            ..r
        };
        assert_eq!(
            codes(&evaluate_trust(&r, &target())),
            [("irsa.trust", Severity::Ok)]
        );
    }

    #[test]
    fn a_wrong_subject_a_missing_audience_or_another_provider_is_named_with_its_fix() {
        let r = role(
            &trust(&format!(
                r#"{{"StringEquals":{{"{HOST}:sub":"system:serviceaccount:default:admission"}}}}"#
            )),
            &[],
        );
        let f = evaluate_trust(&r, &target());
        assert_eq!(
            codes(&f),
            [
                ("irsa.trust.sub", Severity::Error),
                ("irsa.trust.aud", Severity::Warning)
            ]
        );
        assert!(
            f[0].message
                .contains("system:serviceaccount:default:admission"),
            "{}",
            f[0].message
        );
        assert!(
            f[0].fix
                .contains("system:serviceaccount:admission:admission"),
            "{}",
            f[0].fix
        );

        let r = role(
            &trust(&format!(
                r#"{{"StringEquals":{{"{HOST}:aud":"sts.amazonaws.com.cn"}}}}"#
            )),
            &[],
        );
        assert_eq!(
            codes(&evaluate_trust(&r, &target())),
            [
                ("irsa.trust.sub", Severity::Warning),
                ("irsa.trust.aud", Severity::Error)
            ]
        );

        let other = TrustTarget {
            issuer: "https://oidc.eks.ap-northeast-2.amazonaws.com/id/OTHER".into(),
            ..target()
        };
        let f = evaluate_trust(&r, &other);
        assert_eq!(codes(&f), [("irsa.trust.provider", Severity::Error)]);
        assert!(f[0]
            .fix
            .contains("oidc-provider/oidc.eks.ap-northeast-2.amazonaws.com/id/OTHER"));
    }

    #[test]
    fn kinesis_writes_need_an_unconditional_allow_and_no_deny() {
        let stream = StreamTarget {
            arn: STREAM.into(),
            kms_key_arn: None,
        };
        let allow = r#"{"Statement":[{"Effect":"Allow","Action":["kinesis:PutRecord","kinesis:PutRecords"],"Resource":"arn:aws:kinesis:*:*:stream/tickets-dev-*"}]}"#;
        let r = role("{\"Statement\":[]}", &[allow]);
        assert_eq!(
            codes(&evaluate_permissions(&r, &stream)),
            [
                ("irsa.policy.kinesis", Severity::Ok),
                ("irsa.policy.kinesis", Severity::Ok)
            ]
        );
        // Only PutRecord: PutRecords (what the app calls) is missing.
        let one = r#"{"Statement":{"Effect":"Allow","Action":"kinesis:putrecord","Resource":"*"}}"#;
        let f = evaluate_permissions(&role("{\"Statement\":[]}", &[one]), &stream);
        assert_eq!(
            codes(&f),
            [
                ("irsa.policy.kinesis", Severity::Ok),
                ("irsa.policy.kinesis", Severity::Error)
            ]
        );
        assert!(f[1].fix.contains("kinesis:PutRecords"), "{}", f[1].fix);
        // An explicit deny wins over the allow.
        let deny = r#"{"Statement":[{"Sid":"NoWrites","Effect":"Deny","NotAction":"kinesis:Get*","Resource":"*"}]}"#;
        let f = evaluate_permissions(&role("{\"Statement\":[]}", &[allow, deny]), &stream);
        assert_eq!(f[0].severity, Severity::Error);
        assert!(f[0].message.contains("p1 (NoWrites)"), "{}", f[0].message);
        // A conditional allow is a warning.
        let cond = r#"{"Statement":[{"Effect":"Allow","Action":"kinesis:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}"#;
        let f = evaluate_permissions(&role("{\"Statement\":[]}", &[cond]), &stream);
        assert_eq!(f[0].severity, Severity::Warning);
    }

    #[test]
    fn a_cmk_encrypted_stream_also_needs_generate_data_key() {
        let key = "arn:aws:kms:ap-northeast-2:111111111111:key/1234";
        let stream = StreamTarget {
            arn: STREAM.into(),
            kms_key_arn: Some(key.into()),
        };
        let allow = r#"{"Statement":[{"Effect":"Allow","Action":"kinesis:Put*","Resource":"*"}]}"#;
        let f = evaluate_permissions(&role("{\"Statement\":[]}", &[allow]), &stream);
        assert_eq!(f.len(), 3);
        assert_eq!(
            (f[2].code, f[2].severity),
            ("irsa.policy.kms", Severity::Error)
        );
        let kms = format!(
            r#"{{"Statement":[{{"Effect":"Allow","Action":"kms:GenerateDataKey","Resource":"{key}"}}]}}"#
        );
        let f = evaluate_permissions(&role("{\"Statement\":[]}", &[allow, &kms]), &stream);
        assert!(f.iter().all(|f| f.severity == Severity::Ok), "{f:?}");
    }

    #[test]
    fn pods_without_the_injected_variables_are_errors() {
        let role_arn = "arn:aws:iam::111111111111:role/tickets-dev-admission";
        let pod = |name: &str, arn: Option<&str>, token: Option<&str>| PodIdentity {
            name: name.into(),
            phase: Some("Running".into()),
            service_account: "admission".into(),
            containers: vec![ContainerIdentity {
                name: "admission".into(),
                role_arn: arn.map(str::to_string),
                token_file: token.map(str::to_string),
            }],
        };
        let token = Some("/var/run/secrets/eks.amazonaws.com/serviceaccount/token");
        let f = evaluate_pods(&[pod("a", Some(role_arn), token)], role_arn, "admission");
        assert_eq!(codes(&f), [("irsa.pod", Severity::Ok)]);
        let f = evaluate_pods(
            &[
                pod("a", Some(role_arn), token),
                pod("b", None, None),
                pod("c", Some("arn:aws:iam::1:role/x"), token),
            ],
            role_arn,
            "admission",
        );
        assert_eq!(
            codes(&f),
            [("irsa.pod", Severity::Error), ("irsa.pod", Severity::Error)]
        );
        assert!(
            f[0].message.contains("pod b")
                && f[0]
                    .message
                    .contains("AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE"),
            "{}",
            f[0].message
        );
        assert!(f[1].message.contains("role/x"));
        assert_eq!(
            codes(&evaluate_pods(&[], role_arn, "admission")),
            [("irsa.pod", Severity::Warning)]
        );
        assert_eq!(role_name(role_arn), Some("tickets-dev-admission"));
        assert_eq!(role_name("arn:aws:iam::1:role/path/to/r"), Some("r"));
        assert_eq!(role_name("nonsense"), None);
    }
}
