//! Asking before a change to production: on a terminal the command asks
//! and waits for `yes`; `--yes` answers for it (CI); with no terminal and
//! no `--yes` it refuses rather than guess.

use std::io::{BufRead, IsTerminal, Write};

use crate::environment::Environment;

#[derive(Debug, thiserror::Error)]
pub enum ConfirmError {
    #[error("{env} is production and no terminal is attached to confirm: pass --yes to {what}")]
    NoTerminal { env: String, what: String },
    #[error("not confirmed: nothing was changed")]
    Declined,
}

/// Returns when the change may go ahead.
pub fn production_change(env: &Environment, what: &str, yes: bool) -> Result<(), ConfirmError> {
    if !env.is_production() || yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(ConfirmError::NoTerminal {
            env: env.name.clone(),
            what: what.to_string(),
        });
    }
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "{} is production: {what}? Type yes to go on: ",
        env.name
    );
    let _ = err.flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|_| ConfirmError::Declined)?;
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(ConfirmError::Declined)
    }
}
