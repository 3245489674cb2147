//! What a checking command found, one typed finding per problem, each
//! with a stable code and the change that fixes it; printed the way
//! `flutter doctor` does (`✓` / `!` / `✗`, the fix indented below), or as
//! JSON for machines.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Checked and fine (kept so the output says what was checked).
    Ok,
    /// Works today, but is a risk or could not be checked.
    Warning,
    /// Broken: the command exits 1.
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable, e.g. `irsa.trust.sub`.
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    /// The exact change or command that fixes it (empty when `Ok`).
    pub fix: String,
}

impl Finding {
    pub fn ok(code: &'static str, message: impl Into<String>) -> Finding {
        Finding {
            code,
            severity: Severity::Ok,
            message: message.into(),
            fix: String::new(),
        }
    }

    pub fn warning(
        code: &'static str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            code,
            severity: Severity::Warning,
            message: message.into(),
            fix: fix.into(),
        }
    }

    pub fn error(
        code: &'static str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            code,
            severity: Severity::Error,
            message: message.into(),
            fix: fix.into(),
        }
    }

    /// `✓ message [code]`, then the fix indented.
    pub fn render(&self) -> String {
        let mark = match self.severity {
            Severity::Ok => "✓",
            Severity::Warning => "!",
            Severity::Error => "✗",
        };
        let mut out = format!("{mark} {} [{}]", self.message, self.code);
        if !self.fix.is_empty() {
            out.push_str(&format!("\n    fix: {}", self.fix));
        }
        out
    }
}

/// Whether any finding is an error.
pub fn any_error(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}

/// `N ok, N warnings, N errors`.
pub fn tally(findings: &[Finding]) -> String {
    let count = |s| findings.iter().filter(|f| f.severity == s).count();
    format!(
        "{} ok, {} warnings, {} errors",
        count(Severity::Ok),
        count(Severity::Warning),
        count(Severity::Error)
    )
}

/// Prints the findings (lines, or one JSON object on stdout) and the
/// summary line (stdout, or stderr with `--json`).
pub fn print(findings: &[Finding], json: bool, summary: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if json {
        let doc = serde_json::json!({
            "ok": !any_error(findings),
            "findings": findings,
        });
        writeln!(out, "{doc}")?;
        out.flush()?;
        eprintln!("{summary}");
    } else {
        for f in findings {
            writeln!(out, "{}", f.render())?;
        }
        writeln!(out, "{summary}")?;
        out.flush()?;
    }
    Ok(())
}
