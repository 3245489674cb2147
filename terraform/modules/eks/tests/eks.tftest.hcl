mock_provider "aws" {
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_region" {
    defaults = { name = "ap-northeast-2" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:ap-northeast-2:123456789012:key/00000000-0000-0000-0000-000000000000" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/mocked" }
  }
  mock_resource "aws_iam_openid_connect_provider" {
    defaults = { arn = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.ap-northeast-2.amazonaws.com/id/EXAMPLE" }
  }
  mock_resource "aws_launch_template" {
    defaults = { id = "lt-0123456789abcdef0" }
  }
  # What EKS computes: the issuer (IRSA is built on it) and the cluster
  # security group (the data stores open their ports to it).
  mock_resource "aws_eks_cluster" {
    defaults = {
      arn = "arn:aws:eks:ap-northeast-2:123456789012:cluster/tickets-test"
      identity = [{
        oidc = [{ issuer = "https://oidc.eks.ap-northeast-2.amazonaws.com/id/EXAMPLE" }]
      }]
      vpc_config = {
        cluster_security_group_id = "sg-0123456789abcdef0"
        vpc_id                    = "vpc-0123456789abcdef0"
      }
      certificate_authority = [{ data = "Y2E=" }]
    }
  }
}

variables {
  cluster_name            = "tickets-test"
  kubernetes_version      = "1.33"
  subnet_ids              = ["subnet-a", "subnet-b", "subnet-c"]
  node_instance_types     = ["t3.medium"]
  node_min_size           = 2
  node_desired_size       = 2
  node_max_size           = 6
  app_role_name           = "tickets-test-admission"
  app_service_account     = { namespace = "admission", name = "admission" }
  app_kinesis_stream_arn  = "arn:aws:kinesis:ap-northeast-2:123456789012:stream/tickets-test-admission-events"
  app_kinesis_kms_key_arn = "arn:aws:kms:ap-northeast-2:123456789012:key/11111111-2222-3333-4444-555555555555"
}

run "api_endpoint_is_private_unless_asked" {
  command = plan

  assert {
    condition     = aws_eks_cluster.this.vpc_config[0].endpoint_private_access && !aws_eks_cluster.this.vpc_config[0].endpoint_public_access
    error_message = "The API endpoint is private by default."
  }
  assert {
    condition     = aws_eks_cluster.this.access_config[0].authentication_mode == "API"
    error_message = "Cluster access goes through access entries."
  }
  assert {
    condition     = aws_eks_cluster.this.upgrade_policy[0].support_type == "STANDARD"
    error_message = "No silent move to paid extended support."
  }
}

run "secrets_and_logs_are_encrypted_with_the_clusters_key" {
  command = apply

  assert {
    condition     = aws_eks_cluster.this.encryption_config[0].resources == toset(["secrets"]) && aws_eks_cluster.this.encryption_config[0].provider[0].key_arn == module.kms.key_arn
    error_message = "Kubernetes secrets must be envelope-encrypted with the module's key."
  }
  assert {
    condition     = aws_cloudwatch_log_group.this.kms_key_id == module.kms.key_arn && length(aws_eks_cluster.this.enabled_cluster_log_types) == 5
    error_message = "All control-plane logs go to an encrypted log group."
  }
}

run "nodes_cannot_lend_their_role_to_pods" {
  command = plan

  assert {
    condition     = aws_launch_template.node.metadata_options[0].http_tokens == "required" && aws_launch_template.node.metadata_options[0].http_put_response_hop_limit == 1
    error_message = "IMDSv2 with hop limit 1: pods must use IRSA, never the node role."
  }
  assert {
    condition     = aws_launch_template.node.block_device_mappings[0].ebs[0].encrypted == "true"
    error_message = "Node volumes are encrypted."
  }
}

run "node_group_is_created_with_the_given_sizes" {
  command = apply

  assert {
    condition     = aws_eks_node_group.this.scaling_config[0].min_size == 2 && aws_eks_node_group.this.scaling_config[0].max_size == 6
    error_message = "The node group starts with the given sizes."
  }
  assert {
    condition     = output.oidc_issuer_url == "https://oidc.eks.ap-northeast-2.amazonaws.com/id/EXAMPLE"
    error_message = "IRSA is built on the cluster's own issuer."
  }
  assert {
    condition     = output.cluster_security_group_id == "sg-0123456789abcdef0"
    error_message = "The cluster security group is what the data stores allow."
  }
}

run "prewarmed_node_sizes_are_left_alone" {
  # Same state as the run before, as if prewarm had raised the minimum:
  # a different min/desired in the configuration changes nothing.
  command = plan

  variables {
    node_min_size     = 1
    node_desired_size = 1
    node_max_size     = 8
  }

  assert {
    condition     = aws_eks_node_group.this.scaling_config[0].min_size == 2 && aws_eks_node_group.this.scaling_config[0].desired_size == 2
    error_message = "min_size and desired_size must be in ignore_changes (prewarm and the autoscaler own them)."
  }
  assert {
    condition     = aws_eks_node_group.this.scaling_config[0].max_size == 8
    error_message = "max_size stays under Terraform's control."
  }
}

run "rejects_a_public_endpoint_open_to_the_world" {
  command = plan

  variables {
    endpoint_public_access       = true
    endpoint_public_access_cidrs = ["0.0.0.0/0"]
  }

  expect_failures = [var.endpoint_public_access_cidrs]
}

run "rejects_max_below_min" {
  command = plan

  variables {
    node_min_size     = 4
    node_desired_size = 4
    node_max_size     = 3
  }

  expect_failures = [var.node_max_size]
}
