//! `cargo xtask migrate [up|status]`: the binary's own migrations against a
//! database. `up` (the default) applies what is pending; `status` lists
//! applied, pending and drifted migrations and fails on drift (the seeds'
//! first incident); `--dry-run` shows what `up` would apply. Both run the
//! `admission` binary, which carries the migrations of this checkout.

use std::path::PathBuf;

use xshell::{cmd, Shell};

use crate::flags::{self, MigrateAction};
use crate::Result;

/// The migration user's URL that `cargo xtask dev` wrote down.
fn dev_database(sh: &Shell) -> Option<String> {
    let env = std::fs::read_to_string(sh.current_dir().join("target/dev/database.env")).ok()?;
    env.lines()
        .find_map(|l| l.strip_prefix("MIGRATOR_URL="))
        .map(str::to_string)
}

/// The `admission` binary of this checkout, built now (the dev profile,
/// where `cargo build` puts it, `CARGO_TARGET_DIR` honoured).
pub fn admission_binary(sh: &Shell) -> Result<PathBuf> {
    cmd!(sh, "cargo build --quiet --workspace --bin admission").run()?;
    Ok(crate::ops::target_dir(&sh.current_dir()).join("debug/admission"))
}

pub fn run(sh: &Shell, flags: &flags::Migrate) -> Result {
    let url = flags
        .database_url
        .clone()
        .or_else(|| std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()))
        .or_else(|| dev_database(sh))
        .ok_or(
            "no database: pass --database-url mysql://user:pass@host:3306/db, set DATABASE_URL, \
             or start `cargo xtask dev` (its database is used by default)",
        )?;
    let binary = admission_binary(sh)?;
    // `status` changes nothing, so it is also what a dry run of `up` shows.
    let action = match (flags.action, flags.dry_run) {
        (MigrateAction::Up, false) => "up",
        (MigrateAction::Up, true) => {
            eprintln!("migrate: dry run: the `pending` migrations below are what `up` would apply");
            "status"
        }
        (MigrateAction::Status, _) => "status",
    };
    let status = std::process::Command::new(&binary)
        .args(["migrate", action])
        .env("DATABASE_URL", url)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    match (status.success(), action) {
        (true, _) => Ok(()),
        (false, "status") => Err("migrate status: drift or an error (see above)".into()),
        (false, _) => Err(format!("admission migrate {action} failed ({status})").into()),
    }
}
