//! `alb.ingress`: the Ingress's ALB, found the way the Load Balancer
//! Controller marks it (`elbv2.k8s.aws/cluster` and `ingress.k8s.aws/stack`
//! tags), exists, is active, listens, and has healthy targets.

use std::sync::Arc;

use aws_sdk_elasticloadbalancingv2::types::{LoadBalancer, TargetHealthStateEnum};
use aws_sdk_elasticloadbalancingv2::Client;

use super::aws_checks::no_aws;
use super::{Ctx, Outcome};
use crate::aws::explain;

pub const CLUSTER_TAG: &str = "elbv2.k8s.aws/cluster";
pub const STACK_TAG: &str = "ingress.k8s.aws/stack";

/// The ALB the controller made for `stack` (an IngressGroup name, or
/// `namespace/name`) in `cluster`, if any.
pub async fn find(
    elb: &Client,
    cluster: &str,
    stack: &str,
) -> Result<Option<LoadBalancer>, String> {
    let mut marker = None;
    loop {
        let page = elb
            .describe_load_balancers()
            .set_marker(marker.clone())
            .send()
            .await
            .map_err(|e| format!("DescribeLoadBalancers: {}", explain(&e)))?;
        let lbs = page.load_balancers();
        // DescribeTags takes at most 20 ARNs.
        for chunk in lbs.chunks(20) {
            let arns: Vec<String> = chunk
                .iter()
                .filter_map(|lb| lb.load_balancer_arn().map(str::to_string))
                .collect();
            let tags = elb
                .describe_tags()
                .set_resource_arns(Some(arns))
                .send()
                .await
                .map_err(|e| format!("DescribeTags: {}", explain(&e)))?;
            for d in tags.tag_descriptions() {
                let tag = |k: &str| {
                    d.tags()
                        .iter()
                        .find(|t| t.key() == Some(k))
                        .and_then(|t| t.value())
                };
                if tag(CLUSTER_TAG) == Some(cluster) && tag(STACK_TAG) == Some(stack) {
                    return Ok(chunk
                        .iter()
                        .find(|lb| lb.load_balancer_arn() == d.resource_arn())
                        .cloned());
                }
            }
        }
        marker = page.next_marker().map(str::to_string);
        if marker.is_none() {
            return Ok(None);
        }
    }
}

pub async fn ingress(ctx: Arc<Ctx>) -> Outcome {
    let (Some(cluster), Some(stack)) = (&ctx.settings.cluster, &ctx.settings.ingress) else {
        return Outcome::skip(
            "no cluster or Ingress group given",
            "--cluster NAME and --ingress GROUP (or --env ENV)",
        );
    };
    let config = match ctx.aws().await {
        Ok(c) => c,
        Err(why) => return no_aws(why),
    };
    let elb = Client::new(config);
    let lb = match find(&elb, cluster, stack).await {
        Ok(Some(lb)) => lb,
        Ok(None) => {
            let ns = ctx.settings.namespace.as_deref().unwrap_or("<namespace>");
            return Outcome::fail(
                format!("no ALB tagged {STACK_TAG}={stack} in cluster {cluster}: the controller did not create it, or it was deleted by hand"),
                format!(
                    "see why the controller did not make it: kubectl -n {ns} describe ingress (events), \
                     then `cargo xtask doctor network.subnet-tags`; if it was deleted by hand, \
                     `cargo xtask doctor k8s.ingress-finalizer`"
                ),
            );
        }
        Err(why) => {
            return Outcome::fail(
                why,
                "use credentials allowed elasticloadbalancing:Describe*",
            )
        }
    };
    let name = lb.load_balancer_name().unwrap_or_default().to_string();
    let arn = lb.load_balancer_arn().unwrap_or_default().to_string();
    let state = lb
        .state()
        .and_then(|s| s.code())
        .map(|c| c.as_str().to_string())
        .unwrap_or_default();
    if state != "active" {
        return Outcome::fail(
            format!("ALB {name} is {state}, not active"),
            format!("see its state: aws elbv2 describe-load-balancers --load-balancer-arns {arn}"),
        );
    }
    let listeners = match elb
        .describe_listeners()
        .load_balancer_arn(&arn)
        .send()
        .await
    {
        Ok(l) => l,
        Err(e) => {
            return Outcome::fail(
                format!("DescribeListeners: {}", explain(&e)),
                "use credentials allowed elasticloadbalancing:Describe*",
            )
        }
    };
    let ports: Vec<String> = listeners
        .listeners()
        .iter()
        .map(|l| {
            format!(
                "{}:{}",
                l.protocol().map(|p| p.as_str()).unwrap_or("?"),
                l.port().unwrap_or(0)
            )
        })
        .collect();
    if ports.is_empty() {
        return Outcome::fail(
            format!("ALB {name} has no listener: nothing answers fans"),
            "check the Ingress's listen-ports annotation (alb.ingress.kubernetes.io/listen-ports) and the controller's logs: kubectl -n kube-system logs deploy/aws-load-balancer-controller",
        );
    }
    let groups = match elb
        .describe_target_groups()
        .load_balancer_arn(&arn)
        .send()
        .await
    {
        Ok(g) => g,
        Err(e) => {
            return Outcome::fail(
                format!("DescribeTargetGroups: {}", explain(&e)),
                "use credentials allowed elasticloadbalancing:Describe*",
            )
        }
    };
    let (mut healthy, mut total) = (0, 0);
    let mut unhealthy = Vec::new();
    for tg in groups.target_groups() {
        let Some(tg_arn) = tg.target_group_arn() else {
            continue;
        };
        let health = match elb
            .describe_target_health()
            .target_group_arn(tg_arn)
            .send()
            .await
        {
            Ok(h) => h,
            Err(e) => {
                return Outcome::fail(
                    format!("DescribeTargetHealth: {}", explain(&e)),
                    "use credentials allowed elasticloadbalancing:Describe*",
                )
            }
        };
        for t in health.target_health_descriptions() {
            total += 1;
            let th = t.target_health();
            if th.and_then(|h| h.state()) == Some(&TargetHealthStateEnum::Healthy) {
                healthy += 1;
            } else {
                unhealthy.push(format!(
                    "{} in {}: {} ({})",
                    t.target().and_then(|t| t.id()).unwrap_or("?"),
                    tg.target_group_name().unwrap_or("?"),
                    th.and_then(|h| h.state())
                        .map(|s| s.as_str())
                        .unwrap_or("unknown"),
                    th.and_then(|h| h.description()).unwrap_or("")
                ));
            }
        }
    }
    let summary = format!(
        "ALB {name} active, listeners {}, {healthy}/{total} targets healthy",
        ports.join(" ")
    );
    if healthy == 0 {
        let ns = ctx.settings.namespace.as_deref().unwrap_or("<namespace>");
        return Outcome::fail(
            format!("{summary}: fans get 503"),
            format!("see why the pods fail the health check: kubectl -n {ns} get pods; cargo xtask doctor app.ready k8s.rollout"),
        )
        .details(unhealthy);
    }
    if !unhealthy.is_empty() {
        return Outcome::warn(
            summary,
            "kubectl get pods: the unhealthy targets' pods are not ready",
        )
        .details(unhealthy);
    }
    Outcome::ok(summary)
}
