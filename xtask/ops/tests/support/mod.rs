//! What the ops command tests share: moto started here, SDK clients aimed
//! at it, a throwaway repository (a git clone-like copy of the files the
//! commands read: environments/, the chart's values) and a way to run the
//! real `ops` binary in it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_kinesis::config::Credentials;
use aws_smithy_http_client::tls;
use devstack::Moto;
use serde_json::Value;

/// moto's account.
pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "ap-northeast-2";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn work_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("ops-commands")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn start_moto(dir: &Path) -> Moto {
    Moto::start_pinned(&root(), &dir.join("moto")).expect("moto starts")
}

/// An SDK configuration aimed at `endpoint` with test credentials.
pub fn sdk(endpoint: &str) -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(aws_sdk_kinesis::config::SharedCredentialsProvider::new(
            Credentials::new("test", "test", None, None, "tests"),
        ))
        .http_client(http)
        .build()
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A throwaway repository: the checked-in environments and chart values
/// (with moto's account instead of the placeholder), committed once.
pub struct Repo {
    pub dir: PathBuf,
}

impl Repo {
    pub fn new(dir: &Path) -> Repo {
        let repo = dir.join("repo");
        for path in [
            "Cargo.toml",
            "environments/dev.toml",
            "environments/prod.toml",
            "helm/admission/values.yaml",
            "helm/admission/values-dev.yaml",
            "helm/admission/values-prod.yaml",
        ] {
            let text = std::fs::read_to_string(root().join(path)).unwrap();
            let text = text
                .replace("111111111111", ACCOUNT)
                .replace("222222222222", ACCOUNT)
                .replace(
                    "region = \"ap-northeast-2\"",
                    &format!("region = \"{REGION}\""),
                );
            let to = repo.join(path);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::write(to, text).unwrap();
        }
        git(&repo, &["init", "--quiet", "-b", "main"]);
        git(&repo, &["config", "user.email", "ops-tests@example.com"]);
        git(&repo, &["config", "user.name", "ops tests"]);
        git(&repo, &["add", "."]);
        git(&repo, &["commit", "--quiet", "-m", "start"]);
        Repo { dir: repo }
    }

    pub fn git(&self, args: &[&str]) -> String {
        git(&self.dir, args)
    }

    pub fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.dir.join(path)).unwrap()
    }

    pub fn write(&self, path: &str, text: &str) {
        std::fs::write(self.dir.join(path), text).unwrap();
    }

    /// Changes one line of a file and commits it.
    pub fn replace_and_commit(&self, path: &str, from: &str, to: &str, message: &str) {
        let text = self.read(path);
        assert!(text.contains(from), "{path} has no {from:?}");
        self.write(path, &text.replacen(from, to, 1));
        self.git(&["commit", "--quiet", "-am", message]);
    }
}

/// What a run of the binary printed, and its exit code.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "one JSON line on stdout: {}", self.stdout);
        serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

/// Runs `ops args` in `cwd` with AWS pointed at `endpoint` (test
/// credentials, nothing from this machine's AWS or Kubernetes setup).
/// `OPS_BIN` runs a ready binary instead of this build's (as `cargo xtask`
/// does).
pub fn ops(cwd: &Path, endpoint: &str, args: &[&str]) -> Run {
    let bin = std::env::var_os("OPS_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_ops").into());
    let mut child = Command::new(bin)
        .args(args)
        .current_dir(cwd)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_CONFIG_FILE", cwd.join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", cwd.join("no-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("KUBECONFIG", cwd.join("no-kubeconfig"))
        .env_remove("AWS_REGION")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ops runs");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ops {args:?} did not finish within 2 minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!(
        "--- ops {args:?} exited {}:\n{}\n{}",
        run.code, run.stdout, run.stderr
    );
    run
}

/// Decodes a form-encoded (query protocol) body into its pairs.
pub fn form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(k), decode(v))
        })
        .collect()
}
