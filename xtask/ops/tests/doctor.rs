//! `ops doctor` end to end: the real binary against real services started
//! here (devstack): MariaDB for `db.schema`, a 3-master Redis Cluster with
//! TLS for `redis.cluster`, the app itself (in this process, on a free
//! port) for the `app.*` checks, and the moto server for the AWS checks: a
//! healthy environment built through the SDK, then each incident injected
//! in turn.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use devstack::{MariaDb, RedisCluster, RedisOptions, RedisServer, TlsFiles};
use serde_json::Value;

/// What a run of the binary printed, and its exit code.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "one JSON line on stdout: {}", self.stdout);
        serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }

    /// `code -> (status, summary, fix)` from `--json`.
    fn checks(&self) -> std::collections::BTreeMap<String, (String, String, Option<String>)> {
        self.json()["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .map(|c| {
                (
                    c["code"].as_str().unwrap().to_string(),
                    (
                        c["status"].as_str().unwrap().to_string(),
                        c["summary"].as_str().unwrap().to_string(),
                        c["fix"].as_str().map(str::to_string),
                    ),
                )
            })
            .collect()
    }

    fn check(&self, code: &str) -> (String, String, Option<String>) {
        self.checks()
            .remove(code)
            .unwrap_or_else(|| panic!("no {code} in {}", self.stdout))
    }
}

fn work_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("ops-doctor")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The repository's pinned moto, its state under `dir`.
fn start_moto(dir: &Path) -> devstack::Moto {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    devstack::Moto::start_pinned(&root, &dir.join("moto")).expect("moto starts")
}

/// The settings doctor falls back to: none from this machine leak in.
const FALLBACKS: &[&str] = &[
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_CLUSTER_NODES",
    "REDIS_CA_FILE",
    "KINESIS_STREAM",
    "KUBECONFIG",
    "EKS_CLUSTER",
    "NAMESPACE",
    "APP_URL",
    "APP_ROLE_NAME",
    "DATABASE_SECURITY_GROUP",
    "CACHE_SECURITY_GROUP",
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
];

/// Runs `ops doctor ARGS` with only `env` set among doctor's fallbacks
/// (AWS files pointed nowhere), killed after two minutes.
fn doctor(args: &[&str], env: &[(&str, &str)]) -> Run {
    let dir = work_dir("run");
    // OPS_BIN: a ready binary, as `cargo xtask` takes it (CI's artifact).
    let binary = std::env::var("OPS_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_ops").into());
    let mut cmd = Command::new(binary);
    cmd.arg("doctor").args(args);
    for var in FALLBACKS {
        cmd.env_remove(var);
    }
    cmd.env("AWS_CONFIG_FILE", dir.join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ops runs");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ops doctor {args:?} did not finish within 2 minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!(
        "--- ops doctor {args:?} exited {}:\n{}{}",
        run.code, run.stdout, run.stderr
    );
    run
}

const ALL: [&str; 16] = [
    "aws.credentials",
    "eks.cluster",
    "eks.oidc",
    "network.subnet-tags",
    "network.security-groups",
    "alb.ingress",
    "cert.expiry",
    "irsa.chain",
    "kinesis.stream",
    "k8s.ingress-finalizer",
    "k8s.rollout",
    "redis.cluster",
    "db.schema",
    "app.ready",
    "app.admission-loop",
    "app.event-log",
];

#[test]
fn help_lists_the_checks_and_an_unknown_check_exits_2_naming_them() {
    let help = doctor(&["--help"], &[]);
    assert_eq!(help.code, 0, "{}", help.stderr);
    for code in ALL {
        assert!(help.stdout.contains(code), "--help lacks {code}");
    }
    let bad = doctor(&["db.schema", "no.such-check"], &[]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("no.such-check"), "{}", bad.stderr);
    for code in ALL {
        assert!(bad.stderr.contains(code), "the error lacks {code}");
    }
    assert!(bad.stdout.is_empty());
    let env = doctor(&["--env", "nowhere"], &[]);
    assert_eq!(env.code, 2, "{}", env.stderr);
    assert!(env.stderr.contains("nowhere"), "{}", env.stderr);
}

