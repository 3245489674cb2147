# IAM roles for service accounts (IRSA): the cluster's OIDC provider, and one
# role per workload, each trusted only by its own Kubernetes ServiceAccount.
#
# A role's trust policy names the OIDC provider and requires both
#   <issuer>:sub = system:serviceaccount:<namespace>:<name>
#   <issuer>:aud = sts.amazonaws.com
# so that no other pod in the cluster, and no other audience, can assume it.
# Everything is built with jsonencode, so tests read the real policy text.

data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name

  # The issuer without its scheme is how IAM names the condition keys.
  issuer = trimprefix(var.oidc_issuer_url, "https://")

  service_accounts = {
    app = {
      role_name = var.app_role_name
      namespace = var.app_service_account.namespace
      name      = var.app_service_account.name
      policy    = local.app_policy
    }
    lb_controller = {
      role_name = coalesce(var.addon_role_names.lb_controller, "${var.cluster_name}-aws-load-balancer-controller")
      namespace = var.addons_namespace
      name      = "aws-load-balancer-controller"
      policy    = local.lb_controller_policy
    }
    external_dns = {
      role_name = coalesce(var.addon_role_names.external_dns, "${var.cluster_name}-external-dns")
      namespace = var.addons_namespace
      name      = "external-dns"
      policy    = local.external_dns_policy
    }
    node_autoscaler = {
      role_name = coalesce(var.addon_role_names.node_autoscaler, "${var.cluster_name}-cluster-autoscaler")
      namespace = var.addons_namespace
      name      = "cluster-autoscaler"
      policy    = local.node_autoscaler_policy
    }
  }
}

resource "aws_iam_openid_connect_provider" "this" {
  url            = var.oidc_issuer_url
  client_id_list = ["sts.amazonaws.com"]
  # No thumbprint_list: IAM trusts the EKS issuers' CA itself.
}

resource "aws_iam_role" "this" {
  for_each = local.service_accounts

  name                 = each.value.role_name
  description          = "IRSA role of ServiceAccount ${each.value.namespace}/${each.value.name} in ${var.cluster_name}"
  max_session_duration = 3600

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "ServiceAccount"
      Effect    = "Allow"
      Principal = { Federated = aws_iam_openid_connect_provider.this.arn }
      Action    = "sts:AssumeRoleWithWebIdentity"
      Condition = {
        StringEquals = {
          "${local.issuer}:sub" = "system:serviceaccount:${each.value.namespace}:${each.value.name}"
          "${local.issuer}:aud" = "sts.amazonaws.com"
        }
      }
    }]
  })
}

resource "aws_iam_role_policy" "this" {
  for_each = local.service_accounts

  name   = "least-privilege"
  role   = aws_iam_role.this[each.key].id
  policy = jsonencode(each.value.policy)
}
