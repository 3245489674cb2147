//! `build`, `promote`, `rollback` and `deploy` end to end, each in a
//! throwaway repository (with a bare `origin` for deploy's push) against
//! moto's ECR; deploy's rollout wait against a FakeKube whose Deployment
//! moves to the new tag while deploy waits. No Docker engine runs here:
//! `build` is checked in `--dry-run` and for its clear error, and deploy's
//! image is one ECR has already (as after CI's build job, which deploy
//! then does not build again).

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use devstack::FakeKube;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStatus};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use support::*;

const REPOSITORY: &str = "tickets/admission";
const DEV: &str = "helm/admission/values-dev.yaml";
const PROD: &str = "helm/admission/values-prod.yaml";

async fn push_image(ecr: &aws_sdk_ecr::Client, tag: &str) {
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7023,
                   "digest": format!("sha256:{:0>64}", tag)},
        "layers": [],
    });
    ecr.put_image()
        .repository_name(REPOSITORY)
        .image_manifest(manifest.to_string())
        .image_tag(tag)
        .send()
        .await
        .unwrap();
}

fn set_tag(repo: &Repo, file: &str, tag: &str) {
    let text = repo.read(file);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("tag:"))
        .unwrap()
        .to_string();
    repo.write(file, &text.replacen(&line, &format!("  tag: {tag}"), 1));
}

/// A history: c0 (start), c1 adds a migration, c2 deploys c1 to dev and
/// keeps prod on c0. Returns (c0, c1) short shas.
fn history(repo: &Repo) -> (String, String) {
    let c0 = repo.git(&["rev-parse", "--short=7", "HEAD"]);
    std::fs::create_dir_all(repo.dir.join("app/migrations")).unwrap();
    repo.write(
        "app/migrations/20270101000001_seat_holds.sql",
        "CREATE TABLE holds (id INT);\n",
    );
    repo.git(&["add", "."]);
    repo.git(&["commit", "--quiet", "-m", "seat holds"]);
    let c1 = repo.git(&["rev-parse", "--short=7", "HEAD"]);
    set_tag(repo, DEV, &c1);
    set_tag(repo, PROD, &c0);
    repo.git(&["commit", "--quiet", "-am", "deploy dev: image c1"]);
    (c0, c1)
}

