# Aurora MySQL 3 (MySQL 8.0): a writer, Terraform-managed readers for
# failover, and more readers added by Application Auto Scaling on load; the
# master password and the app's users' passwords in Secrets Manager;
# encrypted, TLS-only, never public.

data "aws_partition" "current" {}

locals {
  partition = data.aws_partition.current.partition

  # Aurora MySQL's default max_connections by instance class (AWS's table;
  # it follows from the class's memory). The connections alarm needs it.
  default_max_connections = {
    "db.t3.medium"   = 90
    "db.t4g.medium"  = 90
    "db.t3.large"    = 135
    "db.t4g.large"   = 135
    "db.r6g.large"   = 1000
    "db.r6g.xlarge"  = 2000
    "db.r6g.2xlarge" = 3000
    "db.r6g.4xlarge" = 4000
    "db.r6g.8xlarge" = 5000
    "db.r7g.large"   = 1000
    "db.r7g.xlarge"  = 2000
    "db.r7g.2xlarge" = 3000
    "db.r7g.4xlarge" = 4000
    "db.r7g.8xlarge" = 5000
  }
  max_connections = coalesce(var.max_connections, lookup(local.default_max_connections, var.instance_class, null), 90)

  # The app's own database users. Their secrets are written by the
  # `modules/user-secrets` module from this module's `app_users` output,
  # and the chart's bootstrap Job creates the users in MySQL from them,
  # with the least grants each needs.
  users = {
    migrator = { host = aws_rds_cluster.this.endpoint, purpose = "schema migrations (admission migrate)" }
    app      = { host = aws_rds_cluster.this.endpoint, purpose = "the app's reads and writes (DATABASE_URL)" }
    reader   = { host = aws_rds_cluster.this.reader_endpoint, purpose = "the app's catalog reads (DATABASE_READ_URL)" }
  }
}

module "kms" {
  source = "../kms"

  description = "Aurora ${var.name}: storage, secrets, Performance Insights"
  alias       = "aurora/${var.name}"
}

resource "aws_db_subnet_group" "this" {
  name        = var.name
  description = "Aurora ${var.name}: the database subnets"
  subnet_ids  = var.subnet_ids
}

# The database's own security group: MySQL from the given security groups
# (the EKS cluster's), nothing else, no egress.
resource "aws_security_group" "this" {
  name        = "${var.name}-aurora"
  description = "Aurora ${var.name}: MySQL from the allowed security groups only"
  vpc_id      = var.vpc_id

  tags = { Name = "${var.name}-aurora" }
}

resource "aws_vpc_security_group_ingress_rule" "mysql" {
  for_each = var.allowed_security_groups

  security_group_id            = aws_security_group.this.id
  description                  = "MySQL from ${each.key}"
  ip_protocol                  = "tcp"
  from_port                    = 3306
  to_port                      = 3306
  referenced_security_group_id = each.value
}

