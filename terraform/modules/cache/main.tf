# The queue's Redis: ElastiCache Serverless (Valkey or Redis OSS 7), which
# is always cluster mode and TLS. Usage limits cap the cost; a minimum
# ECPU/s pre-scales it for a sale.

module "kms" {
  source = "../kms"

  description = "ElastiCache ${var.name}: data at rest and snapshots"
  alias       = "elasticache/${var.name}"
}

# The cache's own security group: Redis (6379, TLS) from the given security
# groups only, no egress.
resource "aws_security_group" "this" {
  name        = "${var.name}-cache"
  description = "ElastiCache ${var.name}: Redis from the allowed security groups only"
  vpc_id      = var.vpc_id

  tags = { Name = "${var.name}-cache" }
}

resource "aws_vpc_security_group_ingress_rule" "redis" {
  for_each = var.allowed_security_groups

  security_group_id            = aws_security_group.this.id
  description                  = "Redis (TLS) from ${each.key}"
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
  referenced_security_group_id = each.value
}

resource "aws_elasticache_serverless_cache" "this" {
  name                 = var.name
  description          = "Waiting-room queue state"
  engine               = var.engine
  major_engine_version = var.major_engine_version
  kms_key_id           = module.kms.key_arn
  subnet_ids           = var.subnet_ids
  security_group_ids   = [aws_security_group.this.id]
  user_group_id        = var.user_group_id

  snapshot_retention_limit = var.snapshot_retention_days
  daily_snapshot_time      = "18:00" # 03:00 KST

  cache_usage_limits {
    data_storage {
      maximum = var.max_storage_gb
      unit    = "GB"
    }
    ecpu_per_second {
      maximum = var.max_ecpu_per_second
      minimum = var.min_ecpu_per_second
    }
  }

  lifecycle {
    # `cargo xtask prewarm` raises the minimum ECPU/s before a sale (the
    # cache then scales ahead of the load instead of throttling), and
    # `pause` lowers it after; Terraform sets it only at creation and must
    # not undo that on the next apply.
    ignore_changes = [cache_usage_limits[0].ecpu_per_second[0].minimum]
  }
}
