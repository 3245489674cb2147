//! The deployment checks in `cargo xtask test`: the Helm chart, the ArgoCD
//! Applications and add-on values, the GitLab CI files and the image's
//! Dockerfile.
//!
//! 1. `xtask/python/helm_check.py` (the real Helm engine, helm-python-sdk,
//!    and kubernetes-validate, in the pinned `helm` venv) lints and renders
//!    the chart with dev, prod and every optional template on, validates every
//!    manifest for the Kubernetes version that environment's cluster runs
//!    (`kubernetes_version` in `terraform/envs/<env>/terraform.tfvars`, which
//!    the Cluster Autoscaler's image must match), proves that values still
//!    holding the placeholders of before the first `terraform apply` refuse
//!    to render (and checks the rest as if they were set), checks the GitLab
//!    CI files' structure, `app/Dockerfile`'s last stage and that every
//!    value in `values.yaml` has a comment, proves that bad values fail to render, and checks the names
//!    against `environments/<env>.toml` and the ArgoCD Applications against
//!    the tree. It writes the rendered manifests under `target/helm/<set>/`.
//! 2. Every PrometheusRule goes through `promtool check rules`, and every
//!    metric that alerts, the dashboard or KEDA name must be one the app
//!    exports ([`APP_METRICS`], kept equal to `app/src/metrics.rs` by a test).
//! 3. `check-jsonschema` validates `.gitlab-ci.yml` and `gitlab-ci/*.yml`
//!    against GitLab's schema, and `localstack/docker-compose.yml` against
//!    the Compose specification (its names and ports are held to what
//!    `cargo xtask dev --aws localstack` uses by the tests in
//!    localstack.rs).
//! 4. checkov scans the rendered manifests and `app/Dockerfile`; the only
//!    findings allowed are the ones skipped with a reason in the chart
//!    (`admission.checkovSkips`) or the Dockerfile.
//! 5. The database bootstrap Job's script, taken from the rendered
//!    ConfigMap, runs twice against a real MariaDB with the environment the
//!    Job gives it, and the grants, a drift repair and a password rotation
//!    are checked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use xshell::Shell;

use crate::venv::Venv;
use crate::{tools, Result};

/// The sets `helm_check.py` renders, each in `target/helm/<set>/`.
const SETS: &[&str] = &["dev", "prod", "all-features"];

/// What a metric is, as far as PromQL names go: a histogram is also read
/// through its `_bucket`, `_sum` and `_count` series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum MetricKind {
    Plain,
    Histogram,
}

/// Every metric the app exports today (`app/src/metrics.rs`); alerts, the
/// dashboard and the KEDA trigger may name only these.
const APP_METRICS: &[(&str, MetricKind)] = &[
    ("http_request_duration_seconds", MetricKind::Histogram),
    ("http_requests_total", MetricKind::Plain),
    (
        "admission_redis_command_duration_seconds",
        MetricKind::Histogram,
    ),
    ("admission_request_stage_seconds", MetricKind::Histogram),
    ("admission_runtime_lag_seconds", MetricKind::Histogram),
    ("admission_queue_length", MetricKind::Plain),
    ("admission_active_sessions", MetricKind::Plain),
    ("admission_capacity", MetricKind::Plain),
    ("admission_admitted_total", MetricKind::Plain),
    ("admission_last_admit_timestamp_seconds", MetricKind::Plain),
    ("admission_loop_errors_total", MetricKind::Plain),
    ("admission_websocket_connections", MetricKind::Plain),
    ("admission_background_errors_total", MetricKind::Plain),
    ("admission_event_records_sent_total", MetricKind::Plain),
    ("admission_event_records_retried_total", MetricKind::Plain),
    ("admission_event_records_failed_total", MetricKind::Plain),
    ("admission_outbox_length", MetricKind::Plain),
    ("admission_outbox_oldest_age_seconds", MetricKind::Plain),
    ("admission_outbox_dropped_total", MetricKind::Plain),
    ("admission_push_latency_seconds", MetricKind::Histogram),
];

