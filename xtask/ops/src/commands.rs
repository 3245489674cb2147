//! The commands of the ops binary and their one-line descriptions.
//!
//! The light xtask compiles this file too (`#[path]`): it lists these
//! commands in `cargo xtask --help` and hands them over to this binary
//! without building it first. So: no `use`, no dependencies, constants only.
//! A test of the ops binary holds its clap commands equal to this list.

/// `audit`: see `audit/mod.rs`.
pub const AUDIT: &str =
    "Check a sale's fairness from the Kinesis event log: joins, admissions, duplicates, lost, order";

/// `doctor`: see `doctor/mod.rs`.
pub const DOCTOR: &str =
    "Check the environment on-call looks at first (AWS, EKS, network, ALB, Kinesis, Redis, schema, app) and say the fix";

/// `build`: see `image.rs`.
pub const BUILD: &str =
    "Build the app's image (app/Dockerfile, tagged with the git short sha) and push it to ECR";

/// `cert`: see `cert.rs`.
pub const CERT: &str =
    "ACM certificates on the ALB HTTPS listeners and Client VPN endpoints: check expiry, rotate";

/// `deploy`: see `deploy.rs`.
pub const DEPLOY: &str =
    "Deploy HEAD to an environment: build, push, commit and push its tag, wait for the rollout";

/// `irsa`: see `irsa.rs`.
pub const IRSA: &str =
    "Check the app's IRSA chain: ServiceAccount annotation, role, trust policy, Kinesis policy, pods";

/// `pause`: see `pause.rs`.
pub const PAUSE: &str =
    "Stop an idle environment: Aurora stopped, node groups to zero (sizes kept in tags); prints the saving";

/// `prewarm`: see `prewarm.rs`.
pub const PREWARM: &str =
    "Raise the slow-to-scale floors before a sale (cache ECPU/s, Kinesis, Aurora readers, HPA), or --undo";

/// `promote`: see `gitops.rs`.
pub const PROMOTE: &str =
    "Copy the image tag from one environment's values to another's, listing the migrations it adds";

/// `resume`: see `pause.rs`.
pub const RESUME: &str =
    "Start a paused environment again: Aurora started, node groups back to their recorded sizes";

/// `rollback`: see `gitops.rs`.
pub const ROLLBACK: &str =
    "Put an environment's previous (or given) image tag back in its values, from the git history";

/// Every ops command as `(name, one-line description)`. (The ops binary
/// itself reads it only in its tests.)
#[allow(dead_code)]
pub const COMMANDS: &[(&str, &str)] = &[
    ("audit", AUDIT),
    ("build", BUILD),
    ("cert", CERT),
    ("deploy", DEPLOY),
    ("doctor", DOCTOR),
    ("irsa", IRSA),
    ("pause", PAUSE),
    ("prewarm", PREWARM),
    ("promote", PROMOTE),
    ("resume", RESUME),
    ("rollback", ROLLBACK),
];
