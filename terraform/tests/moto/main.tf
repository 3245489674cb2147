# A small root that applies the modules moto can emulate (network, stream,
# ECR, IAM with the OIDC provider and IRSA roles, Aurora and its users'
# secrets, monitoring) against a local moto server. `cargo xtask test`
# starts moto on a free port, applies this, checks the result through
# moto's API (check.py), and destroys it.
#
# The EKS module is applied too, without add-ons and access entries (moto
# has neither API), and moto's cluster has no security group of its own:
# a stand-in group is attached as an additional one, and the database
# trusts it. `cargo xtask test` then runs `doctor` against the result.
#
# Not here, because moto cannot create them: ElastiCache Serverless,
# Client VPN, ACM/Route 53 validation. Those are checked by `terraform
# test` with mocked providers and by checkov.

terraform {
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }
}

variable "endpoint" {
  description = "The moto server, e.g. http://127.0.0.1:5000."
  type        = string

  validation {
    condition     = can(regex("^http://(127\\.0\\.0\\.1|localhost):[0-9]+$", var.endpoint))
    error_message = "endpoint must be a local moto server: this root never talks to AWS."
  }
}

locals {
  name = "tickets-moto"
}

provider "aws" {
  region     = "ap-northeast-2"
  access_key = "moto"
  secret_key = "moto"

  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  # moto answers an unimplemented call with a 500, which the provider would
  # otherwise retry for minutes.
  max_retries = 1

  endpoints {
    applicationautoscaling = var.endpoint
    cloudwatch             = var.endpoint
    ec2                    = var.endpoint
    eks                    = var.endpoint
    ecr                    = var.endpoint
    iam                    = var.endpoint
    kinesis                = var.endpoint
    kms                    = var.endpoint
    logs                   = var.endpoint
    rds                    = var.endpoint
    secretsmanager         = var.endpoint
    sns                    = var.endpoint
    sts                    = var.endpoint
  }

  default_tags {
    tags = { Project = "tickets", Environment = "moto", ManagedBy = "terraform" }
  }
}

module "network" {
  source = "../../modules/network"

  name                = local.name
  cluster_name        = local.name
  azs                 = ["ap-northeast-2a", "ap-northeast-2b", "ap-northeast-2c"]
  single_nat_gateway  = true
  interface_endpoints = ["kinesis-streams"]
}

module "stream" {
  source = "../../modules/stream"

  name        = "${local.name}-admission-events"
  shard_count = 2
}

module "ecr" {
  source = "../../modules/ecr"

  name         = "tickets/admission"
  force_delete = true
}

module "eks" {
  source = "../../modules/eks"

  cluster_name                  = local.name
  kubernetes_version            = "1.35"
  subnet_ids                    = module.network.private_subnet_ids
  additional_security_group_ids = [aws_security_group.cluster.id]
  # moto has no add-on and no access-entry API.
  addons                  = {}
  cluster_creator_admin   = false
  node_instance_types     = ["m6i.large"]
  node_min_size           = 2
  node_desired_size       = 2
  node_max_size           = 4
  app_role_name           = "${local.name}-admission"
  app_service_account     = { namespace = "admission", name = "admission" }
  app_kinesis_stream_arn  = module.stream.arn
  app_kinesis_kms_key_arn = module.stream.kms_key_arn
  external_dns_zone_ids   = ["Z0123456789MOTO"]
}

# Stands in for the EKS cluster security group.
resource "aws_security_group" "cluster" {
  #checkov:skip=CKV2_AWS_5:A stand-in for the security group EKS creates for a cluster (moto's cluster has none); attached to the cluster as an additional group.
  name        = "${local.name}-eks-cluster"
  description = "Stand-in for the EKS cluster security group"
  vpc_id      = module.network.vpc_id
}

module "aurora" {
  #checkov:skip=CKV_AWS_118:Enhanced Monitoring is off here only because moto lacks the AWS-managed policy its role needs; the environments turn it on.
  source = "../../modules/aurora"

  name                    = local.name
  vpc_id                  = module.network.vpc_id
  subnet_ids              = module.network.database_subnet_ids
  allowed_security_groups = { eks_cluster = aws_security_group.cluster.id }
  instance_class          = "db.r6g.large"
  reader_count            = 1
  deletion_protection     = false
  # moto does not know the AWS-managed AmazonRDSEnhancedMonitoringRole policy.
  monitoring_interval_seconds = 0
  # Choosing a CA makes the provider modify each new instance and wait for
  # it again (minutes of fixed delays against moto).
  ca_cert_identifier = null
}

module "db_users" {
  source = "../../modules/aurora/modules/user-secrets"

  name_prefix             = "${module.aurora.cluster_id}/db"
  users                   = module.aurora.app_users
  kms_key_arn             = module.aurora.kms_key_arn
  password_version        = 1
  recovery_window_in_days = 0
}

module "monitoring" {
  source = "../../modules/monitoring"

  name                      = local.name
  alarm_email               = "oncall@example.com"
  aurora_cluster_id         = module.aurora.cluster_id
  aurora_max_connections    = module.aurora.max_connections
  cache_name                = "${local.name}-queue"
  cache_max_ecpu_per_second = 100000
  cache_max_storage_gb      = 10
  stream_name               = module.stream.name
}

output "vpc_id" {
  value = module.network.vpc_id
}

output "cluster_name" {
  value = local.name
}

output "oidc_issuer" {
  value = module.eks.oidc_issuer_url
}

output "app_role_name" {
  value = module.eks.role_names["app"]
}

output "role_names" {
  value = module.eks.role_names
}

output "stream_name" {
  value = module.stream.name
}

output "aurora_cluster_id" {
  value = module.aurora.cluster_id
}

output "aurora_security_group_id" {
  value = module.aurora.security_group_id
}

output "cluster_security_group_id" {
  value = aws_security_group.cluster.id
}

output "db_secret_arns" {
  value = merge({ master = module.aurora.master_secret_arn }, module.db_users.arns)
}
