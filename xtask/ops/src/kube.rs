//! The Kubernetes side of the ops commands: a client built from a
//! kubeconfig, and the few reads they need, as plain typed results.
//!
//! - a Deployment's rollout state, and a wait until it is healthy with
//!   progress (`deploy dev`);
//! - the pods running as a ServiceAccount, with the IRSA variables the EKS
//!   webhook injects (`irsa check`: in seed 000 the role was right and the
//!   pod side was not), and the ServiceAccount's annotations;
//! - Ingresses with their finalizers, deletion time and load balancer
//!   hostname (doctor: an Ingress stuck in deletion).
//!
//! The client honours `KUBECONFIG` / `~/.kube/config` (or a given path and
//! context), including EKS's `aws eks get-token` exec credentials. The
//! tests run these calls against `devstack::FakeKube`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ::kube::api::{Api, ListParams};
use ::kube::config::{KubeConfigOptions, Kubeconfig};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::api::networking::v1::Ingress;

/// The variables the EKS pod identity webhook injects into a pod whose
/// ServiceAccount carries `eks.amazonaws.com/role-arn`.
pub const ROLE_ARN_VAR: &str = "AWS_ROLE_ARN";
pub const TOKEN_FILE_VAR: &str = "AWS_WEB_IDENTITY_TOKEN_FILE";
/// The ServiceAccount annotation that names the IRSA role.
pub const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("cannot read the kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        #[source]
        source: ::kube::config::KubeconfigError,
    },
    #[error(
        "no Kubernetes access: {0} (set KUBECONFIG, or run `aws eks update-kubeconfig --name <cluster>`)"
    )]
    NoConfig(#[source] ::kube::config::InferConfigError),
    #[error("cannot build a Kubernetes client: {0}")]
    Client(#[source] ::kube::Error),
    #[error("Kubernetes API, {what}: {source}")]
    Api {
        what: String,
        #[source]
        source: ::kube::Error,
    },
    #[error("{kind} {namespace}/{name} not found")]
    NotFound {
        kind: &'static str,
        namespace: String,
        name: String,
    },
    #[error("the rollout of deployment {namespace}/{name} failed: {reason}")]
    RolloutFailed {
        namespace: String,
        name: String,
        reason: String,
    },
    #[error(
        "the rollout of deployment {namespace}/{name} is not healthy after {waited:?}: {last}"
    )]
    RolloutTimeout {
        namespace: String,
        name: String,
        waited: Duration,
        last: String,
    },
}

/// A Kubernetes API client.
#[derive(Clone)]
pub struct Kube {
    client: ::kube::Client,
}

impl Kube {
    /// A client from `kubeconfig` (or, when `None`, from `KUBECONFIG`, the
    /// default file or the in-cluster service account), using `context`
    /// (or the file's current context).
    pub async fn connect(
        kubeconfig: Option<&Path>,
        context: Option<&str>,
    ) -> Result<Kube, KubeError> {
        let options = KubeConfigOptions {
            context: context.map(str::to_string),
            ..KubeConfigOptions::default()
        };
        let config = match kubeconfig {
            Some(path) => {
                let shown = path.display().to_string();
                let file = Kubeconfig::read_from(path).map_err(|source| KubeError::Kubeconfig {
                    path: shown.clone(),
                    source,
                })?;
                ::kube::Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(|source| KubeError::Kubeconfig {
                        path: shown,
                        source,
                    })?
            }
            None if context.is_some() => {
                ::kube::Config::from_kubeconfig(&options)
                    .await
                    .map_err(|source| KubeError::Kubeconfig {
                        path: default_kubeconfig_path(),
                        source,
                    })?
            }
            None => ::kube::Config::infer().await.map_err(KubeError::NoConfig)?,
        };
        let client = ::kube::Client::try_from(config).map_err(KubeError::Client)?;
        Ok(Kube { client })
    }

