//! The infrastructure checks of `cargo xtask test`: everything under
//! `terraform/`, offline.
//!
//! - `terraform fmt -check`;
//! - `init -backend=false` from the local provider mirror, and `validate`,
//!   in every module and environment;
//! - `terraform test` in every module (mocked AWS provider);
//! - checkov (pinned in `xtask/python/checkov.txt`): no failed check, and
//!   every check skipped in code says why;
//! - environments/<env>.toml and terraform/envs/<env>/terraform.tfvars name
//!   the same things;
//! - every `terraform init` of an environment that `docs/*.md` shows gives
//!   the S3 backend what `versions.tf` leaves to init (`-backend-config`);
//! - every module's README tables list exactly its variables and outputs,
//!   and no Terraform code outside tests names an ARN or an account id;
//! - meanwhile, on another thread: a moto server (pinned in
//!   `xtask/python/moto.txt`), `plan` and `apply` of terraform/tests/moto
//!   against it, `check.py` asserting through moto's API what was created,
//!   the whole `doctor` (the ops binary) against what was created: every
//!   check ok or skipped for want of an input moto cannot give, and the
//!   AWS checks among the ok ones; then `destroy`.
//!
//! Terraform's working files (`.terraform`, plans, state, moto's log) go to
//! `target/tf`; lock files that `init` writes into modules are removed again,
//! so the tree is as clean afterwards as before. Every command has a time
//! limit.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use xshell::Shell;

use crate::venv::Venv;
use crate::Result;

const TERRAFORM_DIR: &str = "terraform";
/// Where everything Terraform writes goes.
const WORK_DIR: &str = "target/tf";
/// The moto root: applied against moto, never against AWS.
const MOTO_ROOT: &str = "terraform/tests/moto";
const LOCK_FILE: &str = ".terraform.lock.hcl";

/// Names each environment file gives, and the Terraform variable that must
/// hold the same value: (`[section].key` in environments/<env>.toml,
/// variable in terraform/envs/<env>/terraform.tfvars).
const SAME_NAMES: &[(&str, &str)] = &[
    ("name", "environment"),
    ("aws.account_id", "account_id"),
    ("aws.account_alias", "account_alias"),
    ("aws.region", "region"),
    ("kubernetes.cluster", "cluster_name"),
    ("kubernetes.namespace", "namespace"),
    ("kubernetes.service_account", "service_account"),
    ("kubernetes.addons.namespace", "addons_namespace"),
    (
        "kubernetes.addons.lb_controller_role_name",
        "lb_controller_role_name",
    ),
    (
        "kubernetes.addons.external_dns_role_name",
        "external_dns_role_name",
    ),
    (
        "kubernetes.addons.node_autoscaler_role_name",
        "node_autoscaler_role_name",
    ),
    ("app.role_name", "app_role_name"),
    ("app.kinesis_stream", "kinesis_stream"),
    ("app.cache_name", "cache_name"),
    ("app.ecr_repository", "ecr_repository"),
    ("app.aurora_cluster", "aurora_cluster"),
    ("alarms.email", "alarm_email"),
    ("network.vpc_cidr", "vpc_cidr"),
    ("ingress.zone", "dns_zone"),
    ("ingress.host", "dns_host"),
];

/// Settings prod must keep, whatever else changes. (The aurora module skips
/// checkov's deletion-protection check in code on this promise.)
const PROD_REQUIRES: &[(&str, Value)] = &[("deletion_protection", Value::Bool(true))];

/// Time limits: generous for this 2-core machine, but never forever.
const FMT_TIMEOUT: Duration = Duration::from_secs(60);
const INIT_TIMEOUT: Duration = Duration::from_secs(120);
const VALIDATE_TIMEOUT: Duration = Duration::from_secs(120);
const TEST_TIMEOUT: Duration = Duration::from_secs(300);
const CHECKOV_TIMEOUT: Duration = Duration::from_secs(300);
const PLAN_TIMEOUT: Duration = Duration::from_secs(180);
const APPLY_TIMEOUT: Duration = Duration::from_secs(420);
const MOTO_CHECK_TIMEOUT: Duration = Duration::from_secs(120);
const OPS_BUILD_TIMEOUT: Duration = Duration::from_secs(1800);
const DOCTOR_TIMEOUT: Duration = Duration::from_secs(180);

/// The doctor checks the moto root gives every input to: each must be ok
/// (`cert.expiry` with no listener and no Client VPN; `irsa.chain` on the
/// AWS side only). The others need a Kubernetes API, a database, a cache
/// or the app, none of which this root has: each must be skipped.
const DOCTOR_OK_ON_MOTO: &[&str] = &[
    "aws.credentials",
    "eks.cluster",
    "eks.oidc",
    "network.subnet-tags",
    "network.security-groups",
    "cert.expiry",
    "irsa.chain",
    "kinesis.stream",
];

type Outcome<T = ()> = std::result::Result<T, String>;

/// Runs every infrastructure check; fails with the list of those that did.
pub fn check(sh: &Shell) -> Result {
    let started = Instant::now();
    let root = sh.current_dir();
    let tf = Terraform::new(&root)?;
    eprintln!(
        "terraform: {} with the provider mirror {}",
        tf.version()?,
        tf.mirror.display()
    );
    let roots = terraform_roots(&root.join(TERRAFORM_DIR));
    let mut failures: Vec<String> = Vec::new();

    std::thread::scope(|s| {
        // moto's apply and destroy mostly wait on the provider's fixed
        // delays: run them beside the CPU-bound checks.
        let moto = s.spawn(|| moto_apply_and_check(&root, &tf));
        // pip spends most of its time waiting on the registry.
        let mut checkov_venv = Some(s.spawn(|| venv(&root, "checkov")));

        let mut created_locks = Vec::new();
        let steps: [(&str, &mut dyn FnMut() -> Outcome<String>); 7] = [
            ("fmt", &mut || fmt(&tf)),
            ("init + validate", &mut || {
                init_and_validate(&tf, &roots, &mut created_locks)
            }),
            ("test", &mut || test_modules(&tf, &roots)),
            ("checkov", &mut || {
                let venv = checkov_venv
                    .take()
                    .map(|t| t.join().unwrap_or_else(|_| Err("panicked".into())))
                    .unwrap_or_else(|| Err("already used".into()));
                checkov(&root, venv?)
            }),
            ("environments", &mut || environments(&root)),
            ("backend in docs", &mut || backend_in_docs(&root)),
            ("module docs and literals", &mut || {
                module_docs_and_literals(&root.join(TERRAFORM_DIR))
            }),
        ];
        for (name, step) in steps {
            let at = Instant::now();
            match step() {
                Ok(what) => eprintln!("terraform: ✓ {name}: {what} ({} s)", at.elapsed().as_secs()),
                Err(e) => {
                    eprintln!("terraform: ✗ {name}: {e}");
                    failures.push(name.to_string());
                }
            }
        }
        for lock in created_locks {
            let _ = std::fs::remove_file(lock);
        }
        match moto.join() {
            Ok(Ok(what)) => eprintln!("terraform: ✓ moto: {what}"),
            Ok(Err(e)) => {
                eprintln!("terraform: ✗ moto: {e}");
                failures.push("moto".into());
            }
            Err(_) => failures.push("moto (panicked)".into()),
        }
    });

    let seconds = started.elapsed().as_secs();
    if failures.is_empty() {
        eprintln!("terraform: all checks passed in {seconds} s");
        Ok(())
    } else {
        Err(format!(
            "terraform checks failed in {seconds} s: {}",
            failures.join(", ")
        )
        .into())
    }
}

/// The terraform binary, the provider mirror, and where working files go.
struct Terraform {
    bin: PathBuf,
    mirror: PathBuf,
    root: PathBuf,
    work: PathBuf,
    cli_config: PathBuf,
}

