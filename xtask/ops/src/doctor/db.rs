//! `db.schema`: the database's applied migrations are this checkout's,
//! checksums equal (the seeds' first incident: schemas that drifted apart
//! between environments). The comparison is the app's own
//! (`admission migrate status`).

use std::sync::Arc;
use std::time::Duration;

use admission::booking::db::{migration_status, MigrationState};

use super::{Ctx, Outcome};

pub async fn schema(ctx: Arc<Ctx>) -> Outcome {
    let Some(url) = &ctx.settings.database_url else {
        return Outcome::skip(
            "no database given (in AWS it is reachable only from inside the cluster)",
            "--database-url URL (or DATABASE_URL), e.g. through kubectl port-forward",
        );
    };
    let status = match migration_status(url, Duration::from_secs(5)).await {
        Ok(s) => s,
        Err(e) => {
            return Outcome::fail(
                format!("cannot read the migrations: {e}"),
                "check the URL and that this machine reaches the database (security groups: `cargo xtask doctor network.security-groups`)",
            )
        }
    };
    let list = |state: MigrationState| {
        status
            .with_state(state)
            .map(|m| format!("{} {}", m.version, m.description))
            .collect::<Vec<_>>()
    };
    let (drifted, failed, pending, unknown) = (
        list(MigrationState::Drifted),
        list(MigrationState::Failed),
        list(MigrationState::Pending),
        list(MigrationState::Unknown),
    );
    let applied = status.count(MigrationState::Applied);
    if !drifted.is_empty() {
        return Outcome::fail(
            format!(
                "schema drift: {} applied from a file that has changed since ({})",
                drifted.len(),
                drifted.join(", ")
            ),
            "never edit an applied migration: restore the file from the commit that applied it \
             (git log -p app/migrations) and put the change in a new migration; \
             `cargo xtask migrate status` lists it",
        );
    }
    if !failed.is_empty() {
        return Outcome::fail(
            format!("migration started and never finished: {}", failed.join(", ")),
            "repair the schema by hand, delete its row from _sqlx_migrations, then `cargo xtask migrate`",
        );
    }
    if !pending.is_empty() {
        return Outcome::warn(
            format!("{applied} applied, {} pending: {}", pending.len(), pending.join(", ")),
            "deploy this version (the chart's PreSync Job migrates), or locally `cargo xtask migrate`",
        );
    }
    if !unknown.is_empty() {
        return Outcome::warn(
            format!(
                "the database has migrations this checkout lacks: {}",
                unknown.join(", ")
            ),
            "update this checkout (git pull) to the version deployed",
        );
    }
    Outcome::ok(format!(
        "{applied} migrations applied, checksums equal to this checkout's"
    ))
}
