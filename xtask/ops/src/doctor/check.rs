//! What a check is, what it finds, and the runner: every check at once,
//! each under its own timeout, a crash or a timeout of one reported as its
//! own result while the others go on.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::Ctx;

/// How a check ended (`status` in `--json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok,
    Warn,
    Fail,
    Skip,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }

    /// The mark in the human output (flutter doctor's).
    pub fn mark(self) -> &'static str {
        match self {
            Status::Ok => "✓",
            Status::Warn => "!",
            Status::Fail => "✗",
            Status::Skip => "-",
        }
    }
}

/// What one check found: a one-line summary, the lines that explain it,
/// and the exact command or change that fixes it (none when nothing needs
/// fixing; for a skip, the flag that lets the check run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub status: Status,
    pub summary: String,
    pub details: Vec<String>,
    pub fix: Option<String>,
}

impl Outcome {
    pub fn ok(summary: impl Into<String>) -> Outcome {
        Outcome {
            status: Status::Ok,
            summary: summary.into(),
            details: Vec::new(),
            fix: None,
        }
    }

    pub fn warn(summary: impl Into<String>, fix: impl Into<String>) -> Outcome {
        Outcome {
            status: Status::Warn,
            summary: summary.into(),
            details: Vec::new(),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(summary: impl Into<String>, fix: impl Into<String>) -> Outcome {
        Outcome {
            status: Status::Fail,
            summary: summary.into(),
            details: Vec::new(),
            fix: Some(fix.into()),
        }
    }

    /// Inputs are missing: `flags` names what would let the check run.
    pub fn skip(summary: impl Into<String>, flags: impl Into<String>) -> Outcome {
        Outcome {
            status: Status::Skip,
            summary: summary.into(),
            details: Vec::new(),
            fix: Some(flags.into()),
        }
    }

    pub fn detail(mut self, line: impl Into<String>) -> Outcome {
        self.details.push(line.into());
        self
    }

    pub fn details(mut self, lines: impl IntoIterator<Item = String>) -> Outcome {
        self.details.extend(lines);
        self
    }
}

pub type CheckFuture = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// One check of the registry.
#[derive(Clone, Copy)]
pub struct Check {
    /// The stable code (`--json`, and the name to run it alone).
    pub code: &'static str,
    /// What it looks at, for `--help` and the unknown-name error.
    pub about: &'static str,
    pub run: fn(Arc<Ctx>) -> CheckFuture,
}

/// A check's result, in registry order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub code: &'static str,
    pub outcome: Outcome,
}

/// Runs `checks` at once, each in its own task under `timeout`. A check
/// that panics is a `fail` saying so; one that outlasts the timeout is a
/// `warn` saying so (it may be slow rather than wrong); neither stops the
/// others.
pub async fn run_all(checks: &[Check], ctx: Arc<Ctx>, timeout: Duration) -> Vec<Finding> {
    let tasks: Vec<_> = checks
        .iter()
        .map(|check| {
            let ctx = ctx.clone();
            let run = check.run;
            tokio::spawn(async move { tokio::time::timeout(timeout, run(ctx)).await })
        })
        .collect();
    let mut findings = Vec::with_capacity(checks.len());
    for (check, task) in checks.iter().zip(tasks) {
        let outcome = match task.await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Outcome::warn(
                format!("timed out: no answer within {} s", timeout.as_secs_f32()),
                format!(
                    "run it alone with a longer limit: cargo xtask doctor {} --timeout {}",
                    check.code,
                    (timeout.as_secs() * 3).max(30)
                ),
            ),
            Err(e) => {
                let why = match e.try_into_panic() {
                    Ok(payload) => payload
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".into()),
                    Err(e) => e.to_string(),
                };
                Outcome::fail(
                    format!("the check crashed: {why}"),
                    "a bug in doctor: report it with this line (the other checks ran)",
                )
            }
        };
        findings.push(Finding {
            code: check.code,
            outcome,
        });
    }
    findings
}
