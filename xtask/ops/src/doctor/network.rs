//! `network.subnet-tags` (the seeds' ALB that was never created) and
//! `network.security-groups` (the connection timeouts to Aurora and the
//! cache).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aws_sdk_ec2::types::{Filter, IpPermission};

use super::aws_checks::no_aws;
use super::{Ctx, Outcome};
use crate::aws::explain;

/// The Load Balancer Controller wants a few free addresses per subnet (an
/// ALB takes up to 8 while it scales).
const MIN_FREE_ADDRESSES: i32 = 8;

const PUBLIC_TAG: &str = "kubernetes.io/role/elb";
const PRIVATE_TAG: &str = "kubernetes.io/role/internal-elb";

/// One of the cluster's subnets, as the check sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    pub id: String,
    pub az: String,
    pub public: bool,
    pub free: i32,
    pub tags: BTreeMap<String, String>,
}

pub async fn subnet_tags(ctx: Arc<Ctx>) -> Outcome {
    let cluster = match ctx.cluster().await {
        Ok(c) => c,
        Err(outcome) => return outcome,
    };
    let config = match ctx.aws().await {
        Ok(c) => c,
        Err(why) => return no_aws(why),
    };
    let ec2 = aws_sdk_ec2::Client::new(config);
    let subnets = match ec2
        .describe_subnets()
        .set_subnet_ids(Some(cluster.subnet_ids.clone()))
        .send()
        .await
    {
        Ok(s) => s,
        Err(e) => {
            return Outcome::fail(
                format!("DescribeSubnets: {}", explain(&e)),
                "use credentials allowed ec2:DescribeSubnets",
            )
        }
    };
    // The subnets say their VPC (DescribeCluster's vpcId may be absent).
    let vpc = cluster
        .vpc_id
        .clone()
        .or_else(|| {
            subnets
                .subnets()
                .iter()
                .find_map(|s| s.vpc_id().map(str::to_string))
        })
        .unwrap_or_default();
    // The Load Balancer Controller places internet-facing ALBs in the VPC's
    // public subnets, which EKS itself is usually not given: the subnets
    // judged are the cluster's own and the VPC's public ones.
    let in_vpc = match ec2
        .describe_subnets()
        .filters(Filter::builder().name("vpc-id").values(&vpc).build())
        .send()
        .await
    {
        Ok(s) => s,
        Err(e) => {
            return Outcome::fail(
                format!("DescribeSubnets: {}", explain(&e)),
                "use credentials allowed ec2:DescribeSubnets",
            )
        }
    };
    let tables = match ec2
        .describe_route_tables()
        .filters(Filter::builder().name("vpc-id").values(&vpc).build())
        .send()
        .await
    {
        Ok(t) => t,
        Err(e) => {
            return Outcome::fail(
                format!("DescribeRouteTables: {}", explain(&e)),
                "use credentials allowed ec2:DescribeRouteTables",
            )
        }
    };
    // A subnet without its own route table uses the VPC's main one.
    let to_igw = |t: &aws_sdk_ec2::types::RouteTable| {
        t.routes()
            .iter()
            .any(|r| r.gateway_id().is_some_and(|g| g.starts_with("igw-")))
    };
    let main_public = tables
        .route_tables()
        .iter()
        .find(|t| t.associations().iter().any(|a| a.main() == Some(true)))
        .is_some_and(to_igw);
    let mut all: Vec<&aws_sdk_ec2::types::Subnet> = in_vpc.subnets().iter().collect();
    // The cluster's subnets, even if the VPC filter missed one.
    for s in subnets.subnets() {
        if !all.iter().any(|a| a.subnet_id() == s.subnet_id()) {
            all.push(s);
        }
    }
    let seen: Vec<Subnet> = all
        .into_iter()
        .map(|s| {
            let id = s.subnet_id().unwrap_or_default().to_string();
            let own = tables.route_tables().iter().find(|t| {
                t.associations()
                    .iter()
                    .any(|a| a.subnet_id() == Some(id.as_str()))
            });
            Subnet {
                public: own.map(to_igw).unwrap_or(main_public),
                az: s.availability_zone().unwrap_or_default().to_string(),
                free: s.available_ip_address_count().unwrap_or(0),
                tags: s
                    .tags()
                    .iter()
                    .map(|t| {
                        (
                            t.key().unwrap_or_default().to_string(),
                            t.value().unwrap_or_default().to_string(),
                        )
                    })
                    .collect(),
                id,
            }
        })
        .filter(|s| s.public || cluster.subnet_ids.contains(&s.id))
        .collect();
    judge_subnets(&cluster.name, &seen)
}