impl Terraform {
    fn new(root: &Path) -> Result<Terraform> {
        let bin = devstack::which("terraform").ok_or(
            "`terraform` (1.11) is not on PATH: install it from HashiCorp's Debian repository",
        )?;
        let mirror = provider_mirror().ok_or(
            "no Terraform provider mirror found (a `registry.terraform.io` folder at most 4 levels below /, holding hashicorp/aws); set TF_PLUGIN_MIRROR to its parent folder",
        )?;
        let work = root.join(WORK_DIR);
        std::fs::create_dir_all(&work)?;
        // Our own CLI configuration: no user settings, no version check
        // against the network.
        let cli_config = work.join("terraformrc");
        std::fs::write(&cli_config, "disable_checkpoint = true\n")?;
        Ok(Terraform {
            bin,
            mirror,
            root: root.to_path_buf(),
            work,
            cli_config,
        })
    }

    /// `terraform <args>` in `dir`, with its data under target/tf/data.
    fn command(&self, dir: &Path, args: &[&str]) -> Command {
        let rel = dir.strip_prefix(&self.root).unwrap_or(dir);
        let data = self
            .work
            .join("data")
            .join(rel.to_string_lossy().replace('/', "_"));
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .current_dir(dir)
            .env("TF_DATA_DIR", data)
            .env("TF_CLI_CONFIG_FILE", &self.cli_config)
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("CHECKPOINT_DISABLE", "1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("TF_PLUGIN_CACHE_DIR")
            .env_remove("TF_LOG");
        cmd
    }

    fn run(&self, dir: &Path, args: &[&str], timeout: Duration) -> Outcome<String> {
        run_bounded(self.command(dir, args), timeout).map_err(|e| {
            let rel = dir.strip_prefix(&self.root).unwrap_or(dir);
            format!("`terraform {}` in {}: {e}", args.join(" "), rel.display())
        })
    }

    fn version(&self) -> Outcome<String> {
        let out = self.run(&self.root, &["version"], FMT_TIMEOUT)?;
        Ok(out.lines().next().unwrap_or("terraform").to_string())
    }

    /// `init` offline from the mirror. Where a lock file is checked in
    /// (environments, the moto root), it must already match: init never
    /// rewrites it. Elsewhere (reusable modules) the lock file init writes
    /// is recorded, to be removed afterwards.
    /// Returns the lock file it wrote, if any.
    fn init(&self, dir: &Path) -> Outcome<Option<PathBuf>> {
        let plugin_dir = format!("-plugin-dir={}", self.mirror.display());
        let mut args = vec!["init", "-backend=false", "-input=false", "-no-color"];
        args.push(&plugin_dir);
        let lock = dir.join(LOCK_FILE);
        let created = if lock.is_file() {
            args.push("-lockfile=readonly");
            None
        } else {
            Some(lock)
        };
        let result = self.run(dir, &args, INIT_TIMEOUT);
        match result {
            Ok(_) => Ok(created),
            Err(e) => {
                if let Some(lock) = created {
                    let _ = std::fs::remove_file(lock);
                }
                Err(e)
            }
        }
    }
}

/// The folder holding `registry.terraform.io/hashicorp/aws`: $TF_PLUGIN_MIRROR,
/// or found the way `find / -maxdepth 4 -name registry.terraform.io` would.
fn provider_mirror() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TF_PLUGIN_MIRROR") {
        let dir = PathBuf::from(dir);
        return is_mirror(&dir).then_some(dir);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut level = vec![PathBuf::from("/")];
    for _ in 0..4 {
        let mut next = Vec::new();
        for dir in level {
            if Instant::now() > deadline {
                return None;
            }
            if ["/proc", "/sys", "/dev"]
                .iter()
                .any(|p| dir == Path::new(p))
            {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                // No symbolic links: no loops, no duplicates.
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let path = entry.path();
                if entry.file_name() == "registry.terraform.io" && is_mirror(&dir) {
                    return Some(dir);
                }
                next.push(path);
            }
        }
        level = next;
    }
    None
}

fn is_mirror(dir: &Path) -> bool {
    dir.join("registry.terraform.io/hashicorp/aws").is_dir()
}

/// Every folder under `terraform/` with `.tf` files: modules (nested ones
/// too), environments, the moto root.
fn terraform_roots(dir: &Path) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut has_tf = false;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_dir && !name.starts_with('.') && name != "tests" {
                stack.push(entry.path());
            } else if name.ends_with(".tf") {
                has_tf = true;
            }
        }
        if has_tf {
            roots.push(dir);
        }
    }
    // The moto root is under a `tests` folder, which the walk skips.
    if let Some(moto) = dir.parent().map(|p| p.join(MOTO_ROOT)) {
        if moto.is_dir() {
            roots.push(moto);
        }
    }
    roots.sort();
    roots
}

fn fmt(tf: &Terraform) -> Outcome<String> {
    tf.run(
        &tf.root,
        &[
            "fmt",
            "-check",
            "-recursive",
            "-diff",
            "-no-color",
            TERRAFORM_DIR,
        ],
        FMT_TIMEOUT,
    )
    .map_err(|e| format!("{e}\n  fix: terraform fmt -recursive {TERRAFORM_DIR}"))?;
    Ok("formatted".into())
}

