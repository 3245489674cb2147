//! `cargo xtask test`: every check CI makes, ending with one summary line.

use std::time::Instant;
use xshell::{cmd, Shell};

use crate::{dev, flags, fuzz, helm, tools, Result};

struct Outcome {
    name: &'static str,
    ok: bool,
    seconds: u64,
}

/// Runs one step unless `--only` leaves it out.
fn step(
    results: &mut Vec<Outcome>,
    only: &[String],
    name: &'static str,
    f: impl FnOnce() -> Result,
) {
    if !only.is_empty() && !only.iter().any(|o| name.starts_with(o.as_str())) {
        return;
    }
    eprintln!("\n==> {name}");
    let started = Instant::now();
    let ok = match f() {
        Ok(()) => true,
        Err(e) => {
            eprintln!("xtask test: {name} failed: {e}");
            false
        }
    };
    results.push(Outcome {
        name,
        ok,
        seconds: started.elapsed().as_secs(),
    });
}

pub fn run(sh: &Shell, flags: &flags::Test) -> Result {
    let started = Instant::now();
    let only = &flags.only[..];
    tools::ensure_all(sh)?;
    let mut results = Vec::new();
    step(&mut results, only, "cargo fmt --check", || {
        Ok(cmd!(sh, "cargo fmt --all --check").run()?)
    });
    step(&mut results, only, "cargo clippy", || {
        Ok(cmd!(
            sh,
            "cargo clippy --workspace --all-targets --quiet -- -D warnings"
        )
        .run()?)
    });
    step(&mut results, only, "cargo test", || {
        let quick = if flags.quick { "1" } else { "" };
        Ok(cmd!(sh, "cargo test --workspace --quiet")
            .env("ADMISSION_QUICK_TESTS", quick)
            .run()?)
    });
    step(&mut results, only, "loadtest --quick", || {
        crate::loadtest::quick_all(sh)
    });
    step(&mut results, only, "schemathesis", || fuzz::check(sh));
    step(&mut results, only, "helm/argocd/gitlab-ci", || {
        helm::check(sh)
    });
    step(&mut results, only, "terraform", || {
        crate::terraform::check(sh)
    });
    step(&mut results, only, "xtask dev --check", || {
        dev::run_built(
            sh,
            &flags::Dev {
                cluster: false,
                check: true,
                aws: flags::Aws::Moto,
            },
        )
    });
    let failed: Vec<&str> = results.iter().filter(|r| !r.ok).map(|r| r.name).collect();
    eprintln!();
    for r in &results {
        eprintln!(
            "    {} {:<22} {:>5} s",
            if r.ok { "✓" } else { "✗" },
            r.name,
            r.seconds
        );
    }
    let total = started.elapsed().as_secs();
    if failed.is_empty() {
        println!(
            "xtask test: all {} steps passed in {total} s",
            results.len()
        );
        Ok(())
    } else {
        println!(
            "xtask test: {} of {} steps failed ({}) in {total} s",
            failed.len(),
            results.len(),
            failed.join(", ")
        );
        Err("some checks failed".into())
    }
}
