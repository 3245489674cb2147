# dev: small and cheap. Names equal environments/dev.toml (checked by
# `cargo xtask test`); sizes are this environment's own.

environment   = "dev"
account_id    = "111111111111"
account_alias = "tickets-dev"
region        = "ap-northeast-2"

cluster_name    = "tickets-dev"
namespace       = "admission"
service_account = "admission"
app_role_name   = "tickets-dev-admission"

addons_namespace          = "kube-system"
lb_controller_role_name   = "tickets-dev-aws-load-balancer-controller"
external_dns_role_name    = "tickets-dev-external-dns"
node_autoscaler_role_name = "tickets-dev-cluster-autoscaler"

kinesis_stream = "tickets-dev-admission-events"
cache_name     = "tickets-dev-queue"
ecr_repository = "tickets/admission"
aurora_cluster = "tickets-dev"
alarm_email    = "oncall-dev@example.com"
dns_zone       = "example.com"
dns_host       = "tickets-dev.example.com"

# Network: one NAT gateway; no interface endpoints (the free S3 gateway
# endpoint still carries image layers).
vpc_cidr           = "10.10.0.0/16"
azs                = ["ap-northeast-2a", "ap-northeast-2b", "ap-northeast-2c"]
single_nat_gateway = true
log_retention_days = 365

# EKS: two small nodes, up to four.
kubernetes_version  = "1.35" # standard support until 2027-03
node_instance_types = ["t3.medium"]
node_min_size       = 1
node_desired_size   = 2
node_max_size       = 4

# Aurora: the writer alone (the reader endpoint then points at it), no
# deletion protection, a day of backups. Performance Insights' 7 days are
# free; Enhanced Monitoring costs cents.
aurora_instance_class              = "db.t4g.medium"
aurora_reader_count                = 0
aurora_backup_retention_days       = 1
aurora_monitoring_interval_seconds = 60
aurora_performance_insights        = true
deletion_protection                = false

# Kinesis: on-demand (no shard_count).

# ElastiCache Serverless: low caps.
cache_max_storage_gb          = 2
cache_max_ecpu_per_second     = 20000
cache_snapshot_retention_days = 0
