//! `irsa.chain`: the seeds' IRSA AccessDenied. The app's role exists, its
//! trust policy federates the cluster's OIDC provider for the app's
//! ServiceAccount and `sts.amazonaws.com`, its policies let it write the
//! stream, and, where a cluster answers (`--kubeconfig`), the live
//! ServiceAccount carries the role and every pod has the web identity
//! injected. The evaluation is `irsa.rs`'s, as `cargo xtask irsa check`.

use std::sync::Arc;

use super::{Ctx, Outcome};
use crate::finding::{Finding, Severity};
use crate::irsa::{self, StreamTarget, TrustTarget};

/// The findings of a chain as one outcome: the first error (or warning)
/// leads with its fix, the others follow as details.
fn outcome(findings: &[Finding], ok: String) -> Outcome {
    let worst = findings
        .iter()
        .map(|f| f.severity)
        .max()
        .unwrap_or(Severity::Ok);
    let mut bad = findings
        .iter()
        .filter(|f| f.severity == worst && worst != Severity::Ok);
    let Some(first) = bad.next() else {
        return Outcome::ok(ok);
    };
    let details: Vec<String> = bad
        .map(|f| format!("{} (fix: {})", f.message, f.fix))
        .collect();
    let o = if worst == Severity::Error {
        Outcome::fail(first.message.clone(), first.fix.clone())
    } else {
        Outcome::warn(first.message.clone(), first.fix.clone())
    };
    o.details(details)
}

pub async fn chain(ctx: Arc<Ctx>) -> Outcome {
    let s = &ctx.settings;
    let (Some(role_name), Some(namespace), Some(sa)) = (&s.role, &s.namespace, &s.service_account)
    else {
        return Outcome::skip(
            "no app role, namespace or ServiceAccount given",
            "--role NAME, --namespace NS and --service-account NAME (or --env ENV)",
        );
    };
    let cluster = match ctx.cluster().await {
        Ok(c) => c,
        Err(outcome) => return outcome,
    };
    let config = match ctx.aws().await {
        Ok(c) => c,
        Err(why) => return super::aws_checks::no_aws(why),
    };
    let iam = aws_sdk_iam::Client::new(config);
    let role = match irsa::fetch_role(&iam, role_name).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return Outcome::fail(
                format!("IAM has no role {role_name}: the app's AWS calls are denied"),
                "create it (the app role in terraform/modules/eks), then `terraform apply`",
            )
        }
        Err(e) => {
            return Outcome::fail(
                format!("cannot read role {role_name}: {e}"),
                "use credentials allowed iam:GetRole and iam:List*RolePolicies",
            )
        }
    };
    let account = role.arn.split(':').nth(4).unwrap_or_default().to_string();
    let mut findings = Vec::new();
    if let Some(issuer) = &cluster.issuer {
        findings.extend(irsa::evaluate_trust(
            &role,
            &TrustTarget {
                issuer: issuer.clone(),
                account_id: account.clone(),
                namespace: namespace.clone(),
                service_account: sa.clone(),
            },
        ));
    }
    if let Some(stream) = &s.stream {
        let kinesis = aws_sdk_kinesis::Client::new(config);
        if let Ok(out) = kinesis
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
        {
            if let Some(d) = out.stream_description_summary() {
                let region = config.region().map(|r| r.to_string()).unwrap_or_default();
                findings.extend(irsa::evaluate_permissions(
                    &role,
                    &StreamTarget {
                        arn: d.stream_arn().to_string(),
                        kms_key_arn: irsa::customer_key(
                            d.encryption_type().map(|t| t.as_str()),
                            d.key_id(),
                            &region,
                            &account,
                        ),
                    },
                ));
            }
        }
    }
    let mut pod_side = "the pod side not checked (no --kubeconfig)".to_string();
    if let Some(path) = &s.kubeconfig {
        match crate::kube::Kube::connect(Some(path.as_path()), None).await {
            Err(e) => findings.push(Finding::warning(
                "irsa.pod",
                format!("the pod side was not checked: {e}"),
                format!("aws eks update-kubeconfig --name {}", cluster.name),
            )),
            Ok(kube) => match kube.service_account(namespace, sa).await {
                Ok(account_object) => {
                    findings.push(irsa::evaluate_annotation(
                        account_object.role_arn(),
                        &role.arn,
                        &format!("live {namespace}/{sa}"),
                    ));
                    match kube.pods_of_service_account(namespace, sa).await {
                        Ok(pods) => {
                            pod_side = format!("{} pods checked", pods.len());
                            findings.extend(irsa::evaluate_pods(&pods, &role.arn, sa));
                        }
                        Err(e) => findings.push(Finding::warning(
                            "irsa.pod",
                            format!("cannot list the pods: {e}"),
                            format!("kubectl auth can-i list pods -n {namespace}"),
                        )),
                    }
                }
                Err(e) => findings.push(Finding::error(
                    "irsa.pod",
                    format!("the ServiceAccount {namespace}/{sa}: {e}"),
                    "sync the app in ArgoCD (the chart creates the ServiceAccount)",
                )),
            },
        }
    }
    outcome(
        &findings,
        format!(
            "role {} trusted by {namespace}/{sa} and allowed its stream; {pod_side}",
            role.name
        ),
    )
}
