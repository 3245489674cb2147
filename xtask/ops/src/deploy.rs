//! `deploy <env>`: what GitLab CI runs on main, and what a person runs the
//! same way. Build and push the image of HEAD (skipped when ECR has that
//! tag, e.g. pushed by CI's build job), write its tag into the
//! environment's values file, commit and push (ArgoCD syncs it; the
//! chart's PreSync Job runs the migrations inside the cluster, the only
//! place the database is reachable from), then wait until the Deployment
//! runs the new tag and is healthy, with progress.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use crate::environment::Environment;
use crate::git::Git;
use crate::gitops::{self, GitopsError};
use crate::kube::{Kube, KubeError, RolloutWait};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The environment (environments/<ENV>.toml), e.g. `dev`.
    #[arg(value_name = "ENV")]
    pub env: String,
    /// List the steps; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask before changing prod.
    #[arg(long)]
    pub yes: bool,
    /// The kubeconfig for the rollout wait (default: KUBECONFIG or
    /// ~/.kube/config).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// How long to wait for ArgoCD's sync and the rollout.
    #[arg(long, value_name = "SECONDS", default_value_t = 900)]
    pub timeout: u64,
    /// Print one JSON object on stdout (progress and the summary go to
    /// stderr).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Environment(#[from] crate::environment::EnvironmentError),
    #[error(transparent)]
    Aws(#[from] crate::aws::AwsError),
    #[error(transparent)]
    Git(#[from] crate::git::GitError),
    #[error(transparent)]
    Values(#[from] crate::values::ValuesError),
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    #[error(transparent)]
    Gitops(#[from] GitopsError),
    #[error(transparent)]
    Confirm(#[from] crate::confirm::ConfirmError),
    #[error("{0} (the tag is committed and pushed: ArgoCD may still finish; check with `kubectl rollout status`)")]
    Rollout(#[source] Box<KubeError>),
    #[error("writing the report: {0}")]
    Output(#[from] std::io::Error),
}

/// The steps, in order, for `--dry-run` and the report.
pub fn steps(env: &Environment, plan: &crate::image::BuildPlan, current: &str) -> Vec<String> {
    let mut steps = plan.steps.clone();
    if current == plan.tag {
        steps.push(format!(
            "{} has image.tag {} already: no commit",
            env.kubernetes.values_file, plan.tag
        ));
    } else {
        steps.push(format!(
            "set image.tag {} -> {} in {} and commit",
            if current.is_empty() {
                "(none)"
            } else {
                current
            },
            plan.tag,
            env.kubernetes.values_file
        ));
        steps.push("git push origin HEAD (ArgoCD syncs; the PreSync Job migrates)".to_string());
    }
    steps.push(format!(
        "wait until deployment {}/{} runs {} and is rolled out",
        env.kubernetes.namespace, env.kubernetes.release, plan.tag
    ));
    steps
}

pub async fn run(args: &Args) -> Result<crate::Verdict, DeployError> {
    let root = crate::environment::repository_root()?;
    let env = Environment::load(&root, &args.env)?;
    let git = Git::new(&root);
    git.require_clean()?;
    let tag = git.short_head()?;
    let current = gitops::current_tag(&root, &env).unwrap_or_default();
    let config = crate::aws::load_for(&env).await?;
    let ecr = aws_sdk_ecr::Client::new(&config);
    let already = crate::image::tag_exists(&ecr, &env, &tag).await?;
    let plan = crate::image::plan(&env, &tag, already);
    let steps = steps(&env, &plan, &current);
    let mut progress = crate::progress::Progress::new("deploy");

    if args.dry_run {
        let summary = format!(
            "deploy {}: {} would be deployed (dry run)",
            env.name, plan.image
        );
        report(args, &steps, None, &summary)?;
        return Ok(crate::Verdict::Clean);
    }
    crate::confirm::production_change(&env, &format!("deploy image {tag}"), args.yes)?;

    progress.line(&format!("1/4 image {}", plan.image));
    crate::image::build_and_push(&ecr, &env, &root, &plan, &mut progress).await?;
    let mut commit = None;
    if current != tag {
        let listed = gitops::added_migrations(&git, &current, &tag);
        let migrations = match &listed {
            Ok(m) if m.is_empty() => "Migrations the PreSync Job will apply: none.".to_string(),
            Ok(m) => format!(
                "Migrations the PreSync Job will apply:\n{}",
                m.iter()
                    .map(|f| format!("- {f}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
            Err(why) => format!("Migrations: cannot be listed ({why})."),
        };
        crate::values::set_in_file(
            &root,
            &env.kubernetes.values_file,
            &["image", "tag"],
            crate::values::Scalar::Str(&tag),
        )?;
        let sha = git.commit(
            &[&env.kubernetes.values_file],
            &format!(
                "deploy {}: image {tag} (was {})\n\n{migrations}",
                env.name,
                if current.is_empty() { "none" } else { &current }
            ),
        )?;
        progress.line(&format!(
            "2/4 committed {sha}: {} image.tag = {tag}",
            env.kubernetes.values_file
        ));
        git.push()?;
        progress.line("3/4 pushed: ArgoCD syncs (the PreSync Job migrates)");
        commit = Some(sha);
    } else {
        progress.line(&format!(
            "2/4 {} has {tag} already; 3/4 nothing to push",
            env.kubernetes.values_file
        ));
    }

    let kube = Kube::connect(args.kubeconfig.as_deref(), args.context.as_deref())
        .await
        .map_err(|e| DeployError::Rollout(Box::new(e)))?;
    let wait = RolloutWait {
        timeout: Duration::from_secs(args.timeout),
        poll: Duration::from_secs(2),
        image_tag: Some(tag.clone()),
    };
    let rollout = kube
        .wait_rollout(
            &env.kubernetes.namespace,
            &env.kubernetes.release,
            &wait,
            |r| progress.line(&format!("4/4 {}", r.describe(Some(&tag)))),
        )
        .await
        .map_err(|e| DeployError::Rollout(Box::new(e)))?;
    let summary = format!(
        "deploy {}: {tag} is live ({}/{} replicas available){}",
        env.name,
        rollout.available,
        rollout.desired,
        commit
            .as_ref()
            .map(|c| format!(", commit {c}"))
            .unwrap_or_default()
    );
    report(args, &steps, commit.as_deref(), &summary)?;
    Ok(crate::Verdict::Clean)
}

fn report(
    args: &Args,
    steps: &[String],
    commit: Option<&str>,
    summary: &str,
) -> Result<(), DeployError> {
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::json!({"dry_run": args.dry_run, "steps": steps, "commit": commit})
        )?;
        out.flush()?;
        eprintln!("{summary}");
    } else {
        if args.dry_run {
            for (i, step) in steps.iter().enumerate() {
                writeln!(out, "{}. {step}", i + 1)?;
            }
        }
        writeln!(out, "{summary}")?;
    }
    Ok(())
}
