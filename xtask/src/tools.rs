//! The service binaries the product needs locally, and how to get them: on
//! Debian as root, xtask installs them itself (pinned); otherwise it stops
//! with the exact command to run.

use xshell::{cmd, Shell};

use crate::Result;

/// A Debian package, pinned to an upstream version (the Debian revision may
/// move with security updates).
struct Package {
    binary: &'static str,
    packages: &'static [&'static str],
}

const REDIS: Package = Package {
    binary: "redis-server",
    packages: &["redis-server=5:7.0.15-*", "redis-tools=5:7.0.15-*"],
};

const MARIADB: Package = Package {
    binary: "mariadbd",
    packages: &["mariadb-server=1:10.11.*", "mariadb-client=1:10.11.*"],
};

fn is_root(sh: &Shell) -> bool {
    cmd!(sh, "id -u")
        .quiet()
        .read()
        .map(|s| s.trim() == "0")
        .unwrap_or(false)
}

fn install_command(pkg: &Package) -> String {
    let list: Vec<String> = pkg.packages.iter().map(|p| format!("'{p}'")).collect();
    format!(
        "sudo apt-get update && sudo apt-get install -y {}",
        list.join(" ")
    )
}

fn ensure(sh: &Shell, pkg: &Package) -> Result {
    if devstack::which(pkg.binary).is_some() {
        return Ok(());
    }
    if !is_root(sh) || devstack::which("apt-get").is_none() {
        return Err(format!(
            "`{}` is missing. Install it with:\n    {}",
            pkg.binary,
            install_command(pkg)
        )
        .into());
    }
    eprintln!("xtask: installing {} (pinned)", pkg.packages.join(" "));
    let packages = pkg.packages;
    cmd!(sh, "apt-get update -qq")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()?;
    cmd!(
        sh,
        "apt-get install -y -qq --no-install-recommends {packages...}"
    )
    .env("DEBIAN_FRONTEND", "noninteractive")
    .run()?;
    if devstack::which(pkg.binary).is_none() {
        return Err(format!(
            "installed {} but `{}` is still not on PATH",
            packages.join(" "),
            pkg.binary
        )
        .into());
    }
    Ok(())
}

/// Every binary the dev stack and the tests start.
pub fn ensure_all(sh: &Shell) -> Result {
    ensure(sh, &REDIS)?;
    ensure(sh, &MARIADB)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_hints_match_devstack() {
        assert_eq!(install_command(&REDIS), devstack::REDIS_INSTALL_HINT);
        assert_eq!(install_command(&MARIADB), devstack::MARIADB_INSTALL_HINT);
    }
}
