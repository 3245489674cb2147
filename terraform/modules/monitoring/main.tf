# Alarms on what breaks a sale, to an SNS topic with an e-mail subscription,
# and a dashboard of the same metrics.
#
# The ALB is created by the AWS Load Balancer Controller at the first
# deploy, after this module: its alarms exist only once alb_arn_suffix (and
# for healthy targets, target_group_arn_suffix) are set.

data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name

  alb_enabled = var.alb_arn_suffix != null
  tg_enabled  = var.alb_arn_suffix != null && var.target_group_arn_suffix != null

  # ElastiCache Serverless publishes ECPUs consumed per period: the alarm
  # compares a minute's sum with 75% of a minute's worth of the cap.
  cache_ecpu_threshold    = var.cache_max_ecpu_per_second * 60 * var.cache_limit_ratio
  cache_storage_threshold = var.cache_max_storage_gb * 1000000000 * var.cache_limit_ratio
  aurora_conn_threshold   = floor(var.aurora_max_connections * var.aurora_connections_ratio)

  alarm_actions = [aws_sns_topic.alarms.arn]
}

# The topic is encrypted with its own key, whose policy lets CloudWatch
# publish (the AWS-managed aws/sns key would not).
resource "aws_kms_key" "alarms" {
  description         = "${var.name} alarm topic"
  enable_key_rotation = true
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministers"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchPublishes"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
        Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
      },
    ]
  })
}

resource "aws_kms_alias" "alarms" {
  name          = "alias/sns/${var.name}-alarms"
  target_key_id = aws_kms_key.alarms.key_id
}

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = aws_kms_key.alarms.arn
}

resource "aws_sns_topic_policy" "alarms" {
  arn = aws_sns_topic.alarms.arn
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountManages"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = ["sns:Publish", "sns:Subscribe", "sns:GetTopicAttributes", "sns:SetTopicAttributes", "sns:ListSubscriptionsByTopic"]
        Resource  = aws_sns_topic.alarms.arn
      },
      {
        Sid       = "CloudWatchPublishes"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = "sns:Publish"
        Resource  = aws_sns_topic.alarms.arn
        Condition = {
          ArnLike = { "aws:SourceArn" = "arn:${local.partition}:cloudwatch:${local.region}:${local.account_id}:alarm:*" }
        }
      },
    ]
  })
}