/// The Secrets the bootstrap Job reads (the chart's `database.secrets`
/// defaults, the names docs/deploy.md creates), as a test cluster holds them.
const SECRET_MASTER: &str = "admission-db-master";
const SECRET_APP: &str = "admission-db-app";
const SECRET_READER: &str = "admission-db-reader";
const SECRET_MIGRATOR: &str = "admission-db-migrator";

const WRITER_PRIVILEGES: &[&str] = &["DELETE", "INSERT", "SELECT", "UPDATE"];
const READER_PRIVILEGES: &[&str] = &["SELECT"];
const MIGRATOR_PRIVILEGES: &[&str] = &[
    "ALTER",
    "CREATE",
    "CREATE VIEW",
    "DELETE",
    "DROP",
    "INDEX",
    "INSERT",
    "REFERENCES",
    "SELECT",
    "SHOW VIEW",
    "TRIGGER",
    "UPDATE",
];

fn progress(message: &str) {
    eprintln!("helm: {message}");
}

pub fn check(sh: &Shell) -> Result {
    let started = Instant::now();
    let root = sh.current_dir();
    let out = root.join("target/helm");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(out.join("logs"))?;

    tools::ensure(sh, &[&tools::PROMTOOL])?;
    let (helm, checkov) = ensure_venvs(&root)?;
    progress(&format!(
        "tools ready in {} s ({} and {})",
        started.elapsed().as_secs(),
        helm.dir().display(),
        checkov.dir().display()
    ));

    let app_env = config_env_names(&std::fs::read_to_string(root.join("app/src/config.rs"))?);
    if app_env.len() < 10 {
        return Err(format!("found only {app_env:?} as env names in app/src/config.rs").into());
    }
    progress("render, lint and validate the chart (helm_check.py)");
    let mut script = Command::new(helm.python());
    script
        .arg(root.join("xtask/python/helm_check.py"))
        .arg("--out")
        .arg(&out)
        .arg("--app-env")
        .arg(app_env.join(","))
        .env("PYTHONDONTWRITEBYTECODE", "1");
    run(
        &mut script,
        &out,
        "helm_check",
        Duration::from_secs(180),
        true,
    )?;

    let mut exported = exported_metrics(&std::fs::read_to_string(root.join("app/src/metrics.rs"))?);
    exported.sort();
    let mut listed: Vec<(String, MetricKind)> = APP_METRICS
        .iter()
        .map(|(n, k)| (n.to_string(), *k))
        .collect();
    listed.sort();
    if exported != listed {
        return Err(format!(
            "app/src/metrics.rs exports {exported:?}, but APP_METRICS in xtask/src/helm.rs lists {listed:?}: update the list (and the alerts)"
        )
        .into());
    }
    promtool_and_metrics(&out)?;

    progress("check-jsonschema: .gitlab-ci.yml and gitlab-ci/*.yml against GitLab's schema");
    let mut ci_files = vec![root.join(".gitlab-ci.yml")];
    let mut included: Vec<PathBuf> = std::fs::read_dir(root.join("gitlab-ci"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    included.sort();
    if included.is_empty() {
        return Err("gitlab-ci/ holds no .yml file".into());
    }
    ci_files.extend(included);
    let mut schema = Command::new(helm.bin("check-jsonschema"));
    schema
        .args(["--builtin-schema", "vendor.gitlab-ci"])
        .args(&ci_files);
    run(
        &mut schema,
        &out,
        "check-jsonschema",
        Duration::from_secs(60),
        false,
    )?;
    progress("check-jsonschema: localstack/docker-compose.yml against the Compose specification");
    let mut compose = Command::new(helm.bin("check-jsonschema"));
    compose
        .args(["--builtin-schema", "vendor.compose-spec"])
        .arg(root.join(crate::localstack::COMPOSE_FILE));
    run(
        &mut compose,
        &out,
        "check-compose",
        Duration::from_secs(60),
        false,
    )?;

    progress("checkov: rendered manifests and app/Dockerfile");
    let mut scan = Command::new(checkov.bin("checkov"));
    for set in SETS {
        scan.arg("-d").arg(out.join(set));
    }
    scan.arg("-f")
        .arg(root.join("app/Dockerfile"))
        .args(["--framework", "kubernetes", "dockerfile"])
        .args(["--skip-download", "--quiet", "--compact"])
        .current_dir(&out);
    run(&mut scan, &out, "checkov", Duration::from_secs(180), false)?;

    db_bootstrap(&root, &out)?;

    progress(&format!(
        "all checks passed in {} s",
        started.elapsed().as_secs()
    ));
    Ok(())
}

/// Both venvs at once: on a cold machine their installs overlap.
fn ensure_venvs(root: &Path) -> Result<(Venv, Venv)> {
    let in_thread = |name: &'static str| {
        let root = root.to_path_buf();
        std::thread::spawn(move || -> std::result::Result<Venv, String> {
            let sh = Shell::new().map_err(|e| e.to_string())?;
            sh.change_dir(root);
            Venv::ensure(&sh, name).map_err(|e| format!("venv {name}: {e}"))
        })
    };
    let helm = in_thread("helm");
    let checkov = in_thread("checkov");
    let join = |h: std::thread::JoinHandle<std::result::Result<Venv, String>>| {
        h.join()
            .map_err(|_| "a venv install panicked".to_string())
            .and_then(|r| r)
    };
    Ok((join(helm)?, join(checkov)?))
}

/// Runs `cmd` for at most `limit`, its output in `target/helm/logs/<name>.*`;
/// fails (quoting the output) on a non-zero exit or at the deadline.
/// `live` shows its stderr (progress) as it runs.
fn run(cmd: &mut Command, out: &Path, name: &str, limit: Duration, live: bool) -> Result {
    let stdout_path = out.join("logs").join(format!("{name}.out"));
    let stderr_path = out.join("logs").join(format!("{name}.err"));
    cmd.stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path)?);
    if live {
        cmd.stderr(Stdio::inherit());
    } else {
        cmd.stderr(std::fs::File::create(&stderr_path)?);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{name}: cannot start {:?}: {e}", cmd.get_program()))?;
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{name} did not finish within {} s", limit.as_secs()).into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if !status.success() {
        let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        eprintln!("{}\n{}", stdout.trim_end(), stderr.trim_end());
        return Err(format!("{name} failed ({status}); its output is above").into());
    }
    Ok(())
}

