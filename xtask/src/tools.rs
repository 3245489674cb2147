//! The service binaries the product needs locally, and how to get them: on
//! Debian as root, xtask installs them itself (pinned); otherwise it stops
//! with the exact command to run.

use xshell::{cmd, Shell};

use crate::Result;

/// A Debian package, pinned to an upstream version (the Debian revision may
/// move with security updates).
pub(crate) struct Package {
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

/// `promtool`, which checks the chart's PrometheusRule (Debian packages it
/// with the Prometheus server).
pub(crate) const PROMTOOL: Package = Package {
    binary: "promtool",
    packages: &["prometheus=2.42.0+ds-*"],
};

/// Debian ships one Chromium per release and replaces it with each security
/// update (old builds leave the archive), so it is not pinned to a build;
/// the browser tests pin playwright-core instead (package-lock.json).
const CHROMIUM: Package = Package {
    binary: "chromium",
    packages: &["chromium"],
};

/// The folder of the browser tests and their npm lockfile.
const E2E_DIR: &str = "app/tests/e2e";

fn is_root(sh: &Shell) -> bool {
    cmd!(sh, "id -u")
        .quiet()
        .read()
        .map(|s| s.trim() == "0")
        .unwrap_or(false)
}

fn install_command(packages: &[&str]) -> String {
    let list: Vec<String> = packages.iter().map(|p| format!("'{p}'")).collect();
    format!(
        "sudo apt-get update && sudo apt-get install -y {}",
        list.join(" ")
    )
}

/// Installs whatever of `wanted` is missing, in one apt-get run.
pub(crate) fn ensure(sh: &Shell, wanted: &[&Package]) -> Result {
    let missing: Vec<&Package> = wanted
        .iter()
        .copied()
        .filter(|p| devstack::which(p.binary).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing
        .iter()
        .flat_map(|p| p.packages.iter().copied())
        .collect();
    let binaries: Vec<&str> = missing.iter().map(|p| p.binary).collect();
    if !is_root(sh) || devstack::which("apt-get").is_none() {
        return Err(format!(
            "missing: {}. Install them with:\n    {}",
            binaries.join(", "),
            install_command(&packages)
        )
        .into());
    }
    eprintln!("xtask: installing {}", packages.join(" "));
    cmd!(sh, "apt-get update -qq")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()?;
    cmd!(
        sh,
        "apt-get install -y -qq --no-install-recommends {packages...}"
    )
    .env("DEBIAN_FRONTEND", "noninteractive")
    .run()?;
    if let Some(p) = missing.iter().find(|p| devstack::which(p.binary).is_none()) {
        return Err(format!(
            "installed {} but `{}` is still not on PATH",
            p.packages.join(" "),
            p.binary
        )
        .into());
    }
    Ok(())
}

/// playwright-core and axe-core from the lockfile, unless they are there.
fn ensure_e2e_modules(sh: &Shell) -> Result {
    let dir = sh.current_dir().join(E2E_DIR);
    // Every package of the lockfile (a checkout from before one was added
    // lacks it).
    if ["playwright-core", "axe-core"]
        .iter()
        .all(|p| dir.join(format!("node_modules/{p}/package.json")).is_file())
    {
        return Ok(());
    }
    if devstack::which("npm").is_none() {
        return Err("`npm` is missing (Node.js 20+): install it with:\n    sudo apt-get install -y nodejs npm".into());
    }
    eprintln!("xtask: installing the browser-test packages (npm ci in {E2E_DIR})");
    let _dir = sh.push_dir(&dir);
    cmd!(sh, "npm ci --no-audit --no-fund --loglevel=error").run()?;
    Ok(())
}

/// Every Debian package the dev stack and the tests use.
const SERVICES: [&Package; 4] = [&REDIS, &MARIADB, &CHROMIUM, &PROMTOOL];

/// The Python venv of the moto server (`xtask/python/moto.txt`): the
/// Kinesis of `cargo xtask dev`, and the AWS the ops tests and the
/// Terraform checks run against.
const MOTO_VENV: &str = "moto";

/// Everything the dev stack and the tests need.
pub fn ensure_all(sh: &Shell) -> Result {
    ensure(sh, &SERVICES)?;
    ensure_e2e_modules(sh)?;
    crate::venv::Venv::ensure(sh, MOTO_VENV)?;
    Ok(())
}

/// What [`ensure_all`] installs, one line each (the help of `deps`).
pub fn describe() -> String {
    let mut lines: Vec<String> = SERVICES
        .iter()
        .map(|p| format!("  - {} (Debian: {})", p.binary, p.packages.join(" ")))
        .collect();
    lines.push(format!(
        "  - the browser tests' npm packages ({E2E_DIR}/package-lock.json)"
    ));
    lines.push(format!(
        "  - the moto server, pinned in xtask/python/{MOTO_VENV}.txt, in target/venv/{MOTO_VENV} (needs python3 with venv)"
    ));
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deps_help_names_every_package() {
        let text = describe();
        for p in SERVICES {
            for package in p.packages {
                assert!(
                    text.contains(package),
                    "{package} missing from `deps --help`"
                );
            }
        }
    }

    #[test]
    fn install_hints_match_devstack() {
        assert_eq!(
            install_command(REDIS.packages),
            devstack::REDIS_INSTALL_HINT
        );
        assert_eq!(
            install_command(MARIADB.packages),
            devstack::MARIADB_INSTALL_HINT
        );
    }
}
