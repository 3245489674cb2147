# The EKS cluster: control plane (private endpoint, optionally public from
# given ranges), one managed node group, EKS-managed core add-ons, and the
# IRSA roles of the app and the cluster add-ons ArgoCD installs.

data "aws_partition" "current" {}

locals {
  partition = data.aws_partition.current.partition

  aws_policy = "arn:${local.partition}:iam::aws:policy"
  log_group  = "/aws/eks/${var.cluster_name}/cluster"
}

# Encrypts Kubernetes Secrets (envelope encryption) and the control-plane
# logs.
module "kms" {
  source = "../kms"

  description     = "EKS ${var.cluster_name}: Kubernetes secrets and control-plane logs"
  alias           = "eks/${var.cluster_name}"
  log_group_names = [local.log_group]
}

# Created before the cluster so that EKS does not create it without a
# retention.
resource "aws_cloudwatch_log_group" "this" {
  name              = local.log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = module.kms.key_arn
}

resource "aws_iam_role" "cluster" {
  name = "${var.cluster_name}-cluster"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "eks.amazonaws.com" }
      Action    = ["sts:AssumeRole", "sts:TagSession"]
    }]
  })
}

resource "aws_iam_role_policy_attachment" "cluster" {
  role       = aws_iam_role.cluster.name
  policy_arn = "${local.aws_policy}/AmazonEKSClusterPolicy"
}

resource "aws_eks_cluster" "this" {
  name     = var.cluster_name
  version  = var.kubernetes_version
  role_arn = aws_iam_role.cluster.arn

  vpc_config {
    subnet_ids              = var.subnet_ids
    security_group_ids      = var.additional_security_group_ids
    endpoint_private_access = true
    endpoint_public_access  = var.endpoint_public_access
    public_access_cidrs     = var.endpoint_public_access ? var.endpoint_public_access_cidrs : null
  }

  # Access entries, not the aws-auth ConfigMap.
  access_config {
    authentication_mode                         = "API"
    bootstrap_cluster_creator_admin_permissions = var.cluster_creator_admin
  }

  encryption_config {
    resources = ["secrets"]
    provider {
      key_arn = module.kms.key_arn
    }
  }

  enabled_cluster_log_types = ["api", "audit", "authenticator", "controllerManager", "scheduler"]

  # A version that leaves standard support is not moved to (paid) extended
  # support silently: EKS upgrades it instead, and `doctor` warns before.
  upgrade_policy {
    support_type = "STANDARD"
  }

  depends_on = [
    aws_iam_role_policy_attachment.cluster,
    aws_cloudwatch_log_group.this,
  ]
}

resource "aws_eks_access_entry" "admins" {
  for_each = toset(var.admin_principal_arns)

  cluster_name  = aws_eks_cluster.this.name
  principal_arn = each.value
}

resource "aws_eks_access_policy_association" "admins" {
  for_each = toset(var.admin_principal_arns)

  cluster_name  = aws_eks_cluster.this.name
  principal_arn = aws_eks_access_entry.admins[each.value].principal_arn
  policy_arn    = "arn:${local.partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"

  access_scope {
    type = "cluster"
  }
}

# Nodes.

resource "aws_iam_role" "node" {
  name = "${var.cluster_name}-node"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy_attachment" "node" {
  for_each = toset([
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryPullOnly",
  ])

  role       = aws_iam_role.node.name
  policy_arn = "${local.aws_policy}/${each.value}"
}

resource "aws_launch_template" "node" {
  name_prefix            = "${var.cluster_name}-node-"
  description            = "EKS ${var.cluster_name} nodes: IMDSv2 only, encrypted root volume"
  update_default_version = true

  # IMDSv2 with a hop limit of 1: pods cannot reach the node's instance
  # metadata and so cannot borrow the node role; workloads get AWS access
  # through their own IRSA roles only (the seeds' "AccessDenied as the
  # node role" case becomes impossible to paper over).
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = var.node_disk_size_gb
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  monitoring {
    enabled = true
  }

  tag_specifications {
    resource_type = "instance"
    tags          = { Name = "${var.cluster_name}-node" }
  }
}

resource "aws_eks_node_group" "this" {
  cluster_name    = aws_eks_cluster.this.name
  node_group_name = "${var.cluster_name}-default"
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = var.subnet_ids
  ami_type        = var.node_ami_type
  capacity_type   = var.node_capacity_type
  instance_types  = var.node_instance_types

  launch_template {
    id      = aws_launch_template.node.id
    version = aws_launch_template.node.latest_version
  }

  scaling_config {
    min_size     = var.node_min_size
    max_size     = var.node_max_size
    desired_size = var.node_desired_size
  }

  update_config {
    max_unavailable_percentage = 33
  }

  lifecycle {
    # The Cluster Autoscaler changes desired_size all day, and `cargo xtask
    # prewarm`/`pause` raise and lower min_size around a sale; Terraform only
    # sets them at creation and must not undo either on the next apply.
    ignore_changes = [scaling_config[0].desired_size, scaling_config[0].min_size]
  }

  depends_on = [aws_iam_role_policy_attachment.node]
}

# EKS-managed core add-ons (kept up to date by EKS). Everything else
# (Load Balancer Controller, external-dns, Cluster Autoscaler,
# metrics-server) is installed by ArgoCD with the roles below.
resource "aws_eks_addon" "this" {
  for_each = var.addons

  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = each.key
  addon_version               = each.value.version
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "PRESERVE"

  # coredns needs nodes to schedule on.
  depends_on = [aws_eks_node_group.this]
}

module "irsa" {
  source = "./modules/irsa"

  cluster_name            = aws_eks_cluster.this.name
  oidc_issuer_url         = aws_eks_cluster.this.identity[0].oidc[0].issuer
  app_role_name           = var.app_role_name
  app_service_account     = var.app_service_account
  app_kinesis_stream_arn  = var.app_kinesis_stream_arn
  app_kinesis_kms_key_arn = var.app_kinesis_kms_key_arn
  external_dns_zone_ids   = var.external_dns_zone_ids
  addons_namespace        = var.addons_namespace
  addon_role_names        = var.addon_role_names
}