/// The rules, apart from the AWS calls: public subnets (routed to an
/// internet gateway) need `kubernetes.io/role/elb=1`, private ones
/// `kubernetes.io/role/internal-elb=1`, in at least two AZs each, with free
/// addresses; a missing `kubernetes.io/cluster/<name>` is only a warning.
pub fn judge_subnets(cluster: &str, subnets: &[Subnet]) -> Outcome {
    if subnets.is_empty() {
        return Outcome::fail(
            format!("cluster {cluster} lists no subnets"),
            "terraform apply the environment (terraform/modules/network)",
        );
    }
    let mut problems = Vec::new();
    let mut fixes = Vec::new();
    let mut tagged_azs: BTreeMap<bool, BTreeSet<&str>> = BTreeMap::new();
    for s in subnets {
        let (tag, kind) = if s.public {
            (PUBLIC_TAG, "public")
        } else {
            (PRIVATE_TAG, "private")
        };
        if s.tags.get(tag).map(String::as_str) == Some("1") {
            tagged_azs.entry(s.public).or_default().insert(&s.az);
        } else {
            problems.push(format!("{} ({kind}, {}) lacks {tag}=1", s.id, s.az));
            fixes.push(format!(
                "aws ec2 create-tags --resources {} --tags Key={tag},Value=1",
                s.id
            ));
        }
        if s.free < MIN_FREE_ADDRESSES {
            problems.push(format!(
                "{} has {} free addresses (the ALB needs {MIN_FREE_ADDRESSES})",
                s.id, s.free
            ));
            fixes.push(format!(
                "free addresses in {} or add a larger subnet in {}",
                s.id, s.az
            ));
        }
    }
    for (public, kind, tag) in [
        (true, "public", PUBLIC_TAG),
        (false, "private", PRIVATE_TAG),
    ] {
        let exists = subnets.iter().any(|s| s.public == public);
        let azs = tagged_azs.get(&public).map(BTreeSet::len).unwrap_or(0);
        if exists && azs < 2 {
            problems.push(format!(
                "{kind} subnets tagged {tag}=1 span {azs} AZ{} (an ALB needs 2)",
                if azs == 1 { "" } else { "s" }
            ));
        }
    }
    if !subnets.iter().any(|s| s.public) {
        problems.push("no public subnet (none routes to an internet gateway): no internet-facing ALB can exist".into());
        fixes.push(
            "terraform apply the environment (terraform/modules/network makes public subnets)"
                .into(),
        );
    }
    let cluster_tag = format!("kubernetes.io/cluster/{cluster}");
    let untagged: Vec<&str> = subnets
        .iter()
        .filter(|s| !s.tags.contains_key(&cluster_tag))
        .map(|s| s.id.as_str())
        .collect();
    let counts = format!(
        "{} public, {} private subnets",
        subnets.iter().filter(|s| s.public).count(),
        subnets.iter().filter(|s| !s.public).count()
    );
    if !problems.is_empty() {
        if fixes.is_empty() {
            fixes.push("tag subnets in a second AZ (terraform/modules/network tags them)".into());
        }
        return Outcome::fail(
            format!(
                "the Load Balancer Controller cannot place an ALB: {}",
                problems[0]
            ),
            format!(
                "{} (or terraform apply: terraform/modules/network sets these tags)",
                fixes.join("; ")
            ),
        )
        .details(problems.into_iter().skip(1));
    }
    if !untagged.is_empty() {
        return Outcome::warn(
            format!("{counts} tagged for ALBs; {} lack {cluster_tag} (only controllers before v2.1.1 need it)", untagged.len()),
            format!(
                "aws ec2 create-tags --resources {} --tags Key={cluster_tag},Value=shared",
                untagged.join(" ")
            ),
        );
    }
    Outcome::ok(format!(
        "{counts}, tagged for ALBs in 2+ AZs, with free addresses"
    ))
}