#[tokio::test(flavor = "multi_thread")]
async fn promote_copies_the_tag_with_its_migrations_and_rollback_puts_the_previous_back() {
    let dir = work_dir("promote");
    let moto = start_moto(&dir);
    let repo = Repo::new(&dir);
    let ecr = aws_sdk_ecr::Client::new(&sdk(&moto.endpoint()));
    ecr.create_repository()
        .repository_name(REPOSITORY)
        .send()
        .await
        .unwrap();
    let (c0, c1) = history(&repo);
    push_image(&ecr, &c0).await;
    let endpoint = moto.endpoint();

    // Dry run: the commit it would make, and nothing changed.
    let head = repo.git(&["rev-parse", "HEAD"]);
    let run = ops(
        &repo.dir,
        &endpoint,
        &[
            "promote",
            "--from",
            "dev",
            "--to",
            "prod",
            "--dry-run",
            "--json",
        ],
    );
    // c1 is not in ECR yet: refused, with the way out.
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains(&format!("tickets/admission:{c1} is not in prod's ECR")),
        "{}",
        run.stderr
    );
    push_image(&ecr, &c1).await;
    let run = ops(
        &repo.dir,
        &endpoint,
        &[
            "promote",
            "--from",
            "dev",
            "--to",
            "prod",
            "--dry-run",
            "--json",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let change = &run.json()["change"];
    assert_eq!(
        (change["from"].as_str(), change["to"].as_str()),
        (Some(c0.as_str()), Some(c1.as_str()))
    );
    assert_eq!(
        change["migrations"],
        serde_json::json!(["20270101000001_seat_holds.sql"])
    );
    assert_eq!(repo.git(&["rev-parse", "HEAD"]), head);

    // prod without a terminal or --yes: refused.
    let run = ops(
        &repo.dir,
        &endpoint,
        &["promote", "--from", "dev", "--to", "prod"],
    );
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("pass --yes"), "{}", run.stderr);

    // A dirty tree: refused.
    repo.write("README.md", "local notes\n");
    let run = ops(
        &repo.dir,
        &endpoint,
        &["promote", "--from", "dev", "--to", "prod", "--yes"],
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("uncommitted changes (README.md)"),
        "{}",
        run.stderr
    );
    std::fs::remove_file(repo.dir.join("README.md")).unwrap();

    let run = ops(
        &repo.dir,
        &endpoint,
        &["promote", "--from", "dev", "--to", "prod", "--yes"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(repo.read(PROD).contains(&format!("  tag: {c1}")));
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    let message = repo.git(&["log", "-1", "--format=%B"]);
    assert!(
        message.starts_with(&format!("promote dev -> prod: image {c1} (was {c0})")),
        "{message}"
    );
    assert!(
        message.contains("- 20270101000001_seat_holds.sql"),
        "{message}"
    );
    // Only prod's tag line changed.
    let diff = repo.git(&["diff", "HEAD~1", "--numstat"]);
    assert_eq!(diff, format!("1\t1\t{PROD}"));

    // Rollback: prod's previous tag, from the values file's history.
    let run = ops(
        &repo.dir,
        &endpoint,
        &["rollback", "--env", "prod", "--yes", "--json"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(repo.read(PROD).contains(&format!("  tag: {c0}")));
    let message = repo.git(&["log", "-1", "--format=%B"]);
    assert!(
        message.starts_with(&format!("rollback prod: image {c0} (was {c1})")),
        "{message}"
    );
    assert!(message.contains("migrations are not undone"), "{message}");
    // Again: the one before c0 is c1 (the history's previous distinct tag).
    let run = ops(
        &repo.dir,
        &endpoint,
        &["rollback", "--env", "prod", "--yes", "--dry-run", "--json"],
    );
    assert_eq!(run.json()["change"]["to"], c1.as_str());
    // --to a tag ECR does not have: refused.
    let run = ops(
        &repo.dir,
        &endpoint,
        &["rollback", "--env", "dev", "--to", "0000000"],
    );
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("is not in dev's ECR"), "{}", run.stderr);
    // dev (not production) needs no --yes.
    let run = ops(
        &repo.dir,
        &endpoint,
        &["rollback", "--env", "dev", "--to", &c0],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(repo.read(DEV).contains(&format!("  tag: {c0}")));
}

#[tokio::test(flavor = "multi_thread")]
async fn build_plans_the_short_sha_tag_and_refuses_a_dirty_tree_or_a_missing_docker() {
    let dir = work_dir("build");
    let moto = start_moto(&dir);
    let repo = Repo::new(&dir);
    let ecr = aws_sdk_ecr::Client::new(&sdk(&moto.endpoint()));
    let endpoint = moto.endpoint();
    let sha = repo.git(&["rev-parse", "--short=7", "HEAD"]);

    let run = ops(&repo.dir, &endpoint, &["build", "--dry-run"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("no ECR repository tickets/admission"),
        "{}",
        run.stderr
    );
    ecr.create_repository()
        .repository_name(REPOSITORY)
        .send()
        .await
        .unwrap();

    let run = ops(
        &repo.dir,
        &endpoint,
        &["build", "--env", "dev", "--dry-run", "--json"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let plan = &run.json()["plan"];
    let image = format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/tickets/admission:{sha}");
    assert_eq!(plan["image"], image.as_str());
    assert_eq!(plan["tag"], sha.as_str());
    let steps: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(
        steps[0],
        format!("docker build --file app/Dockerfile --tag {image} .")
    );
    assert!(steps[2].starts_with("docker push"));
    assert!(!run.stdout.contains("latest"));

    // No Docker engine here: a clear error, not a panic.
    if Command::new("docker")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
    {
        eprintln!("a Docker engine runs here: skipping the no-Docker case");
    } else {
        let run = ops(&repo.dir, &endpoint, &["build"]);
        assert_eq!(run.code, 2);
        assert!(run.stderr.contains("no Docker engine"), "{}", run.stderr);
    }

    // Already in ECR: nothing to build, even without Docker.
    push_image(&ecr, &sha).await;
    let run = ops(&repo.dir, &endpoint, &["build", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["plan"]["already_pushed"], true);

    repo.write("helm/admission/values-dev.yaml", "dirty: true\n");
    let run = ops(&repo.dir, &endpoint, &["build", "--dry-run"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("uncommitted changes"), "{}", run.stderr);
}

fn deployment(tag: &str, generation: i64, counts: [i32; 4]) -> Deployment {
    let [replicas, updated, ready, available] = counts;
    Deployment {
        metadata: ObjectMeta {
            namespace: Some("admission".into()),
            name: Some("admission".into()),
            generation: Some(generation),
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(2),
            template: PodTemplateSpec {
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "admission".into(),
                        image: Some(format!(
                            "{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/tickets/admission:{tag}"
                        )),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
                ..PodTemplateSpec::default()
            },
            ..DeploymentSpec::default()
        }),
        status: Some(DeploymentStatus {
            observed_generation: Some(generation),
            replicas: Some(replicas),
            updated_replicas: Some(updated),
            ready_replicas: Some(ready),
            available_replicas: Some(available),
            ..DeploymentStatus::default()
        }),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_dev_commits_and_pushes_the_tag_then_waits_for_the_rollout() {
    let dir = work_dir("deploy");
    let moto = start_moto(&dir);
    let repo = Repo::new(&dir);
    let (_, c1) = history(&repo);
    let origin = dir.join("origin.git");
    let status = Command::new("git")
        .args(["init", "--quiet", "--bare", "-b", "main"])
        .arg(&origin)
        .status()
        .unwrap();
    assert!(status.success());
    repo.git(&["remote", "add", "origin", origin.to_str().unwrap()]);
    repo.git(&["push", "--quiet", "origin", "main"]);
    let ecr = aws_sdk_ecr::Client::new(&sdk(&moto.endpoint()));
    ecr.create_repository()
        .repository_name(REPOSITORY)
        .send()
        .await
        .unwrap();
    let head = repo.git(&["rev-parse", "--short=7", "HEAD"]);
    // CI's build job pushed HEAD's image.
    push_image(&ecr, &head).await;

    let kube = Arc::new(FakeKube::start().unwrap());
    let kubeconfig = dir.join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig, "admission").unwrap();
    kube.put(&deployment(&c1, 1, [2, 2, 2, 2])).unwrap();
    let endpoint = moto.endpoint();

    let run = ops(
        &repo.dir,
        &endpoint,
        &[
            "deploy",
            "dev",
            "--dry-run",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let listed: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(listed.len(), 5, "{}", run.stdout);
    assert!(listed[0].contains("is in ECR already"), "{}", listed[0]);
    assert!(
        listed[1].contains(&format!("set image.tag {c1} -> {head}")),
        "{}",
        listed[1]
    );
    assert!(
        listed[2].starts_with("3. git push origin HEAD"),
        "{}",
        listed[2]
    );
    assert!(listed[3].contains(&format!("runs {head}")), "{}", listed[3]);
    assert_eq!(repo.git(&["rev-parse", "--short=7", "HEAD"]), head);

    // ArgoCD's sync and the rollout, while deploy waits.
    let path = "GET /apis/apps/v1/namespaces/admission/deployments/admission";
    let mover = std::thread::spawn({
        let kube = kube.clone();
        let head = head.clone();
        move || {
            let after = |n: usize| {
                while kube.requests(path) < n {
                    std::thread::sleep(Duration::from_millis(20));
                }
            };
            after(2);
            kube.put(&deployment(&head, 2, [3, 1, 2, 2])).unwrap();
            after(3);
            kube.put(&deployment(&head, 2, [2, 2, 2, 2])).unwrap();
        }
    });
    let run = ops(
        &repo.dir,
        &endpoint,
        &[
            "deploy",
            "dev",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--json",
        ],
    );
    mover.join().unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(repo.read(DEV).contains(&format!("  tag: {head}")));
    let message = repo.git(&["log", "-1", "--format=%B"]);
    assert!(
        message.starts_with(&format!("deploy dev: image {head} (was {c1})")),
        "{message}"
    );
    // Pushed: origin's main is the deploy commit.
    let local = repo.git(&["rev-parse", "HEAD"]);
    let remote = String::from_utf8(
        Command::new("git")
            .arg("-C")
            .arg(&origin)
            .args(["rev-parse", "main"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(remote.trim(), local);
    assert_eq!(
        run.json()["commit"],
        repo.git(&["rev-parse", "--short=7", "HEAD"]).as_str()
    );
    assert!(
        run.stderr.contains("1 of 2 new replicas updated"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "deploy dev: {head} is live (2/2 replicas available)"
        )),
        "{}",
        run.stderr
    );
    assert!(kube.requests(path) >= 4);
}
