# Names: each equals its key in environments/<env>.toml (`cargo xtask test`
# fails when they disagree).

variable "environment" {
  description = "Environment name (`name`)."
  type        = string

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be dev or prod."
  }
}

variable "account_id" {
  description = "The only AWS account this environment may be applied to (`[aws].account_id`)."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.account_id))
    error_message = "account_id must be 12 digits."
  }
}

variable "account_alias" {
  description = "The account's alias (`[aws].account_alias`), shown by doctor; informational here."
  type        = string
}

variable "region" {
  description = "AWS region (`[aws].region`)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region such as ap-northeast-2."
  }
}

variable "cluster_name" {
  description = "EKS cluster, VPC and alarm prefix (`[kubernetes].cluster`)."
  type        = string
}

variable "namespace" {
  description = "The app's Kubernetes namespace (`[kubernetes].namespace`)."
  type        = string
}

variable "service_account" {
  description = "The app's ServiceAccount (`[kubernetes].service_account`): the only identity its IAM role trusts."
  type        = string
}

variable "app_role_name" {
  description = "The app's IRSA role (`[app].role_name`)."
  type        = string
}

variable "addons_namespace" {
  description = "Namespace of the cluster add-ons' ServiceAccounts (`[kubernetes.addons].namespace`)."
  type        = string
}

variable "lb_controller_role_name" {
  description = "The AWS Load Balancer Controller's IRSA role (`[kubernetes.addons].lb_controller_role_name`)."
  type        = string
}

variable "external_dns_role_name" {
  description = "external-dns's IRSA role (`[kubernetes.addons].external_dns_role_name`)."
  type        = string
}

variable "node_autoscaler_role_name" {
  description = "The Cluster Autoscaler's IRSA role (`[kubernetes.addons].node_autoscaler_role_name`)."
  type        = string
}

variable "kinesis_stream" {
  description = "The app's stream (`[app].kinesis_stream`)."
  type        = string
}

variable "cache_name" {
  description = "The ElastiCache Serverless cache (`[app].cache_name`)."
  type        = string
}

variable "ecr_repository" {
  description = "The image repository (`[app].ecr_repository`)."
  type        = string
}

variable "aurora_cluster" {
  description = "The Aurora cluster identifier (`[app].aurora_cluster`)."
  type        = string
}

variable "alarm_email" {
  description = "Where alarms are mailed (`[alarms].email`)."
  type        = string
}

variable "dns_zone" {
  description = "Public hosted zone of the app's name (`[ingress].zone`)."
  type        = string
}

variable "dns_host" {
  description = "The app's host name (`[ingress].host`)."
  type        = string
}

# Network.

variable "vpc_cidr" {
  description = "The VPC's range (`[network].vpc_cidr`: the app trusts X-Forwarded-For from inside it)."
  type        = string
}

variable "azs" {
  description = "Availability zones (three: an AZ can fail during a sale)."
  type        = list(string)
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all AZs (dev) instead of one per AZ (prod)."
  type        = bool
}

variable "interface_endpoints" {
  description = "Interface VPC endpoints (per-hour cost; they pay off where traffic is heavy)."
  type        = list(string)
  default     = []
}

variable "log_retention_days" {
  description = "Days to keep flow logs and control-plane logs."
  type        = number
}

# EKS.

variable "kubernetes_version" {
  description = "EKS Kubernetes version."
  type        = string
}

variable "eks_public_endpoint" {
  description = "Expose the API endpoint publicly too (from eks_public_access_cidrs only); off: reach it through the VPN."
  type        = bool
  default     = false
}

variable "eks_public_access_cidrs" {
  description = "Ranges allowed to the public API endpoint when it is on."
  type        = list(string)
  default     = []
}

variable "eks_admin_principal_arns" {
  description = "IAM roles given cluster-admin access entries (operators, the deploy role)."
  type        = list(string)
  default     = []
}

variable "node_instance_types" {
  description = "Node instance types."
  type        = list(string)
}

variable "node_capacity_type" {
  description = "ON_DEMAND or SPOT."
  type        = string
  default     = "ON_DEMAND"
}

variable "node_min_size" {
  description = "Nodes at least, at creation (then prewarm/pause own it)."
  type        = number
}

variable "node_desired_size" {
  description = "Nodes at creation (then the Cluster Autoscaler owns it)."
  type        = number
}

variable "node_max_size" {
  description = "Nodes at most."
  type        = number
}

# Aurora.

variable "aurora_instance_class" {
  description = "Writer and reader instance class."
  type        = string
}

variable "aurora_reader_count" {
  description = "Readers kept by Terraform (failover)."
  type        = number
}

variable "aurora_reader_autoscaling_min" {
  description = "Reader auto scaling minimum, at creation (then prewarm/pause own it)."
  type        = number
  default     = 0
}

variable "aurora_reader_autoscaling_max" {
  description = "Reader auto scaling maximum; 0: off."
  type        = number
  default     = 0
}

variable "aurora_backup_retention_days" {
  description = "Days of automated backups."
  type        = number
}

variable "aurora_monitoring_interval_seconds" {
  description = "Enhanced Monitoring interval; 0: off."
  type        = number
}

variable "aurora_performance_insights" {
  description = "Performance Insights on the instances."
  type        = bool
}

variable "db_user_password_version" {
  description = "Raise to generate new passwords for the app's database users."
  type        = number
  default     = 1
}

variable "deletion_protection" {
  description = "Protect the database and its secrets from deletion (prod)."
  type        = bool
}

# Kinesis.

variable "kinesis_shard_count" {
  description = "Provisioned shards at creation; null: on-demand."
  type        = number
  default     = null
}

variable "kinesis_retention_hours" {
  description = "Stream retention in hours."
  type        = number
  default     = 24
}

# ElastiCache.

variable "cache_max_storage_gb" {
  description = "Cache storage cap (GB)."
  type        = number
}

variable "cache_max_ecpu_per_second" {
  description = "Cache ECPU/s cap."
  type        = number
}

variable "cache_min_ecpu_per_second" {
  description = "Cache ECPU/s kept ready, at creation (then prewarm/pause own it)."
  type        = number
  default     = null
}

variable "cache_snapshot_retention_days" {
  description = "Daily cache snapshots kept."
  type        = number
}

# Monitoring: set both after the first deploy (docs/infrastructure.md).

variable "alb_arn_suffix" {
  description = "The app ALB's ARN suffix, once the Load Balancer Controller has created it; null before."
  type        = string
  default     = null
}

variable "target_group_arn_suffix" {
  description = "The app target group's ARN suffix, once created; null before."
  type        = string
  default     = null
}

# Client VPN (optional).

variable "vpn" {
  description = "A Client VPN endpoint into the VPC; null: none. Certificates are imported into ACM first (docs/infrastructure.md)."
  type = object({
    client_cidr_block           = string
    server_certificate_arn      = string
    client_root_certificate_arn = string
    subnet_count                = optional(number, 1)
  })
  default = null

  validation {
    condition     = var.vpn == null || try(var.vpn.subnet_count >= 1 && var.vpn.subnet_count <= 3, false)
    error_message = "vpn.subnet_count must be between 1 and 3."
  }
}
