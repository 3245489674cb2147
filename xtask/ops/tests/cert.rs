//! `ops cert check` and `cert rotate` end to end: real certificates
//! (rcgen) imported into moto's ACM, on HTTPS listeners of two moto ALBs
//! (one tagged as the Load Balancer Controller's, one nobody's), and a
//! Client VPN endpoint. moto has no Client VPN: an AwsProxy in front of
//! moto answers `DescribeClientVpnEndpoints` and `ModifyClientVpnEndpoint`
//! in EC2's XML and logs the exact form bodies the SDK sent, which the
//! test reads; every other call goes through to moto.

mod support;

use std::sync::{Arc, Mutex};

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, Certificate, LoadBalancerTypeEnum, ProtocolEnum, Tag,
};
use devstack::{AwsProxy, AwsReply};
use support::*;

const VPN: &str = "cvpn-endpoint-0123456789abcdef0";
const DOMAIN: &str = "tickets-dev.example.com";

/// A self-signed certificate for DOMAIN valid for `days` more days: PEM
/// certificate and key.
fn certificate(days: i64) -> (String, String) {
    let mut params = rcgen::CertificateParams::new(vec![DOMAIN.to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, DOMAIN);
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(300);
    params.not_after = now + time::Duration::days(days);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

async fn import(acm: &aws_sdk_acm::Client, days: i64) -> String {
    use aws_sdk_acm::primitives::Blob;
    let (cert, key) = certificate(days);
    acm.import_certificate()
        .certificate(Blob::new(cert))
        .private_key(Blob::new(key))
        .send()
        .await
        .unwrap()
        .certificate_arn()
        .unwrap()
        .to_string()
}

fn vpn_answer(server: &str, client_root: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeClientVpnEndpointsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</requestId>
  <clientVpnEndpoint>
    <item>
      <clientVpnEndpointId>{VPN}</clientVpnEndpointId>
      <serverCertificateArn>{server}</serverCertificateArn>
      <authenticationOptions>
        <item>
          <type>certificate-authentication</type>
          <mutualAuthentication><clientRootCertificateChain>{client_root}</clientRootCertificateChain></mutualAuthentication>
        </item>
      </authenticationOptions>
    </item>
  </clientVpnEndpoint>
</DescribeClientVpnEndpointsResponse>"#
    )
}

const MODIFY_ANSWER: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ModifyClientVpnEndpointResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</requestId>
  <return>true</return>
</ModifyClientVpnEndpointResponse>"#;

/// The EC2 action of a query-protocol body.
fn action(body: &str) -> Option<String> {
    form(body)
        .into_iter()
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v)
}

struct Alb {
    arn: String,
    listener: String,
}

async fn alb(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    name: &str,
    subnets: &[String],
    vpc: &str,
    port: i32,
    cert: &str,
) -> Alb {
    let lb = elb
        .create_load_balancer()
        .name(name)
        .r#type(LoadBalancerTypeEnum::Application)
        .set_subnets(Some(subnets.to_vec()))
        .send()
        .await
        .unwrap();
    let arn = lb.load_balancers()[0]
        .load_balancer_arn()
        .unwrap()
        .to_string();
    let listener = listener(elb, &arn, vpc, port, cert, name).await;
    Alb { arn, listener }
}

