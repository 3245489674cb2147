//! `cargo xtask <command>`: the one entry point for people and pipelines.
//!
//! Each command is a module with a `run`; they all share one
//! `xshell::Shell` rooted at the workspace. `cargo xtask --help` lists them.
//! Commands that call AWS live in the ops binary (`xtask/ops`): they are
//! handed over to it before anything is parsed here (`ops.rs`).

mod bench;
mod dev;
mod flags;
mod fuzz;
mod helm;
mod kinesis;
mod loadtest;
mod localstack;
mod migrate;
mod ops;
mod terraform;
mod test;
mod tools;
mod venv;
#[cfg(test)]
mod yaml;

use std::path::PathBuf;
use std::process::ExitCode;

use xshell::Shell;

pub type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn project_root() -> PathBuf {
    let dir = std::env::var("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    dir.parent().map(PathBuf::from).unwrap_or(dir)
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if let ops::Route::Ops(args) = ops::route(&args) {
        return ops::run(&project_root(), args);
    }
    let cli = flags::parse();
    let Some(command) = cli.command else {
        let _ = flags::command().print_help();
        return ExitCode::SUCCESS;
    };
    let sh = match Shell::new() {
        Ok(sh) => sh,
        Err(e) => {
            eprintln!("xtask: {e}");
            return ExitCode::FAILURE;
        }
    };
    sh.change_dir(project_root());
    let result = match command {
        flags::Command::Dev(f) => dev::run(&sh, &f),
        flags::Command::Test(f) => test::run(&sh, &f),
        flags::Command::Bench(f) => loadtest::bench(&sh, &f),
        flags::Command::Loadtest(f) => loadtest::run(&sh, &f),
        flags::Command::Migrate(f) => migrate::run(&sh, &f),
        flags::Command::Deps(_) => tools::ensure_all(&sh),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
