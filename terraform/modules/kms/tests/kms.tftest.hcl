# The key policy is built with jsonencode, so the mocked apply keeps its
# real text and these assertions read it.
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
}

variables {
  description = "test"
  alias       = "test/key"
}

run "only_the_account_administers_a_plain_key" {
  command = apply

  assert {
    condition     = aws_kms_key.this.enable_key_rotation
    error_message = "Keys rotate."
  }
  assert {
    condition     = [for s in jsondecode(aws_kms_key.this.policy).Statement : s.Sid] == ["AccountAdministers"]
    error_message = "Without log groups or alarms, only the account may use the key."
  }
  assert {
    condition     = jsondecode(aws_kms_key.this.policy).Statement[0].Principal.AWS == "arn:aws:iam::123456789012:root"
    error_message = "The account's root (that is, its IAM policies) administers the key."
  }
  assert {
    condition     = aws_kms_alias.this.name == "alias/test/key"
    error_message = "The alias is alias/<alias>."
  }
}

run "cloudwatch_logs_may_use_it_for_the_given_log_groups_only" {
  command = apply

  variables {
    log_group_names = ["/aws/eks/tickets-test/cluster"]
  }

  assert {
    condition = jsondecode(aws_kms_key.this.policy).Statement[1].Condition.ArnLike["kms:EncryptionContext:aws:logs:arn"] == [
      "arn:aws:logs:ap-northeast-2:123456789012:log-group:/aws/eks/tickets-test/cluster",
    ]
    error_message = "CloudWatch Logs may use the key for the named log groups only."
  }
}

run "cloudwatch_alarms_may_publish_through_it" {
  command = apply

  variables {
    cloudwatch_alarms = true
  }

  assert {
    condition     = one([for s in jsondecode(aws_kms_key.this.policy).Statement : s.Principal.Service if s.Sid == "CloudWatchAlarmsPublish"]) == "cloudwatch.amazonaws.com"
    error_message = "CloudWatch may use the key to publish alarms."
  }
}

run "rejects_an_aws_managed_alias" {
  command = plan

  variables {
    alias = "aws/sns"
  }

  expect_failures = [var.alias]
}
