//! `aws.credentials`, `eks.cluster`, `eks.oidc`, and the EKS cluster's
//! description that the network and ALB checks share (asked once).

use std::sync::Arc;

use aws_sdk_eks::types::ClusterStatus;

use super::{Ctx, Outcome};
use crate::aws::explain;

/// What the checks need of the EKS cluster.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub status: String,
    pub version: String,
    pub issuer: Option<String>,
    pub vpc_id: Option<String>,
    pub subnet_ids: Vec<String>,
    /// The cluster security group (EKS puts it on managed nodes and pods)
    /// and any additional ones.
    pub security_groups: Vec<String>,
}

impl Ctx {
    /// The cluster named by `--cluster`, asked once for every check.
    /// `Err` is an [`Outcome`] the asking check reports as its own.
    pub async fn cluster(&self) -> Result<&Cluster, Outcome> {
        let Some(name) = self.settings.cluster.clone() else {
            return Err(Outcome::skip(
                "no EKS cluster given",
                "--cluster NAME (or EKS_CLUSTER, or --env ENV)",
            ));
        };
        let config = self.aws().await.map_err(no_aws)?;
        let result = self
            .cluster
            .get_or_init(|| async {
                let eks = aws_sdk_eks::Client::new(config);
                let out = eks
                    .describe_cluster()
                    .name(&name)
                    .send()
                    .await
                    .map_err(|e| {
                        if e.as_service_error()
                            .is_some_and(|s| s.is_resource_not_found_exception())
                        {
                            format!(
                                "no EKS cluster `{name}` in {}",
                                crate::aws::describe_target(config)
                            )
                        } else {
                            format!("DescribeCluster {name}: {}", explain(&e))
                        }
                    })?;
                let c = out
                    .cluster()
                    .ok_or_else(|| format!("DescribeCluster {name}: an empty answer"))?;
                let vpc = c.resources_vpc_config();
                let mut security_groups: Vec<String> = vpc
                    .and_then(|v| v.cluster_security_group_id())
                    .map(|s| vec![s.to_string()])
                    .unwrap_or_default();
                security_groups.extend(
                    vpc.map(|v| v.security_group_ids().to_vec())
                        .unwrap_or_default(),
                );
                Ok(Cluster {
                    name: name.clone(),
                    status: c
                        .status()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                    version: c.version().unwrap_or_default().to_string(),
                    issuer: c
                        .identity()
                        .and_then(|i| i.oidc())
                        .and_then(|o| o.issuer())
                        .map(str::to_string),
                    vpc_id: vpc.and_then(|v| v.vpc_id()).map(str::to_string),
                    subnet_ids: vpc.map(|v| v.subnet_ids().to_vec()).unwrap_or_default(),
                    security_groups,
                })
            })
            .await;
        result.as_ref().map_err(|why| {
            Outcome::fail(
                why.clone(),
                format!(
                    "check the name and region: aws eks list-clusters --region {}",
                    self.settings.region.as_deref().unwrap_or("<region>")
                ),
            )
        })
    }
}

/// The outcome for a check that cannot build an AWS client.
pub fn no_aws(why: String) -> Outcome {
    Outcome::skip(why, "--region REGION (or AWS_REGION, or --env ENV)")
}

pub async fn credentials(ctx: Arc<Ctx>) -> Outcome {
    let config = match ctx.aws().await {
        Ok(c) => c,
        Err(why) => return no_aws(why),
    };
    let sts = aws_sdk_sts::Client::new(config);
    let me =
        match sts.get_caller_identity().send().await {
            Ok(me) => me,
            Err(e) => return Outcome::fail(
                format!("no usable AWS credentials: {}", explain(&e)),
                "log in: aws sso login --profile <profile> (then export AWS_PROFILE=<profile>), \
                 or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
            ),
        };
    let account = me.account().unwrap_or_default();
    let arn = me.arn().unwrap_or_default();
    let summary = format!("{arn} in account {account}");
    match (&ctx.settings.account_id, &ctx.settings.env) {
        (Some(expected), Some(env)) if expected != account => Outcome::fail(
            format!("{summary}, but environment {env} is account {expected}"),
            format!("switch to a profile of account {expected} (aws sso login --profile <{env} profile>; export AWS_PROFILE=...)"),
        ),
        _ => Outcome::ok(summary).detail(crate::aws::describe_target(config)),
    }
}

pub async fn cluster(ctx: Arc<Ctx>) -> Outcome {
    let c = match ctx.cluster().await {
        Ok(c) => c,
        Err(outcome) => return outcome,
    };
    if c.status != ClusterStatus::Active.as_str() {
        return Outcome::fail(
            format!("cluster {} is {}, not ACTIVE", c.name, c.status),
            format!(
                "wait for it, or see why: aws eks describe-cluster --name {} --query cluster.health",
                c.name
            ),
        );
    }
    Outcome::ok(format!(
        "{} is ACTIVE (Kubernetes {}), {} subnets",
        c.name,
        c.version,
        c.subnet_ids.len()
    ))
}

pub async fn oidc(ctx: Arc<Ctx>) -> Outcome {
    let c = match ctx.cluster().await {
        Ok(c) => c,
        Err(outcome) => return outcome,
    };
    let Some(issuer) = &c.issuer else {
        return Outcome::fail(
            format!("cluster {} has no OIDC issuer", c.name),
            "recreate the cluster with Terraform (terraform/modules/eks): every EKS cluster has one",
        );
    };
    let config = match ctx.aws().await {
        Ok(c) => c,
        Err(why) => return no_aws(why),
    };
    let host_path = issuer.trim_start_matches("https://");
    let iam = aws_sdk_iam::Client::new(config);
    let providers = match iam.list_open_id_connect_providers().send().await {
        Ok(p) => p,
        Err(e) => {
            return Outcome::fail(
                format!("cannot list IAM OIDC providers: {}", explain(&e)),
                "use credentials allowed iam:ListOpenIDConnectProviders",
            )
        }
    };
    let found = providers
        .open_id_connect_provider_list()
        .iter()
        .filter_map(|p| p.arn())
        .find(|arn| arn.ends_with(&format!(":oidc-provider/{host_path}")));
    match found {
        Some(arn) => Outcome::ok(format!("IAM trusts the cluster's issuer ({arn})")),
        None => Outcome::fail(
            format!("no IAM OIDC provider for {issuer}: every IRSA role fails with AccessDenied"),
            format!(
                "terraform apply the environment (terraform/modules/eks creates it), or: \
                 eksctl utils associate-iam-oidc-provider --cluster {} --approve",
                c.name
            ),
        )
        .detail(format!("issuer: {issuer}")),
    }
}
