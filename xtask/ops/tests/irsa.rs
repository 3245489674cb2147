//! `ops irsa check` end to end: the real binary against moto (EKS cluster
//! and its OIDC issuer, IAM provider, role, trust and policies, Kinesis
//! stream) and a FakeKube serving the ServiceAccount and its pods. Each
//! seed failure is made for real in moto or in the fake cluster, and the
//! check must name it with its fix.

mod support;

use std::collections::BTreeMap;

use devstack::FakeKube;
use k8s_openapi::api::core::v1::{Container, EnvVar, Pod, PodSpec, PodStatus, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use support::*;

const ROLE: &str = "tickets-dev-admission";
const STREAM: &str = "tickets-dev-admission-events";
const TOKEN: &str = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token";

fn role_arn() -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{ROLE}")
}

fn trust(issuer_host: &str, sub: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{issuer_host}")},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                format!("{issuer_host}:sub"): sub,
                format!("{issuer_host}:aud"): "sts.amazonaws.com",
            }},
        }],
    })
    .to_string()
}

fn pod(name: &str, env: &[(&str, &str)]) -> Pod {
    Pod {
        metadata: ObjectMeta {
            namespace: Some("admission".into()),
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            service_account_name: Some("admission".into()),
            containers: vec![Container {
                name: "admission".into(),
                env: Some(
                    env.iter()
                        .map(|(k, v)| EnvVar {
                            name: k.to_string(),
                            value: Some(v.to_string()),
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
    }
}

/// `(code, severity)` of every finding that is not ok.
fn problems(report: &Value) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] != "ok")
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn finding<'a>(report: &'a Value, code: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == code && f["severity"] != "ok")
        .unwrap_or_else(|| panic!("no {code} problem in {report}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn irsa_check_passes_a_sound_chain_and_names_each_seed_failure_with_its_fix() {
    let dir = work_dir("irsa");
    let moto = start_moto(&dir);
    let repo = Repo::new(&dir);
    let config = sdk(&moto.endpoint());
    let eks = aws_sdk_eks::Client::new(&config);
    let iam = aws_sdk_iam::Client::new(&config);
    let kinesis = aws_sdk_kinesis::Client::new(&config);

    // The cluster and its OIDC provider, as the eks module creates them.
    let cluster = eks
        .create_cluster()
        .name("tickets-dev")
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/eks"))
        .resources_vpc_config(
            aws_sdk_eks::types::VpcConfigRequest::builder()
                .subnet_ids("subnet-1")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let issuer = cluster
        .cluster()
        .and_then(|c| c.identity())
        .and_then(|i| i.oidc())
        .and_then(|o| o.issuer())
        .unwrap()
        .to_string();
    let host = issuer.trim_start_matches("https://").to_string();
    iam.create_open_id_connect_provider()
        .url(&issuer)
        .client_id_list("sts.amazonaws.com")
        .thumbprint_list("9e99a48a9960b14926bb7f3b02e22da2b0ab7280")
        .send()
        .await
        .unwrap();
    kinesis
        .create_stream()
        .stream_name(STREAM)
        .shard_count(1)
        .send()
        .await
        .unwrap();
    let stream_arn = format!("arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{STREAM}");

    // Moto has no role yet: the check must say so, and still run the rest.
    let kubeconfig = dir.join("kubeconfig");
    let kube = FakeKube::start().unwrap();
    kube.write_kubeconfig(&kubeconfig, "admission").unwrap();
    let args = [
        "irsa",
        "check",
        "--env",
        "dev",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--json",
    ];
    let run = ops(&repo.dir, &moto.endpoint(), &args);
    assert_eq!(run.code, 1);
    let report = run.json();
    assert!(
        problems(&report).contains(&("irsa.role".into(), "error".into())),
        "{report}"
    );
    assert!(
        finding(&report, "irsa.pod")["message"]
            .as_str()
            .unwrap()
            .contains("no ServiceAccount admission/admission"),
        "{report}"
    );
    assert!(
        run.stderr.contains("irsa check dev: broken"),
        "{}",
        run.stderr
    );

    // The sound chain.
    iam.create_role()
        .role_name(ROLE)
        .assume_role_policy_document(trust(&host, "system:serviceaccount:admission:admission"))
        .send()
        .await
        .unwrap();
    let writes = serde_json::json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["kinesis:PutRecord", "kinesis:PutRecords"], "Resource": stream_arn}]})
    .to_string();
    iam.put_role_policy()
        .role_name(ROLE)
        .policy_name("events")
        .policy_document(&writes)
        .send()
        .await
        .unwrap();
    kube.put(&ServiceAccount {
        metadata: ObjectMeta {
            namespace: Some("admission".into()),
            name: Some("admission".into()),
            annotations: Some(BTreeMap::from([(
                "eks.amazonaws.com/role-arn".to_string(),
                role_arn(),
            )])),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    })
    .unwrap();
    let good = [
        ("AWS_ROLE_ARN", role_arn()),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", TOKEN.to_string()),
    ];
    let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    kube.put(&pod("admission-1", &good)).unwrap();
    let run = ops(&repo.dir, &moto.endpoint(), &args);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let report = run.json();
    assert_eq!(
        problems(&report),
        Vec::<(String, String)>::new(),
        "{report}"
    );
    let codes: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "irsa.annotation",
            "irsa.oidc-provider",
            "irsa.role",
            "irsa.trust",
            "irsa.policy.kinesis",
            "irsa.policy.kinesis",
            "irsa.annotation",
            "irsa.pod"
        ]
    );
    // Without --json: one line per check, then the summary.
    let text = ops(&repo.dir, &moto.endpoint(), &args[..6]);
    assert_eq!(text.code, 0);
    assert!(
        text.stdout.lines().all(|l| !l.starts_with('✗')),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .trim_end()
            .ends_with("(8 ok, 0 warnings, 0 errors)"),
        "{}",
        text.stdout
    );

    // Seed 000: the role is right and the pod is not (created before the
    // annotation, so the webhook injected nothing).
    kube.put(&pod("admission-2", &[])).unwrap();
    let report = ops(&repo.dir, &moto.endpoint(), &args).json();
    assert_eq!(
        problems(&report),
        [("irsa.pod".to_string(), "error".to_string())]
    );
    let pod_finding = finding(&report, "irsa.pod");
    assert!(pod_finding["message"]
        .as_str()
        .unwrap()
        .contains("admission-2"));
    assert!(pod_finding["fix"]
        .as_str()
        .unwrap()
        .contains("rollout restart"));
    kube.delete::<Pod>("admission", "admission-2");

    // The trust names another ServiceAccount.
    iam.update_assume_role_policy()
        .role_name(ROLE)
        .policy_document(trust(&host, "system:serviceaccount:default:admission"))
        .send()
        .await
        .unwrap();
    let run = ops(&repo.dir, &moto.endpoint(), &args);
    assert_eq!(run.code, 1);
    let report = run.json();
    assert_eq!(
        problems(&report),
        [("irsa.trust.sub".to_string(), "error".to_string())]
    );
    assert!(finding(&report, "irsa.trust.sub")["fix"]
        .as_str()
        .unwrap()
        .contains("system:serviceaccount:admission:admission"));
    iam.update_assume_role_policy()
        .role_name(ROLE)
        .policy_document(trust(&host, "system:serviceaccount:admission:admission"))
        .send()
        .await
        .unwrap();

    // The policy moves to a managed one that forgot PutRecords (what the
    // app calls), and the stream gets a customer key.
    iam.delete_role_policy()
        .role_name(ROLE)
        .policy_name("events")
        .send()
        .await
        .unwrap();
    let one = serde_json::json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "kinesis:PutRecord", "Resource": stream_arn}]})
    .to_string();
    let managed = iam
        .create_policy()
        .policy_name("tickets-dev-events")
        .policy_document(one)
        .send()
        .await
        .unwrap();
    let managed_arn = managed.policy().unwrap().arn().unwrap().to_string();
    iam.attach_role_policy()
        .role_name(ROLE)
        .policy_arn(&managed_arn)
        .send()
        .await
        .unwrap();
    let key = format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/0b5e1f8c-1111-2222-3333-444455556666");
    kinesis
        .start_stream_encryption()
        .stream_name(STREAM)
        .encryption_type(aws_sdk_kinesis::types::EncryptionType::Kms)
        .key_id(&key)
        .send()
        .await
        .unwrap();
    let report = ops(&repo.dir, &moto.endpoint(), &args).json();
    assert_eq!(
        problems(&report),
        [
            ("irsa.policy.kinesis".to_string(), "error".to_string()),
            ("irsa.policy.kms".to_string(), "error".to_string())
        ]
    );
    assert!(finding(&report, "irsa.policy.kinesis")["message"]
        .as_str()
        .unwrap()
        .contains("kinesis:PutRecords"));
    assert!(finding(&report, "irsa.policy.kms")["fix"]
        .as_str()
        .unwrap()
        .contains(&key));

    // The values file loses the annotation.
    repo.replace_and_commit(
        "helm/admission/values-dev.yaml",
        &format!("roleArn: {}", role_arn()),
        "roleArn: \"\"",
        "no role",
    );
    let report = ops(&repo.dir, &moto.endpoint(), &args).json();
    let annotation = finding(&report, "irsa.annotation");
    assert!(
        annotation["fix"]
            .as_str()
            .unwrap()
            .contains("serviceAccount.roleArn"),
        "{report}"
    );

    // No cluster access at all: the pod side is a warning, not a failure.
    let run = ops(
        &repo.dir,
        &moto.endpoint(),
        &["irsa", "check", "--env", "dev", "--json"],
    );
    let report = run.json();
    assert_eq!(finding(&report, "irsa.pod")["severity"], "warning");

    // An unknown environment is a usage error (2), not a panic.
    let run = ops(
        &repo.dir,
        &moto.endpoint(),
        &["irsa", "check", "--env", "staging"],
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("environments/staging.toml"),
        "{}",
        run.stderr
    );
}