    /// The rollout state of a Deployment.
    pub async fn rollout(&self, namespace: &str, name: &str) -> Result<Rollout, KubeError> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        let deployment = api
            .get_opt(name)
            .await
            .map_err(|source| KubeError::Api {
                what: format!("get deployment {namespace}/{name}"),
                source,
            })?
            .ok_or_else(|| KubeError::NotFound {
                kind: "deployment",
                namespace: namespace.to_string(),
                name: name.to_string(),
            })?;
        Ok(Rollout::of(&deployment))
    }

    /// Polls the Deployment until its rollout is complete (and, when
    /// `image_tag` is given, runs that tag), calling `progress` with each
    /// new state. A Deployment that reports `ProgressDeadlineExceeded` fails
    /// at once; one still rolling after `timeout` is a timeout.
    pub async fn wait_rollout(
        &self,
        namespace: &str,
        name: &str,
        wait: &RolloutWait,
        mut progress: impl FnMut(&Rollout),
    ) -> Result<Rollout, KubeError> {
        let started = Instant::now();
        let mut last_text = String::new();
        loop {
            let rollout = self.rollout(namespace, name).await?;
            let text = rollout.describe(wait.image_tag.as_deref());
            if text != last_text {
                progress(&rollout);
                last_text = text.clone();
            }
            match rollout.phase(wait.image_tag.as_deref()) {
                RolloutPhase::Complete => return Ok(rollout),
                RolloutPhase::Failed(reason) => {
                    return Err(KubeError::RolloutFailed {
                        namespace: namespace.to_string(),
                        name: name.to_string(),
                        reason,
                    })
                }
                RolloutPhase::Waiting(_) => {}
            }
            if started.elapsed() >= wait.timeout {
                return Err(KubeError::RolloutTimeout {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    waited: started.elapsed(),
                    last: text,
                });
            }
            tokio::time::sleep(wait.poll).await;
        }
    }

    /// A ServiceAccount's annotations.
    pub async fn service_account(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<ServiceAccountInfo, KubeError> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let sa = api
            .get_opt(name)
            .await
            .map_err(|source| KubeError::Api {
                what: format!("get serviceaccount {namespace}/{name}"),
                source,
            })?
            .ok_or_else(|| KubeError::NotFound {
                kind: "serviceaccount",
                namespace: namespace.to_string(),
                name: name.to_string(),
            })?;
        Ok(ServiceAccountInfo {
            namespace: namespace.to_string(),
            name: name.to_string(),
            annotations: sa.metadata.annotations.unwrap_or_default(),
        })
    }

    /// The pods of `namespace` that run as ServiceAccount `service_account`,
    /// with the IRSA variables of each container.
    pub async fn pods_of_service_account(
        &self,
        namespace: &str,
        service_account: &str,
    ) -> Result<Vec<PodIdentity>, KubeError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let pods = api
            .list(&ListParams::default())
            .await
            .map_err(|source| KubeError::Api {
                what: format!("list pods in {namespace}"),
                source,
            })?;
        Ok(pods
            .items
            .iter()
            .filter(|p| {
                let sa = p
                    .spec
                    .as_ref()
                    .and_then(|s| s.service_account_name.as_deref());
                // An unset name is the namespace's `default` account.
                sa.unwrap_or("default") == service_account
            })
            .map(PodIdentity::of)
            .collect())
    }

    /// The Ingresses of `namespace`, or of every namespace when `None`.
    pub async fn ingresses(&self, namespace: Option<&str>) -> Result<Vec<IngressInfo>, KubeError> {
        let api: Api<Ingress> = match namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        };
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|source| KubeError::Api {
                what: format!(
                    "list ingresses in {}",
                    namespace.unwrap_or("every namespace")
                ),
                source,
            })?;
        Ok(list.items.iter().map(IngressInfo::of).collect())
    }
}

fn default_kubeconfig_path() -> String {
    std::env::var("KUBECONFIG").unwrap_or_else(|_| {
        std::env::var("HOME")
            .map(|h| PathBuf::from(h).join(".kube/config").display().to_string())
            .unwrap_or_else(|_| "~/.kube/config".into())
    })
}