fn init_and_validate(
    tf: &Terraform,
    roots: &[PathBuf],
    created_locks: &mut Vec<PathBuf>,
) -> Outcome<String> {
    // Each root: the lock file its init wrote (to remove later), and the
    // outcome.
    let results = in_parallel(roots, |dir| match tf.init(dir) {
        Ok(created) => {
            let validated = tf.run(dir, &["validate", "-no-color"], VALIDATE_TIMEOUT);
            (created, validated.map(drop))
        }
        Err(e) => (None, Err(e)),
    });
    let mut errors = Vec::new();
    for (created, result) in results {
        created_locks.extend(created);
        if let Err(e) = result {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(format!("{} modules and environments valid", roots.len()))
    } else {
        Err(errors.join("\n"))
    }
}

/// `terraform test` wherever there are test files; every top-level module
/// must have some.
fn test_modules(tf: &Terraform, roots: &[PathBuf]) -> Outcome<String> {
    let modules = tf.root.join(TERRAFORM_DIR).join("modules");
    let mut errors = Vec::new();
    let mut tested = Vec::new();
    for dir in roots {
        let has_tests = std::fs::read_dir(dir.join("tests")).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".tftest.hcl"))
        });
        if has_tests {
            tested.push(dir.clone());
        } else if dir.parent() == Some(modules.as_path()) {
            let rel = dir.strip_prefix(&tf.root).unwrap_or(dir).display();
            errors.push(format!("{rel} has no tests/*.tftest.hcl"));
        }
    }
    let results = in_parallel(&tested, |dir| {
        let rel = dir.strip_prefix(&tf.root).unwrap_or(dir).display();
        let at = Instant::now();
        let out = tf.run(dir, &["test", "-no-color"], TEST_TIMEOUT)?;
        match test_counts(&out) {
            Some((p, 0)) => {
                eprintln!(
                    "terraform:   test {rel}: {p} passed ({} s)",
                    at.elapsed().as_secs()
                );
                Ok(p)
            }
            _ => Err(format!("{rel}: {}", tail(&out, 20))),
        }
    });
    let (mut modules_run, mut passed) = (0, 0);
    for result in results {
        match result {
            Ok(p) => {
                modules_run += 1;
                passed += p;
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(format!(
            "{passed} runs passed in {modules_run} modules, 0 failed"
        ))
    } else {
        Err(errors.join("\n"))
    }
}

/// (passed, failed) from `terraform test`'s last line, e.g.
/// `Success! 10 passed, 0 failed.` or `Failure! 2 passed, 1 failed, 3 skipped.`
fn test_counts(output: &str) -> Option<(u32, u32)> {
    let line = output
        .lines()
        .rev()
        .find(|l| l.contains(" passed, ") && l.contains(" failed"))?;
    let number_before = |word: &str| -> Option<u32> {
        let at = line.find(word)?;
        line[..at].split_whitespace().last()?.parse().ok()
    };
    Some((number_before(" passed")?, number_before(" failed")?))
}

/// `Venv::ensure` from another thread (a Shell stays on its thread).
fn venv(root: &Path, name: &str) -> Outcome<Venv> {
    let sh = Shell::new().map_err(|e| e.to_string())?;
    sh.change_dir(root);
    Venv::ensure(&sh, name).map_err(|e| format!("the `{name}` venv: {e}"))
}

fn checkov(root: &Path, venv: Venv) -> Outcome<String> {
    let unexplained = unexplained_skips(&root.join(TERRAFORM_DIR));
    if !unexplained.is_empty() {
        return Err(format!(
            "checkov checks skipped without a reason (write `#checkov:skip=CKV_…:why`):\n  {}",
            unexplained.join("\n  ")
        ));
    }
    let mut cmd = Command::new(venv.bin("checkov"));
    cmd.args([
        "--directory",
        TERRAFORM_DIR,
        "--framework",
        "terraform",
        "--compact",
        "--skip-download", // offline: no guidelines or external checks
    ])
    .current_dir(root)
    .env("VIRTUAL_ENV", venv.dir())
    .env("BC_SKIP_MAPPING", "TRUE");
    let (status, out) = run_capture(cmd, CHECKOV_TIMEOUT).map_err(|e| format!("checkov: {e}"))?;
    let failed = checkov_failures(&out);
    match checkov_counts(&out) {
        Some((passed, 0, skipped)) if passed > 0 && status.success() => Ok(format!(
            "{passed} passed, 0 failed, {skipped} skipped in code with a reason"
        )),
        Some((_, n, _)) if n > 0 && !failed.is_empty() => Err(format!(
            "{n} failed checks (fix them, or skip one in code with `#checkov:skip=CKV_…:why`):\n  {}",
            failed.join("\n  ")
        )),
        _ => Err(format!("checkov did not report ({status}):\n{}", tail(&out, 40))),
    }
}

/// Each failed check in checkov's CLI report, as `check: resource (file)`.
fn checkov_failures(output: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut check = "";
    let mut lines = output.lines().peekable();
    while let Some(line) = lines.next() {
        let line = line.trim();
        if let Some(c) = line.strip_prefix("Check: ") {
            check = c;
        } else if let Some(resource) = line.strip_prefix("FAILED for resource: ") {
            let mut places = Vec::new();
            while let Some(next) = lines.peek() {
                let next = next.trim();
                let Some(place) = next
                    .strip_prefix("File: ")
                    .or_else(|| next.strip_prefix("Calling File: "))
                else {
                    break;
                };
                places.push(place);
                lines.next();
            }
            found.push(format!("{check}: {resource} ({})", places.join(", from ")));
        }
    }
    found
}

/// (passed, failed, skipped) from checkov's `Passed checks: 207, Failed
/// checks: 0, Skipped checks: 6` line.
fn checkov_counts(output: &str) -> Option<(u32, u32, u32)> {
    let line = output.lines().find(|l| l.contains("Passed checks:"))?;
    let count = |label: &str| -> Option<u32> {
        let rest = &line[line.find(label)? + label.len()..];
        rest.trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    Some((
        count("Passed checks:")?,
        count("Failed checks:")?,
        count("Skipped checks:")?,
    ))
}

/// `file:line` of every `checkov:skip=` comment under `dir` that gives no
/// reason (a few words after the check id).
fn unexplained_skips(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                if !name.starts_with('.') {
                    stack.push(path);
                }
            } else if name.ends_with(".tf") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                for (i, line) in text.lines().enumerate() {
                    if line.contains("checkov:skip=") && skip_reason(line).is_none() {
                        found.push(format!("{}:{}", path.display(), i + 1));
                    }
                }
            }
        }
    }
    found.sort();
    found
}

/// The reason of a `#checkov:skip=CKV_X_1:reason` comment, when it has one
/// of at least three words.
fn skip_reason(line: &str) -> Option<&str> {
    let rest = &line[line.find("checkov:skip=")? + "checkov:skip=".len()..];
    let (id, reason) = rest.split_once(':')?;
    let reason = reason.trim();
    let id_ok = id.starts_with("CKV") && !id.contains(char::is_whitespace);
    (id_ok && reason.split_whitespace().count() >= 3).then_some(reason)
}

/// Every environments/<env>.toml agrees with terraform/envs/<env>/terraform.tfvars.
fn environments(root: &Path) -> Outcome<String> {
    let mut names = Vec::new();
    let mut errors = Vec::new();
    let entries =
        std::fs::read_dir(root.join("environments")).map_err(|e| format!("environments/: {e}"))?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    for toml_path in files {
        let env = toml_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let toml_rel = format!("environments/{env}.toml");
        let tfvars_rel = format!("{TERRAFORM_DIR}/envs/{env}/terraform.tfvars");
        let read =
            |rel: &str| std::fs::read_to_string(root.join(rel)).map_err(|e| format!("{rel}: {e}"));
        match (read(&toml_rel), read(&tfvars_rel)) {
            (Ok(toml), Ok(tfvars)) => {
                let found =
                    disagreements(&env, &parse_assignments(&toml), &parse_assignments(&tfvars));
                errors.extend(
                    found
                        .into_iter()
                        .map(|d| format!("{tfvars_rel} disagrees with {toml_rel}: {d}")),
                );
            }
            (a, b) => errors.extend([a.err(), b.err()].into_iter().flatten()),
        }
        names.push(env);
    }
    if names.is_empty() {
        errors.push("no environments/<env>.toml".into());
    }
    if errors.is_empty() {
        Ok(format!(
            "{} agree with their terraform.tfvars",
            names.join(", ")
        ))
    } else {
        Err(errors.join("\n  "))
    }
}

