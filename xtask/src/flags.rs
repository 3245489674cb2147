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
    Loadtest(Loadtest),
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
/// admission reaches a socket on another replica (release builds). The
/// `bench` scenario of `cargo xtask loadtest`: the run lands in
/// target/loadtest/<timestamp>-bench/ (and latest-bench).
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

/// Load test one scenario of the seeds (figures, never pass/fail): starts
/// Redis (MariaDB when booking is in play) and app replicas, or drives
/// --targets; measures the raw Redis ceiling of the join script; runs
/// several load processes from 127.0.0.2, .3, … on an open-loop schedule
/// (latency from the scheduled send time, HDR histograms, the generator's
/// own lag beside it); writes <target>/loadtest/<timestamp>-<scenario>/:
/// report.json, report.md, samples.csv and SVG charts. Exits 1 only when a
/// sanity check fails (counts, lost or duplicate places, seats sold twice).
#[derive(Debug, Args, PartialEq, Eq)]
pub struct Loadtest {
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// Fans over all load processes (catalog: concurrent connections).
    /// Defaults per scenario: steady/ramp 10,000, burst 100,000, sockets
    /// 19,000, drain 10,000, contention 1,000, soak 2,000, catalog 100.
    #[arg(long)]
    pub fans: Option<NonZeroU64>,
    /// Seconds of load (steady 30, ramp 60, soak 600, catalog 20; burst and
    /// sockets: how long the sockets are held after the joins).
    #[arg(long)]
    pub duration: Option<NonZeroU64>,
    /// Drive running replicas instead of starting some (http://host:port,
    /// comma-separated); needs --redis.
    #[arg(long, value_delimiter = ',', value_parser = crate::loadtest::parse_target, requires = "redis")]
    pub targets: Vec<std::net::SocketAddr>,
    /// The Redis of --targets (redis://…), for the raw ceiling and the
    /// drain's outbox.
    #[arg(long, requires = "targets")]
    pub redis: Option<String>,
    /// The admin token of --targets.
    #[arg(long, env = "LOADTEST_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// App replicas to start (burst 6, drain 3, others 1).
    #[arg(long)]
    pub replicas: Option<NonZeroU64>,
    /// Load processes (default: enough for 15,000 sockets each, at least 2).
    #[arg(long)]
    pub processes: Option<NonZeroU64>,
    /// Drain: admissions a second (500); catalog: requests per phase
    /// (10,000); sockets: sockets opened a second (500).
    #[arg(long)]
    pub rate: Option<NonZeroU64>,
    /// Small numbers, a few seconds, debug builds: the shape, not figures
    /// (what `cargo xtask test` runs).
    #[arg(long)]
    pub quick: bool,
    /// Build and run release binaries even with --quick (figures always use
    /// release builds).
    #[arg(long)]
    pub release: bool,
}

impl Loadtest {
    /// A scenario with every number at its default, started here.
    pub fn defaults(scenario: Scenario, quick: bool) -> Loadtest {
        Loadtest {
            scenario,
            fans: None,
            duration: None,
            targets: Vec::new(),
            redis: None,
            admin_token: None,
            replicas: None,
            processes: None,
            rate: None,
            quick,
            release: false,
        }
    }
}

/// The scenarios of `cargo xtask loadtest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// 10,000 fans join, then poll once a second (open loop); p50/p90/p99/max per route.
    Steady,
    /// 100,000 fans join within 10 s, then wait on WebSockets over 6 replicas.
    Burst,
    /// Admission rate against the set rate, capacity, admitted → socket over 3 replicas.
    Drain,
    /// 1,000 admitted fans on 100 seats, by seat id and by quantity (MariaDB).
    Contention,
    /// 100 → 1,000 → 10,000 fans in stages: where latency bends.
    Ramp,
    /// A steady load for 10 minutes: memory, latency drift, errors.
    Soak,
    /// Event list and the seat map of a 10,000-seat event at 100 concurrent.
    Catalog,
    /// As many open WebSockets on one replica as its files allow; RSS per socket.
    Sockets,
    /// `cargo xtask bench`'s six measurements in one run (its defaults;
    /// --fans, --duration and --processes size the latency run).
    Bench,
}

impl Scenario {
    pub const ALL: [Scenario; 9] = [
        Scenario::Steady,
        Scenario::Burst,
        Scenario::Drain,
        Scenario::Contention,
        Scenario::Ramp,
        Scenario::Soak,
        Scenario::Catalog,
        Scenario::Sockets,
        Scenario::Bench,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Steady => "steady",
            Scenario::Burst => "burst",
            Scenario::Drain => "drain",
            Scenario::Contention => "contention",
            Scenario::Ramp => "ramp",
            Scenario::Soak => "soak",
            Scenario::Catalog => "catalog",
            Scenario::Sockets => "sockets",
            Scenario::Bench => "bench",
        }
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
        match p(&["loadtest", "burst", "--quick", "--fans", "300"])
            .unwrap()
            .command
        {
            Some(Command::Loadtest(l)) => {
                assert_eq!((l.scenario, l.quick), (Scenario::Burst, true));
                assert_eq!(l.fans.map(|f| f.get()), Some(300));
            }
            other => panic!("{other:?}"),
        }
        assert!(p(&["loadtest", "nope"]).is_err());
        assert!(p(&["loadtest", "steady", "--targets", "http://127.0.0.1:1"]).is_err());
        assert!(p(&[
            "loadtest",
            "steady",
            "--targets",
            "https://x:1",
            "--redis",
            "redis://x"
        ])
        .is_err());
        assert!(p(&[
            "loadtest",
            "steady",
            "--targets",
            "http://127.0.0.1:1,127.0.0.1:2",
            "--redis",
            "redis://127.0.0.1:6379"
        ])
        .is_ok());
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
