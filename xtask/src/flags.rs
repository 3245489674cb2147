//! Command-line flags of `cargo xtask`, parsed by hand to keep xtask's
//! dependencies few.

pub const USAGE: &str = "\
cargo xtask <command>

Commands:
  dev [--cluster] [--check]   Run the whole product locally: Redis (or a 3-master
                              Redis Cluster with --cluster) on free ports under
                              target/dev, throwaway keys, a demo event, the app.
                              Ctrl-C stops everything. --check starts it all, makes
                              a demo join, and stops (used by `test`).
  test [--quick]              Everything CI checks: cargo fmt --check, clippy
                              -D warnings, every test, and the dev stack check.
                              --quick skips the slow load-style tests.
  bench [--seconds N] [--fans N] [--fan-processes N]
                              Figures, not pass/fail: peak HTTP joins/s vs the raw
                              Redis join script, and latency with 10,000 open
                              connections at 10,000 req/s (release builds).
  migrate [--database-url URL]
                              Apply the database migrations (`admission migrate`) to
                              URL, else $DATABASE_URL, else the `cargo xtask dev`
                              database (as its migration user).
  deps                        Install the service binaries the tests need
                              (redis-server), pinned, when this machine can.
  help                        This text.";

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Dev(Dev),
    Test(Test),
    Bench(Bench),
    Migrate(Migrate),
    Deps,
    Help,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Dev {
    pub cluster: bool,
    pub check: bool,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Test {
    pub quick: bool,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Migrate {
    pub database_url: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Bench {
    /// Duration of each peak measurement.
    pub seconds: u64,
    /// Open connections in the latency run (one request a second each).
    pub fans: u64,
    /// Load-generator processes for the latency run.
    pub fan_processes: u64,
}

impl Default for Bench {
    fn default() -> Self {
        Bench {
            seconds: 10,
            fans: 10_000,
            fan_processes: 4,
        }
    }
}

pub fn parse(args: &[String]) -> Result<Command, String> {
    let Some((cmd, rest)) = args.split_first() else {
        return Ok(Command::Help);
    };
    let flags: Vec<&str> = rest.iter().map(String::as_str).collect();
    let unknown = |f: &str| Err(format!("unknown flag `{f}` for `{cmd}`"));
    match cmd.as_str() {
        "dev" => {
            let mut d = Dev::default();
            for f in flags {
                match f {
                    "--cluster" => d.cluster = true,
                    "--check" => d.check = true,
                    other => return unknown(other),
                }
            }
            Ok(Command::Dev(d))
        }
        "test" => {
            let mut t = Test::default();
            for f in flags {
                match f {
                    "--quick" => t.quick = true,
                    other => return unknown(other),
                }
            }
            Ok(Command::Test(t))
        }
        "bench" => {
            let mut b = Bench::default();
            let mut it = flags.into_iter();
            while let Some(f) = it.next() {
                let mut value = || -> Result<u64, String> {
                    it.next()
                        .and_then(|v| v.parse().ok())
                        .filter(|v| *v > 0)
                        .ok_or_else(|| format!("`{f}` needs a positive number"))
                };
                match f {
                    "--seconds" => b.seconds = value()?,
                    "--fans" => b.fans = value()?,
                    "--fan-processes" => b.fan_processes = value()?,
                    other => return unknown(other),
                }
            }
            Ok(Command::Bench(b))
        }
        "migrate" => match flags.as_slice() {
            [] => Ok(Command::Migrate(Migrate::default())),
            ["--database-url", url] => Ok(Command::Migrate(Migrate {
                database_url: Some(url.to_string()),
            })),
            [other, ..] => unknown(other),
        },
        "deps" if flags.is_empty() => Ok(Command::Deps),
        "help" | "--help" | "-h" => Ok(Command::Help),
        other => Err(format!("unknown command `{other}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, String> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn parses_commands_and_flags() {
        assert_eq!(p(&[]), Ok(Command::Help));
        assert_eq!(
            p(&["dev", "--cluster"]),
            Ok(Command::Dev(Dev {
                cluster: true,
                check: false
            }))
        );
        assert_eq!(p(&["test"]), Ok(Command::Test(Test::default())));
        assert_eq!(
            p(&["bench", "--fans", "500"]),
            Ok(Command::Bench(Bench {
                fans: 500,
                ..Bench::default()
            }))
        );
        assert!(p(&["bench", "--fans", "0"]).is_err());
        assert!(p(&["dev", "--nope"]).is_err());
        assert!(p(&["launch"]).is_err());
    }
}