/// How `wait_rollout` waits.
#[derive(Debug, Clone)]
pub struct RolloutWait {
    pub timeout: Duration,
    pub poll: Duration,
    /// The image tag the Deployment must run (ArgoCD may not have synced
    /// the new tag yet: until then the old, healthy rollout is not ours).
    pub image_tag: Option<String>,
}

/// What a Deployment says about its rollout (the fields `kubectl rollout
/// status` reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    pub generation: i64,
    pub observed_generation: i64,
    /// `spec.replicas` (1 when unset, as the API defaults it).
    pub desired: i32,
    pub replicas: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
    /// The images of the pod template's containers.
    pub images: Vec<String>,
    /// `Progressing` condition's reason, e.g. `NewReplicaSetAvailable`,
    /// `ProgressDeadlineExceeded`.
    pub progressing_reason: Option<String>,
    pub progressing_message: Option<String>,
}

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutPhase {
    Complete,
    /// Still rolling, and why.
    Waiting(String),
    /// It will not finish by itself.
    Failed(String),
}

impl Rollout {
    pub fn of(d: &Deployment) -> Rollout {
        let status = d.status.clone().unwrap_or_default();
        let spec = d.spec.as_ref();
        let progressing = status
            .conditions
            .as_ref()
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Progressing"));
        Rollout {
            generation: d.metadata.generation.unwrap_or(0),
            observed_generation: status.observed_generation.unwrap_or(0),
            desired: spec.and_then(|s| s.replicas).unwrap_or(1),
            replicas: status.replicas.unwrap_or(0),
            updated: status.updated_replicas.unwrap_or(0),
            ready: status.ready_replicas.unwrap_or(0),
            available: status.available_replicas.unwrap_or(0),
            images: spec
                .and_then(|s| s.template.spec.as_ref())
                .map(|p| {
                    p.containers
                        .iter()
                        .filter_map(|c| c.image.clone())
                        .collect()
                })
                .unwrap_or_default(),
            progressing_reason: progressing.and_then(|c| c.reason.clone()),
            progressing_message: progressing.and_then(|c| c.message.clone()),
        }
    }

    /// Whether every container image carries `tag`.
    pub fn runs_tag(&self, tag: &str) -> bool {
        !self.images.is_empty()
            && self
                .images
                .iter()
                .all(|i| i.rsplit_once(':').is_some_and(|(_, t)| t == tag))
    }

    /// The same decision as `kubectl rollout status`.
    pub fn phase(&self, image_tag: Option<&str>) -> RolloutPhase {
        if let Some(tag) = image_tag {
            if !self.runs_tag(tag) {
                return RolloutPhase::Waiting(format!(
                    "waiting for the deployment to run tag {tag} (now {})",
                    self.images.join(", ")
                ));
            }
        }
        if self.observed_generation < self.generation {
            return RolloutPhase::Waiting("waiting for the controller to see the new spec".into());
        }
        if self.progressing_reason.as_deref() == Some("ProgressDeadlineExceeded") {
            return RolloutPhase::Failed(
                self.progressing_message
                    .clone()
                    .unwrap_or_else(|| "ProgressDeadlineExceeded".into()),
            );
        }
        if self.updated < self.desired {
            return RolloutPhase::Waiting(format!(
                "{} of {} new replicas updated",
                self.updated, self.desired
            ));
        }
        if self.replicas > self.updated {
            return RolloutPhase::Waiting(format!(
                "{} old replicas pending termination",
                self.replicas - self.updated
            ));
        }
        if self.available < self.updated {
            return RolloutPhase::Waiting(format!(
                "{} of {} updated replicas available",
                self.available, self.updated
            ));
        }
        RolloutPhase::Complete
    }

    /// One line for progress output.
    pub fn describe(&self, image_tag: Option<&str>) -> String {
        match self.phase(image_tag) {
            RolloutPhase::Complete => format!(
                "rolled out: {}/{} replicas available",
                self.available, self.desired
            ),
            RolloutPhase::Waiting(why) => why,
            RolloutPhase::Failed(why) => format!("failed: {why}"),
        }
    }
}

