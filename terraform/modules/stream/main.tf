# The app's event stream: Kinesis with a customer-managed KMS key, on-demand
# (dev) or provisioned shards (prod).

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

resource "aws_kms_key" "this" {
  description         = "Kinesis stream ${var.name}"
  enable_key_rotation = true
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AccountAdministers"
      Effect    = "Allow"
      Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
      Action    = "kms:*"
      Resource  = "*"
    }]
  })
}

resource "aws_kms_alias" "this" {
  name          = "alias/kinesis/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}

resource "aws_kinesis_stream" "this" {
  name             = var.name
  shard_count      = var.shard_count
  retention_period = var.retention_hours
  encryption_type  = "KMS"
  kms_key_id       = aws_kms_key.this.arn

  shard_level_metrics = var.shard_level_metrics

  stream_mode_details {
    stream_mode = var.shard_count == null ? "ON_DEMAND" : "PROVISIONED"
  }

  lifecycle {
    # `cargo xtask prewarm` adds shards before a sale and `pause` removes
    # them after (UpdateShardCount); Terraform must not undo that on the next
    # apply. shard_count here is only the size the stream is created with.
    ignore_changes = [shard_count]
  }
}
