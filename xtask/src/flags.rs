//! The command line of `cargo xtask`: one clap struct per command, so that
//! every command has a `--help` and the help cannot drift from what the
//! code accepts.

use std::num::NonZeroU64;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

/// The one entry point for people and pipelines.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Dev(Dev),
    Test(Test),
    Bench(Bench),
    Migrate(Migrate),
    Deps(Deps),
}

/// Run the whole product locally: Redis (or a 3-master Redis Cluster),
/// MariaDB (migrated), a moto server with the event log's Kinesis stream,
/// throwaway keys, a demo event and the app, on free ports under
/// target/dev. Ctrl-C stops everything.
#[derive(Debug, Default, Args, PartialEq, Eq)]
pub struct Dev {
    /// Run Redis as a 3-master Redis Cluster instead of one server.
    #[arg(long)]
    pub cluster: bool,
    /// Start everything, book a seat as a demo fan, stop (used by `test`).
    #[arg(long)]
    pub check: bool,
    /// Where the AWS side (the event log's Kinesis stream) comes from.
    #[arg(long, value_enum, default_value_t)]
    pub aws: Aws,
}

/// The local AWS of `cargo xtask dev`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Aws {
    /// A moto server started here, from the venv `cargo xtask deps` installs.
    #[default]
    Moto,
    /// The Docker Compose stack in localstack/ (LocalStack on
    /// localhost:4566, with its MySQL and Valkey), started by you.
    Localstack,
}

/// Everything CI checks: cargo fmt --check, clippy -D warnings, every test,
/// the API fuzzed from its OpenAPI document (schemathesis), the chart,
/// ArgoCD, GitLab CI and localstack compose checks, the Terraform checks
/// (fmt, validate, tests, checkov, apply against moto) and the dev stack
/// check; ends with one summary line.
#[derive(Debug, Default, Args, PartialEq, Eq)]
pub struct Test {
    /// Skip the slow load-style tests.
    #[arg(long)]
    pub quick: bool,
    /// Run only the steps whose name starts with this (repeatable), e.g.
    /// `--only helm --only terraform`; CI runs them all.
    #[arg(long, value_name = "STEP")]
    pub only: Vec<String>,
}

/// Figures, not pass/fail: peak HTTP joins/s against the raw Redis join
/// script, latency with many open connections, 1,000 fans on 100 seats,
/// holds while confirms run, memory per open WebSocket, and how soon an
/// admission reaches a socket on another replica (release builds).
#[derive(Debug, Args, PartialEq, Eq)]
pub struct Bench {
    /// Seconds of each peak measurement.
    #[arg(long, default_value = "10")]
    pub seconds: NonZeroU64,
    /// Open connections in the latency run (one request a second each).
    #[arg(long, default_value = "10000")]
    pub fans: NonZeroU64,
    /// Load-generator processes the latency run is spread over.
    #[arg(long, default_value = "4")]
    pub fan_processes: NonZeroU64,
    /// Open WebSockets in the memory run (the replica's RSS per socket).
    #[arg(long, default_value = "4000")]
    pub sockets: NonZeroU64,
    /// Open WebSockets in the push run (over 3 replicas).
    #[arg(long, default_value = "10000")]
    pub push_sockets: NonZeroU64,
}

impl Default for Bench {
    fn default() -> Self {
        Bench::parse_from_defaults()
    }
}

impl Bench {
    fn parse_from_defaults() -> Bench {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            bench: Bench,
        }
        Only::parse_from(["bench"]).bench
    }
}

/// Apply the database migrations (`admission migrate`) to --database-url,
/// else $DATABASE_URL, else the `cargo xtask dev` database (as its
/// migration user); or list applied, pending and drifted ones (`status`,
/// exit 1 on drift). In AWS the database is reachable only from inside the
/// cluster, where the chart's PreSync Job migrates.
#[derive(Debug, Default, Args, PartialEq, Eq)]
pub struct Migrate {
    /// `up` applies what is pending; `status` lists applied, pending and
    /// drifted migrations (a changed checksum) and changes nothing.
    #[arg(value_enum, default_value_t = MigrateAction::Up)]
    pub action: MigrateAction,
    /// mysql://user:password@host:3306/database, as a user allowed to change
    /// the schema.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Change nothing: show which migrations `up` would apply.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MigrateAction {
    #[default]
    Up,
    Status,
}

