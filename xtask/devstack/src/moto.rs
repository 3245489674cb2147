//! A local moto server (an AWS API emulator), for applying Terraform without
//! an AWS account. Python and moto come from the caller, or from the venv
//! where xtask installs them pinned ([`Moto::start_pinned`]); this only
//! runs `python -m moto.server` on a free loopback port, waits until it
//! answers HTTP, and kills it when dropped.

use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{free_port, http_request, Process};

/// How long moto may take to import and bind (it loads every service's
/// backend lazily, so the first start is the slow one).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Where `cargo xtask deps` puts the pinned moto's Python, under the
/// repository's root.
const PINNED_PYTHON: &str = "target/venv/moto/bin/python";

/// A running `moto.server`: in-memory state, gone when it stops.
pub struct Moto {
    pub port: u16,
    dir: PathBuf,
    python: PathBuf,
    env: Vec<(String, String)>,
    process: Process,
}

impl Moto {
    /// Starts moto with `python` (which must have `moto[server]` installed)
    /// on a free port of 127.0.0.1, its log in `dir/moto.log`.
    pub fn start(python: &Path, dir: &Path) -> io::Result<Moto> {
        Self::start_with(python, dir, &[])
    }

    /// [`Moto::start`] with the pinned moto that `cargo xtask deps`
    /// installs in the repository at `root` (`target/venv/moto`), or a
    /// clear error saying so when it is missing.
    pub fn start_pinned(root: &Path, dir: &Path) -> io::Result<Moto> {
        let python = root.join(PINNED_PYTHON);
        if !python.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{} is missing: install the pinned moto server with `cargo xtask deps`",
                    python.display()
                ),
            ));
        }
        Self::start(&python, dir)
    }

    /// [`Moto::start`] with extra environment variables for the server,
    /// e.g. `MOTO_IAM_LOAD_MANAGED_POLICIES=true` so that AWS-managed IAM
    /// policies exist (moto leaves them out by default).
    pub fn start_with(python: &Path, dir: &Path, env: &[(&str, &str)]) -> io::Result<Moto> {
        std::fs::create_dir_all(dir)?;
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut last_err = None;
        for _ in 0..3 {
            let port = free_port();
            match Self::spawn(python, dir, port, &env) {
                Ok(moto) => return Ok(moto),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("moto did not start")))
    }

    fn spawn(python: &Path, dir: &Path, port: u16, env: &[(String, String)]) -> io::Result<Moto> {
        let log_path = dir.join("moto.log");
        let log = File::create(&log_path)?;
        let mut cmd = Command::new(python);
        cmd.args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .current_dir(dir)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone()?)
            .stderr(log);
        let process = Process::start(&mut cmd, &log_path, START_TIMEOUT, || answers(port))
            .map_err(|e| io::Error::other(format!("moto on port {port}: {e}")))?;
        Ok(Moto {
            port,
            dir: dir.to_path_buf(),
            python: python.to_path_buf(),
            env: env.to_vec(),
            process,
        })
    }

    /// Stops the server (an outage; its state, all in memory, is gone).
    pub fn stop(&mut self) {
        self.process.kill();
    }

    /// Starts it again on the same port, empty.
    pub fn start_again(&mut self) -> io::Result<()> {
        self.process.kill();
        crate::wait_port_free(self.port, Duration::from_secs(10));
        *self = Self::spawn(&self.python, &self.dir, self.port, &self.env)?;
        Ok(())
    }

    /// The endpoint to give AWS clients, `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The last `lines` lines of moto's log, joined by ` | `.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir.join("moto.log")).unwrap_or_default();
        let mut tail: Vec<&str> = text.lines().rev().take(lines).collect();
        tail.reverse();
        tail.join(" | ")
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.id()
    }
}

/// Whether moto answers its own API on `port`.
fn answers(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    matches!(
        http_request(addr, "GET", "/moto-api/data.json", &[], None),
        Ok((200, _))
    )
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn a_python_that_cannot_run_moto_fails_fast() {
        let dir = std::env::temp_dir().join(format!("devstack-moto-{}", std::process::id()));
        let at = Instant::now();
        let err = Moto::start(Path::new("/bin/false"), &dir)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            err.contains("moto on port") && err.contains("exited"),
            "{err}"
        );
        assert!(at.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_missing_pinned_moto_says_how_to_install_it() {
        let root = std::env::temp_dir().join(format!("devstack-no-venv-{}", std::process::id()));
        let err = Moto::start_pinned(&root, &root.join("moto"))
            .err()
            .expect("no venv, no moto");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let text = err.to_string();
        assert!(
            text.contains("target/venv/moto/bin/python is missing")
                && text.contains("cargo xtask deps"),
            "{text}"
        );
        assert!(!root.exists(), "nothing is created before the check");
    }
}
