mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:ap-northeast-2:123456789012:key/00000000-0000-0000-0000-000000000000" }
  }
}

variables {
  name = "tickets-test-admission-events"
}

run "dev_stream_is_on_demand_and_encrypted_with_its_own_key" {
  command = apply

  assert {
    condition     = aws_kinesis_stream.this.stream_mode_details[0].stream_mode == "ON_DEMAND"
    error_message = "Without shard_count the stream is on-demand."
  }
  assert {
    condition     = aws_kinesis_stream.this.encryption_type == "KMS" && aws_kinesis_stream.this.kms_key_id == module.kms.key_arn
    error_message = "The stream must be encrypted at rest with the module's KMS key."
  }
  assert {
    condition     = output.kms_key_arn == module.kms.key_arn
    error_message = "Writers need the key's ARN for kms:GenerateDataKey."
  }
}

run "prod_stream_has_provisioned_shards" {
  command   = apply
  state_key = "prod"

  variables {
    shard_count     = 8
    retention_hours = 48
  }

  assert {
    condition     = aws_kinesis_stream.this.stream_mode_details[0].stream_mode == "PROVISIONED" && aws_kinesis_stream.this.shard_count == 8
    error_message = "shard_count makes the stream provisioned with that many shards."
  }
  assert {
    condition     = aws_kinesis_stream.this.retention_period == 48
    error_message = "Retention is taken from retention_hours."
  }
}

run "shard_count_changed_by_prewarm_is_left_alone" {
  # Same state as the run before: a different shard_count is not applied,
  # because prewarm and pause own the count once the stream exists.
  command   = plan
  state_key = "prod"

  variables {
    shard_count = 2
  }

  assert {
    condition     = aws_kinesis_stream.this.shard_count == 8
    error_message = "shard_count must be in ignore_changes, or every apply would undo a prewarm."
  }
}

run "rejects_a_fractional_shard_count" {
  command = plan

  variables {
    shard_count = 2.5
  }

  expect_failures = [var.shard_count]
}

run "rejects_retention_below_a_day" {
  command = plan

  variables {
    retention_hours = 12
  }

  expect_failures = [var.retention_hours]
}
