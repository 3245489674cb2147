# One environment: the modules wired together. Everything that differs
# between environments is a variable (terraform.tfvars); terraform/envs/prod
# links to these same files, so dev and prod cannot drift apart.

module "network" {
  source = "../../modules/network"

  name                     = var.cluster_name
  cluster_name             = var.cluster_name
  cidr                     = var.vpc_cidr
  azs                      = var.azs
  single_nat_gateway       = var.single_nat_gateway
  interface_endpoints      = var.interface_endpoints
  flow_logs_retention_days = var.log_retention_days
}

module "stream" {
  source = "../../modules/stream"

  name            = var.kinesis_stream
  shard_count     = var.kinesis_shard_count
  retention_hours = var.kinesis_retention_hours
}

module "ecr" {
  source = "../../modules/ecr"

  name = var.ecr_repository
}

module "dns" {
  source = "../../modules/dns"

  zone_name   = var.dns_zone
  domain_name = var.dns_host
}

module "eks" {
  source = "../../modules/eks"

  cluster_name                 = var.cluster_name
  kubernetes_version           = var.kubernetes_version
  subnet_ids                   = module.network.private_subnet_ids
  endpoint_public_access       = var.eks_public_endpoint
  endpoint_public_access_cidrs = var.eks_public_access_cidrs
  admin_principal_arns         = var.eks_admin_principal_arns
  log_retention_days           = var.log_retention_days

  node_instance_types = var.node_instance_types
  node_capacity_type  = var.node_capacity_type
  node_min_size       = var.node_min_size
  node_desired_size   = var.node_desired_size
  node_max_size       = var.node_max_size

  app_role_name           = var.app_role_name
  app_service_account     = { namespace = var.namespace, name = var.service_account }
  app_kinesis_stream_arn  = module.stream.arn
  app_kinesis_kms_key_arn = module.stream.kms_key_arn
  external_dns_zone_ids   = [module.dns.zone_id]
  addons_namespace        = var.addons_namespace
  addon_role_names = {
    lb_controller   = var.lb_controller_role_name
    external_dns    = var.external_dns_role_name
    node_autoscaler = var.node_autoscaler_role_name
  }
}

module "aurora" {
  source = "../../modules/aurora"

  name                    = var.aurora_cluster
  vpc_id                  = module.network.vpc_id
  subnet_ids              = module.network.database_subnet_ids
  allowed_security_groups = { eks_cluster = module.eks.cluster_security_group_id }

  instance_class              = var.aurora_instance_class
  reader_count                = var.aurora_reader_count
  reader_autoscaling_min      = var.aurora_reader_autoscaling_min
  reader_autoscaling_max      = var.aurora_reader_autoscaling_max
  backup_retention_days       = var.aurora_backup_retention_days
  deletion_protection         = var.deletion_protection
  monitoring_interval_seconds = var.aurora_monitoring_interval_seconds
  performance_insights        = var.aurora_performance_insights
}

module "db_users" {
  source = "../../modules/aurora/modules/user-secrets"

  name_prefix             = "${module.aurora.cluster_id}/db"
  users                   = module.aurora.app_users
  kms_key_arn             = module.aurora.kms_key_arn
  password_version        = var.db_user_password_version
  recovery_window_in_days = var.deletion_protection ? 30 : 0
}

module "cache" {
  source = "../../modules/cache"

  name                    = var.cache_name
  vpc_id                  = module.network.vpc_id
  subnet_ids              = module.network.database_subnet_ids
  allowed_security_groups = { eks_cluster = module.eks.cluster_security_group_id }

  max_storage_gb          = var.cache_max_storage_gb
  max_ecpu_per_second     = var.cache_max_ecpu_per_second
  min_ecpu_per_second     = var.cache_min_ecpu_per_second
  snapshot_retention_days = var.cache_snapshot_retention_days
}

module "monitoring" {
  source = "../../modules/monitoring"

  name                      = var.cluster_name
  alarm_email               = var.alarm_email
  alb_arn_suffix            = var.alb_arn_suffix
  target_group_arn_suffix   = var.target_group_arn_suffix
  aurora_cluster_id         = module.aurora.cluster_id
  aurora_max_connections    = module.aurora.max_connections
  cache_name                = module.cache.name
  cache_max_ecpu_per_second = module.cache.max_ecpu_per_second
  cache_max_storage_gb      = module.cache.max_storage_gb
  stream_name               = module.stream.name
}

module "vpn" {
  source = "../../modules/vpn"
  count  = var.vpn == null ? 0 : 1

  name                        = var.cluster_name
  vpc_id                      = module.network.vpc_id
  vpc_cidr                    = module.network.vpc_cidr
  subnet_ids                  = slice(module.network.private_subnet_ids, 0, var.vpn.subnet_count)
  client_cidr_block           = var.vpn.client_cidr_block
  server_certificate_arn      = var.vpn.server_certificate_arn
  client_root_certificate_arn = var.vpn.client_root_certificate_arn
  alarm_topic_arn             = module.monitoring.alarm_topic_arn
}