/// promtool on every PrometheusRule, and the metric names of every PromQL
/// expression against what the app exports.
fn promtool_and_metrics(out: &Path) -> Result {
    let promtool = devstack::which("promtool").ok_or("promtool is missing")?;
    let mut rule_files = 0;
    let mut expressions = 0;
    for set in SETS {
        let dir = out.join(set);
        let mut rules: Vec<PathBuf> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("rules-") && n.ends_with(".yaml"))
            })
            .collect();
        rules.sort();
        if rules.is_empty() {
            return Err(format!("the {set} set renders no PrometheusRule").into());
        }
        for file in &rules {
            let mut cmd = Command::new(&promtool);
            cmd.args(["check", "rules"]).arg(file);
            run(
                &mut cmd,
                out,
                &format!("promtool-{set}"),
                Duration::from_secs(30),
                false,
            )?;
            rule_files += 1;
        }

        let allowed = allowed_metrics();
        let tsv = std::fs::read_to_string(dir.join("promql.tsv"))?;
        let mut unknown = Vec::new();
        for line in tsv.lines().filter(|l| !l.trim().is_empty()) {
            let (source, expr) = line
                .split_once('\t')
                .ok_or_else(|| format!("promql.tsv: bad line {line:?}"))?;
            let names = metric_names(expr);
            if names.is_empty() {
                unknown.push(format!("{source}: names no metric: {expr}"));
            }
            for name in names {
                if !allowed.contains(&name) {
                    unknown.push(format!(
                        "{source}: `{name}` is not a metric the app exports"
                    ));
                }
            }
            expressions += 1;
        }
        if !unknown.is_empty() {
            return Err(format!("{set}:\n    {}", unknown.join("\n    ")).into());
        }
    }
    progress(&format!(
        "promtool accepted {rule_files} rule files; {expressions} PromQL expressions name only exported metrics"
    ));
    Ok(())
}

/// The series names PromQL may use: every metric, and a histogram's series
/// too.
fn allowed_metrics() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (name, kind) in APP_METRICS {
        names.insert(name.to_string());
        if *kind == MetricKind::Histogram {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
    }
    names
}

