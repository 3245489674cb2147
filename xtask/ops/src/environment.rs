//! `environments/<env>.toml`: the one checked-in source of an environment's
//! names (account, region, cluster, namespace, release, values file,
//! stream, cache, repository, ...), read by every ops command that takes
//! `--env` (and by `deploy <env>`). The light xtask's checks keep Terraform
//! and the chart in agreement with the same files.
//!
//! Unknown keys are refused, so a typo in a file is an error here rather
//! than a setting silently ignored; a key a later command needs is added to
//! these types and to both files.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where environment files live, from the repository's root.
pub const DIR: &str = "environments";

#[derive(Debug, thiserror::Error)]
pub enum EnvironmentError {
    #[error("`{0}` is not an environment name (lowercase letters, digits and '-')")]
    BadName(String),
    #[error("no environment `{name}`: {path} does not exist (environments here: {known})")]
    Unknown {
        name: String,
        path: String,
        known: String,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path} says name = \"{found}\", but the file is for `{expected}`")]
    NameMismatch {
        path: String,
        found: String,
        expected: String,
    },
    #[error(
        "not inside the repository: no `{DIR}/` directory in {0} or any parent (run from the checkout)"
    )]
    NoRepository(String),
}

/// One environment, as its file describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    pub name: String,
    pub aws: Aws,
    pub kubernetes: Kubernetes,
    pub app: App,
    pub alarms: Alarms,
    pub network: Network,
    pub ingress: Ingress,
    pub gitops: Gitops,
    /// The floors `prewarm` raises where no flag names them (optional).
    #[serde(default)]
    pub prewarm: Prewarm,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aws {
    pub account_id: String,
    pub account_alias: String,
    pub region: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kubernetes {
    pub cluster: String,
    pub namespace: String,
    pub release: String,
    pub service_account: String,
    /// The chart's values file for this environment, from the repository's
    /// root (the image tag, the HPA's floor, the certificate live there).
    pub values_file: String,
    pub addons: Addons,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Addons {
    pub lb_controller_role_name: String,
    pub external_dns_role_name: String,
    pub namespace: String,
    pub node_autoscaler: String,
    pub node_autoscaler_role_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    /// The app's IRSA role (its ServiceAccount's `eks.amazonaws.com/role-arn`).
    pub role_name: String,
    pub kinesis_stream: String,
    pub cache_name: String,
    pub ecr_repository: String,
    pub aurora_cluster: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alarms {
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub vpc_cidr: String,
    /// The names of Aurora's and the cache's security groups (Terraform's
    /// `aurora` and `cache` modules name them `<name>-aurora` and
    /// `<name>-cache`): doctor's `network.security-groups` finds them in
    /// the cluster's VPC.
    #[serde(default)]
    pub database_security_group: Option<String>,
    #[serde(default)]
    pub cache_security_group: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ingress {
    pub host: String,
    pub zone: String,
    pub group_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gitops {
    pub repo_url: String,
    pub revision: String,
}

/// `[prewarm]`: the floors a sale needs, raised by `cargo xtask prewarm`
/// (each of its flags overrides the key of the same name). A stream has
/// either `shards` (provisioned) or `warm_mibps` (on-demand), never both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prewarm {
    pub cache_ecpu: Option<i32>,
    pub shards: Option<i32>,
    pub warm_mibps: Option<i32>,
    pub readers: Option<i32>,
    pub replicas: Option<i32>,
}

impl Environment {
    /// Loads `environments/<name>.toml` under `root`.
    pub fn load(root: &Path, name: &str) -> Result<Environment, EnvironmentError> {
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(EnvironmentError::BadName(name.to_string()));
        }
        let path = root.join(DIR).join(format!("{name}.toml"));
        let shown = format!("{DIR}/{name}.toml");
        if !path.is_file() {
            return Err(EnvironmentError::Unknown {
                name: name.to_string(),
                path: shown,
                known: known(root).join(", "),
            });
        }
        let text = std::fs::read_to_string(&path).map_err(|source| EnvironmentError::Read {
            path: shown.clone(),
            source,
        })?;
        let env = Self::parse(&text, &shown)?;
        if env.name != name {
            return Err(EnvironmentError::NameMismatch {
                path: shown,
                found: env.name,
                expected: name.to_string(),
            });
        }
        Ok(env)
    }

    /// Parses one file's text (`path` names it in errors).
    pub fn parse(text: &str, path: &str) -> Result<Environment, EnvironmentError> {
        toml::from_str(text).map_err(|e| EnvironmentError::Parse {
            path: path.to_string(),
            message: e.to_string(),
        })
    }

    /// Loads the environment from the repository that holds the current
    /// directory.
    pub fn load_here(name: &str) -> Result<Environment, EnvironmentError> {
        Self::load(&repository_root()?, name)
    }

    /// Whether this is a production environment (commands ask before
    /// changing it, or want `--yes`).
    pub fn is_production(&self) -> bool {
        self.name == "prod" || self.name.starts_with("prod-")
    }
}

/// The environments `root` has, sorted.
pub fn known(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join(DIR))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".toml"))
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

/// The repository's root: the current directory or its nearest parent
/// with an `environments/` directory.
pub fn repository_root() -> Result<PathBuf, EnvironmentError> {
    let here = std::env::current_dir().map_err(|_| EnvironmentError::NoRepository(".".into()))?;
    here.ancestors()
        .find(|dir| dir.join(DIR).is_dir() && dir.join("Cargo.toml").is_file())
        .map(Path::to_path_buf)
        .ok_or_else(|| EnvironmentError::NoRepository(here.display().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    #[test]
    fn every_checked_in_environment_loads() {
        let names = known(&root());
        assert!(names.contains(&"dev".to_string()) && names.contains(&"prod".to_string()));
        for name in names {
            let env = Environment::load(&root(), &name).unwrap();
            assert_eq!(env.name, name);
            assert!(!env.aws.region.is_empty());
        }
        assert!(Environment::load(&root(), "prod").unwrap().is_production());
        assert!(!Environment::load(&root(), "dev").unwrap().is_production());
    }

    #[test]
    fn bad_names_typos_and_unknown_environments_are_clear_errors() {
        let err = Environment::load(&root(), "../etc").unwrap_err();
        assert!(matches!(err, EnvironmentError::BadName(_)), "{err}");
        let err = Environment::load(&root(), "staging")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("environments/staging.toml") && err.contains("dev"),
            "{err}"
        );
        let dev = std::fs::read_to_string(root().join("environments/dev.toml")).unwrap();
        let typo = dev.replace("[alarms]\nemail", "[alarms]\nemial");
        let err = Environment::parse(&typo, "dev.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("emial"), "{err}");
    }
}
