//! The app's container image: where it lives (the environment's ECR
//! repository), whether a tag is there, and `build`: `docker build` from
//! `app/Dockerfile`, tagged with the git short sha (never `latest`: a tag
//! must name a version to roll back to), pushed after a registry login
//! through the SDK (`GetAuthorizationToken`, no AWS CLI needed).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use aws_sdk_ecr::error::ProvideErrorMetadata;
use serde::Serialize;

use crate::environment::Environment;

pub const DOCKERFILE: &str = "app/Dockerfile";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("ecr {call}: {message}")]
    Ecr { call: &'static str, message: String },
    #[error(
        "no ECR repository {repository} in {account}: create it (terraform/modules/ecr, `terraform apply`)"
    )]
    NoRepository { repository: String, account: String },
    #[error(
        "no Docker engine: `docker version` failed ({0}). Build where one runs (GitLab CI's container-image job), \
         or see the plan with --dry-run"
    )]
    NoDocker(String),
    #[error("`{command}` failed ({status}): {stderr}")]
    Docker {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("the ECR login token is not `AWS:<password>` in base64")]
    BadToken,
}

fn ecr_error<E: ProvideErrorMetadata + std::error::Error + 'static>(
    call: &'static str,
    e: &aws_sdk_ecr::error::SdkError<E, aws_sdk_ecr::config::http::HttpResponse>,
) -> ImageError {
    ImageError::Ecr {
        call,
        message: crate::aws::describe(e),
    }
}

/// `<account>.dkr.ecr.<region>.amazonaws.com`.
pub fn registry(env: &Environment) -> String {
    format!(
        "{}.dkr.ecr.{}.amazonaws.com",
        env.aws.account_id, env.aws.region
    )
}

/// `<registry>/<repository>:<tag>`.
pub fn image_ref(env: &Environment, tag: &str) -> String {
    format!("{}/{}:{tag}", registry(env), env.app.ecr_repository)
}

/// Whether the environment's repository holds `tag`; a missing repository
/// is an error that says how to create it.
pub async fn tag_exists(
    ecr: &aws_sdk_ecr::Client,
    env: &Environment,
    tag: &str,
) -> Result<bool, ImageError> {
    let result = ecr
        .describe_images()
        .repository_name(&env.app.ecr_repository)
        .image_ids(
            aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_tag(tag)
                .build(),
        )
        .send()
        .await;
    match result {
        Ok(out) => Ok(!out.image_details().is_empty()),
        Err(e) if e.code() == Some("ImageNotFoundException") => Ok(false),
        Err(e) if e.code() == Some("RepositoryNotFoundException") => {
            Err(ImageError::NoRepository {
                repository: env.app.ecr_repository.clone(),
                account: env.aws.account_id.clone(),
            })
        }
        Err(e) => Err(ecr_error("DescribeImages", &e)),
    }
}

/// The steps of a build, as shown by `--dry-run` and run otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildPlan {
    pub tag: String,
    pub image: String,
    /// The tag is in ECR already: nothing to build or push.
    pub already_pushed: bool,
    pub steps: Vec<String>,
}

pub fn plan(env: &Environment, tag: &str, already_pushed: bool) -> BuildPlan {
    let image = image_ref(env, tag);
    let steps = if already_pushed {
        vec![format!("{image} is in ECR already: nothing to build")]
    } else {
        vec![
            format!("docker build --file {DOCKERFILE} --tag {image} ."),
            format!(
                "ecr GetAuthorizationToken, then docker login --username AWS --password-stdin {}",
                registry(env)
            ),
            format!("docker push {image}"),
        ]
    };
    BuildPlan {
        tag: tag.to_string(),
        image,
        already_pushed,
        steps,
    }
}

