output "cluster_id" {
  description = "The cluster identifier."
  value       = aws_rds_cluster.this.cluster_identifier
}

output "writer_endpoint" {
  description = "The writer endpoint (DATABASE_URL's host, and the migrator's)."
  value       = aws_rds_cluster.this.endpoint
}

output "reader_endpoint" {
  description = "The reader endpoint (DATABASE_READ_URL's host); it is the writer while there is no reader."
  value       = aws_rds_cluster.this.reader_endpoint
}

output "port" {
  description = "MySQL port."
  value       = aws_rds_cluster.this.port
}

output "database_name" {
  description = "The app's schema."
  value       = var.database_name
}

output "master_secret_arn" {
  description = "The master user's secret, managed (and rotated) by RDS; only the bootstrap Job reads it."
  value       = aws_rds_cluster.this.master_user_secret[0].secret_arn
}

output "app_users" {
  description = "The app's database users (migrator, app, reader) with their connection details, for `modules/user-secrets`."
  value = { for k, u in local.users : k => {
    purpose = u.purpose
    connection = {
      engine = "mysql"
      host   = u.host
      port   = aws_rds_cluster.this.port
      dbname = var.database_name
    }
  } }
}

output "security_group_id" {
  description = "The database's own security group."
  value       = aws_security_group.this.id
}

output "max_connections" {
  description = "max_connections of each instance (the connections alarm fires at 80% of it)."
  value       = local.max_connections
}

output "kms_key_arn" {
  description = "The key of storage, secrets and Performance Insights (the bootstrap Job's role needs kms:Decrypt on it)."
  value       = module.kms.key_arn
}
