//! `promote` and `rollback`: GitOps changes of an environment's image tag.
//! The tag lives in the environment's values file (`image.tag`) on the one
//! branch ArgoCD syncs; each change is one commit that says what it
//! brings, so the history is the record of what ran where and the source
//! of `rollback`'s previous tag.
//!
//! Tags are git short shas (`build` never makes another kind), so the
//! migrations an image adds over another are the files added under
//! `app/migrations/` between the two commits: the chart's PreSync Job
//! applies them when ArgoCD syncs.

use std::io::Write;

use crate::environment::Environment;
use crate::git::Git;
use crate::values::{self, Scalar};

pub const MIGRATIONS: &str = "app/migrations";
const TAG: &[&str] = &["image", "tag"];

#[derive(Debug, thiserror::Error)]
pub enum GitopsError {
    #[error(transparent)]
    Environment(#[from] crate::environment::EnvironmentError),
    #[error(transparent)]
    Aws(#[from] crate::aws::AwsError),
    #[error(transparent)]
    Git(#[from] crate::git::GitError),
    #[error(transparent)]
    Values(#[from] values::ValuesError),
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    #[error(transparent)]
    Confirm(#[from] crate::confirm::ConfirmError),
    #[error("{0}")]
    Refused(String),
    #[error("writing the report: {0}")]
    Output(#[from] std::io::Error),
}

/// The environment's current image tag.
pub fn current_tag(root: &std::path::Path, env: &Environment) -> Result<String, GitopsError> {
    values::read(root, &env.kubernetes.values_file, TAG)?
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            GitopsError::Refused(format!(
                "{} has no image.tag: deploy a first image (`cargo xtask deploy dev`)",
                env.kubernetes.values_file
            ))
        })
}

/// The migrations `new` adds over `old` (both commits), or why they
/// cannot be listed.
pub fn added_migrations(git: &Git, old: &str, new: &str) -> Result<Vec<String>, String> {
    for tag in [old, new] {
        if !git.has_commit(tag) {
            return Err(format!("{tag} is not a commit of this repository"));
        }
    }
    git.added_files(old, new, MIGRATIONS)
        .map(|files| {
            files
                .into_iter()
                .map(|f| f.trim_start_matches(&format!("{MIGRATIONS}/")).to_string())
                .collect()
        })
        .map_err(|e| e.to_string())
}

fn migrations_text(listed: &Result<Vec<String>, String>) -> String {
    match listed {
        Ok(m) if m.is_empty() => "Migrations the PreSync Job will apply: none.".to_string(),
        Ok(m) => format!(
            "Migrations the PreSync Job will apply:\n{}",
            m.iter()
                .map(|f| format!("- {f}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
        Err(why) => format!("Migrations: cannot be listed ({why})."),
    }
}

/// What a tag change is, for `--dry-run` and `--json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TagChange {
    pub env: String,
    pub values_file: String,
    pub from: String,
    pub to: String,
    pub migrations: Option<Vec<String>>,
    pub message: String,
    pub commit: Option<String>,
}

fn print(change: &TagChange, json: bool, dry_run: bool, summary: &str) -> Result<(), GitopsError> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(
            out,
            "{}",
            serde_json::json!({"dry_run": dry_run, "change": change})
        )?;
        out.flush()?;
        eprintln!("{summary}");
    } else {
        writeln!(
            out,
            "{}{}: image.tag {} -> {}\n{}",
            if dry_run {
                "would commit to "
            } else {
                "committed to "
            },
            change.values_file,
            change.from,
            change.to,
            change
                .message
                .lines()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        )?;
        writeln!(out, "{summary}")?;
    }
    Ok(())
}

/// Sets the tag, commits, and fills `change.commit`.
fn commit(git: &Git, change: &mut TagChange) -> Result<(), GitopsError> {
    values::set_in_file(
        git.root(),
        &change.values_file,
        TAG,
        Scalar::Str(&change.to),
    )?;
    change.commit = Some(git.commit(&[&change.values_file], &change.message)?);
    Ok(())
}

/// Whether the image is in the environment's ECR; refuses otherwise.
async fn require_image(env: &Environment, tag: &str) -> Result<(), GitopsError> {
    let config = crate::aws::load_for(env).await?;
    let ecr = aws_sdk_ecr::Client::new(&config);
    if !crate::image::tag_exists(&ecr, env, tag).await? {
        return Err(GitopsError::Refused(format!(
            "{} is not in {}'s ECR: build it (`cargo xtask build --env {}`), or let ECR replication copy it there first",
            crate::image::image_ref(env, tag),
            env.name,
            env.name
        )));
    }
    Ok(())
}

// ---- `promote` -----------------------------------------------------------

#[derive(Debug, Clone, clap::Args)]
pub struct PromoteArgs {
    /// The environment whose image tag is copied.
    #[arg(long, value_name = "ENV")]
    pub from: String,
    /// The environment that gets it.
    #[arg(long, value_name = "ENV")]
    pub to: String,
    /// Print the commit that would be made; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask before changing prod.
    #[arg(long)]
    pub yes: bool,
    /// Print one JSON object on stdout (the summary goes to stderr).
    #[arg(long)]
    pub json: bool,
}

pub async fn promote(args: &PromoteArgs) -> Result<crate::Verdict, GitopsError> {
    let root = crate::environment::repository_root()?;
    let from = Environment::load(&root, &args.from)?;
    let to = Environment::load(&root, &args.to)?;
    if from.name == to.name {
        return Err(GitopsError::Refused(
            "--from and --to name the same environment".into(),
        ));
    }
    let git = Git::new(&root);
    git.require_clean()?;
    let new = current_tag(&root, &from)?;
    let old = values::read(&root, &to.kubernetes.values_file, TAG)?.unwrap_or_default();
    let listed = added_migrations(&git, &old, &new);
    let message = format!(
        "promote {} -> {}: image {new} (was {})\n\n{}",
        from.name,
        to.name,
        if old.is_empty() { "none" } else { &old },
        migrations_text(&listed)
    );
    let mut change = TagChange {
        env: to.name.clone(),
        values_file: to.kubernetes.values_file.clone(),
        from: old.clone(),
        to: new.clone(),
        migrations: listed.ok(),
        message,
        commit: None,
    };
    if old == new {
        let summary = format!(
            "promote {} -> {}: {} runs {new} already; nothing to do",
            from.name, to.name, to.name
        );
        print(&change, args.json, true, &summary)?;
        return Ok(crate::Verdict::Clean);
    }
    require_image(&to, &new).await?;
    if !args.dry_run {
        crate::confirm::production_change(
            &to,
            &format!("promote image {new} to {}", to.name),
            args.yes,
        )?;
        commit(&git, &mut change)?;
    }
    let summary = format!(
        "promote {} -> {}: {new} {} (push for ArgoCD: `git push`)",
        from.name,
        to.name,
        match &change.commit {
            Some(sha) => format!("committed as {sha}"),
            None => "would be committed (dry run)".into(),
        }
    );
    print(&change, args.json, args.dry_run, &summary)?;
    Ok(crate::Verdict::Clean)
}

// ---- `rollback` ----------------------------------------------------------

#[derive(Debug, Clone, clap::Args)]
pub struct RollbackArgs {
    /// The environment to roll back.
    #[arg(long, value_name = "ENV")]
    pub env: String,
    /// The tag to put back (default: the one before the current, from the
    /// values file's git history).
    #[arg(long, value_name = "TAG")]
    pub to: Option<String>,
    /// Print the commit that would be made; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask before changing prod.
    #[arg(long)]
    pub yes: bool,
    /// Print one JSON object on stdout (the summary goes to stderr).
    #[arg(long)]
    pub json: bool,
}

/// The tags the values file has had, newest first, without repeats in a
/// row (from its git history).
pub fn tag_history(git: &Git, values_file: &str) -> Result<Vec<String>, GitopsError> {
    let mut tags: Vec<String> = Vec::new();
    for commit in git.commits_touching(values_file)? {
        let Ok(text) = git.show(&commit, values_file) else {
            continue;
        };
        if let Some(tag) = values::get(&text, TAG).filter(|t| !t.is_empty()) {
            if tags.last() != Some(&tag) {
                tags.push(tag);
            }
        }
    }
    Ok(tags)
}

pub async fn rollback(args: &RollbackArgs) -> Result<crate::Verdict, GitopsError> {
    let root = crate::environment::repository_root()?;
    let env = Environment::load(&root, &args.env)?;
    let git = Git::new(&root);
    git.require_clean()?;
    let current = current_tag(&root, &env)?;
    let target = match &args.to {
        Some(tag) => tag.clone(),
        None => {
            let history = tag_history(&git, &env.kubernetes.values_file)?;
            history
                .iter()
                .find(|t| **t != current)
                .cloned()
                .ok_or_else(|| {
                    GitopsError::Refused(format!(
                        "{} has had no image tag before {current}: nothing to roll back to (give one with --to TAG)",
                        env.kubernetes.values_file
                    ))
                })?
        }
    };
    if target == current {
        return Err(GitopsError::Refused(format!(
            "{} runs {current} already",
            env.name
        )));
    }
    require_image(&env, &target).await?;
    let listed = added_migrations(&git, &target, &current);
    let undone = match &listed {
        Ok(m) if !m.is_empty() => format!(
            "\n\nThe schema stays as {current} left it (migrations are not undone): {}.",
            m.join(", ")
        ),
        _ => String::new(),
    };
    let mut change = TagChange {
        env: env.name.clone(),
        values_file: env.kubernetes.values_file.clone(),
        from: current.clone(),
        to: target.clone(),
        migrations: listed.ok(),
        message: format!(
            "rollback {}: image {target} (was {current}){undone}",
            env.name
        ),
        commit: None,
    };
    if !args.dry_run {
        crate::confirm::production_change(&env, &format!("roll back to image {target}"), args.yes)?;
        commit(&git, &mut change)?;
    }
    let summary = format!(
        "rollback {}: {current} -> {target} {} (push for ArgoCD: `git push`)",
        env.name,
        match &change.commit {
            Some(sha) => format!("committed as {sha}"),
            None => "would be committed (dry run)".into(),
        }
    );
    print(&change, args.json, args.dry_run, &summary)?;
    Ok(crate::Verdict::Clean)
}