#[test]
fn without_inputs_every_check_is_skipped_naming_its_flag() {
    let run = doctor(&["--json"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let checks = run.checks();
    assert_eq!(
        checks.keys().map(String::as_str).collect::<Vec<_>>().len(),
        ALL.len()
    );
    for (code, (status, _, fix)) in &checks {
        assert_eq!(status, "skip", "{code}");
        let fix = fix
            .as_deref()
            .unwrap_or_else(|| panic!("{code}: a skip names its flag"));
        assert!(fix.contains("--"), "{code}: {fix}");
    }
    assert!(run.stderr.contains("16 skipped"), "{}", run.stderr);

    let human = doctor(&["db.schema"], &[]);
    assert_eq!(human.code, 0);
    assert!(
        human.stdout.starts_with("[-] db.schema: "),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains("→ to run it: --database-url"),
        "{}",
        human.stdout
    );
}

#[tokio::test]
async fn db_schema_is_ok_on_this_checkouts_migrations_and_fails_on_a_drifted_checksum() {
    let dir = work_dir("db");
    let db = MariaDb::start(&dir.join("mariadb")).expect("mariadbd");
    let (migrator, app, _) = db.create_database("tickets").unwrap();
    let pending = doctor(&["db.schema", "--json"], &[("DATABASE_URL", &migrator)]);
    assert_eq!(pending.code, 0);
    assert_eq!(pending.check("db.schema").0, "warn");
    assert!(pending.check("db.schema").1.contains("pending"));

    admission::booking::db::migrate(&migrator, Duration::from_secs(10))
        .await
        .expect("migrations apply");
    // The app's own user reads the table as well as the migrator.
    let ok = doctor(&["db.schema", "--json", "--database-url", &app], &[]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let (status, summary, fix) = ok.check("db.schema");
    assert_eq!((status.as_str(), fix), ("ok", None), "{summary}");

    db.sql(
        "UPDATE tickets._sqlx_migrations SET checksum = UNHEX(SHA2('edited by hand', 384)) \
         ORDER BY version LIMIT 1",
    )
    .unwrap();
    let drift = doctor(&["db.schema"], &[("DATABASE_URL", &migrator)]);
    assert_eq!(drift.code, 1, "{}", drift.stdout);
    assert!(
        drift.stdout.starts_with("[✗] db.schema: schema drift"),
        "{}",
        drift.stdout
    );
    assert!(drift.stdout.contains("new migration"), "{}", drift.stdout);
    assert!(
        drift.stderr.contains("1 failed, 0 skipped (db.schema)"),
        "{}",
        drift.stderr
    );
}

/// A throwaway CA and a server certificate for localhost / 127.0.0.1.
fn tls_files(dir: &Path) -> TlsFiles {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "doctor test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let files = TlsFiles {
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
        ca: dir.join("ca.crt"),
    };
    std::fs::write(&files.cert, cert.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    std::fs::write(&files.ca, ca.pem()).unwrap();
    files
}

#[test]
fn redis_cluster_counts_crossslot_errors_of_a_script_with_keys_in_two_slots() {
    let dir = work_dir("redis");
    let tls = tls_files(&dir);
    let options = RedisOptions {
        tls: Some(tls.clone()),
        durable: false,
    };
    let cluster = RedisCluster::start(&dir.join("cluster"), 3, &options).expect("cluster");
    let ca = tls.ca.display().to_string();
    // One seed node is enough: doctor finds the other masters.
    let seed = cluster.nodes[0].url();
    let args = ["redis.cluster", "--json", "--redis-ca-file", &ca];
    let healthy = doctor(&args, &[("REDIS_URL", &seed)]);
    assert_eq!(healthy.code, 0, "{}", healthy.stderr);
    let (status, summary, fix) = healthy.check("redis.cluster");
    assert_eq!((status.as_str(), fix), ("ok", None), "{summary}");
    assert!(
        summary.contains("cluster mode, TLS, 3 masters"),
        "{summary}"
    );

    // A client that sends a script with keys in two slots: the server
    // refuses it and counts it. `a` and `b` hash to slots 15495 and 3300.
    let slots: Vec<String> = ["a", "b"]
        .iter()
        .map(|k| {
            cluster.nodes[0]
                .cli(&["CLUSTER", "KEYSLOT", k])
                .unwrap()
                .trim()
                .to_string()
        })
        .collect();
    assert_ne!(slots[0], slots[1]);
    let mut refused = 0;
    for node in &cluster.nodes {
        let out = node
            .cli(&[
                "EVAL",
                "return redis.call('MGET', KEYS[1], KEYS[2])",
                "2",
                "a",
                "b",
            ])
            .unwrap();
        if out.contains("CROSSSLOT") {
            refused += 1;
        }
    }
    assert!(refused >= 1, "the servers accepted a cross-slot script");
    let nodes = cluster.urls();
    let broken = doctor(&args, &[("REDIS_CLUSTER_NODES", &nodes)]);
    assert_eq!(broken.code, 1, "{}", broken.stderr);
    let (status, summary, fix) = broken.check("redis.cluster");
    assert_eq!(status, "fail");
    assert!(
        summary.contains(&format!("refused {refused} command")),
        "{summary}"
    );
    assert!(summary.contains("CROSSSLOT"), "{summary}");
    assert!(fix.unwrap().contains("hash tag"));
}

#[test]
fn redis_standalone_without_tls_is_a_warning() {
    let dir = work_dir("redis-standalone");
    let server = RedisServer::start(&dir, &RedisOptions::default()).expect("redis");
    let run = doctor(
        &["redis.cluster", "--json", "--redis-url", &server.url()],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (status, summary, fix) = run.check("redis.cluster");
    assert_eq!(status, "warn", "{summary}");
    assert!(summary.contains("standalone"), "{summary}");
    assert!(fix.unwrap().contains("rediss://"));
}

const ADMIN: &str = "doctor-test-admin-token-0123456789";

/// The app in this process on a free port, with `extra` settings.
async fn spawn_app(
    redis_url: &str,
    keys: &Path,
    extra: &[(&str, &str)],
) -> (String, tokio::sync::oneshot::Sender<()>) {
    use clap::Parser;
    let key = keys.join("token.pem");
    if !key.exists() {
        admission::token::write_key_pair(&key).expect("token key");
    }
    let mut args = vec![
        "admission".to_string(),
        "--listen-addr".into(),
        "127.0.0.1:0".into(),
        "--redis-url".into(),
        redis_url.into(),
        "--admin-token".into(),
        ADMIN.into(),
        "--token-keys".into(),
        format!("t1:{}", key.display()),
        "--admission-tick-ms".into(),
        "50".into(),
    ];
    for (k, v) in extra {
        args.push(format!("--{k}"));
        args.push(v.to_string());
    }
    let config = admission::Config::try_parse_from(args).expect("config parses");
    let app = admission::Application::build(config)
        .await
        .expect("app builds");
    let base = format!("http://{}", app.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !http
        .get(format!("{base}/health/live"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "the app did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (base, tx)
}

async fn doctor_async(args: Vec<String>, env: Vec<(String, String)>) -> Run {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        doctor(&args, &env)
    })
    .await
    .unwrap()
}

fn app_args(base: &str) -> Vec<String> {
    [
        "app.ready",
        "app.admission-loop",
        "app.event-log",
        "--json",
        "--url",
        base,
    ]
    .map(String::from)
    .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_checks_read_the_real_apps_readiness_and_queue() {
    let dir = work_dir("app");
    let redis = RedisServer::start(&dir.join("redis"), &RedisOptions::default()).expect("redis");
    let (base, stop) = spawn_app(&redis.url(), &dir, &[]).await;

    // An event at capacity with one fan waiting: nothing to admit, no stall.
    let http = reqwest::Client::new();
    let r = http
        .put(format!("{base}/api/v1/admin/events/gig/queue"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"mode": "fifo", "capacity": 1}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    for fan in ["fan-1", "fan-2"] {
        let r = http
            .post(format!("{base}/api/v1/events/gig/queue"))
            .json(&serde_json::json!({ "client_id": fan }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
    // The loop lists events every second and then publishes their gauges.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains("admission_queue_length{event=\"gig\"} 1") {
            break;
        }
        assert!(Instant::now() < deadline, "no gauges for gig: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let run = doctor_async(app_args(&base), vec![]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.check("app.ready").0, "ok");
    let (status, summary, _) = run.check("app.admission-loop");
    assert_eq!(status, "ok", "{summary}");
    assert!(summary.contains("1 event"), "{summary}");
    // No KINESIS_STREAM: the event log is off, and doctor says how to turn it on.
    let (status, _, fix) = run.check("app.event-log");
    assert_eq!(status, "skip");
    assert!(fix.unwrap().contains("KINESIS_STREAM"));
    let _ = stop.send(());

    // A database that does not answer: ready, but degraded, and the fix
    // names the checks to run next.
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let db = format!("mysql://app:pw@127.0.0.1:{dead}/tickets");
    let (base, stop) = spawn_app(&redis.url(), &dir, &[("database-url", &db)]).await;
    let run = doctor_async(app_args(&base), vec![]).await;
    assert_eq!(run.code, 0, "a warning is no failure: {}", run.stderr);
    let (status, summary, fix) = run.check("app.ready");
    assert_eq!(status, "warn", "{summary}");
    assert!(summary.contains("database is down"), "{summary}");
    assert!(fix.unwrap().contains("db.schema"));
    let _ = stop.send(());

    // Nothing answers at all.
    let run = doctor_async(app_args(&format!("http://127.0.0.1:{dead}")), vec![]).await;
    assert_eq!(run.code, 1);
    assert_eq!(run.check("app.ready").0, "fail");
}

/// A server answering `/metrics` and one event's statistics as the app
/// does, from the app's own types (`Metrics`, `QueueStatsBody`): the
/// admission loop of an event stopped 30 s ago with fans waiting and room.
fn stalled_app() -> SocketAddr {
    use admission::metrics::{EventGauges, Metrics};
    let now = admission::clock::now_ms();
    let metrics = Metrics::new();
    metrics.set_event(
        "gig",
        EventGauges {
            queued: 40,
            active: 3,
            capacity: 10,
            admitted_total: 3,
            last_admit_ms: Some(now - 30_000),
        },
    );
    metrics.set_outbox("gig", 120, 95.0, 0);
    let stats = serde_json::json!({
        "event_id": "gig", "mode": "fifo", "queued": 40, "active": 3, "capacity": 10,
        "admit_per_second": 100, "admitted_total": 3,
        "last_admit_at": admission::clock::format_ms(now - 30_000),
    });
    // Held to the app's type: the body the stats route would send.
    let stats: admission::http::api::QueueStatsBody = serde_json::from_value(stats).unwrap();
    let stats = serde_json::to_string(&stats).unwrap();
    let text = metrics.render();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::{BufRead, BufReader, Write};
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let _ = reader.read_line(&mut line);
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) <= 2 {
                    break;
                }
            }
            let (status, body) = if line.starts_with("GET /metrics ") {
                ("200 OK", text.clone())
            } else if line.starts_with("GET /api/v1/events/gig/queue ") {
                ("200 OK", stats.clone())
            } else {
                ("404 Not Found", String::new())
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

#[test]
fn a_stalled_admission_loop_and_an_outbox_that_does_not_ship_fail() {
    let addr = stalled_app();
    let base = format!("http://{addr}");
    let run = doctor(
        &[
            "app.admission-loop",
            "app.event-log",
            "--json",
            "--url",
            &base,
        ],
        &[],
    );
    assert_eq!(run.code, 1);
    let (status, summary, fix) = run.check("app.admission-loop");
    assert_eq!(status, "fail");
    assert!(
        summary.contains("stalled") && summary.contains("gig: 40 waiting"),
        "{summary}"
    );
    assert!(fix.unwrap().contains("rollout restart"));
    let (status, summary, _) = run.check("app.event-log");
    assert_eq!(status, "fail");
    assert!(summary.contains("oldest unshipped 95 s"), "{summary}");
}

mod aws {
    //! The AWS checks against moto: a healthy environment built through the
    //! SDK, then each incident injected in turn; that check fails with its
    //! fix, every other check stays as it was, and the healthy state is put
    //! back before the next incident.

    use super::*;
    use aws_sdk_ec2::types::{
        IpPermission, ResourceType, Tag as Ec2Tag, TagSpecification, UserIdGroupPair,
    };
    use aws_sdk_elasticloadbalancingv2::types::{
        Action, ActionTypeEnum, Tag as ElbTag, TargetDescription, TargetTypeEnum,
    };
    use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};

    const REGION: &str = "us-east-1";
    const CLUSTER: &str = "tickets-test";
    const GROUP: &str = "tickets-test";
    const STREAM: &str = "tickets-test-events";
    const APP_ROLE: &str = "tickets-test-admission";

    /// The app's IRSA trust: the cluster's OIDC provider, for
    /// admission/admission and sts.amazonaws.com.
    fn app_trust(provider_arn: &str, issuer: &str) -> String {
        let host = issuer.trim_start_matches("https://");
        serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {
                    format!("{host}:sub"): "system:serviceaccount:admission:admission",
                    format!("{host}:aud"): "sts.amazonaws.com",
                }}
            }]
        })
        .to_string()
    }

    async fn sdk(endpoint: &str) -> aws_config::SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
            .http_client(
                aws_smithy_http_client::Builder::new()
                    .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                        aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .build_https(),
            )
            .load()
            .await
    }

    /// A self-signed certificate valid for `days` more days, imported
    /// into ACM.
    async fn import(acm: &aws_sdk_acm::Client, days: i64) -> String {
        let mut params =
            rcgen::CertificateParams::new(vec!["tickets-test.example.com".to_string()]).unwrap();
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(300);
        params.not_after = now + time::Duration::days(days);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        acm.import_certificate()
            .certificate(aws_sdk_acm::primitives::Blob::new(cert.pem()))
            .private_key(aws_sdk_acm::primitives::Blob::new(key.serialize_pem()))
            .send()
            .await
            .unwrap()
            .certificate_arn()
            .unwrap()
            .to_string()
    }

    /// moto has no Client VPN: an AwsProxy in front of it answers
    /// DescribeClientVpnEndpoints with the endpoint below (none while
    /// `server` is empty), written from the EC2 API reference.
    fn vpn_answer(server: &str) -> String {
        let endpoint = if server.is_empty() {
            String::new()
        } else {
            format!(
                "<item><clientVpnEndpointId>cvpn-endpoint-0123456789abcdef0</clientVpnEndpointId>\
                 <serverCertificateArn>{server}</serverCertificateArn>\
                 <authenticationOptions><item><type>certificate-authentication</type></item></authenticationOptions></item>"
            )
        };
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeClientVpnEndpointsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</requestId><clientVpnEndpoint>{endpoint}</clientVpnEndpoint></DescribeClientVpnEndpointsResponse>"#
        )
    }

    fn is_action(body: &str, action: &str) -> bool {
        body.split('&').any(|kv| kv == format!("Action={action}"))
    }

    fn tag(k: &str, v: &str) -> Ec2Tag {
        Ec2Tag::builder().key(k).value(v).build()
    }

    /// What the healthy environment is made of.
    #[derive(Clone)]
    struct Env {
        public_subnets: Vec<String>,
        db_sg: String,
        cache_sg: String,
        cluster_sg: String,
        issuer_url: String,
        provider_arn: String,
        lb_arn: String,
    }

    async fn build(config: &aws_config::SdkConfig) -> Env {
        let ec2 = aws_sdk_ec2::Client::new(config);
        let vpc = ec2
            .create_vpc()
            .cidr_block("10.20.0.0/16")
            .send()
            .await
            .unwrap()
            .vpc()
            .unwrap()
            .vpc_id()
            .unwrap()
            .to_string();
        let igw = ec2
            .create_internet_gateway()
            .send()
            .await
            .unwrap()
            .internet_gateway()
            .unwrap()
            .internet_gateway_id()
            .unwrap()
            .to_string();
        ec2.attach_internet_gateway()
            .internet_gateway_id(&igw)
            .vpc_id(&vpc)
            .send()
            .await
            .unwrap();
        let public_rt = ec2
            .create_route_table()
            .vpc_id(&vpc)
            .send()
            .await
            .unwrap()
            .route_table()
            .unwrap()
            .route_table_id()
            .unwrap()
            .to_string();
        ec2.create_route()
            .route_table_id(&public_rt)
            .destination_cidr_block("0.0.0.0/0")
            .gateway_id(&igw)
            .send()
            .await
            .unwrap();
        let cluster_tag = format!("kubernetes.io/cluster/{CLUSTER}");
        // As terraform/modules/network makes them: EKS is given the private
        // subnets only, the ALB goes to the public ones, and the database
        // subnets carry no Kubernetes tag (doctor must not judge them).
        let mut public_subnets = Vec::new();
        let mut private_subnets = Vec::new();
        for (i, (az, public)) in [
            ("a", Some(true)),
            ("b", Some(true)),
            ("a", Some(false)),
            ("b", Some(false)),
            ("a", None),
            ("b", None),
        ]
        .into_iter()
        .enumerate()
        {
            let tier = match public {
                Some(true) => "public",
                Some(false) => "private",
                None => "database",
            };
            let mut tags = TagSpecification::builder()
                .resource_type(ResourceType::Subnet)
                .tags(tag("Tier", tier));
            if let Some(public) = public {
                let role = if public {
                    "kubernetes.io/role/elb"
                } else {
                    "kubernetes.io/role/internal-elb"
                };
                tags = tags.tags(tag(role, "1")).tags(tag(&cluster_tag, "shared"));
            }
            let id = ec2
                .create_subnet()
                .vpc_id(&vpc)
                .cidr_block(format!("10.20.{i}.0/24"))
                .availability_zone(format!("{REGION}{az}"))
                .tag_specifications(tags.build())
                .send()
                .await
                .unwrap()
                .subnet()
                .unwrap()
                .subnet_id()
                .unwrap()
                .to_string();
            match public {
                Some(true) => {
                    ec2.associate_route_table()
                        .route_table_id(&public_rt)
                        .subnet_id(&id)
                        .send()
                        .await
                        .unwrap();
                    public_subnets.push(id);
                }
                Some(false) => private_subnets.push(id),
                None => {}
            }
        }
        let sg = |name: &'static str| {
            let ec2 = ec2.clone();
            let vpc = vpc.clone();
            async move {
                ec2.create_security_group()
                    .group_name(name)
                    .description(name)
                    .vpc_id(vpc)
                    .send()
                    .await
                    .unwrap()
                    .group_id()
                    .unwrap()
                    .to_string()
            }
        };
        let cluster_sg = sg("eks-cluster").await;
        let db_sg = sg("aurora").await;
        let cache_sg = sg("cache").await;
        for (group, port) in [(&db_sg, 3306), (&cache_sg, 6379)] {
            ec2.authorize_security_group_ingress()
                .group_id(group)
                .ip_permissions(rule(port, &cluster_sg))
                .send()
                .await
                .unwrap();
        }

        let iam = aws_sdk_iam::Client::new(config);
        let role = iam
            .create_role()
            .role_name("eks-cluster")
            .assume_role_policy_document(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"eks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
            )
            .send()
            .await
            .unwrap()
            .role()
            .unwrap()
            .arn()
            .to_string();
        let eks = aws_sdk_eks::Client::new(config);
        let cluster = eks
            .create_cluster()
            .name(CLUSTER)
            .role_arn(role)
            .resources_vpc_config(
                aws_sdk_eks::types::VpcConfigRequest::builder()
                    .set_subnet_ids(Some(private_subnets.clone()))
                    .security_group_ids(&cluster_sg)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let issuer_url = cluster
            .cluster()
            .unwrap()
            .identity()
            .unwrap()
            .oidc()
            .unwrap()
            .issuer()
            .unwrap()
            .to_string();
        let provider_arn = create_provider(&iam, &issuer_url).await;

        let elb = aws_sdk_elasticloadbalancingv2::Client::new(config);
        let acm = aws_sdk_acm::Client::new(config);
        let certificate = import(&acm, 200).await;
        let lb_arn = create_alb(&elb, &vpc, &public_subnets, &certificate).await;

        let kinesis = aws_sdk_kinesis::Client::new(config);
        kinesis
            .create_stream()
            .stream_name(STREAM)
            .shard_count(2)
            .send()
            .await
            .unwrap();
        iam.create_role()
            .role_name(APP_ROLE)
            .assume_role_policy_document(app_trust(&provider_arn, &issuer_url))
            .send()
            .await
            .unwrap();
        iam.put_role_policy()
            .role_name(APP_ROLE)
            .policy_name("event-log")
            .policy_document(
                serde_json::json!({
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Effect": "Allow",
                        "Action": ["kinesis:PutRecord", "kinesis:PutRecords"],
                        "Resource": format!("arn:aws:kinesis:{REGION}:123456789012:stream/{STREAM}"),
                    }]
                })
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        Env {
            public_subnets,
            db_sg,
            cache_sg,
            cluster_sg,
            issuer_url,
            provider_arn,
            lb_arn,
        }
    }

    fn rule(port: i32, from: &str) -> IpPermission {
        IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(port)
            .to_port(port)
            .user_id_group_pairs(UserIdGroupPair::builder().group_id(from).build())
            .build()
    }

    async fn create_provider(iam: &aws_sdk_iam::Client, issuer: &str) -> String {
        iam.create_open_id_connect_provider()
            .url(issuer)
            .client_id_list("sts.amazonaws.com")
            .thumbprint_list("9e99a48a9960b14926bb7f3b02e22da2b0ab7280")
            .send()
            .await
            .unwrap()
            .open_id_connect_provider_arn()
            .unwrap()
            .to_string()
    }

    /// The ALB as the Load Balancer Controller leaves it: tagged with the
    /// cluster and the IngressGroup, a listener, a target group of pod IPs.
    async fn create_alb(
        elb: &aws_sdk_elasticloadbalancingv2::Client,
        vpc: &str,
        subnets: &[String],
        certificate: &str,
    ) -> String {
        let lb = elb
            .create_load_balancer()
            .name("k8s-ticketstest-0123456789")
            .set_subnets(Some(subnets.to_vec()))
            .tags(
                ElbTag::builder()
                    .key("elbv2.k8s.aws/cluster")
                    .value(CLUSTER)
                    .build(),
            )
            .tags(
                ElbTag::builder()
                    .key("ingress.k8s.aws/stack")
                    .value(GROUP)
                    .build(),
            )
            .tags(
                ElbTag::builder()
                    .key("ingress.k8s.aws/resource")
                    .value("LoadBalancer")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let lb_arn = lb.load_balancers()[0]
            .load_balancer_arn()
            .unwrap()
            .to_string();
        let tg = elb
            .create_target_group()
            .name("k8s-admission-0123456789")
            .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
            .port(8080)
            .vpc_id(vpc)
            .target_type(TargetTypeEnum::Ip)
            .send()
            .await
            .unwrap();
        let tg_arn = tg.target_groups()[0]
            .target_group_arn()
            .unwrap()
            .to_string();
        elb.register_targets()
            .target_group_arn(&tg_arn)
            .targets(
                TargetDescription::builder()
                    .id("10.20.2.10")
                    .port(8080)
                    .build(),
            )
            .targets(
                TargetDescription::builder()
                    .id("10.20.3.10")
                    .port(8080)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        elb.create_listener()
            .load_balancer_arn(&lb_arn)
            .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
            .port(80)
            .default_actions(
                Action::builder()
                    .r#type(ActionTypeEnum::Forward)
                    .target_group_arn(&tg_arn)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        elb.create_listener()
            .load_balancer_arn(&lb_arn)
            .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Https)
            .port(443)
            .certificates(
                aws_sdk_elasticloadbalancingv2::types::Certificate::builder()
                    .certificate_arn(certificate)
                    .build(),
            )
            .default_actions(
                Action::builder()
                    .r#type(ActionTypeEnum::Forward)
                    .target_group_arn(&tg_arn)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        lb_arn
    }

    fn run_doctor(endpoint: &str, env: &Env) -> Run {
        doctor(
            &[
                "--json",
                "--cluster",
                CLUSTER,
                "--ingress",
                GROUP,
                "--stream",
                STREAM,
                "--database-security-group",
                &env.db_sg,
                "--cache-security-group",
                &env.cache_sg,
                "--region",
                REGION,
                "--role",
                APP_ROLE,
                "--namespace",
                "admission",
                "--service-account",
                "admission",
            ],
            &[
                ("AWS_ENDPOINT_URL", endpoint),
                ("AWS_ACCESS_KEY_ID", "test"),
                ("AWS_SECRET_ACCESS_KEY", "test"),
            ],
        )
    }

    /// Runs doctor with `incident` in place: `code` fails with a fix
    /// containing `fix`, every other check is as in `healthy`.
    async fn expect_only(
        endpoint: &str,
        env: &Env,
        healthy: &std::collections::BTreeMap<String, (String, String, Option<String>)>,
        code: &str,
        fix: &str,
    ) {
        let run = {
            let endpoint = endpoint.to_string();
            let args = env.clone();
            tokio::task::spawn_blocking(move || run_doctor(&endpoint, &args))
                .await
                .unwrap()
        };
        assert_eq!(run.code, 1, "{code}: {}", run.stdout);
        let checks = run.checks();
        for (other, (status, summary, _)) in healthy {
            let now = &checks[other];
            if other == code {
                assert_eq!(now.0, "fail", "{code}: {}", now.1);
                let got = now.2.as_deref().unwrap_or_default();
                assert!(got.contains(fix), "{code}'s fix `{got}` lacks `{fix}`");
            } else {
                assert_eq!(
                    &now.0, status,
                    "{other} changed with {code}: {} (was {summary})",
                    now.1
                );
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_incident_fails_its_check_with_the_fix_and_leaves_the_others() {
        let dir = work_dir("aws");
        let moto = start_moto(&dir);
        let config = sdk(&moto.endpoint()).await;
        let env = build(&config).await;
        let vpn_server = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let proxy = {
            let server = vpn_server.clone();
            devstack::AwsProxy::start(([127, 0, 0, 1], moto.port).into(), move |call| {
                if is_action(&call.body, "DescribeClientVpnEndpoints") {
                    devstack::AwsReply::xml(&vpn_answer(&server.lock().unwrap()))
                } else {
                    devstack::AwsReply::Forward
                }
            })
            .unwrap()
        };
        // Doctor talks to moto through the proxy.
        let endpoint = proxy.endpoint();

        let healthy = {
            let endpoint = endpoint.clone();
            let args = env.clone();
            tokio::task::spawn_blocking(move || run_doctor(&endpoint, &args))
                .await
                .unwrap()
        };
        assert_eq!(healthy.code, 0, "{}", healthy.stdout);
        let healthy = healthy.checks();
        for code in [
            "aws.credentials",
            "eks.cluster",
            "eks.oidc",
            "network.subnet-tags",
            "network.security-groups",
            "alb.ingress",
            "cert.expiry",
            "irsa.chain",
            "kinesis.stream",
        ] {
            assert_eq!(healthy[code].0, "ok", "{code}: {}", healthy[code].1);
        }
        for code in ["redis.cluster", "db.schema", "app.ready"] {
            assert_eq!(healthy[code].0, "skip", "{code}: {}", healthy[code].1);
        }
        assert!(
            healthy["alb.ingress"].1.contains("2/2 targets healthy"),
            "{}",
            healthy["alb.ingress"].1
        );

        let ec2 = aws_sdk_ec2::Client::new(&config);
        let iam = aws_sdk_iam::Client::new(&config);

        // (4) A public subnet without its ELB tag: no ALB could be placed.
        let subnet = &env.public_subnets[1];
        ec2.delete_tags()
            .resources(subnet)
            .tags(Ec2Tag::builder().key("kubernetes.io/role/elb").build())
            .send()
            .await
            .unwrap();
        expect_only(
            &endpoint,
            &env,
            &healthy,
            "network.subnet-tags",
            &format!("aws ec2 create-tags --resources {subnet} --tags Key=kubernetes.io/role/elb,Value=1"),
        )
        .await;
        ec2.create_tags()
            .resources(subnet)
            .tags(tag("kubernetes.io/role/elb", "1"))
            .send()
            .await
            .unwrap();

        // Aurora's security group without its 3306 rule: connection timeouts.
        ec2.revoke_security_group_ingress()
            .group_id(&env.db_sg)
            .ip_permissions(rule(3306, &env.cluster_sg))
            .send()
            .await
            .unwrap();
        expect_only(
            &endpoint,
            &env,
            &healthy,
            "network.security-groups",
            &format!(
                "aws ec2 authorize-security-group-ingress --group-id {} --protocol tcp --port 3306 --source-group {}",
                env.db_sg, env.cluster_sg
            ),
        )
        .await;
        ec2.authorize_security_group_ingress()
            .group_id(&env.db_sg)
            .ip_permissions(rule(3306, &env.cluster_sg))
            .send()
            .await
            .unwrap();

        // (2) The cluster's issuer unknown to IAM: every IRSA role is denied.
        iam.delete_open_id_connect_provider()
            .open_id_connect_provider_arn(&env.provider_arn)
            .send()
            .await
            .unwrap();
        expect_only(
            &endpoint,
            &env,
            &healthy,
            "eks.oidc",
            &format!("eksctl utils associate-iam-oidc-provider --cluster {CLUSTER} --approve"),
        )
        .await;
        create_provider(&iam, &env.issuer_url).await;

        // (2) The app's role trusting EC2 instead of the cluster's provider.
        iam.update_assume_role_policy()
            .role_name(APP_ROLE)
            .policy_document(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
            )
            .send()
            .await
            .unwrap();
        expect_only(&endpoint, &env, &healthy, "irsa.chain", "").await;
        iam.update_assume_role_policy()
            .role_name(APP_ROLE)
            .policy_document(app_trust(&env.provider_arn, &env.issuer_url))
            .send()
            .await
            .unwrap();

        // (5) The Client VPN's self-signed server certificate about to expire.
        let acm = aws_sdk_acm::Client::new(&config);
        let expiring = import(&acm, 5).await;
        *vpn_server.lock().unwrap() = expiring.clone();
        expect_only(
            &endpoint,
            &env,
            &healthy,
            "cert.expiry",
            "cargo xtask cert rotate",
        )
        .await;
        // An expiring certificate on the ALB's HTTPS listener.
        vpn_server.lock().unwrap().clear();
        let elb = aws_sdk_elasticloadbalancingv2::Client::new(&config);
        let https = elb
            .describe_listeners()
            .load_balancer_arn(&env.lb_arn)
            .send()
            .await
            .unwrap()
            .listeners()
            .iter()
            .find(|l| l.port() == Some(443))
            .and_then(|l| l.listener_arn().map(str::to_string))
            .unwrap();
        let set_certificate = |arn: String| {
            let elb = elb.clone();
            let https = https.clone();
            async move {
                elb.modify_listener()
                    .listener_arn(https)
                    .certificates(
                        aws_sdk_elasticloadbalancingv2::types::Certificate::builder()
                            .certificate_arn(arn)
                            .build(),
                    )
                    .send()
                    .await
                    .unwrap();
            }
        };
        set_certificate(expiring.clone()).await;
        expect_only(
            &endpoint,
            &env,
            &healthy,
            "cert.expiry",
            "cargo xtask cert rotate",
        )
        .await;
        set_certificate(import(&acm, 200).await).await;

        // A prewarm of the stream that outlived its duration: a warning.
        let kinesis = aws_sdk_kinesis::Client::new(&config);
        kinesis
            .add_tags_to_stream()
            .stream_name(STREAM)
            .tags(
                "ops.tickets/prewarm",
                "until=2026-01-15T08:00:00Z;previous=2",
            )
            .send()
            .await
            .unwrap();
        let run = {
            let endpoint = endpoint.clone();
            let args = env.clone();
            tokio::task::spawn_blocking(move || run_doctor(&endpoint, &args))
                .await
                .unwrap()
        };
        let (status, summary, fix) = run.check("kinesis.stream");
        assert_eq!(status, "warn", "{summary}");
        assert!(
            summary.contains(&format!("stream {STREAM} was raised until 2026-01-15")),
            "{summary}"
        );
        assert!(fix
            .unwrap()
            .contains("cargo xtask prewarm --env <env> --undo"));
        kinesis
            .remove_tags_from_stream()
            .stream_name(STREAM)
            .tag_keys("ops.tickets/prewarm")
            .send()
            .await
            .unwrap();

        // Kinesis throttling writes right now (CloudWatch's own metric).
        // (moto takes the Query protocol unsigned, routed by the credential
        // scope of the Authorization header; doctor signs its own.)
        let form = [
            ("Action", "PutMetricData"),
            ("Version", "2010-08-01"),
            ("Namespace", "AWS/Kinesis"),
            (
                "MetricData.member.1.MetricName",
                "WriteProvisionedThroughputExceeded",
            ),
            ("MetricData.member.1.Dimensions.member.1.Name", "StreamName"),
            ("MetricData.member.1.Dimensions.member.1.Value", STREAM),
            ("MetricData.member.1.Value", "25"),
        ];
        let put = reqwest::Client::new()
            .post(format!("{endpoint}/"))
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=test/20261202/us-east-1/monitoring/aws4_request, \
                 SignedHeaders=host, Signature=00",
            )
            .form(&form)
            .send()
            .await
            .unwrap();
        assert!(put.status().is_success(), "{}", put.text().await.unwrap());
        expect_only(
            &endpoint,
            &env,
            &healthy,
            "kinesis.stream",
            &format!(
                "aws kinesis update-shard-count --stream-name {STREAM} --target-shard-count 4"
            ),
        )
        .await;
        // (The datum stays for five minutes: the ALB incident below runs
        // only alb.ingress's comparison against a fresh baseline.)

        // (6) The ALB deleted by hand.
        elb.delete_load_balancer()
            .load_balancer_arn(&env.lb_arn)
            .send()
            .await
            .unwrap();
        let run = {
            let endpoint = endpoint.clone();
            let args = env.clone();
            tokio::task::spawn_blocking(move || run_doctor(&endpoint, &args))
                .await
                .unwrap()
        };
        let checks = run.checks();
        let (status, summary, fix) = &checks["alb.ingress"];
        assert_eq!(status, "fail", "{summary}");
        assert!(
            summary.contains(&format!("no ALB tagged ingress.k8s.aws/stack={GROUP}")),
            "{summary}"
        );
        assert!(fix.as_deref().unwrap().contains("k8s.ingress-finalizer"));
        for (code, (status, _, _)) in &healthy {
            // (kinesis.stream still sees the throttled writes above; the
            // certificate of the deleted ALB's listener is gone with it.)
            if code != "alb.ingress" && code != "kinesis.stream" && code != "cert.expiry" {
                assert_eq!(&checks[code].0, status, "{code} changed with the ALB gone");
            }
        }
        drop(proxy);
        drop(moto);
    }
}

mod kubernetes {
    //! No Kubernetes API server runs here: the Kubernetes checks read API
    //! answers written with k8s-openapi's own types and served locally by
    //! devstack::FakeKube; the ALB lookup of `k8s.ingress-finalizer` goes
    //! to moto.

    use std::collections::BTreeMap;

    use k8s_openapi::api::apps::v1::{
        Deployment, DeploymentCondition, DeploymentSpec, DeploymentStatus,
    };
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
    use k8s_openapi::api::networking::v1::Ingress;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    use super::*;

    fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            namespace: Some("admission".into()),
            name: Some(name.into()),
            ..ObjectMeta::default()
        }
    }

    fn deployment(available: i32, deadline_exceeded: bool) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                generation: Some(3),
                ..meta("admission")
            },
            spec: Some(DeploymentSpec {
                replicas: Some(2),
                template: PodTemplateSpec {
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "admission".into(),
                            image: Some("123.dkr.ecr.x/tickets/admission:abc1234".into()),
                            ..Container::default()
                        }],
                        ..PodSpec::default()
                    }),
                    ..PodTemplateSpec::default()
                },
                ..DeploymentSpec::default()
            }),
            status: Some(DeploymentStatus {
                observed_generation: Some(3),
                replicas: Some(2),
                updated_replicas: Some(2),
                ready_replicas: Some(available),
                available_replicas: Some(available),
                conditions: deadline_exceeded.then(|| {
                    vec![DeploymentCondition {
                        type_: "Progressing".into(),
                        status: "False".into(),
                        reason: Some("ProgressDeadlineExceeded".into()),
                        message: Some(
                            "ReplicaSet \"admission-7d9\" has timed out progressing.".into(),
                        ),
                        ..DeploymentCondition::default()
                    }]
                }),
                ..DeploymentStatus::default()
            }),
        }
    }

    fn ingress(deleting: bool) -> Ingress {
        Ingress {
            metadata: ObjectMeta {
                annotations: Some(BTreeMap::from([(
                    "alb.ingress.kubernetes.io/group.name".to_string(),
                    "tickets-test".to_string(),
                )])),
                finalizers: Some(vec!["group.ingress.k8s.aws/tickets-test".into()]),
                deletion_timestamp: deleting.then(|| Time("2026-12-02T03:00:00Z".parse().unwrap())),
                ..meta("admission")
            },
            ..Ingress::default()
        }
    }

    #[test]
    fn a_failed_rollout_and_an_ingress_stuck_on_its_finalizer_fail_with_the_fix() {
        let dir = work_dir("kube");
        let fake = devstack::FakeKube::start().expect("fake kube");
        let kubeconfig = dir.join("kubeconfig");
        fake.write_kubeconfig(&kubeconfig, "admission").unwrap();
        let moto = start_moto(&dir);
        let endpoint = moto.endpoint();
        let kc = kubeconfig.display().to_string();
        let run = || {
            doctor(
                &[
                    "k8s.rollout",
                    "k8s.ingress-finalizer",
                    "--json",
                    "--kubeconfig",
                    &kc,
                    "--namespace",
                    "admission",
                    "--cluster",
                    "tickets-test",
                    "--region",
                    "us-east-1",
                ],
                &[
                    ("AWS_ENDPOINT_URL", &endpoint),
                    ("AWS_ACCESS_KEY_ID", "test"),
                    ("AWS_SECRET_ACCESS_KEY", "test"),
                ],
            )
        };
        fake.put(&deployment(2, false)).unwrap();
        fake.put(&ingress(false)).unwrap();
        let healthy = run();
        assert_eq!(healthy.code, 0, "{}", healthy.stdout);
        assert_eq!(healthy.check("k8s.rollout").0, "ok");
        assert_eq!(healthy.check("k8s.ingress-finalizer").0, "ok");

        fake.put(&deployment(0, true)).unwrap();
        let failed = run();
        assert_eq!(failed.code, 1);
        let (status, summary, fix) = failed.check("k8s.rollout");
        assert_eq!(status, "fail", "{summary}");
        assert!(summary.contains("timed out progressing"), "{summary}");
        assert!(fix.unwrap().contains("cargo xtask rollback"));
        assert_eq!(failed.check("k8s.ingress-finalizer").0, "ok");
        fake.put(&deployment(2, false)).unwrap();

        // (6) The ALB deleted by hand: the Ingress's delete waits forever
        // on the controller's finalizer (moto has no ALB of that group).
        fake.put(&ingress(true)).unwrap();
        let stuck = run();
        assert_eq!(stuck.code, 1);
        let (status, summary, fix) = stuck.check("k8s.ingress-finalizer");
        assert_eq!(status, "fail", "{summary}");
        assert!(
            summary.contains("group.ingress.k8s.aws/tickets-test"),
            "{summary}"
        );
        assert!(fix
            .unwrap()
            .contains("kubectl -n admission patch ingress admission --type=json"));
        assert_eq!(stuck.check("k8s.rollout").0, "ok");
    }
}