pub async fn security_groups(ctx: Arc<Ctx>) -> Outcome {
    let s = &ctx.settings;
    let targets: Vec<(&str, i32, &str)> = [
        (s.database_security_group.as_deref(), 3306, "Aurora"),
        (s.cache_security_group.as_deref(), 6379, "the cache"),
    ]
    .into_iter()
    .filter_map(|(sg, port, what)| sg.map(|sg| (sg, port, what)))
    .collect();
    if targets.is_empty() {
        return Outcome::skip(
            "no database or cache security group given",
            "--database-security-group SG and/or --cache-security-group SG (ids or names; or --env ENV)",
        );
    }
    let cluster = match ctx.cluster().await {
        Ok(c) => c,
        Err(outcome) => return outcome,
    };
    let config = match ctx.aws().await {
        Ok(c) => c,
        Err(why) => return no_aws(why),
    };
    let ec2 = aws_sdk_ec2::Client::new(config);
    // The nodes' and pods' addresses: the cluster's subnets.
    let cidrs: Vec<String> = match ec2
        .describe_subnets()
        .set_subnet_ids(Some(cluster.subnet_ids.clone()))
        .send()
        .await
    {
        Ok(out) => out
            .subnets()
            .iter()
            .filter_map(|s| s.cidr_block().map(str::to_string))
            .collect(),
        Err(e) => {
            return Outcome::fail(
                format!("DescribeSubnets: {}", explain(&e)),
                "use credentials allowed ec2:DescribeSubnets",
            )
        }
    };
    let mut ok = Vec::new();
    let mut problems = Vec::new();
    let mut fixes = Vec::new();
    for (sg, port, what) in &targets {
        // An id, or a name looked up in the cluster's VPC.
        let lookup = if sg.starts_with("sg-") {
            ec2.describe_security_groups().group_ids(*sg)
        } else {
            let mut by_name = ec2
                .describe_security_groups()
                .filters(Filter::builder().name("group-name").values(*sg).build());
            if let Some(vpc) = &cluster.vpc_id {
                by_name = by_name.filters(Filter::builder().name("vpc-id").values(vpc).build());
            }
            by_name
        };
        let group = match lookup.send().await {
            Ok(out) => out.security_groups().first().cloned(),
            Err(e) => {
                problems.push(format!("{what}'s {sg}: {}", explain(&e)));
                fixes.push(format!("check the security group {sg}"));
                continue;
            }
        };
        let Some(group) = group else {
            problems.push(format!(
                "{what}'s security group {sg} does not exist{}",
                if sg.starts_with("sg-") {
                    ""
                } else {
                    " in the cluster's VPC"
                }
            ));
            fixes.push(format!(
                "check the security group {sg} (environments/<env>.toml [network] or the flag)"
            ));
            continue;
        };
        let sg = &group.group_id().unwrap_or(sg).to_string();
        if opens(
            group.ip_permissions(),
            *port,
            &cluster.security_groups,
            &cidrs,
        ) {
            ok.push(format!("{what} ({sg}) on {port}"));
        } else {
            problems.push(format!(
                "{what}'s {sg} does not open {port} to the cluster (its groups {} or subnets {}): connections time out",
                cluster.security_groups.join(", "),
                cidrs.join(", ")
            ));
            let from = cluster
                .security_groups
                .first()
                .map(|g| format!("--source-group {g}"))
                .unwrap_or_else(|| "--cidr <node subnet>".into());
            fixes.push(format!(
                "aws ec2 authorize-security-group-ingress --group-id {sg} --protocol tcp --port {port} {from} (or terraform apply)"
            ));
        }
    }
    if problems.is_empty() {
        Outcome::ok(format!("the cluster reaches {}", ok.join(" and ")))
    } else {
        let mut o = Outcome::fail(problems.remove(0), fixes.join("; ")).details(problems);
        if !ok.is_empty() {
            o = o.detail(format!("fine: {}", ok.join(", ")));
        }
        o
    }
}