resource "aws_rds_cluster_parameter_group" "this" {
  name_prefix = "${var.name}-"
  family      = "aurora-mysql8.0"
  description = "Aurora ${var.name}: TLS only, audit log, utf8mb4"

  parameter {
    name  = "require_secure_transport"
    value = var.require_tls ? "ON" : "OFF"
  }
  parameter {
    name  = "tls_version"
    value = "TLSv1.2,TLSv1.3"
  }
  parameter {
    name  = "character_set_server"
    value = "utf8mb4"
  }
  parameter {
    name  = "server_audit_logging"
    value = "1"
  }
  parameter {
    name  = "server_audit_events"
    value = "CONNECT,QUERY_DCL,QUERY_DDL"
  }
  dynamic "parameter" {
    for_each = var.max_connections == null ? [] : [var.max_connections]
    content {
      name  = "max_connections"
      value = tostring(parameter.value)
    }
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_rds_cluster" "this" {
  #checkov:skip=CKV2_AWS_8:Automated backups with point-in-time restore (backup_retention_days) are the backup; an AWS Backup plan would only add cross-account copies.
  #checkov:skip=CKV_AWS_139:Deletion protection is the deletion_protection input, off only for throwaway dev; `cargo xtask test` fails when prod's terraform.tfvars does not turn it on.
  #checkov:skip=CKV_AWS_326:Backtrack rewinds the live cluster in place, which after a sale would silently undo confirmed reservations; recovery is a point-in-time restore to a new cluster.
  cluster_identifier = var.name
  engine             = "aurora-mysql"
  engine_version     = var.engine_version
  database_name      = var.database_name
  port               = 3306

  master_username               = "admin"
  manage_master_user_password   = true
  master_user_secret_kms_key_id = module.kms.key_arn

  db_subnet_group_name            = aws_db_subnet_group.this.name
  vpc_security_group_ids          = [aws_security_group.this.id]
  db_cluster_parameter_group_name = aws_rds_cluster_parameter_group.this.name
  network_type                    = "IPV4"

  storage_encrypted                   = true
  kms_key_id                          = module.kms.key_arn
  iam_database_authentication_enabled = true
  enabled_cloudwatch_logs_exports     = ["audit", "error", "slowquery"]

  backup_retention_period      = var.backup_retention_days
  preferred_backup_window      = "18:00-19:00"         # 03:00-04:00 KST
  preferred_maintenance_window = "sun:19:30-sun:20:30" # after the backup window
  copy_tags_to_snapshot        = true

  deletion_protection       = var.deletion_protection
  skip_final_snapshot       = !var.deletion_protection
  final_snapshot_identifier = var.deletion_protection ? "${var.name}-final" : null
  apply_immediately         = !var.deletion_protection
}

resource "aws_iam_role" "monitoring" {
  count = var.monitoring_interval_seconds > 0 ? 1 : 0

  name = "${var.name}-rds-monitoring"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "monitoring.rds.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy_attachment" "monitoring" {
  count = var.monitoring_interval_seconds > 0 ? 1 : 0

  role       = aws_iam_role.monitoring[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

# The writer is instance 0; the others are readers (Aurora promotes one if
# the writer fails).
resource "aws_rds_cluster_instance" "this" {
  count = 1 + var.reader_count

  identifier                   = "${var.name}-${count.index}"
  cluster_identifier           = aws_rds_cluster.this.id
  engine                       = aws_rds_cluster.this.engine
  engine_version               = aws_rds_cluster.this.engine_version
  instance_class               = var.instance_class
  db_subnet_group_name         = aws_db_subnet_group.this.name
  publicly_accessible          = false
  auto_minor_version_upgrade   = true
  ca_cert_identifier           = var.ca_cert_identifier
  promotion_tier               = count.index
  copy_tags_to_snapshot        = true
  preferred_maintenance_window = "sun:19:30-sun:20:30" # after the backup window
  apply_immediately            = !var.deletion_protection

  monitoring_interval = var.monitoring_interval_seconds
  monitoring_role_arn = var.monitoring_interval_seconds > 0 ? aws_iam_role.monitoring[0].arn : null

  performance_insights_enabled          = var.performance_insights
  performance_insights_kms_key_id       = var.performance_insights ? module.kms.key_arn : null
  performance_insights_retention_period = var.performance_insights ? 7 : null
}

# More readers on load: Application Auto Scaling adds replicas when the
# readers' average CPU passes the target, between min and max.
resource "aws_appautoscaling_target" "readers" {
  count = var.reader_autoscaling_max > 0 ? 1 : 0

  service_namespace  = "rds"
  scalable_dimension = "rds:cluster:ReadReplicaCount"
  resource_id        = "cluster:${aws_rds_cluster.this.cluster_identifier}"
  min_capacity       = var.reader_autoscaling_min
  max_capacity       = var.reader_autoscaling_max

  lifecycle {
    # `cargo xtask prewarm` raises the minimum before a sale (readers take
    # ~10 minutes to start) and `pause` lowers it after; Terraform only sets
    # it at creation and must not undo that on the next apply.
    ignore_changes = [min_capacity]
  }

  depends_on = [aws_rds_cluster_instance.this]
}

resource "aws_appautoscaling_policy" "readers_cpu" {
  count = var.reader_autoscaling_max > 0 ? 1 : 0

  name               = "${var.name}-readers-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.readers[0].service_namespace
  scalable_dimension = aws_appautoscaling_target.readers[0].scalable_dimension
  resource_id        = aws_appautoscaling_target.readers[0].resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = var.reader_target_cpu
    scale_out_cooldown = 120
    scale_in_cooldown  = 600

    predefined_metric_specification {
      predefined_metric_type = "RDSReaderAverageCPUUtilization"
    }
  }
}
