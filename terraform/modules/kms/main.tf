# A customer-managed KMS key, rotated yearly, administered by the account,
# with an alias, and optionally usable by CloudWatch Logs (for the given log
# groups only) and by CloudWatch alarms (to publish to an encrypted SNS
# topic). Every module that encrypts something makes its key here.

data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name

  statements = concat(
    [{
      Sid       = "AccountAdministers"
      Effect    = "Allow"
      Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
      Action    = "kms:*"
      Resource  = "*"
    }],
    length(var.log_group_names) == 0 ? [] : [{
      Sid       = "CloudWatchLogsEncrypts"
      Effect    = "Allow"
      Principal = { Service = "logs.${local.region}.amazonaws.com" }
      Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
      Resource  = "*"
      Condition = {
        ArnLike = {
          "kms:EncryptionContext:aws:logs:arn" = [
            for g in var.log_group_names : "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${g}"
          ]
        }
      }
    }],
    var.cloudwatch_alarms ? [{
      Sid       = "CloudWatchAlarmsPublish"
      Effect    = "Allow"
      Principal = { Service = "cloudwatch.amazonaws.com" }
      Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
      Resource  = "*"
      Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
    }] : [],
  )
}

resource "aws_kms_key" "this" {
  description         = var.description
  enable_key_rotation = true
  policy              = jsonencode({ Version = "2012-10-17", Statement = local.statements })
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.alias}"
  target_key_id = aws_kms_key.this.key_id
}
