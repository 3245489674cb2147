//! The git side of the GitOps commands (promote, rollback, deploy's tag
//! bump, cert rotate's new ARN, prewarm's HPA floor): every change to an
//! environment is a commit on the one branch ArgoCD syncs, so the history
//! is the record of what ran where, and the place to roll back from.
//!
//! Runs the `git` program in the repository's root; a missing git, a
//! dirty tree or a failed command is a typed error that says what to do.

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git ({0}): install git, or run from a checkout")]
    Missing(#[source] std::io::Error),
    #[error("`git {args}` failed: {stderr}")]
    Failed { args: String, stderr: String },
    #[error(
        "the working tree has uncommitted changes ({0}): commit or stash them first, so the commit holds only this change"
    )]
    Dirty(String),
}

/// A git repository (its root).
#[derive(Debug, Clone)]
pub struct Git {
    root: PathBuf,
}

impl Git {
    pub fn new(root: &Path) -> Git {
        Git {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Runs `git args` and returns its stdout, trimmed at the end.
    pub fn run(&self, args: &[&str]) -> Result<String, GitError> {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.root)
            .args(args)
            .output()
            .map_err(GitError::Missing)?;
        if !out.status.success() {
            return Err(GitError::Failed {
                args: args.join(" "),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    }

    /// Refuses a tree with changes (tracked or untracked).
    pub fn require_clean(&self) -> Result<(), GitError> {
        let status = self.run(&["status", "--porcelain"])?;
        if status.is_empty() {
            return Ok(());
        }
        let files: Vec<&str> = status
            .lines()
            .take(5)
            .map(|l| l.get(3..).unwrap_or(l))
            .collect();
        let more = status.lines().count().saturating_sub(5);
        let mut shown = files.join(", ");
        if more > 0 {
            shown.push_str(&format!(" and {more} more"));
        }
        Err(GitError::Dirty(shown))
    }

    /// `HEAD`'s short sha (7 characters, as image tags are).
    pub fn short_head(&self) -> Result<String, GitError> {
        self.run(&["rev-parse", "--short=7", "HEAD"])
    }

    /// Whether `rev` names a commit here.
    pub fn has_commit(&self, rev: &str) -> bool {
        self.run(&[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ])
        .is_ok()
    }

    /// `path` as it was at `rev`.
    pub fn show(&self, rev: &str, path: &str) -> Result<String, GitError> {
        self.run(&["show", &format!("{rev}:{path}")])
    }

    /// The commits that changed `path`, newest first.
    pub fn commits_touching(&self, path: &str) -> Result<Vec<String>, GitError> {
        let out = self.run(&["log", "--format=%H", "--", path])?;
        Ok(out.lines().map(str::to_string).collect())
    }

    /// Files added under `dir` between `from` and `to` (commits), sorted.
    pub fn added_files(&self, from: &str, to: &str, dir: &str) -> Result<Vec<String>, GitError> {
        let out = self.run(&[
            "diff",
            "--name-only",
            "--diff-filter=A",
            &format!("{from}..{to}"),
            "--",
            dir,
        ])?;
        let mut files: Vec<String> = out.lines().map(str::to_string).collect();
        files.sort();
        Ok(files)
    }

    /// Commits `paths` with `message`; returns the new short sha.
    pub fn commit(&self, paths: &[&str], message: &str) -> Result<String, GitError> {
        let mut add = vec!["add", "--"];
        add.extend(paths);
        self.run(&add)?;
        let mut commit = vec!["commit", "--quiet", "-m", message, "--"];
        commit.extend(paths);
        self.run(&commit)?;
        self.short_head()
    }

    /// Pushes the current branch to its upstream (`origin` by default).
    pub fn push(&self) -> Result<(), GitError> {
        self.run(&["push", "--quiet", "origin", "HEAD"]).map(|_| ())
    }
}