/// Each module (a folder with `variables.tf`) documents exactly its inputs
/// and outputs in its README's `## Inputs` and `## Outputs` tables; no `.tf`
/// outside `tests/` folders writes an ARN or a 12-digit account id (they
/// come from variables, data sources and other resources).
fn module_docs_and_literals(terraform: &Path) -> Outcome<String> {
    let mut errors = Vec::new();
    let mut modules = 0;
    let mut files = 0;
    let mut stack = vec![terraform.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        let rel = |p: &Path| {
            p.strip_prefix(terraform.parent().unwrap_or(terraform))
                .unwrap_or(p)
                .display()
                .to_string()
        };
        for path in &entries {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() && !path.is_symlink() && name != "tests" && !name.starts_with('.') {
                stack.push(path.clone());
            } else if path.extension().is_some_and(|e| e == "tf") && !path.is_symlink() {
                files += 1;
                let text =
                    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", rel(path)))?;
                errors.extend(
                    literals(&text)
                        .into_iter()
                        .map(|l| format!("{}: {l}", rel(path))),
                );
            }
        }
        if dir.join("variables.tf").is_file() && dir.starts_with(terraform.join("modules")) {
            modules += 1;
            let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
            let readme = read("README.md");
            for (section, kind, file) in [
                ("Inputs", "variable", "variables.tf"),
                ("Outputs", "output", "outputs.tf"),
            ] {
                let declared = declared_blocks(&read(file), kind);
                let documented = table_names(&readme, section);
                for name in declared.iter().filter(|n| !documented.contains(n)) {
                    errors.push(format!(
                        "{}: {kind} `{name}` is missing from the README's {section} table",
                        rel(&dir)
                    ));
                }
                for name in documented.iter().filter(|n| !declared.contains(n)) {
                    errors.push(format!(
                        "{}: the README's {section} table lists `{name}`, which {file} does not declare",
                        rel(&dir)
                    ));
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(format!(
            "{modules} module READMEs list their inputs and outputs; no ARN or account id in {files} .tf files"
        ))
    } else {
        Err(errors.join("\n  "))
    }
}

/// Names of `<kind> "name" {` blocks (`variable`, `output`).
fn declared_blocks(text: &str, kind: &str) -> Vec<String> {
    let prefix = format!("{kind} \"");
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix(&prefix))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect()
}

/// First-column names (`` `name` ``) of the table under `## <section>`.
fn table_names(markdown: &str, section: &str) -> Vec<String> {
    let heading = format!("## {section}");
    markdown
        .lines()
        .skip_while(|l| l.trim() != heading)
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .filter_map(|l| l.trim().strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .map(str::to_string)
        .collect()
}

/// Hard-coded ARNs and account ids in Terraform code, comments left out.
fn literals(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = strip_comment(line);
        if code.contains("arn:aws") {
            found.push(format!("line {}: a hard-coded ARN: {}", i + 1, code.trim()));
            continue;
        }
        let digits: Vec<char> = code.chars().collect();
        let mut run = 0;
        for (j, c) in digits.iter().enumerate() {
            run = if c.is_ascii_digit() { run + 1 } else { 0 };
            let ends = digits.get(j + 1).is_none_or(|n| !n.is_ascii_digit());
            if run == 12 && ends {
                found.push(format!("line {}: an account id: {}", i + 1, code.trim()));
                break;
            }
        }
    }
    found
}

/// What an S3 backend needs, and where the environments' `versions.tf`
/// lives (dev's; prod links to it).
const S3_BACKEND_KEYS: &[&str] = &["bucket", "key", "region"];
const ENV_VERSIONS_TF: &str = "terraform/envs/dev/versions.tf";

/// Every `terraform init` in `docs/*.md` that initialises an environment
/// (not `-backend=false`) passes `-backend-config` for each S3 setting the
/// backend block leaves out (a partial configuration): otherwise init stops
/// and asks for the bucket.
fn backend_in_docs(root: &Path) -> Outcome<String> {
    let versions = std::fs::read_to_string(root.join(ENV_VERSIONS_TF))
        .map_err(|e| format!("{ENV_VERSIONS_TF}: {e}"))?;
    let given = backend_block_keys(&versions)
        .ok_or_else(|| format!("{ENV_VERSIONS_TF} has no backend \"s3\" block"))?;
    let needed: Vec<&str> = S3_BACKEND_KEYS
        .iter()
        .copied()
        .filter(|k| !given.iter().any(|g| g == k))
        .collect();
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .map_err(|e| format!("docs/: {e}"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    let mut inits = 0;
    let mut errors = Vec::new();
    for doc in &docs {
        let text = std::fs::read_to_string(doc).map_err(|e| format!("{}: {e}", doc.display()))?;
        let rel = doc.strip_prefix(root).unwrap_or(doc).display().to_string();
        for command in shell_commands(&text) {
            if !is_backend_init(&command) {
                continue;
            }
            inits += 1;
            let missing = backend_configs_missing(&command, &needed);
            if !missing.is_empty() {
                errors.push(format!(
                    "{rel}: `{command}` lacks -backend-config for {} ({ENV_VERSIONS_TF} leaves {} to init)",
                    missing.join(", "),
                    needed.join(", ")
                ));
            }
        }
    }
    if inits == 0 {
        errors.push("no doc shows how to `terraform init` an environment".into());
    }
    if errors.is_empty() {
        Ok(format!(
            "{inits} `terraform init` in docs/ give {}",
            needed.join(" and ")
        ))
    } else {
        Err(errors.join("\n  "))
    }
}

/// Which of `needed` a `terraform init` command line does not pass as
/// `-backend-config=<key>=…`.
fn backend_configs_missing<'a>(command: &str, needed: &[&'a str]) -> Vec<&'a str> {
    needed
        .iter()
        .copied()
        .filter(|k| {
            !command.contains(&format!("-backend-config={k}="))
                && !command.contains(&format!("-backend-config=\"{k}="))
        })
        .collect()
}

/// The settings written inside `backend "s3" { ... }`.
fn backend_block_keys(text: &str) -> Option<Vec<String>> {
    let start = text.find("backend \"s3\"")?;
    let body = &text[start..];
    let open = body.find('{')?;
    let close = body[open..].find('}')? + open;
    Some(
        body[open + 1..close]
            .lines()
            .map(strip_comment)
            .filter_map(|l| l.split_once('='))
            .map(|(k, _)| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .collect(),
    )
}

/// Shell commands in a Markdown text's code blocks, continuation lines
/// (`\` at the end) joined into one.
fn shell_commands(text: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_code = false;
    let mut current = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            current.clear();
            continue;
        }
        if !in_code {
            continue;
        }
        let line = line.trim();
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head.trim_end());
                current.push(' ');
            }
            None => {
                current.push_str(line);
                commands.push(std::mem::take(&mut current));
            }
        }
    }
    commands
}

/// `terraform [-chdir=…] init …` with a backend (not `-backend=false`).
fn is_backend_init(command: &str) -> bool {
    let words: Vec<&str> = command.split_whitespace().collect();
    let Some(tf) = words.iter().position(|w| *w == "terraform") else {
        return false;
    };
    let rest = &words[tf + 1..];
    let sub = rest.iter().find(|w| !w.starts_with('-'));
    sub == Some(&"init") && !rest.contains(&"-backend=false")
}

/// A value on the right of `key = …`: the kinds these files compare.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Bool(bool),
    /// Numbers, lists, objects: kept as written.
    Other(String),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Other(s) => f.write_str(s),
        }
    }
}

/// `[prewarm]` floors (environment file) that must stay within a maximum
/// the tfvars set: `cargo xtask prewarm` would ask for more than allowed.
const PREWARM_WITHIN: &[(&str, &str)] = &[
    ("prewarm.cache_ecpu", "cache_max_ecpu_per_second"),
    ("prewarm.readers", "aurora_reader_autoscaling_max"),
];

/// Security-group names the environment file gives doctor, and the tfvars
/// name plus suffix the Terraform module builds them from
/// (`modules/aurora`: `<name>-aurora`, `modules/cache`: `<name>-cache`).
const SECURITY_GROUP_NAMES: &[(&str, &str, &str)] = &[
    (
        "network.database_security_group",
        "aurora_cluster",
        "-aurora",
    ),
    ("network.cache_security_group", "cache_name", "-cache"),
];

