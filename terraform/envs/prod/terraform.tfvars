# prod: sized from seed 000's production (t3.xlarge nodes, r6g Aurora with
# readers, provisioned shards). Names equal environments/prod.toml (checked
# by `cargo xtask test`).

environment   = "prod"
account_id    = "222222222222"
account_alias = "tickets-prod"
region        = "ap-northeast-2"

cluster_name    = "tickets-prod"
namespace       = "admission"
service_account = "admission"
app_role_name   = "tickets-prod-admission"

addons_namespace          = "kube-system"
lb_controller_role_name   = "tickets-prod-aws-load-balancer-controller"
external_dns_role_name    = "tickets-prod-external-dns"
node_autoscaler_role_name = "tickets-prod-cluster-autoscaler"

kinesis_stream = "tickets-prod-admission-events"
cache_name     = "tickets-prod-queue"
ecr_repository = "tickets/admission"
aurora_cluster = "tickets-prod"
alarm_email    = "oncall@example.com"
dns_zone       = "example.com"
dns_host       = "tickets.example.com"

# Network: a NAT gateway per AZ; Kinesis, ECR and STS through interface
# endpoints (sale-day volume would otherwise pay NAT processing per GB).
vpc_cidr            = "10.20.0.0/16"
azs                 = ["ap-northeast-2a", "ap-northeast-2b", "ap-northeast-2c"]
single_nat_gateway  = false
interface_endpoints = ["kinesis-streams", "ecr.api", "ecr.dkr", "sts"]
log_retention_days  = 365

# EKS: three t3.xlarge nodes (one per AZ) at rest; the Cluster Autoscaler
# adds up to 25 for the HPA's 100 pods; prewarm raises the minimum.
kubernetes_version  = "1.35" # standard support until 2027-03
node_instance_types = ["t3.xlarge"]
node_min_size       = 3
node_desired_size   = 3
node_max_size       = 25

# Aurora: db.r6g.2xlarge writer and one reader (failover), up to four
# readers on CPU; prewarm raises the minimum before a sale.
aurora_instance_class              = "db.r6g.2xlarge"
aurora_reader_count                = 1
aurora_reader_autoscaling_min      = 1
aurora_reader_autoscaling_max      = 4
aurora_backup_retention_days       = 14
aurora_monitoring_interval_seconds = 60
aurora_performance_insights        = true
deletion_protection                = true

# Kinesis: 10 provisioned shards at rest (10 MB/s, 10,000 records/s of
# writes); prewarm adds shards before a sale (the seed ran 100).
kinesis_shard_count     = 10
kinesis_retention_hours = 24

# ElastiCache Serverless: caps that bound the bill; prewarm sets the minimum
# ECPU/s ahead of a sale.
cache_max_storage_gb          = 50
cache_max_ecpu_per_second     = 1000000
cache_snapshot_retention_days = 1
