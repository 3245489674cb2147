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
pub mod cert;
mod commands;
mod confirm;
mod deploy;
mod doctor;
pub mod environment;
mod finding;
mod git;
mod gitops;
mod image;
pub mod irsa;
pub mod kube;
mod pause;
pub mod prewarm;
mod progress;
mod values;

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
    #[command(about = commands::BUILD)]
    Build(image::BuildArgs),
    #[command(about = commands::CERT, subcommand)]
    Cert(cert::Command),
    #[command(about = commands::DEPLOY)]
    Deploy(deploy::Args),
    #[command(about = commands::DOCTOR)]
    Doctor(Box<doctor::Args>),
    #[command(about = commands::IRSA, subcommand)]
    Irsa(irsa::Command),
    #[command(about = commands::PAUSE)]
    Pause(pause::Args),
    #[command(about = commands::PREWARM)]
    Prewarm(prewarm::Args),
    #[command(about = commands::PROMOTE)]
    Promote(gitops::PromoteArgs),
    #[command(about = commands::RESUME)]
    Resume(pause::Args),
    #[command(about = commands::ROLLBACK)]
    Rollback(gitops::RollbackArgs),
}

impl Command {
    fn name(&self) -> &'static str {
        match self {
            Command::Audit(_) => "audit",
            Command::Build(_) => "build",
            Command::Cert(_) => "cert",
            Command::Deploy(_) => "deploy",
            Command::Doctor(_) => "doctor",
            Command::Irsa(_) => "irsa",
            Command::Pause(_) => "pause",
            Command::Prewarm(_) => "prewarm",
            Command::Promote(_) => "promote",
            Command::Resume(_) => "resume",
            Command::Rollback(_) => "rollback",
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
        Command::Build(args) => image::build(args).await.map_err(anyhow::Error::from),
        Command::Cert(command) => cert::run(command).await.map_err(anyhow::Error::from),
        Command::Deploy(args) => deploy::run(args).await.map_err(anyhow::Error::from),
        Command::Doctor(args) => doctor::run(args).await.map_err(anyhow::Error::from),
        Command::Irsa(command) => irsa::run(command).await.map_err(anyhow::Error::from),
        Command::Pause(args) => pause::run(args, pause::Direction::Pause)
            .await
            .map_err(anyhow::Error::from),
        Command::Prewarm(args) => prewarm::run(args).await.map_err(anyhow::Error::from),
        Command::Promote(args) => gitops::promote(args).await.map_err(anyhow::Error::from),
        Command::Resume(args) => pause::run(args, pause::Direction::Resume)
            .await
            .map_err(anyhow::Error::from),
        Command::Rollback(args) => gitops::rollback(args).await.map_err(anyhow::Error::from),
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
            panic!("not audit")
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
