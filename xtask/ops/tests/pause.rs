//! `ops pause` / `resume` end to end against moto: the Aurora cluster's
//! status, the node group's scaling sizes and the tag that records them
//! between the two, and the saving read from docs/infrastructure.md.

mod support;

use aws_sdk_eks::types::NodegroupScalingConfig;
use support::*;

async fn state(
    eks: &aws_sdk_eks::Client,
    rds: &aws_sdk_rds::Client,
) -> (String, (i32, i32, i32), Option<String>) {
    let db = rds
        .describe_db_clusters()
        .db_cluster_identifier("tickets-dev")
        .send()
        .await
        .unwrap();
    let status = db.db_clusters()[0].status().unwrap().to_string();
    let group = eks
        .describe_nodegroup()
        .cluster_name("tickets-dev")
        .nodegroup_name("tickets-dev-default")
        .send()
        .await
        .unwrap();
    let group = group.nodegroup().unwrap();
    let s = group.scaling_config().unwrap();
    let tag = group
        .tags()
        .and_then(|t| t.get("ops.tickets/paused-sizes"))
        .cloned();
    (
        status,
        (
            s.min_size().unwrap(),
            s.max_size().unwrap(),
            s.desired_size().unwrap(),
        ),
        tag,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn pause_stops_aurora_and_zeroes_the_nodes_and_resume_puts_back_the_recorded_sizes() {
    let dir = work_dir("pause");
    let moto = start_moto(&dir);
    let repo = Repo::new(&dir);
    std::fs::create_dir_all(repo.dir.join("docs")).unwrap();
    std::fs::copy(
        root().join("docs/infrastructure.md"),
        repo.dir.join("docs/infrastructure.md"),
    )
    .unwrap();
    let config = sdk(&moto.endpoint());
    let eks = aws_sdk_eks::Client::new(&config);
    let rds = aws_sdk_rds::Client::new(&config);
    rds.create_db_cluster()
        .db_cluster_identifier("tickets-dev")
        .engine("aurora-mysql")
        .master_username("admin")
        .master_user_password("not-a-secret-1")
        .send()
        .await
        .unwrap();
    eks.create_cluster()
        .name("tickets-dev")
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/eks"))
        .resources_vpc_config(
            aws_sdk_eks::types::VpcConfigRequest::builder()
                .subnet_ids("subnet-1")
                .build(),
        )
        .send()
        .await
        .unwrap();
    eks.create_nodegroup()
        .cluster_name("tickets-dev")
        .nodegroup_name("tickets-dev-default")
        .node_role(format!("arn:aws:iam::{ACCOUNT}:role/nodes"))
        .subnets("subnet-1")
        .scaling_config(
            NodegroupScalingConfig::builder()
                .min_size(2)
                .max_size(4)
                .desired_size(3)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let endpoint = moto.endpoint();
    assert_eq!(
        state(&eks, &rds).await,
        ("available".into(), (2, 4, 3), None)
    );

    let run = ops(
        &repo.dir,
        &endpoint,
        &["pause", "--env", "dev", "--dry-run"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("would: rds StopDBCluster tickets-dev"),
        "{}",
        run.stdout
    );
    assert_eq!(
        state(&eks, &rds).await,
        ("available".into(), (2, 4, 3), None)
    );

    let run = ops(&repo.dir, &endpoint, &["pause", "--env", "dev"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("saves about 155.63 USD a month while paused"),
        "{}",
        run.stdout
    );
    assert_eq!(
        state(&eks, &rds).await,
        ("stopped".into(), (0, 4, 0), Some("2,4,3".into()))
    );
    // Twice is harmless.
    let run = ops(&repo.dir, &endpoint, &["pause", "--env", "dev", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.json()["steps"][0]
        .as_str()
        .unwrap()
        .contains("stopped already"));

    let run = ops(&repo.dir, &endpoint, &["resume", "--env", "dev"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        state(&eks, &rds).await,
        ("available".into(), (2, 4, 3), None)
    );

    // prod: no terminal, no --yes.
    let run = ops(&repo.dir, &endpoint, &["pause", "--env", "prod"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("pass --yes"), "{}", run.stderr);
}
