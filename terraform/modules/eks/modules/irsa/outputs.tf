output "oidc_provider_arn" {
  description = "The IAM OIDC provider of the cluster."
  value       = aws_iam_openid_connect_provider.this.arn
}

output "role_arns" {
  description = "IRSA role ARNs by workload: app, lb_controller, external_dns, node_autoscaler."
  value       = { for k, r in aws_iam_role.this : k => r.arn }
}

output "role_names" {
  description = "IRSA role names by workload."
  value       = { for k, r in aws_iam_role.this : k => r.name }
}

output "service_accounts" {
  description = "The ServiceAccount (`namespace/name`) each role trusts, for the charts' annotations."
  value       = { for k, sa in local.service_accounts : k => "${sa.namespace}/${sa.name}" }
}