/// What disagrees between an environment file and its tfvars, one line each.
fn disagreements(
    env: &str,
    toml: &BTreeMap<String, Value>,
    tfvars: &BTreeMap<String, Value>,
) -> Vec<String> {
    let mut found = Vec::new();
    for (key, var) in SAME_NAMES {
        let shown_key = match key.split_once('.') {
            Some((section, k)) => format!("[{section}].{k}"),
            None => key.to_string(),
        };
        match (toml.get(*key), tfvars.get(*var)) {
            (Some(a), Some(b)) if a == b => {}
            (Some(a), Some(b)) => found.push(format!("{var} = {b}, but {shown_key} = {a}")),
            (Some(a), None) => found.push(format!("{var} is missing ({shown_key} = {a})")),
            (None, _) => found.push(format!("{shown_key} is missing from the environment file")),
        }
    }
    let number = |v: Option<&Value>| match v {
        Some(Value::Other(n)) => n.parse::<i64>().ok(),
        _ => None,
    };
    for (key, var) in PREWARM_WITHIN {
        if let (Some(floor), Some(max)) = (number(toml.get(*key)), number(tfvars.get(*var))) {
            if floor > max {
                let k = key.trim_start_matches("prewarm.");
                found.push(format!(
                    "[prewarm].{k} = {floor} is above {var} = {max}: prewarm would ask for more than the maximum"
                ));
            }
        }
    }
    for (key, var, suffix) in SECURITY_GROUP_NAMES {
        if let (Some(Value::Str(given)), Some(Value::Str(name))) =
            (toml.get(*key), tfvars.get(*var))
        {
            if *given != format!("{name}{suffix}") {
                let (section, k) = key.split_once('.').unwrap_or(("", key));
                found.push(format!(
                    "[{section}].{k} = {given:?}, but Terraform names that group \"{name}{suffix}\" ({var} + {suffix:?})"
                ));
            }
        }
    }
    if env == "prod" {
        for (var, want) in PROD_REQUIRES {
            if tfvars.get(*var) != Some(want) {
                found.push(format!("prod must set {var} = {want}"));
            }
        }
    }
    found
}

/// `key = value` lines of a TOML file (keys prefixed by their `[section].`)
/// or of a tfvars file. Enough for flat names: nested objects and multi-line
/// lists are skipped, not parsed.
fn parse_assignments(text: &str) -> BTreeMap<String, Value> {
    let mut values = BTreeMap::new();
    let mut section = String::new();
    let mut depth: i32 = 0;
    for raw in text.lines() {
        let line = strip_comment(raw);
        let line = line.trim();
        if depth > 0 {
            depth += bracket_balance(line);
            continue;
        }
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if !name.contains(['"', ',']) {
                section = format!("{}.", name.trim());
                continue;
            }
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim().trim_matches('"');
        let value = value.trim();
        depth += bracket_balance(value);
        let parsed = if let Some(s) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Value::Str(s.replace("\\\"", "\"").replace("\\\\", "\\"))
        } else if value == "true" || value == "false" {
            Value::Bool(value == "true")
        } else {
            Value::Other(value.to_string())
        };
        values.insert(format!("{section}{key}"), parsed);
    }
    values
}

/// The line without its `#` or `//` comment (outside strings).
fn strip_comment(line: &str) -> &str {
    let mut in_string = false;
    let mut escaped = false;
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if in_string => escaped = true,
            b'"' => in_string = !in_string,
            b'#' if !in_string => return &line[..i],
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => return &line[..i],
            _ => {}
        }
    }
    line
}

/// Opening minus closing brackets and braces outside strings.
fn bracket_balance(text: &str) -> i32 {
    let mut in_string = false;
    let mut escaped = false;
    let mut depth = 0;
    for c in text.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '[' | '{' if !in_string => depth += 1,
            ']' | '}' if !in_string => depth -= 1,
            _ => {}
        }
    }
    depth
}

/// The moto half: server, plan, apply, check.py, destroy.
fn moto_apply_and_check(root: &Path, tf: &Terraform) -> Outcome<String> {
    let started = Instant::now();
    let venv = venv(root, "moto")?;
    let dir = tf.work.join("moto");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    // The EKS module attaches AWS-managed policies to its roles.
    let moto = devstack::Moto::start_with(
        &venv.python(),
        &dir,
        &[("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")],
    )
    .map_err(|e| e.to_string())?;
    let endpoint = moto.endpoint();
    eprintln!("terraform: [moto] server at {endpoint}, log in {WORK_DIR}/moto/moto.log");

    let root_dir = root.join(MOTO_ROOT);
    let state = dir.join("terraform.tfstate");
    let plan = dir.join("moto.tfplan");
    let state_arg = format!("-state={}", state.display());
    let plan_out = format!("-out={}", plan.display());
    let plan_path = plan.display().to_string();
    let endpoint_var = format!("endpoint={endpoint}");
    let moto_failed = |e: String| format!("{e}\n  moto's log: {}", moto.log_tail(5));

    // The moto root's lock file is checked in: init never rewrites it.
    tf.init(&root_dir)?;
    let step = |name: &str, args: &[&str], timeout: Duration| -> Outcome<String> {
        let at = Instant::now();
        let out = tf.run(&root_dir, args, timeout).map_err(moto_failed)?;
        eprintln!("terraform: [moto] {name} ({} s)", at.elapsed().as_secs());
        Ok(out)
    };
    let planned = step(
        "plan",
        &[
            "plan",
            "-input=false",
            "-no-color",
            &state_arg,
            &plan_out,
            "-var",
            &endpoint_var,
        ],
        PLAN_TIMEOUT,
    )?;
    let summary = planned
        .lines()
        .find(|l| l.starts_with("Plan:"))
        .unwrap_or("Plan: ?")
        .to_string();
    let applied = step(
        "apply",
        &["apply", "-input=false", "-no-color", &state_arg, &plan_path],
        APPLY_TIMEOUT,
    );
    // Whatever was created is destroyed again, even when a check failed.
    let checked = applied.and_then(|_| {
        let mut cmd = Command::new(venv.python());
        cmd.arg(root_dir.join("check.py"))
            .arg("--endpoint")
            .arg(&endpoint)
            .arg("--state")
            .arg(&state)
            .current_dir(&root_dir);
        let out = run_bounded(cmd, MOTO_CHECK_TIMEOUT).map_err(|e| format!("check.py: {e}"))?;
        let passed = out.lines().filter(|l| l.starts_with("  ok ")).count();
        eprintln!("terraform: [moto] check.py: {passed} checks passed");
        Ok(passed)
    });
    let doctored = checked.and_then(|passed| {
        let at = Instant::now();
        let what = doctor_on_moto(root, moto.port, &state).map_err(moto_failed)?;
        eprintln!(
            "terraform: [moto] doctor: {what} ({} s)",
            at.elapsed().as_secs()
        );
        Ok((passed, what))
    });
    let destroyed = if state.is_file() {
        step(
            "destroy",
            &[
                "destroy",
                "-auto-approve",
                "-input=false",
                "-no-color",
                &state_arg,
                "-var",
                &endpoint_var,
            ],
            APPLY_TIMEOUT,
        )
        .map(drop)
    } else {
        Ok(())
    };
    drop(moto);
    let (passed, doctor) = doctored?;
    destroyed?;
    Ok(format!(
        "{summary} applied, {passed} checks through moto's API passed, doctor: {doctor}, destroyed ({} s)",
        started.elapsed().as_secs()
    ))
}

