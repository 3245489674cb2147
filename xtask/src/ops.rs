//! The hand-over to the ops binary (`xtask/ops`), where every command that
//! calls AWS lives, so that this crate never compiles the AWS SDK (`cargo
//! xtask dev` stays quick to build).
//!
//! `cargo xtask <ops command> ARGS...` builds the ops binary when needed and
//! replaces this process with `ops <ops command> ARGS...`: the arguments
//! (`--help` included) reach it untouched, and its output and exit code are
//! the command's own. The build is `cargo build --workspace --bin ops`, the
//! dev profile and the workspace's feature resolution, exactly what `cargo
//! test --workspace` builds: after the tests, nothing compiles again, and a
//! first `cargo xtask audit` compiles only what the ops binary needs.
//! (`cargo build -p ops` would resolve the SDK's dependencies, hyper among
//! them, with other features and compile the SDK a second time.)
//!
//! `OPS_BIN=/path/to/ops` runs a ready binary instead (CI's artifact).
//!
//! The command names and one-line descriptions come from the ops crate's
//! own `commands.rs`, compiled into xtask too, so `cargo xtask --help`
//! lists them without building anything.

#[path = "../ops/src/commands.rs"]
mod commands;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The name the ops binary shows in its usage lines.
const SHOWN_AS: &str = "cargo xtask";

/// Where one invocation of `cargo xtask` goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// A command of this crate (or no command, or `--help`).
    Xtask,
    /// The ops binary, with these arguments.
    Ops(Vec<OsString>),
}

/// Decides from the arguments after the program name. An ops command goes
/// over with every argument as given; `help <ops command>` becomes
/// `<ops command> --help`.
pub fn route(args: &[OsString]) -> Route {
    let word = |i: usize| args.get(i).and_then(|a| a.to_str());
    match word(0) {
        Some(name) if is_ops_command(name) => Route::Ops(args.to_vec()),
        Some("help") => match word(1) {
            Some(name) if is_ops_command(name) => Route::Ops(vec![name.into(), "--help".into()]),
            _ => Route::Xtask,
        },
        _ => Route::Xtask,
    }
}

pub fn is_ops_command(name: &str) -> bool {
    commands::COMMANDS.iter().any(|(n, _)| *n == name)
}

/// The ops commands as entries of `cargo xtask --help`. They are never
/// parsed by clap ([`route`] hands them over first).
pub fn help_entries() -> Vec<clap::Command> {
    commands::COMMANDS
        .iter()
        .map(|(name, about)| {
            clap::Command::new(*name)
                .about(format!("{about} (ops)"))
                .disable_help_flag(true)
                .arg(
                    clap::Arg::new("args")
                        .num_args(0..)
                        .trailing_var_arg(true)
                        .allow_hyphen_values(true),
                )
        })
        .collect()
}

/// What `cargo xtask --help` says about them.
pub const HELP_NOTE: &str = "Commands marked (ops) call AWS: they run the ops binary (xtask/ops), \
built on first use; `cargo xtask <command> --help` shows its flags.";

/// The build that yields `target/debug/ops`, run from the workspace root.
pub fn build_command(root: &Path) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "--workspace", "--bin", "ops"])
        .current_dir(root);
    cmd
}

/// Cargo's target folder for builds run from `root`.
pub fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// Runs the ops binary with `args` in place of this process. Returns only
/// when that cannot be done (exit 2, as the ops commands do when they
/// cannot run).
pub fn run(root: &Path, args: Vec<OsString>) -> ExitCode {
    let binary = match std::env::var_os("OPS_BIN") {
        Some(path) => PathBuf::from(path),
        None => {
            let binary = target_dir(root).join("debug/ops");
            if !binary.is_file() {
                eprintln!(
                    "xtask: building the ops binary (the first build compiles the AWS SDK: a few minutes)"
                );
            }
            match build_command(root).status() {
                Ok(status) if status.success() => {}
                Ok(status) => {
                    eprintln!("xtask: building the ops binary failed ({status})");
                    return ExitCode::from(2);
                }
                Err(e) => {
                    eprintln!("xtask: cannot run cargo to build the ops binary: {e}");
                    return ExitCode::from(2);
                }
            }
            binary
        }
    };
    let mut cmd = Command::new(&binary);
    cmd.args(&args);
    exec(cmd, &binary)
}

#[cfg(unix)]
fn exec(mut cmd: Command, binary: &Path) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let e = cmd.arg0(SHOWN_AS).exec();
    eprintln!("xtask: cannot run {}: {e}", binary.display());
    ExitCode::from(2)
}

#[cfg(not(unix))]
fn exec(mut cmd: Command, binary: &Path) -> ExitCode {
    match cmd.status() {
        Ok(status) => ExitCode::from(status.code().unwrap_or(2).clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("xtask: cannot run {}: {e}", binary.display());
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn ops_commands_go_over_with_their_arguments_untouched() {
        let given = args(&[
            "audit", "--stream", "s", "--event", "demo", "--json", "--", "-x", "",
        ]);
        assert_eq!(route(&given), Route::Ops(given.clone()));
        assert_eq!(
            route(&args(&["audit", "--help"])),
            Route::Ops(args(&["audit", "--help"]))
        );
        assert_eq!(route(&args(&["audit"])), Route::Ops(args(&["audit"])));
    }

    #[test]
    fn arguments_that_are_not_utf8_pass_through() {
        use std::os::unix::ffi::OsStringExt;
        let odd = OsString::from_vec(vec![b'-', 0xff, 0xfe]);
        let given = vec![OsString::from("audit"), odd];
        assert_eq!(route(&given), Route::Ops(given.clone()));
    }

    #[test]
    fn help_for_an_ops_command_is_the_ops_binarys_own() {
        assert_eq!(
            route(&args(&["help", "audit"])),
            Route::Ops(args(&["audit", "--help"]))
        );
        assert_eq!(route(&args(&["help", "dev"])), Route::Xtask);
        assert_eq!(route(&args(&["help"])), Route::Xtask);
    }

    #[test]
    fn everything_else_stays_here() {
        for words in [
            &[][..],
            &["--help"],
            &["-h"],
            &["dev", "--check"],
            &["test"],
            &["deps"],
            &["--audit"],
            &["Audit"],
            &["launch"],
            // An ops command name later in the line is only an argument.
            &["dev", "audit"],
        ] {
            assert_eq!(route(&args(words)), Route::Xtask, "{words:?}");
        }
    }

    #[test]
    fn the_build_is_the_one_cargo_test_workspace_makes() {
        let cmd = build_command(Path::new("/repo"));
        let words: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(words, ["build", "--quiet", "--workspace", "--bin", "ops"]);
        assert!(!words
            .iter()
            .any(|w| w.contains("release") || w.contains("profile")));
        assert_eq!(cmd.get_current_dir(), Some(Path::new("/repo")));
    }

    #[test]
    fn every_ops_command_is_listed_in_the_help() {
        let names: Vec<String> = help_entries()
            .iter()
            .map(|c| c.get_name().to_string())
            .collect();
        assert!(names.contains(&"audit".to_string()), "{names:?}");
        assert_eq!(names.len(), commands::COMMANDS.len());
    }
}