/// Install what the dev stack and the tests need, pinned, when this
/// machine can (Debian as root); otherwise print the exact command.
#[derive(Debug, Default, Args, PartialEq, Eq)]
pub struct Deps {}

/// The whole command line as `--help` shows it: the `deps` help lists the
/// very packages `deps` installs, and the ops commands (handed over to the
/// ops binary before clap parses anything, see `ops.rs`) are listed too.
pub fn command() -> clap::Command {
    Cli::command()
        .mut_subcommand("deps", |c| {
            c.long_about(format!(
                "Install what the dev stack and the tests need, pinned, when this machine can \
                 (Debian as root); otherwise print the exact command. It installs:\n{}",
                crate::tools::describe()
            ))
        })
        .subcommands(crate::ops::help_entries())
        .after_help(crate::ops::HELP_NOTE)
}

/// Parses the process arguments.
pub fn parse() -> Cli {
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn p(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_has_help() {
        let cli = Cli::command();
        let names: Vec<String> = cli
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        assert!(names.len() >= 5, "{names:?}");
        for name in names {
            let err = p(&[&name, "--help"]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::DisplayHelp, "{name} --help");
        }
        assert_eq!(p(&["--help"]).unwrap_err().kind(), ErrorKind::DisplayHelp);
    }

    #[test]
    fn parses_commands_and_flags() {
        assert!(p(&[]).unwrap().command.is_none());
        assert!(matches!(
            p(&["dev", "--cluster"]).unwrap().command,
            Some(Command::Dev(Dev {
                cluster: true,
                check: false,
                aws: Aws::Moto,
            }))
        ));
        assert!(matches!(
            p(&["dev", "--aws", "localstack"]).unwrap().command,
            Some(Command::Dev(Dev {
                aws: Aws::Localstack,
                ..
            }))
        ));
        assert!(p(&["dev", "--aws", "aws"]).is_err());
        match p(&["bench", "--fans", "500"]).unwrap().command {
            Some(Command::Bench(b)) => {
                assert_eq!(b.fans.get(), 500);
                assert_eq!(b.seconds, Bench::default().seconds);
            }
            other => panic!("{other:?}"),
        }
        assert!(p(&["bench", "--fans", "0"]).is_err());
        match p(&["migrate"]).unwrap().command {
            Some(Command::Migrate(m)) => assert_eq!(m, Migrate::default()),
            other => panic!("{other:?}"),
        }
        match p(&["migrate", "status", "--database-url", "mysql://u@h/d"])
            .unwrap()
            .command
        {
            Some(Command::Migrate(m)) => assert_eq!(
                (m.action, m.database_url.as_deref(), m.dry_run),
                (MigrateAction::Status, Some("mysql://u@h/d"), false)
            ),
            other => panic!("{other:?}"),
        }
        match p(&["migrate", "up", "--dry-run"]).unwrap().command {
            Some(Command::Migrate(m)) => assert!(m.dry_run && m.action == MigrateAction::Up),
            other => panic!("{other:?}"),
        }
        assert!(p(&["migrate", "down"]).is_err());
        assert!(p(&["dev", "--nope"]).is_err());
        assert!(p(&["launch"]).is_err());
    }

    #[test]
    fn the_help_lists_the_ops_commands_without_building_them() {
        let help = command().render_help().to_string();
        assert!(help.contains("audit"), "{help}");
        assert!(
            help.contains("Check a sale's fairness from the Kinesis event log"),
            "{help}"
        );
        assert!(help.contains("(ops)"), "{help}");
        command().debug_assert();
    }
}
