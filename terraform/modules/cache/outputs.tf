output "name" {
  description = "The cache's name."
  value       = aws_elasticache_serverless_cache.this.name
}

output "address" {
  description = "The cache endpoint's host name."
  value       = aws_elasticache_serverless_cache.this.endpoint[0].address
}

output "endpoint" {
  description = "`host:port` of the cache's endpoint."
  value       = "${aws_elasticache_serverless_cache.this.endpoint[0].address}:${aws_elasticache_serverless_cache.this.endpoint[0].port}"
}

output "url" {
  description = "The app's REDIS_CLUSTER_NODES: `rediss://host:port` (serverless caches accept TLS only)."
  value       = "rediss://${aws_elasticache_serverless_cache.this.endpoint[0].address}:${aws_elasticache_serverless_cache.this.endpoint[0].port}"
}

output "security_group_id" {
  description = "The cache's own security group."
  value       = aws_security_group.this.id
}

output "max_storage_gb" {
  description = "The storage cap (for the alarm)."
  value       = var.max_storage_gb
}

output "max_ecpu_per_second" {
  description = "The ECPU/s cap (for the alarm)."
  value       = var.max_ecpu_per_second
}
