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

/// Every ops command as `(name, one-line description)`. (The ops binary
/// itself reads it only in its tests.)
#[allow(dead_code)]
pub const COMMANDS: &[(&str, &str)] = &[("audit", AUDIT), ("doctor", DOCTOR)];
