//! `ops prewarm` and `prewarm --undo` end to end on prod's names: moto for
//! Kinesis (shard count and tags), RDS (tags) and Application Auto Scaling
//! (the readers' minimum); the values file and its commit in a throwaway
//! repository. moto has no ElastiCache Serverless: an AwsProxy in front of
//! moto plays the cache (a minimum ECPU/s and tags, in ElastiCache's XML)
//! and logs the exact form bodies the SDK sent.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
use devstack::{AwsProxy, AwsReply};
use support::*;

const CACHE: &str = "tickets-prod-queue";
const STREAM: &str = "tickets-prod-admission-events";
const VALUES: &str = "helm/admission/values-prod.yaml";

/// The fake serverless cache: its minimum ECPU/s and its tags.
#[derive(Default)]
struct Cache {
    minimum: Option<i64>,
    tags: BTreeMap<String, String>,
}

fn cache_arn() -> String {
    format!("arn:aws:elasticache:{REGION}:{ACCOUNT}:serverlesscache:{CACHE}")
}

fn cache_xml(c: &Cache) -> String {
    let minimum = c
        .minimum
        .map(|m| format!("<Minimum>{m}</Minimum>"))
        .unwrap_or_default();
    format!(
        "<ServerlessCacheName>{CACHE}</ServerlessCacheName><ARN>{}</ARN><Status>available</Status>\
         <CacheUsageLimits><ECPUPerSecond><Maximum>5000000</Maximum>{minimum}</ECPUPerSecond></CacheUsageLimits>",
        cache_arn()
    )
}

fn tags_xml(c: &Cache) -> String {
    c.tags
        .iter()
        .map(|(k, v)| format!("<Tag><Key>{k}</Key><Value>{v}</Value></Tag>"))
        .collect()
}

fn answer(action: &str, result: &str) -> AwsReply {
    AwsReply::xml(&format!(
        "<{action}Response xmlns=\"http://elasticache.amazonaws.com/doc/2015-02-02/\">\
         <{action}Result>{result}</{action}Result>\
         <ResponseMetadata><RequestId>aws-proxy</RequestId></ResponseMetadata></{action}Response>"
    ))
}