/// A ServiceAccount as `irsa check` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountInfo {
    pub namespace: String,
    pub name: String,
    pub annotations: std::collections::BTreeMap<String, String>,
}

impl ServiceAccountInfo {
    /// `eks.amazonaws.com/role-arn`, if annotated.
    pub fn role_arn(&self) -> Option<&str> {
        self.annotations
            .get(ROLE_ARN_ANNOTATION)
            .map(String::as_str)
    }
}

/// A pod and the IRSA variables of its containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodIdentity {
    pub name: String,
    /// `Running`, `Pending`, ...
    pub phase: Option<String>,
    pub service_account: String,
    pub containers: Vec<ContainerIdentity>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerIdentity {
    pub name: String,
    /// `AWS_ROLE_ARN`, when set (by value).
    pub role_arn: Option<String>,
    /// `AWS_WEB_IDENTITY_TOKEN_FILE`, when set (by value).
    pub token_file: Option<String>,
}

impl PodIdentity {
    pub fn of(pod: &Pod) -> PodIdentity {
        let spec = pod.spec.as_ref();
        PodIdentity {
            name: pod.metadata.name.clone().unwrap_or_default(),
            phase: pod.status.as_ref().and_then(|s| s.phase.clone()),
            service_account: spec
                .and_then(|s| s.service_account_name.clone())
                .unwrap_or_else(|| "default".into()),
            containers: spec
                .map(|s| {
                    s.containers
                        .iter()
                        .map(|c| {
                            let var = |name: &str| {
                                c.env.as_ref().and_then(|env| {
                                    env.iter()
                                        .find(|e| e.name == name)
                                        .and_then(|e| e.value.clone())
                                })
                            };
                            ContainerIdentity {
                                name: c.name.clone(),
                                role_arn: var(ROLE_ARN_VAR),
                                token_file: var(TOKEN_FILE_VAR),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    pub fn is_running(&self) -> bool {
        self.phase.as_deref() == Some("Running")
    }
}

/// An Ingress as doctor and `cert check` read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressInfo {
    pub namespace: String,
    pub name: String,
    pub annotations: std::collections::BTreeMap<String, String>,
    pub finalizers: Vec<String>,
    /// Set once a delete was asked; with finalizers left, it is stuck
    /// until their owner removes them.
    pub deletion_timestamp: Option<String>,
    /// `status.loadBalancer.ingress[].hostname` (the ALB's DNS name).
    pub load_balancer_hostnames: Vec<String>,
}

impl IngressInfo {
    pub fn of(ingress: &Ingress) -> IngressInfo {
        let meta = &ingress.metadata;
        IngressInfo {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            annotations: meta.annotations.clone().unwrap_or_default(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
            deletion_timestamp: meta.deletion_timestamp.as_ref().map(|t| t.0.to_string()),
            load_balancer_hostnames: ingress
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .map(|is| is.iter().filter_map(|i| i.hostname.clone()).collect())
                .unwrap_or_default(),
        }
    }

    /// Asked to go, but held by finalizers.
    pub fn is_stuck_deleting(&self) -> bool {
        self.deletion_timestamp.is_some() && !self.finalizers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use devstack::FakeKube;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};
    use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, PodStatus, PodTemplateSpec};
    use k8s_openapi::api::networking::v1::{
        IngressLoadBalancerIngress, IngressLoadBalancerStatus, IngressStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    use super::*;

    const NS: &str = "admission";

    fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            namespace: Some(NS.into()),
            name: Some(name.into()),
            ..ObjectMeta::default()
        }
    }

    /// A Deployment of `desired` replicas running `tag`, with the given
    /// status counts.
    pub(crate) fn deployment(
        tag: &str,
        generation: i64,
        observed: i64,
        counts: [i32; 4],
    ) -> Deployment {
        let [replicas, updated, ready, available] = counts;
        Deployment {
            metadata: ObjectMeta {
                generation: Some(generation),
                ..meta("admission")
            },
            spec: Some(DeploymentSpec {
                replicas: Some(2),
                template: PodTemplateSpec {
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "admission".into(),
                            image: Some(format!("123.dkr.ecr.x/tickets/admission:{tag}")),
                            ..Container::default()
                        }],
                        ..PodSpec::default()
                    }),
                    ..PodTemplateSpec::default()
                },
                ..DeploymentSpec::default()
            }),
            status: Some(DeploymentStatus {
                observed_generation: Some(observed),
                replicas: Some(replicas),
                updated_replicas: Some(updated),
                ready_replicas: Some(ready),
                available_replicas: Some(available),
                ..DeploymentStatus::default()
            }),
        }
    }

    async fn connect(fake: &FakeKube, dir: &tempfile::TempDir) -> Kube {
        let path = dir.path().join("kubeconfig");
        fake.write_kubeconfig(&path, NS).unwrap();
        Kube::connect(Some(&path), None).await.unwrap()
    }

    #[tokio::test]
    async fn the_rollout_wait_follows_the_deployment_until_the_new_tag_is_available() {
        let fake = std::sync::Arc::new(FakeKube::start().unwrap());
        let dir = tempfile::tempdir().unwrap();
        let kube = connect(&fake, &dir).await;
        // ArgoCD has not synced yet: the old tag, healthy.
        fake.put(&deployment("old", 1, 1, [2, 2, 2, 2])).unwrap();
        let path = "GET /apis/apps/v1/namespaces/admission/deployments/admission";
        let mover = std::thread::spawn({
            let fake = fake.clone();
            move || {
                let after = |n: usize| {
                    while fake.requests(path) < n {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                };
                after(2);
                fake.put(&deployment("new", 2, 1, [2, 2, 2, 2])).unwrap();
                after(4);
                fake.put(&deployment("new", 2, 2, [3, 1, 2, 2])).unwrap();
                after(6);
                fake.put(&deployment("new", 2, 2, [2, 2, 2, 1])).unwrap();
                after(8);
                fake.put(&deployment("new", 2, 2, [2, 2, 2, 2])).unwrap();
            }
        });
        let wait = RolloutWait {
            timeout: Duration::from_secs(20),
            poll: Duration::from_millis(10),
            image_tag: Some("new".into()),
        };
        let mut seen = Vec::new();
        let done = kube
            .wait_rollout(NS, "admission", &wait, |r| {
                seen.push(r.describe(Some("new")))
            })
            .await
            .unwrap();
        mover.join().unwrap();
        assert!(done.runs_tag("new"));
        assert_eq!(
            seen,
            [
                "waiting for the deployment to run tag new (now 123.dkr.ecr.x/tickets/admission:old)",
                "waiting for the controller to see the new spec",
                "1 of 2 new replicas updated",
                "1 of 2 updated replicas available",
                "rolled out: 2/2 replicas available",
            ]
        );
    }

    #[tokio::test]
    async fn a_stalled_rollout_fails_and_a_missing_deployment_is_named() {
        let fake = FakeKube::start().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kube = connect(&fake, &dir).await;
        let err = kube.rollout(NS, "admission").await.unwrap_err();
        assert_eq!(err.to_string(), "deployment admission/admission not found");

        let mut stalled = deployment("new", 2, 2, [2, 1, 1, 1]);
        stalled.status.as_mut().unwrap().conditions =
            Some(vec![k8s_openapi::api::apps::v1::DeploymentCondition {
                type_: "Progressing".into(),
                status: "False".into(),
                reason: Some("ProgressDeadlineExceeded".into()),
                message: Some("ReplicaSet \"admission-7f\" has timed out progressing.".into()),
                ..Default::default()
            }]);
        fake.put(&stalled).unwrap();
        let wait = RolloutWait {
            timeout: Duration::from_secs(20),
            poll: Duration::from_millis(10),
            image_tag: None,
        };
        let err = kube
            .wait_rollout(NS, "admission", &wait, |_| {})
            .await
            .unwrap_err();
        assert!(matches!(err, KubeError::RolloutFailed { .. }), "{err}");
        assert!(err.to_string().contains("timed out progressing"), "{err}");

        fake.put(&deployment("new", 2, 2, [2, 1, 1, 1])).unwrap();
        let wait = RolloutWait {
            timeout: Duration::from_millis(50),
            ..wait
        };
        let err = kube
            .wait_rollout(NS, "admission", &wait, |_| {})
            .await
            .unwrap_err();
        assert!(matches!(err, KubeError::RolloutTimeout { .. }), "{err}");
        assert!(
            err.to_string().contains("1 of 2 new replicas updated"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn pods_service_accounts_and_ingresses_read_as_the_api_serves_them() {
        let fake = FakeKube::start().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kube = connect(&fake, &dir).await;
        let pod = |name: &str, sa: &str, env: Vec<(&str, &str)>| Pod {
            metadata: meta(name),
            spec: Some(PodSpec {
                service_account_name: Some(sa.into()),
                containers: vec![Container {
                    name: "admission".into(),
                    env: Some(
                        env.into_iter()
                            .map(|(k, v)| EnvVar {
                                name: k.into(),
                                value: Some(v.into()),
                                ..EnvVar::default()
                            })
                            .collect(),
                    ),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                ..PodStatus::default()
            }),
        };
        let role = "arn:aws:iam::111111111111:role/tickets-dev-admission";
        let token = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token";
        fake.put(&pod(
            "admission-1",
            "admission",
            vec![(ROLE_ARN_VAR, role), (TOKEN_FILE_VAR, token)],
        ))
        .unwrap();
        fake.put(&pod("admission-2", "admission", vec![])).unwrap();
        fake.put(&pod("other-1", "other", vec![])).unwrap();
        let pods = kube.pods_of_service_account(NS, "admission").await.unwrap();
        assert_eq!(pods.len(), 2);
        assert!(pods.iter().all(PodIdentity::is_running));
        assert_eq!(pods[0].containers[0].role_arn.as_deref(), Some(role));
        assert_eq!(pods[0].containers[0].token_file.as_deref(), Some(token));
        assert_eq!(pods[1].containers[0].role_arn, None);

        fake.put(&ServiceAccount {
            metadata: ObjectMeta {
                annotations: Some(BTreeMap::from([(ROLE_ARN_ANNOTATION.into(), role.into())])),
                ..meta("admission")
            },
            ..ServiceAccount::default()
        })
        .unwrap();
        let sa = kube.service_account(NS, "admission").await.unwrap();
        assert_eq!(sa.role_arn(), Some(role));
        let err = kube.service_account(NS, "nobody").await.unwrap_err();
        assert!(matches!(err, KubeError::NotFound { .. }), "{err}");

        let deleted = "2026-12-01T10:00:00Z";
        fake.put(&Ingress {
            metadata: ObjectMeta {
                finalizers: Some(vec!["group.ingress.k8s.aws/tickets-dev".into()]),
                deletion_timestamp: Some(Time(deleted.parse().unwrap())),
                ..meta("admission")
            },
            status: Some(IngressStatus {
                load_balancer: Some(IngressLoadBalancerStatus {
                    ingress: Some(vec![IngressLoadBalancerIngress {
                        hostname: Some("k8s-ticketsdev-1.elb.amazonaws.com".into()),
                        ..IngressLoadBalancerIngress::default()
                    }]),
                }),
            }),
            ..Ingress::default()
        })
        .unwrap();
        let all = kube.ingresses(None).await.unwrap();
        let here = kube.ingresses(Some(NS)).await.unwrap();
        assert_eq!(all, here);
        assert_eq!(all.len(), 1);
        assert!(all[0].is_stuck_deleting());
        assert_eq!(
            all[0].load_balancer_hostnames,
            ["k8s-ticketsdev-1.elb.amazonaws.com"]
        );
        assert!(kube.ingresses(Some("elsewhere")).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_missing_kubeconfig_is_a_clear_error() {
        let err = match Kube::connect(Some(Path::new("/nonexistent/kubeconfig")), None).await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("connected without a kubeconfig"),
        };
        assert!(err.contains("/nonexistent/kubeconfig"), "{err}");
    }
}