/// The metric names a PromQL expression reads: identifiers that are not
/// functions, keywords, label names (inside `{}` or after `by`/`on`/...),
/// strings, durations or numbers.
fn metric_names(expr: &str) -> Vec<String> {
    const LABEL_LISTS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    // Operators and aggregations (`max by (x) (...)` puts a modifier, not
    // a parenthesis, after the aggregation's name).
    const KEYWORDS: &[&str] = &[
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "atan2",
        "inf",
        "nan",
        "start",
        "end",
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ];
    let c: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    // Skips from an opening bracket to its match, stepping over strings.
    let skip_group = |mut i: usize, open: char, close: char| -> usize {
        let mut depth = 0;
        while i < c.len() {
            match c[i] {
                '"' | '\'' | '`' => i = skip_string(&c, i),
                ch if ch == open => {
                    depth += 1;
                    i += 1;
                }
                ch if ch == close => {
                    depth -= 1;
                    i += 1;
                    if depth == 0 {
                        return i;
                    }
                }
                _ => i += 1,
            }
        }
        i
    };
    while i < c.len() {
        match c[i] {
            '"' | '\'' | '`' => i = skip_string(&c, i),
            '{' => i = skip_group(i, '{', '}'),
            '[' => i = skip_group(i, '[', ']'),
            '#' => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            ch if ch.is_ascii_digit()
                || (ch == '.' && c.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '.' || c[i] == '_') {
                    i += 1;
                }
            }
            ch if ch.is_ascii_alphabetic() || ch == '_' || ch == ':' => {
                let start = i;
                while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_' || c[i] == ':') {
                    i += 1;
                }
                let ident: String = c[start..i].iter().collect();
                let mut j = i;
                while j < c.len() && c[j].is_whitespace() {
                    j += 1;
                }
                let call = c.get(j) == Some(&'(');
                if LABEL_LISTS.contains(&ident.as_str()) {
                    if call {
                        i = skip_group(j, '(', ')');
                    }
                } else if !call && !KEYWORDS.contains(&ident.to_ascii_lowercase().as_str()) {
                    names.push(ident);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// The index just past the string literal that starts at `i`.
fn skip_string(c: &[char], i: usize) -> usize {
    let quote = c[i];
    let mut j = i + 1;
    while j < c.len() {
        if c[j] == '\\' && quote != '`' {
            j += 2;
            continue;
        }
        if c[j] == quote {
            return j + 1;
        }
        j += 1;
    }
    j
}

/// Metric names and kinds registered in `app/src/metrics.rs`: every
/// `("name", "help")` pair passed to a constructor; a histogram's goes
/// through `HistogramOpts::new`.
fn exported_metrics(source: &str) -> Vec<(String, MetricKind)> {
    let mut found = Vec::new();
    let mut rest = source;
    while let Some(open) = rest.find('(') {
        let before = &rest[..open];
        let after = rest[open + 1..].trim_start();
        rest = &rest[open + 1..];
        let Some(name) = leading_string(after) else {
            continue;
        };
        let tail = after[name.len() + 2..].trim_start();
        let Some(tail) = tail.strip_prefix(',') else {
            continue;
        };
        let is_name = !name.is_empty()
            && name
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_' || ch == ':');
        if is_name && leading_string(tail.trim_start()).is_some() {
            let kind = if before.trim_end().ends_with("HistogramOpts::new") {
                MetricKind::Histogram
            } else {
                MetricKind::Plain
            };
            found.push((name.to_string(), kind));
        }
    }
    found
}

/// The contents of a plain `"..."` literal at the start of `s` (no escapes).
fn leading_string(s: &str) -> Option<&str> {
    let s = s.strip_prefix('"')?;
    let end = s.find('"')?;
    let value = &s[..end];
    (!value.contains('\\')).then_some(value)
}

/// The environment variables `app/src/config.rs` reads (`env = "NAME"`).
fn config_env_names(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    for piece in source.split("env = \"").skip(1) {
        if let Some(name) = piece.split('"').next() {
            if !name.is_empty()
                && name
                    .chars()
                    .all(|ch| ch.is_ascii_uppercase() || ch == '_' || ch.is_ascii_digit())
            {
                names.push(name.to_string());
            }
        }
    }
    names
}

/// Where one variable of the bootstrap Job's environment comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum EnvSource {
    Value(String),
    Secret { name: String, key: String },
}

/// `db-bootstrap.env` as helm_check.py writes it: `NAME=value:<text>` or
/// `NAME=secret:<secret>/<key>`, one per line.
fn parse_job_env(text: &str) -> std::result::Result<Vec<(String, EnvSource)>, String> {
    let mut vars = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let (name, source) = line
            .split_once('=')
            .ok_or_else(|| format!("`{line}` has no `=`"))?;
        if name.is_empty()
            || !name
                .chars()
                .all(|ch| ch.is_ascii_uppercase() || ch == '_' || ch.is_ascii_digit())
        {
            return Err(format!("`{name}` is not an environment variable name"));
        }
        let source = if let Some(value) = source.strip_prefix("value:") {
            EnvSource::Value(value.to_string())
        } else if let Some(reference) = source.strip_prefix("secret:") {
            let (secret, key) = reference
                .split_once('/')
                .filter(|(s, k)| !s.is_empty() && !k.is_empty())
                .ok_or_else(|| format!("`{line}`: a secret reference is <secret>/<key>"))?;
            EnvSource::Secret {
                name: secret.to_string(),
                key: key.to_string(),
            }
        } else {
            return Err(format!("`{line}`: expected value:... or secret:..."));
        };
        vars.push((name.to_string(), source));
    }
    Ok(vars)
}

/// A database user as the test's Secrets hold it.
#[derive(Clone)]
struct DbUser {
    name: &'static str,
    password: String,
}

/// The bootstrap script, run as the Job runs it, against a real MariaDB.
fn db_bootstrap(root: &Path, out: &Path) -> Result {
    let started = Instant::now();
    progress(
        "db-bootstrap: the Job's script twice against MariaDB, then drift and a rotated password",
    );
    let dir = out.join("mariadb");
    let db = devstack::MariaDb::start(&dir)?;
    let master = DbUser {
        name: "admin",
        password: "master 'pw' \\ 1".into(),
    };
    db.sql(&format!(
        // Aurora's master user: every privilege with GRANT OPTION, no SUPER needed.
        "CREATE USER 'admin'@'%' IDENTIFIED BY {pw}; \
         GRANT ALL PRIVILEGES ON *.* TO 'admin'@'%' WITH GRANT OPTION; \
         CREATE DATABASE other; CREATE TABLE other.t (id INT PRIMARY KEY); INSERT INTO other.t VALUES (1);",
        pw = sql_string(&master.password)
    ))?;
    let mut app = DbUser {
        name: "app",
        password: "app'pw\\with\"quotes$(and)`ticks`".into(),
    };
    let reader = DbUser {
        name: "reader",
        password: "reader-pw-1".into(),
    };
    let migrator = DbUser {
        name: "migrator",
        password: "migrator pw 1".into(),
    };
    let script = out.join("dev/db-bootstrap.sh");
    let job_env = parse_job_env(&std::fs::read_to_string(out.join("dev/db-bootstrap.env"))?)?;
    let mysql = devstack::which("mysql")
        .ok_or("the mysql client is missing: sudo apt-get install -y 'mariadb-client=1:10.11.*'")?;
    let bootstrap = |app: &DbUser| -> Result {
        let secrets = BTreeMap::from([
            (SECRET_MASTER, &master),
            (SECRET_APP, app),
            (SECRET_READER, &reader),
            (SECRET_MIGRATOR, &migrator),
        ]);
        let mut cmd = Command::new("sh");
        cmd.arg(&script).env_clear();
        let path = mysql.parent().map(Path::to_path_buf).unwrap_or_default();
        cmd.env("PATH", format!("{}:/usr/bin:/bin", path.display()));
        // Where the pod and this machine differ: the address, MariaDB's
        // client (no --ssl-mode; the local server has no TLS), a bounded wait.
        let local = BTreeMap::from([
            ("DB_HOST", "127.0.0.1".to_string()),
            ("DB_PORT", db.port.to_string()),
            ("DB_CLIENT_FLAGS", String::new()),
            ("HOME", dir.display().to_string()),
        ]);
        for (name, source) in &job_env {
            let value = match (local.get(name.as_str()), source) {
                (Some(value), EnvSource::Value(_)) => value.clone(),
                (None, EnvSource::Value(value)) => value.clone(),
                (_, EnvSource::Secret { name: secret, key }) => {
                    let user = secrets.get(secret.as_str()).ok_or_else(|| {
                        format!(
                            "the Job reads Secret {secret}, which the chart's docs never create"
                        )
                    })?;
                    match key.as_str() {
                        "username" => user.name.to_string(),
                        "password" => user.password.clone(),
                        other => {
                            return Err(
                                format!("the Job reads key {other} of Secret {secret}").into()
                            )
                        }
                    }
                }
            };
            cmd.env(name, value);
        }
        for name in local.keys() {
            if !job_env.iter().any(|(n, _)| n == name) {
                return Err(format!("the bootstrap Job no longer sets {name}").into());
            }
        }
        cmd.env("DB_WAIT_SECONDS", "20");
        run(
            &mut cmd,
            out,
            "db-bootstrap",
            Duration::from_secs(60),
            false,
        )?;
        Ok(())
    };

    bootstrap(&app)?;
    bootstrap(&app)?;
    assert_grants(&db)?;

    // The grants are enough for what each user does, and no more.
    let as_user = |user: &DbUser, sql: &str| client(&mysql, db.port, user, sql);
    let mut migrations: Vec<PathBuf> = std::fs::read_dir(root.join("app/migrations"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    migrations.sort();
    for file in &migrations {
        let sql = std::fs::read_to_string(file)?;
        as_user(&migrator, &format!("USE tickets; {sql}"))
            .map_err(|e| format!("the migrator cannot apply {}: {e}", file.display()))?;
    }
    as_user(
        &app,
        "INSERT INTO tickets.events (id, name, venue, starts_at, sale_opens_at, created_at, updated_at) \
         VALUES ('e1','n','v',NOW(3),NOW(3),NOW(3),NOW(3)); \
         UPDATE tickets.events SET name = 'm' WHERE id = 'e1'; SELECT name FROM tickets.events; \
         DELETE FROM tickets.events WHERE id = 'e1';",
    )
    .map_err(|e| format!("the writer cannot read and write: {e}"))?;
    as_user(&reader, "SELECT COUNT(*) FROM tickets.seats")
        .map_err(|e| format!("the reader cannot read: {e}"))?;
    let refused = [
        (&app, "CREATE TABLE tickets.x (id INT)"),
        (&app, "SELECT * FROM other.t"),
        (
            &reader,
            "INSERT INTO tickets.ticket_locks VALUES ('e', 't')",
        ),
        (&reader, "SELECT * FROM other.t"),
        (&migrator, "SELECT * FROM other.t"),
        (&migrator, "CREATE DATABASE third"),
        (&migrator, "CREATE USER 'x'@'%'"),
    ];
    for (user, sql) in refused {
        if as_user(user, sql).is_ok() {
            return Err(format!("{} may run `{sql}`", user.name).into());
        }
    }

    // Grants added by hand are taken away; a rotated password takes effect.
    db.sql(
        "GRANT CREATE ON tickets.* TO 'app'@'%'; GRANT SELECT ON other.* TO 'reader'@'%'; \
         GRANT PROCESS ON *.* TO 'migrator'@'%'; GRANT SELECT (id) ON other.t TO 'app'@'%';",
    )?;
    let old = app.clone();
    app.password = "rotated-app-pw-2".into();
    bootstrap(&app)?;
    assert_grants(&db)?;
    as_user(&app, "SELECT 1").map_err(|e| format!("the rotated password does not work: {e}"))?;
    if as_user(&old, "SELECT 1").is_ok() {
        return Err("the writer's old password still works after a rotation".into());
    }
    progress(&format!(
        "db-bootstrap: idempotent, least grants, drift removed, rotation applied ({} s)",
        started.elapsed().as_secs()
    ));
    Ok(())
}

/// Each user has exactly its privileges, on `tickets` only, without GRANT
/// OPTION, and nothing global, per table or per column.
fn assert_grants(db: &devstack::MariaDb) -> Result {
    let rows = db.sql(
        "SELECT GRANTEE, TABLE_SCHEMA, PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.SCHEMA_PRIVILEGES \
         WHERE GRANTEE IN ('''app''@''%''', '''reader''@''%''', '''migrator''@''%''') \
         UNION ALL SELECT GRANTEE, '*', PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.USER_PRIVILEGES \
         WHERE GRANTEE IN ('''app''@''%''', '''reader''@''%''', '''migrator''@''%''') AND PRIVILEGE_TYPE <> 'USAGE' \
         UNION ALL SELECT GRANTEE, CONCAT(TABLE_SCHEMA, '.', TABLE_NAME), PRIVILEGE_TYPE, IS_GRANTABLE \
         FROM information_schema.TABLE_PRIVILEGES \
         WHERE GRANTEE IN ('''app''@''%''', '''reader''@''%''', '''migrator''@''%''') \
         UNION ALL SELECT GRANTEE, CONCAT(TABLE_SCHEMA, '.', TABLE_NAME, '.', COLUMN_NAME), PRIVILEGE_TYPE, IS_GRANTABLE \
         FROM information_schema.COLUMN_PRIVILEGES \
         WHERE GRANTEE IN ('''app''@''%''', '''reader''@''%''', '''migrator''@''%''')",
    )?;
    let mut got: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for row in rows.lines().filter(|l| !l.is_empty()) {
        let cols: Vec<&str> = row.split('\t').collect();
        if cols.len() != 4 {
            return Err(format!("unexpected grant row {row:?}").into());
        }
        let user = cols[0]
            .trim_matches('\'')
            .split('\'')
            .next()
            .unwrap_or("")
            .to_string();
        let grantable = if cols[3] == "YES" {
            " WITH GRANT OPTION"
        } else {
            ""
        };
        got.entry(user)
            .or_default()
            .insert(format!("{} ON {}{grantable}", cols[2], cols[1]));
    }
    for (user, privileges) in [
        ("app", WRITER_PRIVILEGES),
        ("reader", READER_PRIVILEGES),
        ("migrator", MIGRATOR_PRIVILEGES),
    ] {
        let want: BTreeSet<String> = privileges
            .iter()
            .map(|p| format!("{p} ON tickets"))
            .collect();
        let have = got.remove(user).unwrap_or_default();
        if have != want {
            return Err(format!("{user} holds {have:?}; it must hold exactly {want:?}").into());
        }
    }
    Ok(())
}

/// Runs SQL as `user` through the mysql client; the error is the client's.
fn client(
    mysql: &Path,
    port: u16,
    user: &DbUser,
    sql: &str,
) -> std::result::Result<String, String> {
    let out = Command::new(mysql)
        .args([
            "--no-defaults",
            "--protocol=TCP",
            "-h127.0.0.1",
            "--connect-timeout=10",
        ])
        .arg(format!("-P{port}"))
        .arg(format!("-u{}", user.name))
        .args(["--batch", "--skip-column-names", "-e", sql])
        .env("MYSQL_PWD", &user.password)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// A SQL string literal for MariaDB's default sql_mode.
fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(expr: &str) -> Vec<String> {
        metric_names(expr)
    }

    #[test]
    fn promql_names_skip_functions_labels_and_keywords() {
        assert_eq!(
            names(r#"max by (event) (admission_queue_length{namespace="admission"}) > 5000"#),
            ["admission_queue_length"]
        );
        assert_eq!(
            names(
                r#"histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{route="/api/v1/events/{event_id}/queue",method="POST"}[5m]))) > 1"#
            ),
            ["http_request_duration_seconds_bucket"]
        );
        assert_eq!(
            names(
                "(time() - max by (event) (last_admit)) > 60 and on (event) max by (event) (queued) > 0 \
                 and on(event) group_left(x) active < bool capacity offset 5m"
            ),
            ["last_admit", "queued", "active", "capacity"]
        );
        assert_eq!(
            names(r#"sum without (pod) (rate(a:b_total[1m] @ start())) / ignoring(x) b unless c"#),
            ["a:b_total", "b", "c"]
        );
    }

    #[test]
    fn promql_names_ignore_strings_numbers_and_comments() {
        assert_eq!(
            names(
                r#"label_replace(up_total{a="}\"x"}, "dst", "$1", 'src', "(.*)") # not_a_metric"#
            ),
            ["up_total"]
        );
        assert_eq!(names("1e3 * .5 + 0x1F - foo"), ["foo"]);
        assert_eq!(names("admission_queue_length"), ["admission_queue_length"]);
        assert!(names("time() - vector(1)").is_empty());
    }

    #[test]
    fn only_exported_metrics_and_their_series_are_allowed() {
        let allowed = allowed_metrics();
        assert!(allowed.contains("http_request_duration_seconds_bucket"));
        assert!(allowed.contains("admission_queue_length"));
        assert!(!allowed.contains("admission_queue_length_bucket"));
        assert!(allowed.contains("admission_outbox_length"));
        assert!(!allowed.contains("admission_outbox_length_bucket"));
    }

    #[test]
    fn exported_metrics_are_read_from_name_and_help_pairs() {
        let source = r#"
            let h = HistogramVec::new(
                HistogramOpts::new(
                    "latency_seconds",
                    "Time.",
                ), &["route"]);
            let g = gauge("queue_length", "Fans.");
            let c = IntCounterVec::new(Opts::new("hits_total", "Hits."), &["event"]).expect("valid metric");
            x.with_label_values(&["a", "b"]);
            f("Not a name", "x");
        "#;
        assert_eq!(
            exported_metrics(source),
            [
                ("latency_seconds".to_string(), MetricKind::Histogram),
                ("queue_length".to_string(), MetricKind::Plain),
                ("hits_total".to_string(), MetricKind::Plain),
            ]
        );
    }

    /// The list the alerts are checked against is the app's own.
    #[test]
    fn app_metrics_match_app_src_metrics_rs() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../app/src/metrics.rs");
        let source = std::fs::read_to_string(&path).expect("app/src/metrics.rs");
        let mut found = exported_metrics(&source);
        found.sort();
        let mut listed: Vec<(String, MetricKind)> = APP_METRICS
            .iter()
            .map(|(n, k)| (n.to_string(), *k))
            .collect();
        listed.sort();
        assert_eq!(
            found, listed,
            "update APP_METRICS in xtask/src/helm.rs to what app/src/metrics.rs exports"
        );
    }

    #[test]
    fn config_env_names_are_read_from_clap_attributes() {
        let source = r#"
            #[arg(long, env = "LISTEN_ADDR", default_value = "x")]
            #[arg(long, env = "TOKEN_KEYS", value_delimiter = ',')]
            // the environment = "not this"
        "#;
        assert_eq!(config_env_names(source), ["LISTEN_ADDR", "TOKEN_KEYS"]);
        let real = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../app/src/config.rs"),
        )
        .expect("app/src/config.rs");
        let real = config_env_names(&real);
        for name in [
            "REDIS_CLUSTER_NODES",
            "DATABASE_URL",
            "TOKEN_KEYS",
            "REPLICA_ID",
            "TRUSTED_PROXIES",
        ] {
            assert!(
                real.iter().any(|n| n == name),
                "{name} missing from {real:?}"
            );
        }
    }

    #[test]
    fn job_env_lines_parse() {
        let vars = parse_job_env("DB_HOST=value:db.example\nDB_CLIENT_FLAGS=value:\nAPP_PASSWORD=secret:admission-db-app/password\n").unwrap();
        assert_eq!(
            vars,
            [
                ("DB_HOST".to_string(), EnvSource::Value("db.example".into())),
                (
                    "DB_CLIENT_FLAGS".to_string(),
                    EnvSource::Value(String::new())
                ),
                (
                    "APP_PASSWORD".to_string(),
                    EnvSource::Secret {
                        name: "admission-db-app".into(),
                        key: "password".into()
                    }
                ),
            ]
        );
        assert!(parse_job_env("NOEQUALS").is_err());
        assert!(parse_job_env("X=secret:nokey").is_err());
        assert!(parse_job_env("X=plain").is_err());
        assert!(parse_job_env("lower=value:x").is_err());
    }

    #[test]
    fn sql_strings_escape_quotes_and_backslashes() {
        assert_eq!(sql_string(r"a'b\c"), r"'a''b\\c'");
    }
}