fn elasticache(cache: &Mutex<Cache>, body: &str) -> Option<AwsReply> {
    let fields = form(body);
    let get = |k: &str| {
        fields
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let action = get("Action")?;
    if !body.contains("Version=2015-02-02") {
        return None;
    }
    let mut c = cache.lock().unwrap();
    Some(match action.as_str() {
        "DescribeServerlessCaches" => answer(
            &action,
            &format!(
                "<ServerlessCaches><member>{}</member></ServerlessCaches>",
                cache_xml(&c)
            ),
        ),
        "ModifyServerlessCache" => {
            c.minimum = get("CacheUsageLimits.ECPUPerSecond.Minimum").and_then(|m| m.parse().ok());
            answer(
                &action,
                &format!("<ServerlessCache>{}</ServerlessCache>", cache_xml(&c)),
            )
        }
        "AddTagsToResource" => {
            let keys: Vec<&(String, String)> =
                fields.iter().filter(|(k, _)| k.ends_with(".Key")).collect();
            for (k, key) in keys {
                let value = get(&k.replace(".Key", ".Value")).unwrap_or_default();
                c.tags.insert(key.clone(), value);
            }
            answer(&action, &format!("<TagList>{}</TagList>", tags_xml(&c)))
        }
        "ListTagsForResource" => answer(&action, &format!("<TagList>{}</TagList>", tags_xml(&c))),
        "RemoveTagsFromResource" => {
            for (_, key) in fields.iter().filter(|(k, _)| k.starts_with("TagKeys.")) {
                c.tags.remove(key);
            }
            answer(&action, &format!("<TagList>{}</TagList>", tags_xml(&c)))
        }
        _ => return None,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn prewarm_raises_each_floor_records_it_on_the_resource_and_undo_puts_it_back() {
    let dir = work_dir("prewarm");
    let moto = start_moto(&dir);
    let repo = Repo::new(&dir);
    let config = sdk(&moto.endpoint());
    let kinesis = aws_sdk_kinesis::Client::new(&config);
    let rds = aws_sdk_rds::Client::new(&config);
    let scaling = aws_sdk_applicationautoscaling::Client::new(&config);
    kinesis
        .create_stream()
        .stream_name(STREAM)
        .shard_count(2)
        .send()
        .await
        .unwrap();
    rds.create_db_cluster()
        .db_cluster_identifier("tickets-prod")
        .engine("aurora-mysql")
        .master_username("admin")
        .master_user_password("not-a-secret-1")
        .send()
        .await
        .unwrap();
    scaling
        .register_scalable_target()
        .service_namespace(ServiceNamespace::Rds)
        .resource_id("cluster:tickets-prod")
        .scalable_dimension(ScalableDimension::RdsClusterReadReplicaCount)
        .min_capacity(1)
        .max_capacity(4)
        .send()
        .await
        .unwrap();
    let cache = Arc::new(Mutex::new(Cache {
        minimum: Some(1000),
        tags: BTreeMap::new(),
    }));
    let proxy = {
        let cache = cache.clone();
        AwsProxy::start(([127, 0, 0, 1], moto.port).into(), move |call| {
            elasticache(&cache, &call.body).unwrap_or(AwsReply::Forward)
        })
        .unwrap()
    };
    let endpoint = proxy.endpoint();
    let raise = [
        "prewarm",
        "--env",
        "prod",
        "--for",
        "3h",
        "--cache-ecpu",
        "200000",
        "--shards",
        "10",
        "--readers",
        "3",
        "--replicas",
        "12",
        "--yes",
        "--json",
    ];

    // Dry run: the plan, nothing changed.
    let mut dry = raise.to_vec();
    dry.push("--dry-run");
    let run = ops(&repo.dir, &endpoint, &dry);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let changes = run.json()["changes"].clone();
    let pairs: Vec<(i64, i64)> = changes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["from"].as_i64().unwrap(), c["to"].as_i64().unwrap()))
        .collect();
    assert_eq!(pairs, [(1000, 200000), (2, 10), (1, 3), (4, 12)]);
    assert_eq!(cache.lock().unwrap().minimum, Some(1000));

    // prod with no terminal and no --yes: refused.
    let run = ops(&repo.dir, &endpoint, &raise[..raise.len() - 2]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("pass --yes"), "{}", run.stderr);

    let run = ops(&repo.dir, &endpoint, &raise);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // The cache: minimum raised, the record on it.
    let record = cache
        .lock()
        .unwrap()
        .tags
        .get("ops.tickets/prewarm")
        .cloned()
        .unwrap();
    assert!(
        record.starts_with("until=") && record.ends_with(";previous=1000"),
        "{record}"
    );
    assert_eq!(cache.lock().unwrap().minimum, Some(200000));
    // The stream: 2 -> 4 -> 8 -> 10 open shards, tagged.
    let summary = kinesis
        .describe_stream_summary()
        .stream_name(STREAM)
        .send()
        .await
        .unwrap();
    assert_eq!(
        summary
            .stream_description_summary()
            .unwrap()
            .open_shard_count(),
        10
    );
    let tags = kinesis
        .list_tags_for_stream()
        .stream_name(STREAM)
        .send()
        .await
        .unwrap();
    assert!(tags.tags().iter().any(|t| t.key() == "ops.tickets/prewarm"
        && t.value().is_some_and(|v| v.ends_with(";previous=2"))));
    assert!(run.stderr.contains("4 -> 8 shards"), "{}", run.stderr);
    // Aurora: the readers' minimum, and the record on the cluster.
    let target = scaling
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Rds)
        .send()
        .await
        .unwrap();
    assert_eq!(target.scalable_targets()[0].min_capacity(), 3);
    let db = rds
        .describe_db_clusters()
        .db_cluster_identifier("tickets-prod")
        .send()
        .await
        .unwrap();
    assert!(db.db_clusters()[0]
        .tag_list()
        .iter()
        .any(|t| t.key() == Some("ops.tickets/prewarm")));
    // The HPA: the values file and a commit with the record.
    assert!(repo.read(VALUES).contains("  minReplicas: 12"));
    let message = repo.git(&["log", "-1", "--format=%B"]);
    assert!(message.starts_with("prewarm prod until "), "{message}");
    assert!(
        message.contains("Prewarm-Previous-Min-Replicas: 4"),
        "{message}"
    );

    // Undo: everything back from the records, the tags gone.
    let run = ops(
        &repo.dir,
        &endpoint,
        &["prewarm", "--env", "prod", "--undo", "--yes"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(cache.lock().unwrap().minimum, Some(1000));
    assert!(cache.lock().unwrap().tags.is_empty());
    let summary = kinesis
        .describe_stream_summary()
        .stream_name(STREAM)
        .send()
        .await
        .unwrap();
    assert_eq!(
        summary
            .stream_description_summary()
            .unwrap()
            .open_shard_count(),
        2
    );
    let tags = kinesis
        .list_tags_for_stream()
        .stream_name(STREAM)
        .send()
        .await
        .unwrap();
    assert!(tags.tags().is_empty());
    let target = scaling
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Rds)
        .send()
        .await
        .unwrap();
    assert_eq!(target.scalable_targets()[0].min_capacity(), 1);
    assert!(repo.read(VALUES).contains("  minReplicas: 4"));
    assert_eq!(
        repo.git(&["log", "-1", "--format=%s"]),
        "prewarm prod undo: HPA minReplicas 12 -> 4"
    );
    // A second undo finds nothing to put back.
    let run = ops(
        &repo.dir,
        &endpoint,
        &["prewarm", "--env", "prod", "--undo", "--yes", "--json"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["changes"], serde_json::json!([]));
}
