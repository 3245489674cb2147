# The app's event stream: Kinesis with a customer-managed KMS key, on-demand
# (dev) or provisioned shards (prod).

module "kms" {
  source = "../kms"

  description = "Kinesis stream ${var.name}"
  alias       = "kinesis/${var.name}"
}

resource "aws_kinesis_stream" "this" {
  name             = var.name
  shard_count      = var.shard_count
  retention_period = var.retention_hours
  encryption_type  = "KMS"
  kms_key_id       = module.kms.key_arn

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
