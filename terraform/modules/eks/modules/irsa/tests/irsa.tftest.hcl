# The trust and permission policies are built with jsonencode, so the
# mocked apply keeps their real text and these assertions read it.
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
  mock_resource "aws_iam_openid_connect_provider" {
    defaults = { arn = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.ap-northeast-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE" }
  }
}

variables {
  cluster_name            = "tickets-test"
  oidc_issuer_url         = "https://oidc.eks.ap-northeast-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
  app_role_name           = "tickets-test-admission"
  app_service_account     = { namespace = "admission", name = "admission" }
  app_kinesis_stream_arn  = "arn:aws:kinesis:ap-northeast-2:123456789012:stream/tickets-test-admission-events"
  app_kinesis_kms_key_arn = "arn:aws:kms:ap-northeast-2:123456789012:key/11111111-2222-3333-4444-555555555555"
  external_dns_zone_ids   = ["Z0123456789ABCDEFGHIJ"]
}

run "each_role_trusts_only_its_own_service_account" {
  command = apply

  assert {
    condition     = lookup(jsondecode(aws_iam_role.this["app"].assume_role_policy).Statement[0].Condition.StringEquals, "oidc.eks.ap-northeast-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE:sub", "") == "system:serviceaccount:admission:admission"
    error_message = "The app role's trust must require sub = system:serviceaccount:admission:admission."
  }
  assert {
    condition     = lookup(jsondecode(aws_iam_role.this["app"].assume_role_policy).Statement[0].Condition.StringEquals, "oidc.eks.ap-northeast-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE:aud", "") == "sts.amazonaws.com"
    error_message = "The app role's trust must require aud = sts.amazonaws.com."
  }
  assert {
    condition     = jsondecode(aws_iam_role.this["app"].assume_role_policy).Statement[0].Principal.Federated == aws_iam_openid_connect_provider.this.arn
    error_message = "The trust must name the cluster's OIDC provider."
  }
  assert {
    condition     = jsondecode(aws_iam_role.this["app"].assume_role_policy).Statement[0].Action == "sts:AssumeRoleWithWebIdentity"
    error_message = "IRSA roles are assumed with a web identity."
  }
  assert {
    condition     = alltrue([for k, r in aws_iam_role.this : length(jsondecode(r.assume_role_policy).Statement) == 1 && length(keys(jsondecode(r.assume_role_policy).Statement[0].Condition.StringEquals)) == 2])
    error_message = "Every role has one statement with exactly the sub and aud conditions."
  }
  assert {
    condition     = lookup(jsondecode(aws_iam_role.this["lb_controller"].assume_role_policy).Statement[0].Condition.StringEquals, "oidc.eks.ap-northeast-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE:sub", "") == "system:serviceaccount:kube-system:aws-load-balancer-controller"
    error_message = "The Load Balancer Controller's role trusts kube-system/aws-load-balancer-controller only."
  }
  assert {
    condition     = aws_iam_role.this["app"].name == "tickets-test-admission"
    error_message = "The app role has the name environments/<env>.toml gives it."
  }
  assert {
    condition     = aws_iam_openid_connect_provider.this.client_id_list == toset(["sts.amazonaws.com"])
    error_message = "The OIDC provider's audience is STS."
  }
}

run "app_may_only_write_to_its_stream_with_its_key" {
  command = apply

  assert {
    condition = toset(flatten([for s in jsondecode(aws_iam_role_policy.this["app"].policy).Statement : s.Action])) == toset([
      "kinesis:PutRecord", "kinesis:PutRecords", "kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kms:GenerateDataKey",
    ])
    error_message = "The app may put records, describe its stream and generate data keys; nothing else."
  }
  assert {
    condition = alltrue([for s in jsondecode(aws_iam_role_policy.this["app"].policy).Statement :
      s.Effect == "Allow" && (startswith(s.Action[0], "kinesis:") ? s.Resource == var.app_kinesis_stream_arn : s.Resource == var.app_kinesis_kms_key_arn)
    ])
    error_message = "Kinesis actions apply to the app's stream only, KMS to its key only."
  }
}

run "external_dns_changes_only_its_zones" {
  command = apply

  assert {
    condition     = jsondecode(aws_iam_role_policy.this["external_dns"].policy).Statement[0].Resource == ["arn:aws:route53:::hostedzone/Z0123456789ABCDEFGHIJ"]
    error_message = "Record changes are limited to the given zones."
  }
}

run "autoscaler_resizes_only_this_clusters_node_groups" {
  command = apply

  assert {
    condition     = lookup(jsondecode(aws_iam_role_policy.this["node_autoscaler"].policy).Statement[0].Condition.StringEquals, "aws:ResourceTag/k8s.io/cluster-autoscaler/tickets-test", "") == "owned"
    error_message = "SetDesiredCapacity must be conditioned on the cluster's owned tag."
  }
}

run "rejects_a_stream_arn_that_is_not_a_stream" {
  command = plan

  variables {
    app_kinesis_stream_arn = "*"
  }

  expect_failures = [var.app_kinesis_stream_arn]
}

run "addon_roles_take_the_names_and_namespace_the_environment_gives" {
  command = apply

  variables {
    addons_namespace = "addons"
    addon_role_names = { lb_controller = "tickets-test-lbc" }
  }

  assert {
    condition     = aws_iam_role.this["lb_controller"].name == "tickets-test-lbc" && aws_iam_role.this["external_dns"].name == "tickets-test-external-dns"
    error_message = "A given role name is used; a missing one is derived from the cluster name."
  }
  assert {
    condition     = lookup(jsondecode(aws_iam_role.this["lb_controller"].assume_role_policy).Statement[0].Condition.StringEquals, "oidc.eks.ap-northeast-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE:sub", "") == "system:serviceaccount:addons:aws-load-balancer-controller"
    error_message = "The add-ons' roles trust their ServiceAccounts in addons_namespace."
  }
}
