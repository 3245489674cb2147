//! The `admission` binary's command line: subcommands, help, exit codes.

use std::process::{Command, Output};

use crate::support::Db;

fn admission(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_admission"));
    cmd.env_clear().args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the binary runs")
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn help_lists_the_subcommands_and_every_help_exits_zero() {
    let out = admission(&["--help"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let help = text(&out);
    for needle in [
        "keygen",
        "migrate",
        "--admin-token",
        "ADMIN_TOKEN",
        "--redis-url",
    ] {
        assert!(help.contains(needle), "`admission --help` lacks {needle}");
    }
    for sub in ["keygen", "migrate", "migrate status", "migrate up"] {
        let sub: Vec<&str> = sub.split(' ').collect();
        let sub = sub.as_slice();
        let out = admission(&[sub, &["--help"]].concat(), &[]);
        assert!(out.status.success(), "{sub:?} --help: {}", text(&out));
    }
}

#[test]
fn keygen_writes_a_pair_once_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    let key_arg = key.to_str().unwrap();
    let out = admission(&["keygen", "--out", key_arg], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let private = std::fs::read_to_string(&key).unwrap();
    assert!(private.contains("PRIVATE KEY"));
    assert!(std::fs::read_to_string(dir.path().join("k.pem.pub"))
        .unwrap()
        .contains("PUBLIC KEY"));

    let again = admission(&["keygen", "--out", key_arg], &[]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(text(&again).contains("exists"), "{}", text(&again));
    assert_eq!(std::fs::read_to_string(&key).unwrap(), private);

    let nowhere = admission(&["keygen", "--out", "/nonexistent/dir/k.pem"], &[]);
    assert_eq!(nowhere.status.code(), Some(1), "{}", text(&nowhere));

    // Without --out the key goes to stdout, and nothing else is needed.
    let printed = admission(&["keygen"], &[]);
    assert!(printed.status.success());
    assert!(String::from_utf8_lossy(&printed.stdout).contains("PRIVATE KEY"));
}

#[test]
fn a_subcommand_needs_only_its_own_settings() {
    // Serving needs ADMIN_TOKEN and TOKEN_KEYS; migrate does not.
    let out = admission(&["migrate"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--database-url"), "{}", text(&out));
    let serve = admission(&[], &[]);
    assert_eq!(serve.status.code(), Some(2));
    assert!(text(&serve).contains("--admin-token"), "{}", text(&serve));
}

#[tokio::test]
async fn migrate_runs_with_only_database_url() {
    let db = Db::start().await;
    // Db::start has migrated already: a second run applies nothing and says so.
    let out = admission(&["migrate"], &[("DATABASE_URL", &db.migrator_url)]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("0 applied"), "{}", text(&out));
    let wrong = admission(
        &["migrate", "--database-timeout-ms", "300"],
        &[("DATABASE_URL", "mysql://nobody:x@127.0.0.1:1/none")],
    );
    assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));
    assert!(
        !text(&wrong).contains(":x@"),
        "the password is never printed"
    );
}

#[tokio::test]
async fn migrate_status_lists_applied_pending_and_drifted_and_fails_on_drift() {
    let db = Db::start().await;
    let url = [("DATABASE_URL", db.migrator_url.as_str())];
    let out = admission(&["migrate", "status"], &url);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let migrations = stdout.lines().count();
    assert!(migrations >= 3, "{stdout}");
    assert!(
        stdout.lines().all(|l| l.starts_with("applied ")),
        "{stdout}"
    );
    assert!(
        text(&out).contains("0 pending, 0 drifted"),
        "{}",
        text(&out)
    );

    // The newest migration undone: pending, which is no drift (exit 0).
    let newest = db.sql("SELECT MAX(version) FROM _sqlx_migrations");
    db.sql(&format!(
        "DELETE FROM _sqlx_migrations WHERE version = {newest}"
    ));
    let out = admission(&["migrate", "status"], &url);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("pending  {newest} ")),
        "{}",
        text(&out)
    );

    // The oldest one's file "changed" after it was applied: drift, exit 1.
    let oldest = db.sql("SELECT MIN(version) FROM _sqlx_migrations");
    db.sql(&format!(
        "UPDATE _sqlx_migrations SET checksum = UNHEX(SHA2('edited', 384)) WHERE version = {oldest}"
    ));
    let out = admission(
        &["migrate", "--database-url", &db.migrator_url, "status"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains(&format!("drifted  {oldest} ")), "{stdout}");
    assert!(
        text(&out).contains("1 pending, 1 drifted"),
        "{}",
        text(&out)
    );

    // A database never migrated: everything pending.
    let (fresh, _, _) = db.server.create_database("fresh").unwrap();
    let out = admission(&["migrate", "status"], &[("DATABASE_URL", &fresh)]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(stdout.lines().count(), migrations, "{stdout}");
    assert!(
        stdout.lines().all(|l| l.starts_with("pending ")),
        "{stdout}"
    );
}