/// Runs `doctor --json` against the applied moto root, with the names
/// Terraform's outputs give and nothing from this machine's environment,
/// and judges its answer with [`judge_doctor`].
///
/// moto has no Client VPN: a proxy in front of it answers
/// `DescribeClientVpnEndpoints` as EC2 does for an account without any
/// (this root creates none), and forwards everything else.
fn doctor_on_moto(root: &Path, moto_port: u16, state: &Path) -> Outcome<String> {
    let state: serde_json::Value = std::fs::read_to_string(state)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
        .map_err(|e| format!("reading the state: {e}"))?;
    let output = |name: &str| -> Outcome<String> {
        state["outputs"][name]["value"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("the state has no output `{name}`"))
    };
    let binary = match std::env::var_os("OPS_BIN") {
        Some(path) => PathBuf::from(path),
        None => {
            run_bounded(crate::ops::build_command(root), OPS_BUILD_TIMEOUT)
                .map_err(|e| format!("building the ops binary: {e}"))?;
            crate::ops::target_dir(root).join("debug/ops")
        }
    };
    let proxy = devstack::AwsProxy::start(([127, 0, 0, 1], moto_port).into(), |call| {
        if call
            .body
            .split('&')
            .any(|pair| pair == "Action=DescribeClientVpnEndpoints")
        {
            devstack::AwsReply::xml(NO_CLIENT_VPN)
        } else {
            devstack::AwsReply::Forward
        }
    })
    .map_err(|e| format!("starting the proxy in front of moto: {e}"))?;
    let work = root.join(WORK_DIR).join("moto");
    let mut cmd = Command::new(binary);
    cmd.args([
        "doctor",
        "--json",
        "--timeout",
        "30",
        "--region",
        "ap-northeast-2",
    ])
    .args(["--cluster", &output("cluster_name")?])
    .args(["--stream", &output("stream_name")?])
    .args(["--role", &output("app_role_name")?])
    .args(["--namespace", "admission", "--service-account", "admission"])
    // By name, as environments/<env>.toml gives it (modules/aurora names
    // it `<name>-aurora`): doctor finds it in the cluster's VPC.
    .args([
        "--database-security-group",
        &format!("{}-aurora", output("aurora_cluster_id")?),
    ]);
    // doctor's fallbacks: nothing of this machine's may leak in.
    for var in [
        "DATABASE_URL",
        "REDIS_URL",
        "REDIS_CLUSTER_NODES",
        "REDIS_CA_FILE",
        "KINESIS_STREAM",
        "KUBECONFIG",
        "EKS_CLUSTER",
        "NAMESPACE",
        "APP_URL",
        "APP_ROLE_NAME",
        "SERVICE_ACCOUNT",
        "DEPLOYMENT",
        "DATABASE_SECURITY_GROUP",
        "CACHE_SECURITY_GROUP",
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_ENDPOINT_URL", proxy.endpoint())
        .env("AWS_ACCESS_KEY_ID", "moto")
        .env("AWS_SECRET_ACCESS_KEY", "moto")
        .env("AWS_CONFIG_FILE", work.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            work.join("no-aws-credentials"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let (status, out) = run_capture(cmd, DOCTOR_TIMEOUT)?;
    // stdout (one JSON object) comes first, then stderr.
    let answer = serde_json::Deserializer::from_str(&out)
        .into_iter::<serde_json::Value>()
        .next()
        .and_then(|v| v.ok())
        .ok_or_else(|| format!("doctor printed no JSON ({status}):\n{}", tail(&out, 30)))?;
    judge_doctor(&answer, status.success()).map_err(|e| format!("{e}\n{}", tail(&out, 40)))
}

/// EC2's answer to `DescribeClientVpnEndpoints` when there is none.
const NO_CLIENT_VPN: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeClientVpnEndpointsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</requestId><clientVpnEndpoint/></DescribeClientVpnEndpointsResponse>"#;

/// Every check of `answer` (doctor's `--json`) ok or skipped, those of
/// [`DOCTOR_OK_ON_MOTO`] ok, and doctor exited 0.
fn judge_doctor(answer: &serde_json::Value, exited_ok: bool) -> Outcome<String> {
    let checks = answer["checks"]
        .as_array()
        .ok_or("doctor's answer has no `checks` list")?;
    let mut ok = Vec::new();
    let mut skipped = 0;
    let mut wrong = Vec::new();
    for check in checks {
        let code = check["code"].as_str().unwrap_or("?");
        let status = check["status"].as_str().unwrap_or("?");
        let expected_ok = DOCTOR_OK_ON_MOTO.contains(&code);
        match status {
            "ok" => ok.push(code),
            "skip" if !expected_ok => skipped += 1,
            _ => wrong.push(format!(
                "{code} is {status}: {} (fix: {})",
                check["summary"].as_str().unwrap_or(""),
                check["fix"].as_str().unwrap_or("none")
            )),
        }
    }
    for code in DOCTOR_OK_ON_MOTO {
        if !checks.iter().any(|c| c["code"] == *code) {
            wrong.push(format!("{code} is missing from doctor's answer"));
        }
    }
    if !wrong.is_empty() {
        return Err(format!("doctor against moto: {}", wrong.join("; ")));
    }
    if !exited_ok {
        return Err("doctor exited non-zero with no failed check".into());
    }
    Ok(format!(
        "{} checks ok ({}), {skipped} skipped",
        ok.len(),
        ok.join(", ")
    ))
}

/// `f` over `items` on two threads (this is a 2-core machine, and the moto
/// half mostly waits), results in the order of `items`.
fn in_parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    const WORKERS: usize = 2;
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::with_capacity(items.len()));
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let result = f(item);
                if let Ok(mut results) = results.lock() {
                    results.push((i, result));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Runs `cmd` with its output captured; fails when it exits non-zero or
/// outlives `timeout`. Returns stdout followed by stderr.
fn run_bounded(cmd: Command, timeout: Duration) -> Outcome<String> {
    let (status, output) = run_capture(cmd, timeout)?;
    if status.success() {
        Ok(output)
    } else {
        Err(format!("failed ({status}):\n{}", tail(&output, 40)))
    }
}

/// Runs `cmd` with its output captured (stdout, then stderr) and returns
/// how it exited; fails only when it cannot start or outlives `timeout`
/// (then it gets SIGTERM, and SIGKILL 10 s later).
fn run_capture(mut cmd: Command, timeout: Duration) -> Outcome<(ExitStatus, String)> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    let (tx, rx) = mpsc::channel();
    for (i, pipe) in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .enumerate()
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            let _ = tx.send((i, text));
        });
    }
    drop(tx);
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                timed_out = true;
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
                let grace = Instant::now() + Duration::from_secs(10);
                while Instant::now() < grace && matches!(child.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(100));
                }
                let _ = child.kill();
                break child.wait().map_err(|e| e.to_string())?;
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    // A grandchild that keeps a pipe open must not hang us either.
    let mut texts = [String::new(), String::new()];
    for _ in 0..2 {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok((i, text)) => texts[i] = text,
            Err(_) => break,
        }
    }
    let output = format!("{}{}", texts[0], texts[1]);
    if timed_out {
        return Err(format!(
            "still running after {} s, stopped:\n{}",
            timeout.as_secs(),
            tail(&output, 30)
        ));
    }
    Ok((status, output))
}

/// The last `n` lines, indented.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doctor_answer(statuses: &[(&str, &str)]) -> serde_json::Value {
        let checks: Vec<serde_json::Value> = statuses
            .iter()
            .map(|(code, status)| {
                serde_json::json!({"code": code, "status": status, "summary": "s", "fix": null})
            })
            .collect();
        serde_json::json!({ "checks": checks })
    }

    #[test]
    fn doctor_on_moto_needs_the_aws_checks_ok_and_the_rest_skipped() {
        let mut all: Vec<(&str, &str)> = DOCTOR_OK_ON_MOTO.iter().map(|c| (*c, "ok")).collect();
        all.push(("db.schema", "skip"));
        assert!(judge_doctor(&doctor_answer(&all), true)
            .unwrap()
            .ends_with("1 skipped"));
        assert!(judge_doctor(&doctor_answer(&all), false).is_err());
        let mut skipped_aws = all.clone();
        skipped_aws[1].1 = "skip";
        let e = judge_doctor(&doctor_answer(&skipped_aws), true).unwrap_err();
        assert!(e.contains("eks.cluster is skip"), "{e}");
        let mut warned = all.clone();
        warned.push(("app.ready", "warn"));
        assert!(judge_doctor(&doctor_answer(&warned), true).is_err());
        let e = judge_doctor(&doctor_answer(&all[1..]), true).unwrap_err();
        assert!(e.contains("aws.credentials is missing"), "{e}");
    }

    const TOML: &str = r#"
# The dev environment's names
name = "dev"

