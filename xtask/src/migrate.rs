//! `cargo xtask migrate`: the binary's own migrations against a database.

use xshell::{cmd, Shell};

use crate::{flags, Result};

/// The migration user's URL that `cargo xtask dev` wrote down.
fn dev_database(sh: &Shell) -> Option<String> {
    let env = std::fs::read_to_string(sh.current_dir().join("target/dev/database.env")).ok()?;
    env.lines()
        .find_map(|l| l.strip_prefix("MIGRATOR_URL="))
        .map(str::to_string)
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
    cmd!(sh, "cargo build --quiet --workspace --bin admission").run()?;
    let binary = sh.current_dir().join("target/debug/admission");
    cmd!(sh, "{binary} migrate")
        .env("DATABASE_URL", url)
        .run()?;
    Ok(())
}
