//! The Kubernetes checks, through `kube.rs` (`--kubeconfig`):
//! `k8s.rollout` (the app's Deployment rolled out, as `kubectl rollout
//! status` decides) and `k8s.ingress-finalizer` (the seeds' sixth
//! incident: an Ingress being deleted, held by the Load Balancer
//! Controller's finalizer, whose ALB is already gone).

use std::sync::Arc;

use super::{Ctx, Outcome};
use crate::kube::{Kube, RolloutPhase};

/// The annotation that puts an Ingress in an IngressGroup (one ALB).
const GROUP_ANNOTATION: &str = "alb.ingress.kubernetes.io/group.name";

async fn connect(ctx: &Ctx) -> Result<(Kube, String), Outcome> {
    let (Some(path), Some(ns)) = (&ctx.settings.kubeconfig, &ctx.settings.namespace) else {
        return Err(Outcome::skip(
            "no kubeconfig or namespace given",
            "--kubeconfig PATH (or KUBECONFIG) and --namespace NS (or --env ENV)",
        ));
    };
    match Kube::connect(Some(path.as_path()), None).await {
        Ok(k) => Ok((k, ns.clone())),
        Err(e) => Err(Outcome::fail(
            format!("the cluster does not answer: {e}"),
            format!(
                "aws eks update-kubeconfig --name {} (and check the API endpoint's access)",
                ctx.settings.cluster.as_deref().unwrap_or("<cluster>")
            ),
        )),
    }
}

pub async fn rollout(ctx: Arc<Ctx>) -> Outcome {
    let (kube, ns) = match connect(&ctx).await {
        Ok(k) => k,
        Err(o) => return o,
    };
    let name = ctx
        .settings
        .deployment
        .clone()
        .unwrap_or_else(|| "admission".into());
    let r = match kube.rollout(&ns, &name).await {
        Ok(r) => r,
        Err(e) => {
            return Outcome::fail(
                format!("deployment {ns}/{name}: {e}"),
                "sync the app in ArgoCD (argocd app sync <app>), or give --deployment NAME",
            )
        }
    };
    let images = r.images.join(", ");
    match r.phase(None) {
        RolloutPhase::Complete => Outcome::ok(format!(
            "{ns}/{name} rolled out: {}/{} available ({images})",
            r.available, r.desired
        )),
        RolloutPhase::Waiting(why) => Outcome::warn(
            format!("{ns}/{name} is still rolling out: {why}"),
            format!("watch it: kubectl -n {ns} rollout status deployment/{name}"),
        ),
        RolloutPhase::Failed(why) => Outcome::fail(
            format!("{ns}/{name} rollout failed: {why} ({images})"),
            format!(
                "see why the new pods fail (kubectl -n {ns} describe pods), then put the previous tag back: \
                 cargo xtask rollback --env {}",
                ctx.settings.env.as_deref().unwrap_or("<env>")
            ),
        ),
    }
}

pub async fn ingress_finalizer(ctx: Arc<Ctx>) -> Outcome {
    let (kube, ns) = match connect(&ctx).await {
        Ok(k) => k,
        Err(o) => return o,
    };
    let ingresses = match kube.ingresses(Some(&ns)).await {
        Ok(i) => i,
        Err(e) => {
            return Outcome::fail(
                format!("cannot list the Ingresses: {e}"),
                format!("kubectl auth can-i list ingresses -n {ns}"),
            )
        }
    };
    let stuck: Vec<_> = ingresses.iter().filter(|i| i.is_stuck_deleting()).collect();
    if stuck.is_empty() {
        return Outcome::ok(format!(
            "{} Ingress{} in {ns}, none stuck in deletion",
            ingresses.len(),
            if ingresses.len() == 1 { "" } else { "es" }
        ));
    }
    let Some(cluster) = &ctx.settings.cluster else {
        return Outcome::warn(
            format!(
                "{} Ingress(es) in {ns} stuck in deletion (their ALB not looked up)",
                stuck.len()
            ),
            "give --cluster NAME to see whether their ALB is gone",
        );
    };
    let config = match ctx.aws().await {
        Ok(c) => c,
        Err(why) => return super::aws_checks::no_aws(why),
    };
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(config);
    let mut gone = Vec::new();
    let mut held = Vec::new();
    for i in &stuck {
        let stack = i
            .annotations
            .get(GROUP_ANNOTATION)
            .cloned()
            .unwrap_or_else(|| format!("{}/{}", i.namespace, i.name));
        match super::alb::find(&elb, cluster, &stack).await {
            Ok(None) => gone.push((i, stack)),
            Ok(Some(_)) => held.push(format!(
                "{}/{} is being deleted and its ALB ({stack}) still exists: the controller is deleting it",
                i.namespace, i.name
            )),
            Err(why) => held.push(format!("{}/{}: {why}", i.namespace, i.name)),
        }
    }
    if let Some((i, stack)) = gone.first() {
        return Outcome::fail(
            format!(
                "Ingress {}/{} is stuck in deletion on {}, and its ALB ({stack}) is gone",
                i.namespace,
                i.name,
                i.finalizers.join(", ")
            ),
            format!(
                "nothing is left for the controller to delete: kubectl -n {} patch ingress {} --type=json \
                 -p '[{{\"op\":\"remove\",\"path\":\"/metadata/finalizers\"}}]' (then let ArgoCD recreate it)",
                i.namespace, i.name
            ),
        )
        .details(gone.iter().skip(1).map(|(i, s)| format!("also {}/{} (ALB {s} gone)", i.namespace, i.name)))
        .details(held);
    }
    Outcome::warn(
        held.first().cloned().unwrap_or_default(),
        "wait a minute; if it stays, read the controller's logs: kubectl -n kube-system logs deploy/aws-load-balancer-controller",
    )
}
