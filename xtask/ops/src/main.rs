//! `ops`: the tooling's AWS side, one module per command, and the one crate
//! of the tooling that compiles the AWS SDK. People and pipelines run it
//! as `cargo xtask <command>`: the light xtask builds it on first use and
//! hands the arguments over unchanged (`xtask/src/ops.rs`).
//!
//! Each command's `run` returns a [`Verdict`] or its own typed error;
//! `anyhow` is used only here, to print that error with its causes.
//! Exit codes: 0 clean, 1 the command found problems, 2 it could not run
//! (clap's usage errors are 2 as well).

mod audit;
mod aws;
mod commands;
mod doctor;
pub mod environment;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The AWS side of `cargo xtask`: the commands that call AWS APIs.
#[derive(Debug, Parser)]
#[command(name = "ops", max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(about = commands::AUDIT)]
    Audit(audit::Args),
    #[command(about = commands::DOCTOR)]
    Doctor(Box<doctor::Args>),
}

impl Command {
    fn name(&self) -> &'static str {
        match self {
            Command::Audit(_) => "audit",
            Command::Doctor(_) => "doctor",
        }
    }
}

/// How a command that ran ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing wrong: exit 0.
    Clean,
    /// The command ran and found problems: exit 1.
    Findings,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let name = cli.command.name();
    let result: anyhow::Result<Verdict> = match &cli.command {
        Command::Audit(args) => audit::run(args).await.map_err(anyhow::Error::from),
        Command::Doctor(args) => doctor::run(args).await.map_err(anyhow::Error::from),
    };
    match result {
        Ok(Verdict::Clean) => ExitCode::SUCCESS,
        Ok(Verdict::Findings) => ExitCode::from(1),
        Err(e) => {
            eprintln!("{name}: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_commands_are_those_xtask_lists() {
        let cli = Cli::command();
        let ours: Vec<(String, String)> = cli
            .get_subcommands()
            .filter(|c| c.get_name() != "help")
            .map(|c| {
                (
                    c.get_name().to_string(),
                    c.get_about().map(|a| a.to_string()).unwrap_or_default(),
                )
            })
            .collect();
        let listed: Vec<(String, String)> = commands::COMMANDS
            .iter()
            .map(|(n, d)| (n.to_string(), d.to_string()))
            .collect();
        assert_eq!(ours, listed);
    }

    #[test]
    fn audit_takes_the_documented_flags() {
        let cli = Cli::try_parse_from([
            "ops",
            "audit",
            "--stream",
            "s",
            "--event",
            "e",
            "--redis",
            "redis://x:1",
            "--key-prefix",
            "dev:",
            "--json",
        ])
        .unwrap();
        let Command::Audit(a) = cli.command else {
            panic!("audit parses as audit")
        };
        assert_eq!(
            (
                a.stream.as_str(),
                a.event.as_str(),
                a.redis.as_deref(),
                a.key_prefix.as_str(),
                a.json
            ),
            ("s", "e", Some("redis://x:1"), "dev:", true)
        );
        let a = match Cli::try_parse_from(["ops", "audit", "--stream", "s", "--event", "e"]) {
            Ok(Cli {
                command: Command::Audit(a),
            }) => a,
            other => panic!("{other:?}"),
        };
        assert_eq!((a.redis, a.key_prefix.as_str(), a.json), (None, "", false));
        // Both names are required; a usage error exits 2.
        let err = Cli::try_parse_from(["ops", "audit", "--stream", "s"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
