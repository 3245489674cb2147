//! Progress on stderr, so stdout holds only the result (`--json`).
//!
//! On a terminal the status line is rewritten in place; otherwise (CI
//! logs, a pipe) it is printed as a line at most every few seconds, so logs
//! show progress without drowning in it.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often a status line is printed when stderr is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);
/// How often the in-place status is redrawn on a terminal.
const DRAW_EVERY: Duration = Duration::from_millis(100);

pub struct Progress {
    prefix: &'static str,
    terminal: bool,
    last: Option<Instant>,
    /// A status line is on screen and must be cleared before the next line.
    drawn: bool,
}

impl Progress {
    pub fn new(prefix: &'static str) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        Progress {
            prefix,
            terminal,
            // In a log, the first status line only once a step is slow.
            last: (!terminal).then(Instant::now),
            drawn: false,
        }
    }

    /// A line that stays (a step done, a warning).
    pub fn line(&mut self, text: &str) {
        let mut err = std::io::stderr().lock();
        if self.drawn {
            let _ = write!(err, "\r\x1b[K");
            self.drawn = false;
        }
        let _ = writeln!(err, "{}: {text}", self.prefix);
    }

    /// The current state of a long step; shown when due, replaced by the
    /// next one.
    pub fn status(&mut self, text: impl FnOnce() -> String) {
        let every = if self.terminal { DRAW_EVERY } else { LOG_EVERY };
        if self.last.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        self.last = Some(Instant::now());
        let text = text();
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(err, "\r\x1b[K{}: {text}", self.prefix);
            self.drawn = true;
        } else {
            let _ = writeln!(err, "{}: {text}", self.prefix);
        }
    }

    /// Clears the status line, if one is drawn.
    pub fn finish(&mut self) {
        if self.drawn {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
            self.drawn = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