async fn listener(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    lb: &str,
    vpc: &str,
    port: i32,
    cert: &str,
    name: &str,
) -> String {
    let tg = elb
        .create_target_group()
        .name(format!("{name}-{port}"))
        .protocol(ProtocolEnum::Http)
        .port(80)
        .vpc_id(vpc)
        .send()
        .await
        .unwrap();
    let tg = tg.target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    elb.create_listener()
        .load_balancer_arn(lb)
        .protocol(ProtocolEnum::Https)
        .port(port)
        .certificates(Certificate::builder().certificate_arn(cert).build())
        .default_actions(
            Action::builder()
                .r#type(ActionTypeEnum::Forward)
                .target_group_arn(tg)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .listeners()[0]
        .listener_arn()
        .unwrap()
        .to_string()
}

async fn listener_certificates(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    listener: &str,
) -> Vec<String> {
    elb.describe_listener_certificates()
        .listener_arn(listener)
        .send()
        .await
        .unwrap()
        .certificates()
        .iter()
        .filter_map(|c| c.certificate_arn().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn cert_check_finds_every_expiring_use_and_rotate_replaces_each_the_way_its_owner_wants() {
    let dir = work_dir("cert");
    let moto = start_moto(&dir);
    let repo = Repo::new(&dir);
    let config = sdk(&moto.endpoint());
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&config);
    let acm = aws_sdk_acm::Client::new(&config);

    let vpc = ec2
        .create_vpc()
        .cidr_block("10.10.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc()
        .unwrap()
        .vpc_id()
        .unwrap()
        .to_string();
    let mut subnets = Vec::new();
    for (i, az) in ["ap-northeast-2a", "ap-northeast-2b"].iter().enumerate() {
        let subnet = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(format!("10.10.{i}.0/24"))
            .availability_zone(*az)
            .send()
            .await
            .unwrap();
        subnets.push(subnet.subnet().unwrap().subnet_id().unwrap().to_string());
    }

    // A: the wildcard-ish certificate everything uses, 10 days left.
    // B: a fresh one, 200 days left.
    let a = import(&acm, 10).await;
    let b = import(&acm, 200).await;
    let app = alb(&elb, "k8s-ticketsdev", &subnets, &vpc, 443, &a).await;
    elb.add_tags()
        .resource_arns(&app.arn)
        .tags(
            Tag::builder()
                .key("elbv2.k8s.aws/cluster")
                .value("tickets-dev")
                .build(),
        )
        .tags(
            Tag::builder()
                .key("ingress.k8s.aws/stack")
                .value("tickets-dev")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let ops_alb = alb(&elb, "ops-tools", &subnets, &vpc, 443, &a).await;
    let sni = listener(&elb, &ops_alb.arn, &vpc, 8443, &b, "ops-tools").await;
    elb.add_listener_certificates()
        .listener_arn(&sni)
        .certificates(Certificate::builder().certificate_arn(&a).build())
        .send()
        .await
        .unwrap();
    // The app's values name A, as Terraform's output put it there.
    let values = "helm/admission/values-dev.yaml";
    let placeholder = format!(
        "arn:aws:acm:ap-northeast-2:{ACCOUNT}:certificate/00000000-0000-0000-0000-000000000000"
    );
    repo.replace_and_commit(values, &placeholder, &a, "the certificate");

    let vpn_server = Arc::new(Mutex::new(a.clone()));
    let proxy = {
        let (server, root) = (vpn_server.clone(), b.clone());
        AwsProxy::start(
            ([127, 0, 0, 1], moto.port).into(),
            move |call| match action(&call.body).as_deref() {
                Some("DescribeClientVpnEndpoints") => {
                    AwsReply::xml(&vpn_answer(&server.lock().unwrap(), &root))
                }
                Some("ModifyClientVpnEndpoint") => AwsReply::xml(MODIFY_ANSWER),
                _ => AwsReply::Forward,
            },
        )
        .unwrap()
    };

    // check: six uses, A's four expiring.
    let run = ops(
        &repo.dir,
        &proxy.endpoint(),
        &["cert", "check", "--env", "dev", "--json"],
    );
    assert_eq!(run.code, 1);
    let report = run.json();
    let certs = report["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 6, "{report}");
    let expiring: Vec<&serde_json::Value> =
        certs.iter().filter(|c| c["expiring"] == true).collect();
    assert_eq!(expiring.len(), 4);
    assert!(expiring.iter().all(|c| c["certificate_arn"] == a.as_str()));
    assert!(expiring
        .iter()
        .all(|c| c["days_left"] == 9 || c["days_left"] == 10));
    let kinds: Vec<&str> = certs
        .iter()
        .map(|c| c["holder"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "client_vpn").count(), 2);
    assert!(certs
        .iter()
        .any(|c| c["holder"]["owner"]["kind"] == "load_balancer_controller"));
    assert!(
        run.stderr
            .contains("6 certificates in use, 4 expiring within 30 days"),
        "{}",
        run.stderr
    );
    // Nothing expires within 5 days.
    let run = ops(
        &repo.dir,
        &proxy.endpoint(),
        &["cert", "check", "--env", "dev", "--days", "5"],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stdout
            .contains("✓ tickets-dev.example.com on Client VPN"),
        "{}",
        run.stdout
    );

    // rotate --dry-run: the plan, and nothing changed.
    let head = repo.git(&["rev-parse", "HEAD"]);
    let run = ops(
        &repo.dir,
        &proxy.endpoint(),
        &["cert", "rotate", "--env", "dev", "--dry-run", "--json"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let plan = run.json();
    let steps: Vec<&str> = plan["rotations"][0]["swaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    let mut sorted = steps.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "modify_client_vpn_endpoint",
            "modify_listener",
            "replace_listener_certificate",
            "values_file"
        ]
    );
    assert_eq!(repo.git(&["rev-parse", "HEAD"]), head);
    assert!(!proxy
        .log()
        .iter()
        .any(|l| action(&l.call.body).as_deref() == Some("ModifyClientVpnEndpoint")));

    // An imported certificate needs its successor's files.
    let run = ops(
        &repo.dir,
        &proxy.endpoint(),
        &["cert", "rotate", "--env", "dev"],
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("--certificate FILE --private-key FILE"),
        "{}",
        run.stderr
    );

    // rotate.
    let (new_cert, new_key) = certificate(397);
    std::fs::write(dir.join("new.pem"), new_cert).unwrap();
    std::fs::write(dir.join("new.key"), new_key).unwrap();
    let run = ops(
        &repo.dir,
        &proxy.endpoint(),
        &[
            "cert",
            "rotate",
            "--env",
            "dev",
            "--certificate",
            dir.join("new.pem").to_str().unwrap(),
            "--private-key",
            dir.join("new.key").to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let done = run.json();
    let new = done["rotations"][0]["new_arn"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new, a);
    let described = acm
        .describe_certificate()
        .certificate_arn(&new)
        .send()
        .await
        .unwrap();
    assert_eq!(described.certificate().unwrap().domain_name(), Some(DOMAIN));

    // The controller's ALB: through the values file and a commit, not the listener.
    assert!(repo
        .read(values)
        .contains(&format!("certificateArn: {new}")));
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    let message = repo.git(&["log", "-1", "--format=%B"]);
    assert!(
        message.starts_with("cert rotate dev:") && message.contains(&new),
        "{message}"
    );
    assert_eq!(
        repo.git(&["diff", "--stat", "HEAD~1", "--", values])
            .lines()
            .count(),
        2
    );
    assert_eq!(
        listener_certificates(&elb, &app.listener).await,
        vec![a.clone()]
    );
    // Nobody's listeners: ModifyListener for the default, swap for SNI.
    let default = elb
        .describe_listeners()
        .listener_arns(&ops_alb.listener)
        .send()
        .await
        .unwrap();
    let default: Vec<&str> = default.listeners()[0]
        .certificates()
        .iter()
        .filter_map(|c| c.certificate_arn())
        .collect();
    assert_eq!(default, [new.as_str()]);
    let on_sni = listener_certificates(&elb, &sni).await;
    assert!(
        on_sni.contains(&new) && on_sni.contains(&b) && !on_sni.contains(&a),
        "{on_sni:?}"
    );
    // The Client VPN endpoint: exactly one ModifyClientVpnEndpoint, with the new ARN.
    let modifies: Vec<Vec<(String, String)>> = proxy
        .log()
        .iter()
        .filter(|l| action(&l.call.body).as_deref() == Some("ModifyClientVpnEndpoint"))
        .map(|l| form(&l.call.body))
        .collect();
    assert_eq!(modifies.len(), 1);
    let field = |k: &str| {
        modifies[0]
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(field("ClientVpnEndpointId").as_deref(), Some(VPN));
    assert_eq!(field("ServerCertificateArn"), Some(new.clone()));

    // prod, with no terminal and no --yes, refuses before changing anything.
    let pem = dir.join("new.pem");
    let key = dir.join("new.key");
    let run = ops(
        &repo.dir,
        &proxy.endpoint(),
        &[
            "cert",
            "rotate",
            "--env",
            "prod",
            "--arn",
            &b,
            "--certificate",
            pem.to_str().unwrap(),
            "--private-key",
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("pass --yes"), "{}", run.stderr);
}