# The address must confirm the subscription from the e-mail AWS sends.
resource "aws_sns_topic_subscription" "email" {
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

# ALB (once the Load Balancer Controller has created it).

resource "aws_cloudwatch_metric_alarm" "alb_no_healthy_targets" {
  count = local.tg_enabled ? 1 : 0

  alarm_name          = "${var.name}-alb-no-healthy-targets"
  alarm_description   = "No healthy app pod behind the ALB: every fan gets 502/503."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "HealthyHostCount"
  dimensions          = { LoadBalancer = var.alb_arn_suffix, TargetGroup = var.target_group_arn_suffix }
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 2
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "alb_5xx_rate" {
  count = local.alb_enabled ? 1 : 0

  alarm_name          = "${var.name}-alb-5xx-rate"
  alarm_description   = "More than ${var.alb_5xx_percent}% of requests answered 5xx (by the app or the ALB)."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alb_5xx_percent
  evaluation_periods  = 3
  datapoints_to_alarm = 2
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "rate"
    expression  = "100 * (FILL(app5xx, 0) + FILL(elb5xx, 0)) / requests"
    label       = "5xx %"
    return_data = true
  }
  metric_query {
    id = "app5xx"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "HTTPCode_Target_5XX_Count"
      dimensions  = { LoadBalancer = var.alb_arn_suffix }
      stat        = "Sum"
      period      = 60
    }
  }
  metric_query {
    id = "elb5xx"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "HTTPCode_ELB_5XX_Count"
      dimensions  = { LoadBalancer = var.alb_arn_suffix }
      stat        = "Sum"
      period      = 60
    }
  }
  metric_query {
    id = "requests"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "RequestCount"
      dimensions  = { LoadBalancer = var.alb_arn_suffix }
      stat        = "Sum"
      period      = 60
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "alb_p99_latency" {
  count = local.alb_enabled ? 1 : 0

  alarm_name          = "${var.name}-alb-p99-latency"
  alarm_description   = "p99 response time above ${var.alb_p99_seconds} s."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "TargetResponseTime"
  dimensions          = { LoadBalancer = var.alb_arn_suffix }
  extended_statistic  = "p99"
  period              = 60
  evaluation_periods  = 3
  datapoints_to_alarm = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alb_p99_seconds
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# Aurora.

resource "aws_cloudwatch_metric_alarm" "aurora_cpu" {
  for_each = toset(["WRITER", "READER"])

  alarm_name          = "${var.name}-aurora-${lower(each.key)}-cpu"
  alarm_description   = "Aurora ${lower(each.key)} CPU above ${var.aurora_cpu_percent}%."
  namespace           = "AWS/RDS"
  metric_name         = "CPUUtilization"
  dimensions          = { DBClusterIdentifier = var.aurora_cluster_id, Role = each.key }
  statistic           = "Average"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.aurora_cpu_percent
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "aurora_connections" {
  alarm_name          = "${var.name}-aurora-connections"
  alarm_description   = "Writer connections above ${var.aurora_connections_ratio * 100}% of max_connections (${var.aurora_max_connections})."
  namespace           = "AWS/RDS"
  metric_name         = "DatabaseConnections"
  dimensions          = { DBClusterIdentifier = var.aurora_cluster_id, Role = "WRITER" }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 3
  datapoints_to_alarm = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = local.aurora_conn_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# ElastiCache Serverless.

resource "aws_cloudwatch_metric_alarm" "cache_ecpu" {
  alarm_name          = "${var.name}-cache-ecpu"
  alarm_description   = "Cache ECPU/s above ${var.cache_limit_ratio * 100}% of its cap (${var.cache_max_ecpu_per_second}/s): raise the cap or prewarm."
  namespace           = "AWS/ElastiCache"
  metric_name         = "ElastiCacheProcessingUnits"
  dimensions          = { clusterId = var.cache_name }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = local.cache_ecpu_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "cache_storage" {
  alarm_name          = "${var.name}-cache-storage"
  alarm_description   = "Cache data above ${var.cache_limit_ratio * 100}% of its cap (${var.cache_max_storage_gb} GB): at the cap it evicts, then refuses writes."
  namespace           = "AWS/ElastiCache"
  metric_name         = "BytesUsedForCache"
  dimensions          = { clusterId = var.cache_name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = local.cache_storage_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "cache_throttled" {
  alarm_name          = "${var.name}-cache-throttled"
  alarm_description   = "The cache throttled commands (load grew faster than it scales): prewarm the minimum ECPU/s."
  namespace           = "AWS/ElastiCache"
  metric_name         = "ThrottledCmds"
  dimensions          = { clusterId = var.cache_name }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# Kinesis.

resource "aws_cloudwatch_metric_alarm" "kinesis_write_throttled" {
  alarm_name          = "${var.name}-kinesis-write-throttled"
  alarm_description   = "Writes to ${var.stream_name} were throttled: add shards (prewarm) or batch more per record."
  namespace           = "AWS/Kinesis"
  metric_name         = "WriteProvisionedThroughputExceeded"
  dimensions          = { StreamName = var.stream_name }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "kinesis_iterator_age" {
  alarm_name          = "${var.name}-kinesis-iterator-age"
  alarm_description   = "Consumers of ${var.stream_name} are more than ${var.kinesis_iterator_age_seconds} s behind."
  namespace           = "AWS/Kinesis"
  metric_name         = "GetRecords.IteratorAgeMilliseconds"
  dimensions          = { StreamName = var.stream_name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 3
  datapoints_to_alarm = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.kinesis_iterator_age_seconds * 1000
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# The dashboard: the same metrics, one row per component.
locals {
  widget = { width = 8, height = 6, type = "metric" }
  alb_widgets = [for w in [
    merge(local.widget, { properties = {
      title = "ALB requests and 5xx", region = local.region, stat = "Sum", period = 60
      metrics = [
        ["AWS/ApplicationELB", "RequestCount", "LoadBalancer", var.alb_arn_suffix],
        [".", "HTTPCode_Target_5XX_Count", ".", "."],
        [".", "HTTPCode_ELB_5XX_Count", ".", "."],
      ]
    } }),
    merge(local.widget, { properties = {
      title       = "ALB p99 response time (s)", region = local.region, stat = "p99", period = 60
      metrics     = [["AWS/ApplicationELB", "TargetResponseTime", "LoadBalancer", var.alb_arn_suffix]]
      annotations = { horizontal = [{ value = var.alb_p99_seconds, label = "alarm" }] }
    } }),
  ] : w if local.alb_enabled]
  tg_widgets = [for w in [
    merge(local.widget, { properties = {
      title   = "Healthy targets", region = local.region, stat = "Minimum", period = 60
      metrics = [["AWS/ApplicationELB", "HealthyHostCount", "TargetGroup", var.target_group_arn_suffix, "LoadBalancer", var.alb_arn_suffix]]
    } }),
  ] : w if local.tg_enabled]
  data_widgets = [
    merge(local.widget, { properties = {
      title = "Aurora CPU (%)", region = local.region, stat = "Average", period = 60
      metrics = [
        ["AWS/RDS", "CPUUtilization", "DBClusterIdentifier", var.aurora_cluster_id, "Role", "WRITER"],
        ["...", "READER"],
      ]
      annotations = { horizontal = [{ value = var.aurora_cpu_percent, label = "alarm" }] }
    } }),
    merge(local.widget, { properties = {
      title       = "Aurora writer connections", region = local.region, stat = "Maximum", period = 60
      metrics     = [["AWS/RDS", "DatabaseConnections", "DBClusterIdentifier", var.aurora_cluster_id, "Role", "WRITER"]]
      annotations = { horizontal = [{ value = local.aurora_conn_threshold, label = "alarm" }] }
    } }),
    merge(local.widget, { properties = {
      title       = "Cache ECPUs per minute", region = local.region, stat = "Sum", period = 60
      metrics     = [["AWS/ElastiCache", "ElastiCacheProcessingUnits", "clusterId", var.cache_name]]
      annotations = { horizontal = [{ value = local.cache_ecpu_threshold, label = "alarm" }] }
    } }),
    merge(local.widget, { properties = {
      title       = "Cache bytes used", region = local.region, stat = "Maximum", period = 60
      metrics     = [["AWS/ElastiCache", "BytesUsedForCache", "clusterId", var.cache_name]]
      annotations = { horizontal = [{ value = local.cache_storage_threshold, label = "alarm" }] }
    } }),
    merge(local.widget, { properties = {
      title   = "Cache throttled commands", region = local.region, stat = "Sum", period = 60
      metrics = [["AWS/ElastiCache", "ThrottledCmds", "clusterId", var.cache_name]]
    } }),
    merge(local.widget, { properties = {
      title = "Kinesis writes", region = local.region, stat = "Sum", period = 60
      metrics = [
        ["AWS/Kinesis", "IncomingRecords", "StreamName", var.stream_name],
        [".", "WriteProvisionedThroughputExceeded", ".", "."],
      ]
    } }),
    merge(local.widget, { properties = {
      title   = "Kinesis iterator age (ms)", region = local.region, stat = "Maximum", period = 60
      metrics = [["AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds", "StreamName", var.stream_name]]
    } }),
  ]
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = var.name
  dashboard_body = jsonencode({ widgets = concat(local.alb_widgets, local.tg_widgets, local.data_widgets) })
}
