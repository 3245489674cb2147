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
  deps                        Install the service binaries the tests need
                              (redis-server), pinned, when this machine can.
  help                        This text.";

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Dev(Dev),
    Test(Test),
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
        assert!(p(&["dev", "--nope"]).is_err());
        assert!(p(&["launch"]).is_err());
    }
}
