//! Python tools (checkov, the Helm engine, schema validators, …), each in
//! its own virtual environment under `target/venv/<name>`, installed from a
//! fully pinned requirements file `xtask/python/<name>.txt` (a `pip freeze`
//! of a working environment). A venv is rebuilt only when its requirements
//! file changes, so the tree stays clean and a second run costs nothing.

use std::path::{Path, PathBuf};

use xshell::{cmd, Shell};

use crate::Result;

/// A ready virtual environment.
pub struct Venv {
    dir: PathBuf,
}

impl Venv {
    /// Creates or refreshes `target/venv/<name>` from `xtask/python/<name>.txt`.
    pub fn ensure(sh: &Shell, name: &str) -> Result<Venv> {
        let root = sh.current_dir();
        let requirements = root.join("xtask/python").join(format!("{name}.txt"));
        let wanted = std::fs::read_to_string(&requirements)
            .map_err(|e| format!("{}: {e}", requirements.display()))?;
        let dir = root.join("target/venv").join(name);
        let stamp = dir.join(".requirements");
        if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str())
            && dir.join("bin/python").is_file()
        {
            return Ok(Venv { dir });
        }
        let python = devstack::which("python3")
            .ok_or("`python3` is missing (3.9+ with venv): sudo apt-get install -y python3-venv")?;
        eprintln!("xtask: installing the pinned Python tools `{name}` into target/venv/{name}");
        let _ = std::fs::remove_dir_all(&dir);
        cmd!(sh, "{python} -m venv {dir}").quiet().run()?;
        let pip = dir.join("bin/pip");
        cmd!(
            sh,
            "{pip} install --quiet --disable-pip-version-check --no-input -r {requirements}"
        )
        .run()?;
        std::fs::write(&stamp, wanted)?;
        Ok(Venv { dir })
    }

    /// A program installed in the venv (`bin/<tool>`).
    pub fn bin(&self, tool: &str) -> PathBuf {
        self.dir.join("bin").join(tool)
    }

    /// The venv's Python interpreter.
    pub fn python(&self) -> PathBuf {
        self.bin("python")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
