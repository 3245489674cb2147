//! `cert.expiry`: the ACM certificates on the ALBs' HTTPS listeners and on
//! the Client VPN endpoints (the seeds' fifth incident: a self-signed VPN
//! certificate that expired), found and read by `cert.rs`, the same
//! inventory as `cargo xtask cert check`.

use std::sync::Arc;

use super::aws_checks::no_aws;
use super::{Ctx, Outcome};
use crate::cert;

/// Expiring within this many days fails (`cert check`'s default).
pub const WITHIN_DAYS: i64 = 30;

pub async fn expiry(ctx: Arc<Ctx>) -> Outcome {
    let config = match ctx.aws().await {
        Ok(c) => c,
        Err(why) => return no_aws(why),
    };
    let uses = match cert::inventory(config).await {
        Ok(u) => u,
        Err(e) => {
            return Outcome::fail(
                format!("cannot list the certificates: {e}"),
                "use credentials allowed elasticloadbalancing:Describe*, ec2:DescribeClientVpnEndpoints and acm:DescribeCertificate",
            )
        }
    };
    if uses.is_empty() {
        return Outcome::ok("no ACM certificate on an ALB listener or a Client VPN endpoint");
    }
    let now = cert::now();
    let mut expiring: Vec<_> = uses
        .iter()
        .filter(|u| u.expires_within(now, WITHIN_DAYS))
        .collect();
    expiring.sort_by_key(|u| u.days_left(now).unwrap_or(i64::MIN));
    let line = |u: &cert::CertificateUse| {
        let when = match (
            u.days_left(now),
            u.details.as_ref().and_then(|d| d.not_after),
        ) {
            (Some(d), Some(at)) if d < 0 => {
                format!("expired {} days ago ({})", -d, cert::format_time(at))
            }
            (Some(d), Some(at)) => format!("expires in {d} days ({})", cert::format_time(at)),
            _ => "unknown to ACM".to_string(),
        };
        format!("{}: {} {when}", u.holder.describe(), u.certificate_arn)
    };
    if expiring.is_empty() {
        let soonest = uses
            .iter()
            .filter_map(|u| u.days_left(now))
            .min()
            .unwrap_or(0);
        return Outcome::ok(format!(
            "{} certificate use{}, the soonest expires in {soonest} days",
            uses.len(),
            if uses.len() == 1 { "" } else { "s" }
        ));
    }
    let env = ctx.settings.env.as_deref().unwrap_or("<env>");
    Outcome::fail(
        line(expiring[0]),
        format!(
            "cargo xtask cert rotate --env {env} (imports or requests the new certificate and puts it \
             where it is used: the app's values for its ALB, ModifyListener, ModifyClientVpnEndpoint); \
             cargo xtask cert check --env {env} lists them all"
        ),
    )
    .details(expiring.iter().skip(1).map(|u| line(u)))
}