fn docker(args: &[&str], root: &Path, stdin: Option<&str>) -> Result<(), ImageError> {
    let command = format!("docker {}", args.join(" "));
    let mut child = Command::new("docker")
        .args(args)
        .current_dir(root)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ImageError::NoDocker(e.to_string()))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| ImageError::Docker {
        command: command.clone(),
        status: "did not finish".into(),
        stderr: e.to_string(),
    })?;
    if out.status.success() {
        return Ok(());
    }
    Err(ImageError::Docker {
        command,
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// Fails with [`ImageError::NoDocker`] unless a Docker engine answers.
pub fn require_docker() -> Result<(), ImageError> {
    let out = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .map_err(|e| ImageError::NoDocker(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ImageError::NoDocker(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// Builds and pushes (the plan's steps), logging in through the SDK.
pub async fn build_and_push(
    ecr: &aws_sdk_ecr::Client,
    env: &Environment,
    root: &Path,
    plan: &BuildPlan,
    progress: &mut crate::progress::Progress,
) -> Result<(), ImageError> {
    if plan.already_pushed {
        return Ok(());
    }
    require_docker()?;
    progress.line(&format!("building {}", plan.image));
    docker(
        &["build", "--file", DOCKERFILE, "--tag", &plan.image, "."],
        root,
        None,
    )?;
    let auth = ecr
        .get_authorization_token()
        .send()
        .await
        .map_err(|e| ecr_error("GetAuthorizationToken", &e))?;
    let token = auth
        .authorization_data()
        .first()
        .and_then(|d| d.authorization_token())
        .ok_or(ImageError::BadToken)?;
    let password = decode_token(token)?;
    docker(
        &[
            "login",
            "--username",
            "AWS",
            "--password-stdin",
            &registry(env),
        ],
        root,
        Some(&password),
    )?;
    progress.line(&format!("pushing {}", plan.image));
    docker(&["push", &plan.image], root, None)
}

/// ECR's token is base64 of `AWS:<password>`.
pub fn decode_token(token: &str) -> Result<String, ImageError> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .map_err(|_| ImageError::BadToken)?;
    let text = String::from_utf8(bytes).map_err(|_| ImageError::BadToken)?;
    text.strip_prefix("AWS:")
        .map(str::to_string)
        .ok_or(ImageError::BadToken)
}

// ---- `build` -----------------------------------------------------------

#[derive(Debug, Clone, clap::Args)]
pub struct BuildArgs {
    /// The environment whose ECR repository gets the image.
    #[arg(long, value_name = "ENV", default_value = "dev")]
    pub env: String,
    /// Print the plan (tag, image, steps); build and push nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON object on stdout (the summary goes to stderr).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Environment(#[from] crate::environment::EnvironmentError),
    #[error(transparent)]
    Aws(#[from] crate::aws::AwsError),
    #[error(transparent)]
    Git(#[from] crate::git::GitError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("writing the report: {0}")]
    Output(#[from] std::io::Error),
}

pub async fn build(args: &BuildArgs) -> Result<crate::Verdict, BuildError> {
    let root = crate::environment::repository_root()?;
    let env = Environment::load(&root, &args.env)?;
    let git = crate::git::Git::new(&root);
    // The tag must name exactly what is built.
    git.require_clean()?;
    let tag = git.short_head()?;
    let config = crate::aws::load_for(&env).await?;
    let ecr = aws_sdk_ecr::Client::new(&config);
    let already = tag_exists(&ecr, &env, &tag).await?;
    let plan = plan(&env, &tag, already);
    let mut progress = crate::progress::Progress::new("build");
    if !args.dry_run {
        build_and_push(&ecr, &env, &root, &plan, &mut progress).await?;
    }
    let summary = format!(
        "build {}: {} {}",
        env.name,
        plan.image,
        match (args.dry_run, plan.already_pushed) {
            (_, true) => "is in ECR already",
            (true, false) => "would be built and pushed (dry run)",
            (false, false) => "built and pushed",
        }
    );
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::json!({"dry_run": args.dry_run, "plan": plan})
        )?;
        out.flush()?;
        eprintln!("{summary}");
    } else {
        for step in &plan.steps {
            writeln!(
                out,
                "{}{step}",
                if args.dry_run { "would run: " } else { "ran: " }
            )?;
        }
        writeln!(out, "{summary}")?;
    }
    Ok(crate::Verdict::Clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_token_is_decoded_and_a_bad_one_refused() {
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD.encode("AWS:s3cret");
        assert_eq!(decode_token(&token).unwrap(), "s3cret");
        assert!(decode_token("not base64!").is_err());
        let other = base64::engine::general_purpose::STANDARD.encode("root:x");
        assert!(decode_token(&other).is_err());
    }
}