/// Whether a rule lets TCP `port` in from one of `groups` or from an
/// address range that covers one of `cidrs`.
fn opens(rules: &[IpPermission], port: i32, groups: &[String], cidrs: &[String]) -> bool {
    rules.iter().any(|r| {
        let proto = r.ip_protocol().unwrap_or_default();
        let all = proto == "-1";
        let covers_port = all
            || (proto == "tcp"
                && r.from_port().unwrap_or(0) <= port
                && port <= r.to_port().unwrap_or(65535));
        if !covers_port {
            return false;
        }
        let by_group = r
            .user_id_group_pairs()
            .iter()
            .filter_map(|p| p.group_id())
            .any(|g| groups.iter().any(|c| c == g));
        let by_cidr = r
            .ip_ranges()
            .iter()
            .filter_map(|c| c.cidr_ip())
            .any(|range| cidrs.iter().any(|subnet| cidr_covers(range, subnet)));
        by_group || by_cidr
    })
}

/// Whether `outer` (a.b.c.d/n) contains the whole of `inner`.
fn cidr_covers(outer: &str, inner: &str) -> bool {
    fn parse(c: &str) -> Option<(u32, u32)> {
        let (ip, len) = c.split_once('/')?;
        let ip: std::net::Ipv4Addr = ip.parse().ok()?;
        let len: u32 = len.parse().ok().filter(|l| *l <= 32)?;
        Some((u32::from(ip), len))
    }
    let (Some((o, ol)), Some((i, il))) = (parse(outer), parse(inner)) else {
        return false;
    };
    let mask = if ol == 0 { 0 } else { u32::MAX << (32 - ol) };
    ol <= il && (o & mask) == (i & mask)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    fn subnet(id: &str, az: &str, public: bool, tags: &[(&str, &str)]) -> Subnet {
        Subnet {
            id: id.into(),
            az: az.into(),
            public,
            free: 200,
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn healthy() -> Vec<Subnet> {
        let c = ("kubernetes.io/cluster/c", "shared");
        vec![
            subnet("pub-a", "a", true, &[(PUBLIC_TAG, "1"), c]),
            subnet("pub-b", "b", true, &[(PUBLIC_TAG, "1"), c]),
            subnet("priv-a", "a", false, &[(PRIVATE_TAG, "1"), c]),
            subnet("priv-b", "b", false, &[(PRIVATE_TAG, "1"), c]),
        ]
    }

    #[test]
    fn tagged_subnets_in_two_azs_pass() {
        assert_eq!(judge_subnets("c", &healthy()).status, Status::Ok);
    }

    #[test]
    fn an_untagged_public_subnet_fails_with_the_tag_command() {
        let mut s = healthy();
        s[1].tags.remove(PUBLIC_TAG);
        let o = judge_subnets("c", &s);
        assert_eq!(o.status, Status::Fail);
        assert!(o.summary.contains("pub-b"), "{o:?}");
        assert!(o
            .fix
            .unwrap()
            .contains("create-tags --resources pub-b --tags Key=kubernetes.io/role/elb,Value=1"));
    }

    #[test]
    fn one_az_or_few_addresses_fail_and_a_missing_cluster_tag_warns() {
        let mut s = healthy();
        s[3].az = "a".into();
        assert_eq!(judge_subnets("c", &s).status, Status::Fail);
        let mut s = healthy();
        s[0].free = 3;
        assert_eq!(judge_subnets("c", &s).status, Status::Fail);
        let mut s = healthy();
        s[0].tags.remove("kubernetes.io/cluster/c");
        let o = judge_subnets("c", &s);
        assert_eq!(o.status, Status::Warn, "{o:?}");
    }

    #[test]
    fn cidrs_cover_what_they_contain() {
        assert!(cidr_covers("10.0.0.0/16", "10.0.3.0/24"));
        assert!(cidr_covers("0.0.0.0/0", "10.0.3.0/24"));
        assert!(!cidr_covers("10.0.3.0/24", "10.0.0.0/16"));
        assert!(!cidr_covers("10.1.0.0/16", "10.0.3.0/24"));
        assert!(!cidr_covers("nonsense", "10.0.3.0/24"));
    }
}
