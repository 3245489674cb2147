variable "name" {
  description = "The stream's name (the app's KINESIS_STREAM)."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z0-9_.-]{1,128}$", var.name))
    error_message = "name must be 1-128 letters, digits, `_`, `.` or `-`."
  }
}

variable "shard_count" {
  description = "Provisioned shards at creation (1 MB/s and 1,000 records/s of writes each); null for on-demand mode. After creation `cargo xtask prewarm`/`pause` own the count."
  type        = number
  default     = null

  validation {
    condition     = var.shard_count == null || try(var.shard_count >= 1 && var.shard_count <= 500 && floor(var.shard_count) == var.shard_count, false)
    error_message = "shard_count must be null (on-demand) or a whole number from 1 to 500."
  }
}

variable "retention_hours" {
  description = "How long records stay readable, in hours (24 is included in the price; longer costs extra)."
  type        = number
  default     = 24

  validation {
    condition     = var.retention_hours >= 24 && var.retention_hours <= 8760
    error_message = "retention_hours must be between 24 and 8760."
  }
}

variable "shard_level_metrics" {
  description = "Enhanced shard-level CloudWatch metrics (billed per shard); the stream-level metrics the alarms use are always there."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([for m in var.shard_level_metrics : contains([
      "IncomingBytes", "IncomingRecords", "OutgoingBytes", "OutgoingRecords",
      "WriteProvisionedThroughputExceeded", "ReadProvisionedThroughputExceeded",
      "IteratorAgeMilliseconds", "ALL",
    ], m)])
    error_message = "shard_level_metrics takes Kinesis shard-level metric names."
  }
}
