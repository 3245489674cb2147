output "cluster_name" {
  description = "The cluster's name."
  value       = aws_eks_cluster.this.name
}

output "cluster_arn" {
  description = "The cluster's ARN."
  value       = aws_eks_cluster.this.arn
}

output "cluster_endpoint" {
  description = "The Kubernetes API server endpoint."
  value       = aws_eks_cluster.this.endpoint
}

output "cluster_certificate_authority_data" {
  description = "Base64 CA certificate of the API server."
  value       = aws_eks_cluster.this.certificate_authority[0].data
}

output "cluster_security_group_id" {
  description = "The security group EKS attaches to the control plane and to every managed node (and so to the pods): the source the data stores open their ports to."
  value       = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
}

output "oidc_issuer_url" {
  description = "The cluster's OIDC issuer."
  value       = aws_eks_cluster.this.identity[0].oidc[0].issuer
}

output "oidc_provider_arn" {
  description = "The IAM OIDC provider for IRSA."
  value       = module.irsa.oidc_provider_arn
}

output "node_group_name" {
  description = "The managed node group (`cargo xtask prewarm` resizes it)."
  value       = aws_eks_node_group.this.node_group_name
}

output "node_role_arn" {
  description = "The nodes' IAM role."
  value       = aws_iam_role.node.arn
}

output "app_role_arn" {
  description = "The app's IRSA role (the chart's ServiceAccount annotation)."
  value       = module.irsa.role_arns["app"]
}

output "lb_controller_role_arn" {
  description = "IRSA role of the AWS Load Balancer Controller (kube-system/aws-load-balancer-controller)."
  value       = module.irsa.role_arns["lb_controller"]
}

output "external_dns_role_arn" {
  description = "IRSA role of external-dns (kube-system/external-dns)."
  value       = module.irsa.role_arns["external_dns"]
}

output "node_autoscaler_role_arn" {
  description = "IRSA role of the Cluster Autoscaler (kube-system/cluster-autoscaler)."
  value       = module.irsa.role_arns["node_autoscaler"]
}

output "role_names" {
  description = "Names of the IRSA roles by key (app, lb_controller, external_dns, node_autoscaler), for `cargo xtask irsa check` and doctor."
  value       = module.irsa.role_names
}
