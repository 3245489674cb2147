# Binding: the chart, the ops CLI and `doctor` read these names.

output "cluster_name" {
  description = "The EKS cluster."
  value       = module.eks.cluster_name
}

output "region" {
  description = "The AWS region."
  value       = var.region
}

output "vpc_id" {
  description = "The VPC (the Load Balancer Controller's --aws-vpc-id: pods cannot reach instance metadata)."
  value       = module.network.vpc_id
}

output "vpc_cidr" {
  description = "The VPC's range (the app's TRUSTED_PROXIES)."
  value       = module.network.vpc_cidr
}

output "app_role_arn" {
  description = "The app's IRSA role (its ServiceAccount's eks.amazonaws.com/role-arn)."
  value       = module.eks.app_role_arn
}

output "lb_controller_role_arn" {
  description = "IRSA role of the AWS Load Balancer Controller."
  value       = module.eks.lb_controller_role_arn
}

output "node_autoscaler_role_arn" {
  description = "IRSA role of the Cluster Autoscaler."
  value       = module.eks.node_autoscaler_role_arn
}

output "external_dns_role_arn" {
  description = "IRSA role of external-dns."
  value       = module.eks.external_dns_role_arn
}

output "kinesis_stream_name" {
  description = "The app's KINESIS_STREAM."
  value       = module.stream.name
}

output "kinesis_stream_arn" {
  description = "The app's stream's ARN."
  value       = module.stream.arn
}

output "cache_endpoint" {
  description = "Host of the app's REDIS_CLUSTER_NODES, rediss://<cache_endpoint>:6379 (serverless caches speak TLS only)."
  value       = module.cache.address
}

output "cache_name" {
  description = "The ElastiCache Serverless cache (prewarm sets its minimum ECPU/s)."
  value       = module.cache.name
}

output "aurora_cluster_id" {
  description = "The Aurora cluster identifier."
  value       = module.aurora.cluster_id
}

output "aurora_writer_endpoint" {
  description = "Host of DATABASE_URL (and of the migrator)."
  value       = module.aurora.writer_endpoint
}

output "aurora_reader_endpoint" {
  description = "Host of DATABASE_READ_URL."
  value       = module.aurora.reader_endpoint
}

output "db_secret_arns" {
  description = "Secrets Manager ARNs of the database users: master, migrator, app, reader."
  value       = merge({ master = module.aurora.master_secret_arn }, module.db_users.arns)
}

output "certificate_arn" {
  description = "The app's validated ACM certificate (the Ingress's certificate-arn)."
  value       = module.dns.certificate_arn
}

output "ecr_repository_url" {
  description = "Where CI pushes the app's image."
  value       = module.ecr.repository_url
}

output "alarm_topic_arn" {
  description = "The SNS topic of every alarm."
  value       = module.monitoring.alarm_topic_arn
}