[aws]
account_id = "111111111111" # a placeholder
account_alias = "tickets-dev"
region = "ap-northeast-2"

[kubernetes]
cluster = "tickets-dev"
namespace = "admission"
service_account = "admission"

[app]
role_name = "tickets-dev-admission"
kinesis_stream = "tickets-dev-admission-events"
cache_name = "tickets-dev-queue"
ecr_repository = "tickets/admission"
aurora_cluster = "tickets-dev"

[alarms]
email = "oncall-dev@example.com"

[network]
vpc_cidr = "10.10.0.0/16"

[ingress]
host = "tickets-dev.example.com"
zone = "example.com"
group_name = "tickets-dev"

[kubernetes.addons]
lb_controller_role_name = "tickets-dev-aws-load-balancer-controller"
external_dns_role_name = "tickets-dev-external-dns"
namespace = "kube-system"
node_autoscaler_role_name = "tickets-dev-cluster-autoscaler"
"#;

    const TFVARS: &str = r#"
environment   = "dev"
account_id    = "111111111111"
account_alias = "tickets-dev"
region        = "ap-northeast-2" // the region
cluster_name    = "tickets-dev"
namespace       = "admission"
service_account = "admission"
app_role_name   = "tickets-dev-admission"
kinesis_stream  = "tickets-dev-admission-events"
cache_name      = "tickets-dev-queue"
ecr_repository  = "tickets/admission"
aurora_cluster  = "tickets-dev"
alarm_email     = "oncall-dev@example.com"
dns_zone        = "example.com"
dns_host        = "tickets-dev.example.com"
vpc_cidr        = "10.10.0.0/16"
addons_namespace          = "kube-system"
lb_controller_role_name   = "tickets-dev-aws-load-balancer-controller"
external_dns_role_name    = "tickets-dev-external-dns"
node_autoscaler_role_name = "tickets-dev-cluster-autoscaler"
azs = [
  "ap-northeast-2a",
  "ap-northeast-2b",
]
vpn = {
  client_cidr_block = "172.16.0.0/22"
}
node_max_size       = 4
deletion_protection = false
"#;

    #[test]
    fn readme_tables_and_declarations_are_read() {
        let tf = "variable \"name\" {\n}\n  variable \"tags\" {}\noutput \"arn\" {}\n";
        assert_eq!(declared_blocks(tf, "variable"), ["name", "tags"]);
        assert_eq!(declared_blocks(tf, "output"), ["arn"]);
        let md = "# m\n## Inputs\n\n| name | type |\n|---|---|\n| `name` | `string` |\n| `tags` | map |\n\n## Outputs\n| `arn` | x |\n";
        assert_eq!(table_names(md, "Inputs"), ["name", "tags"]);
        assert_eq!(table_names(md, "Outputs"), ["arn"]);
        assert!(table_names(md, "Other").is_empty());
    }

    #[test]
    fn hard_coded_arns_and_account_ids_are_found_outside_comments() {
        assert_eq!(
            literals("  role = \"arn:aws:iam::123456789012:role/x\"\n").len(),
            1
        );
        assert_eq!(literals("  owners = [\"123456789012\"]\n").len(), 1);
        assert!(literals("  # arn:aws:iam::123456789012:role/x\n").is_empty());
        assert!(literals("  arn = \"arn:${data.aws_partition.p.partition}:iam::${local.account}:root\"\n  n = 1234567890123\n").is_empty());
    }

    /// The committed modules pass.
    #[test]
    fn committed_modules_document_their_interface_and_name_no_account() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../terraform");
        module_docs_and_literals(&root).unwrap();
    }

    #[test]
    fn backend_keys_are_read_from_the_s3_block() {
        let text =
            "terraform {\n  backend \"s3\" {\n    key = \"a\" # c\n    encrypt = true\n  }\n}\n";
        assert_eq!(backend_block_keys(text).unwrap(), ["key", "encrypt"]);
        assert!(backend_block_keys("terraform {}").is_none());
    }

    #[test]
    fn docs_inits_are_found_across_continuation_lines() {
        let md = "text terraform init\n```sh\nterraform -chdir=terraform/envs/dev init \\\n  -backend-config=bucket=b \\\n  -backend-config=\"region=r\"\nterraform plan\n```\n";
        let commands = shell_commands(md);
        assert_eq!(
            commands[0],
            "terraform -chdir=terraform/envs/dev init -backend-config=bucket=b -backend-config=\"region=r\""
        );
        assert!(is_backend_init(&commands[0]));
        assert!(!is_backend_init(&commands[1]));
        assert!(!is_backend_init("terraform init -backend=false"));
        assert!(!is_backend_init("echo init"));
    }

    /// The docs as committed pass, and a bare init would not.
    #[test]
    fn docs_give_the_backend_its_bucket_and_region() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        backend_in_docs(&root).unwrap();
        let bare = "```sh\nterraform -chdir=terraform/envs/dev init\n```\n";
        let command = &shell_commands(bare)[0];
        assert!(is_backend_init(command));
        assert_eq!(
            backend_configs_missing(command, &["bucket", "region"]),
            ["bucket", "region"]
        );
        assert_eq!(
            backend_configs_missing(
                "terraform init -backend-config=\"bucket=b\" -backend-config=region=r",
                &["bucket", "region"]
            ),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn toml_keys_are_prefixed_by_their_section() {
        let v = parse_assignments(TOML);
        assert_eq!(v["name"], Value::Str("dev".into()));
        assert_eq!(v["aws.account_id"], Value::Str("111111111111".into()));
        assert_eq!(v["kubernetes.cluster"], Value::Str("tickets-dev".into()));
        assert_eq!(
            v["alarms.email"],
            Value::Str("oncall-dev@example.com".into())
        );
    }

    #[test]
    fn dotted_sections_prefix_their_keys() {
        let v = parse_assignments(TOML);
        assert_eq!(
            v["kubernetes.addons.namespace"],
            Value::Str("kube-system".into())
        );
        assert_eq!(v["network.vpc_cidr"], Value::Str("10.10.0.0/16".into()));
    }

    #[test]
    fn tfvars_skip_the_insides_of_lists_and_objects() {
        let v = parse_assignments(TFVARS);
        assert_eq!(v["region"], Value::Str("ap-northeast-2".into()));
        assert_eq!(v["node_max_size"], Value::Other("4".into()));
        assert_eq!(v["deletion_protection"], Value::Bool(false));
        assert!(v.contains_key("vpn") && v.contains_key("azs"));
        assert!(!v.contains_key("client_cidr_block"));
    }

    #[test]
    fn comments_inside_strings_are_kept() {
        assert_eq!(strip_comment(r#"a = "x#y" # c"#), r#"a = "x#y" "#);
        assert_eq!(
            strip_comment(r#"a = "http://x" // c"#),
            r#"a = "http://x" "#
        );
        assert_eq!(
            parse_assignments(r#"a = "say \"hi\"""#)["a"],
            Value::Str(r#"say "hi""#.into())
        );
    }

    #[test]
    fn matching_files_agree() {
        let found = disagreements("dev", &parse_assignments(TOML), &parse_assignments(TFVARS));
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_renamed_cluster_names_both_keys() {
        let tfvars = TFVARS.replace(
            "cluster_name    = \"tickets-dev\"",
            "cluster_name = \"tickets-dev2\"",
        );
        let found = disagreements("dev", &parse_assignments(TOML), &parse_assignments(&tfvars));
        assert_eq!(
            found,
            ["cluster_name = \"tickets-dev2\", but [kubernetes].cluster = \"tickets-dev\""]
        );
    }

    #[test]
    fn a_missing_variable_is_reported() {
        let tfvars = TFVARS.replace("alarm_email     = \"oncall-dev@example.com\"\n", "");
        let found = disagreements("dev", &parse_assignments(TOML), &parse_assignments(&tfvars));
        assert_eq!(
            found,
            ["alarm_email is missing ([alarms].email = \"oncall-dev@example.com\")"]
        );
    }

    #[test]
    fn prod_without_deletion_protection_is_refused() {
        let toml = TOML.replace("name = \"dev\"", "name = \"prod\"");
        let tfvars = TFVARS.replace("environment   = \"dev\"", "environment = \"prod\"");
        let found = disagreements(
            "prod",
            &parse_assignments(&toml),
            &parse_assignments(&tfvars),
        );
        assert_eq!(found, ["prod must set deletion_protection = true"]);
        let fixed = tfvars.replace("deletion_protection = false", "deletion_protection = true");
        assert!(disagreements(
            "prod",
            &parse_assignments(&toml),
            &parse_assignments(&fixed)
        )
        .is_empty());
    }

    #[test]
    fn a_prewarm_floor_above_its_maximum_disagrees() {
        let tfvars = format!(
            "{TFVARS}\ncache_max_ecpu_per_second = 1000\naurora_reader_autoscaling_max = 2\n"
        );
        let within = format!("{TOML}\n[prewarm]\ncache_ecpu = 1000\nreaders = 2\n");
        let found = disagreements(
            "dev",
            &parse_assignments(&within),
            &parse_assignments(&tfvars),
        );
        assert!(!found.iter().any(|d| d.contains("prewarm")), "{found:?}");
        let above = format!("{TOML}\n[prewarm]\ncache_ecpu = 1001\nreaders = 3\n");
        let found = disagreements(
            "dev",
            &parse_assignments(&above),
            &parse_assignments(&tfvars),
        );
        let prewarm: Vec<&String> = found.iter().filter(|d| d.contains("prewarm")).collect();
        assert_eq!(prewarm.len(), 2, "{found:?}");
        assert!(prewarm[0]
            .contains("[prewarm].cache_ecpu = 1001 is above cache_max_ecpu_per_second = 1000"));
    }

    #[test]
    fn security_group_names_must_be_the_ones_terraform_gives() {
        let tfvars =
            format!("{TFVARS}\naurora_cluster = \"t-dev\"\ncache_name = \"t-dev-queue\"\n");
        let toml = |db: &str| {
            format!("{TOML}\n[network]\ndatabase_security_group = \"{db}\"\ncache_security_group = \"t-dev-queue-cache\"\n")
        };
        let found = disagreements(
            "dev",
            &parse_assignments(&toml("t-dev-aurora")),
            &parse_assignments(&tfvars),
        );
        assert!(
            !found.iter().any(|d| d.contains("security_group")),
            "{found:?}"
        );
        let found = disagreements(
            "dev",
            &parse_assignments(&toml("t-dev-db")),
            &parse_assignments(&tfvars),
        );
        let wrong: Vec<&String> = found
            .iter()
            .filter(|d| d.contains("security_group"))
            .collect();
        assert_eq!(wrong.len(), 1, "{found:?}");
        assert!(wrong[0].contains("\"t-dev-aurora\""), "{wrong:?}");
    }

    #[test]
    fn the_checked_in_environments_agree() {
        let root = crate::project_root();
        let result = environments(&root);
        assert!(result.is_ok(), "{result:?}");
    }

    #[test]
    fn terraform_test_summaries() {
        assert_eq!(
            test_counts("...\nSuccess! 10 passed, 0 failed.\n"),
            Some((10, 0))
        );
        assert_eq!(
            test_counts("Failure! 2 passed, 1 failed, 6 skipped.\n"),
            Some((2, 1))
        );
        assert_eq!(test_counts("Error: no tests\n"), None);
    }

    #[test]
    fn checkov_summary() {
        let out = "terraform scan results:\n\nPassed checks: 207, Failed checks: 0, Skipped checks: 6\n\n";
        assert_eq!(checkov_counts(out), Some((207, 0, 6)));
        assert_eq!(
            checkov_counts("Passed checks: 3, Failed checks: 12, Skipped checks: 0"),
            Some((3, 12, 0))
        );
        assert_eq!(checkov_counts("nothing scanned"), None);
    }

    #[test]
    fn checkov_failures_name_the_check_the_resource_and_where() {
        let out = "\
Check: CKV_AWS_118: \"Ensure that enhanced monitoring is enabled\"
\tFAILED for resource: module.aurora.aws_rds_cluster_instance.this[0]
\tFile: /modules/aurora/main.tf:187-210
\tCalling File: /tests/moto/main.tf:114-129
Check: CKV2_AWS_5: \"Ensure that Security Groups are attached\"
\tPASSED for resource: aws_security_group.a
\tFAILED for resource: aws_security_group.cluster
\tFile: /tests/moto/main.tf:108-112
";
        assert_eq!(
            checkov_failures(out),
            [
                "CKV_AWS_118: \"Ensure that enhanced monitoring is enabled\": module.aurora.aws_rds_cluster_instance.this[0] (/modules/aurora/main.tf:187-210, from /tests/moto/main.tf:114-129)",
                "CKV2_AWS_5: \"Ensure that Security Groups are attached\": aws_security_group.cluster (/tests/moto/main.tf:108-112)",
            ]
        );
    }

    #[test]
    fn skips_need_a_reason() {
        assert_eq!(
            skip_reason("  #checkov:skip=CKV_AWS_139:Off only for throwaway dev."),
            Some("Off only for throwaway dev.")
        );
        assert_eq!(skip_reason("  #checkov:skip=CKV_AWS_139"), None);
        assert_eq!(skip_reason("  #checkov:skip=CKV_AWS_139:todo"), None);
        assert_eq!(skip_reason("  # no skip here"), None);
    }

    #[test]
    fn every_checked_in_skip_has_a_reason() {
        let dir = crate::project_root().join(TERRAFORM_DIR);
        assert_eq!(unexplained_skips(&dir), Vec::<String>::new());
    }

    #[test]
    fn roots_include_nested_modules_environments_and_the_moto_root() {
        let dir = crate::project_root().join(TERRAFORM_DIR);
        let roots: Vec<String> = terraform_roots(&dir)
            .iter()
            .map(|p| p.strip_prefix(&dir).unwrap_or(p).display().to_string())
            .collect();
        for want in [
            "modules/network",
            "modules/eks",
            "modules/eks/modules/irsa",
            "modules/aurora/modules/user-secrets",
            "envs/dev",
            "envs/prod",
            "tests/moto",
        ] {
            assert!(
                roots.iter().any(|r| r == want),
                "{want} missing from {roots:?}"
            );
        }
    }

    #[test]
    fn parallel_results_keep_the_order_of_their_items() {
        let items: Vec<u64> = (0..20).collect();
        let doubled = in_parallel(&items, |i| {
            std::thread::sleep(Duration::from_millis(20 - i));
            i * 2
        });
        assert_eq!(doubled, items.iter().map(|i| i * 2).collect::<Vec<_>>());
    }

    #[test]
    fn a_command_over_its_time_limit_is_stopped() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let at = Instant::now();
        let result = run_bounded(cmd, Duration::from_millis(300));
        assert!(result.is_err_and(|e| e.contains("still running")));
        assert!(at.elapsed() < Duration::from_secs(15));
    }

    /// The whole step, as `cargo xtask test` runs it (slow: minutes).
    /// `cargo test -p xtask -- --ignored whole_terraform_step`
    #[test]
    #[ignore]
    fn whole_terraform_step() {
        let sh = Shell::new().expect("shell");
        sh.change_dir(crate::project_root());
        if let Err(e) = check(&sh) {
            panic!("{e}");
        }
    }
}
