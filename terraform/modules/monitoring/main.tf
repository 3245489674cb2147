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

# The topic is encrypted with its own key, which CloudWatch may use to
# publish (the AWS-managed aws/sns key would not let it).
module "kms" {
  source = "../kms"

  description       = "${var.name} alarm topic"
  alias             = "sns/${var.name}-alarms"
  cloudwatch_alarms = true
}

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = module.kms.key_arn
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

# One-metric alarms, by name (`<name>-<key>`): what each watches, and when
# it fires. The ALB's exist once the Load Balancer Controller has created it.
locals {
  alarm = {
    period             = 60
    evaluation_periods = 1
    datapoints         = null
    comparison         = "GreaterThanThreshold"
    missing_data       = "notBreaching"
  }
  alarms = merge(
    local.tg_enabled ? {
      "alb-no-healthy-targets" = merge(local.alarm, {
        description        = "No healthy app pod behind the ALB: every fan gets 502/503."
        namespace          = "AWS/ApplicationELB"
        metric             = "HealthyHostCount"
        dimensions         = { LoadBalancer = var.alb_arn_suffix, TargetGroup = var.target_group_arn_suffix }
        statistic          = "Minimum"
        evaluation_periods = 2
        comparison         = "LessThanThreshold"
        threshold          = 1
        missing_data       = "breaching" # no data about targets is itself an alarm
      })
    } : {},
    local.alb_enabled ? {
      "alb-p99-latency" = merge(local.alarm, {
        description        = "p99 response time above ${var.alb_p99_seconds} s."
        namespace          = "AWS/ApplicationELB"
        metric             = "TargetResponseTime"
        dimensions         = { LoadBalancer = var.alb_arn_suffix }
        statistic          = "p99"
        evaluation_periods = 3
        datapoints         = 2
        threshold          = var.alb_p99_seconds
      })
    } : {},
    {
      for role in ["WRITER", "READER"] : "aurora-${lower(role)}-cpu" => merge(local.alarm, {
        description        = "Aurora ${lower(role)} CPU above ${var.aurora_cpu_percent}%."
        namespace          = "AWS/RDS"
        metric             = "CPUUtilization"
        dimensions         = { DBClusterIdentifier = var.aurora_cluster_id, Role = role }
        statistic          = "Average"
        evaluation_periods = 5
        datapoints         = 3
        threshold          = var.aurora_cpu_percent
      })
    },
    {
      "aurora-connections" = merge(local.alarm, {
        description        = "Writer connections above ${var.aurora_connections_ratio * 100}% of max_connections (${var.aurora_max_connections})."
        namespace          = "AWS/RDS"
        metric             = "DatabaseConnections"
        dimensions         = { DBClusterIdentifier = var.aurora_cluster_id, Role = "WRITER" }
        statistic          = "Maximum"
        evaluation_periods = 3
        datapoints         = 2
        threshold          = local.aurora_conn_threshold
      })
      "cache-ecpu" = merge(local.alarm, {
        description        = "Cache ECPU/s above ${var.cache_limit_ratio * 100}% of its cap (${var.cache_max_ecpu_per_second}/s): raise the cap or prewarm."
        namespace          = "AWS/ElastiCache"
        metric             = "ElastiCacheProcessingUnits"
        dimensions         = { clusterId = var.cache_name }
        statistic          = "Sum"
        evaluation_periods = 2
        threshold          = local.cache_ecpu_threshold
      })
      "cache-storage" = merge(local.alarm, {
        description        = "Cache data above ${var.cache_limit_ratio * 100}% of its cap (${var.cache_max_storage_gb} GB): at the cap it evicts, then refuses writes."
        namespace          = "AWS/ElastiCache"
        metric             = "BytesUsedForCache"
        dimensions         = { clusterId = var.cache_name }
        statistic          = "Maximum"
        evaluation_periods = 2
        threshold          = local.cache_storage_threshold
      })
      "cache-throttled" = merge(local.alarm, {
        description = "The cache throttled commands (load grew faster than it scales): prewarm the minimum ECPU/s."
        namespace   = "AWS/ElastiCache"
        metric      = "ThrottledCmds"
        dimensions  = { clusterId = var.cache_name }
        statistic   = "Sum"
        threshold   = 0
      })
      "kinesis-write-throttled" = merge(local.alarm, {
        description = "Writes to ${var.stream_name} were throttled: add shards (prewarm) or batch more per record."
        namespace   = "AWS/Kinesis"
        metric      = "WriteProvisionedThroughputExceeded"
        dimensions  = { StreamName = var.stream_name }
        statistic   = "Sum"
        threshold   = 0
      })
      "kinesis-iterator-age" = merge(local.alarm, {
        description        = "Consumers of ${var.stream_name} are more than ${var.kinesis_iterator_age_seconds} s behind."
        namespace          = "AWS/Kinesis"
        metric             = "GetRecords.IteratorAgeMilliseconds"
        dimensions         = { StreamName = var.stream_name }
        statistic          = "Maximum"
        evaluation_periods = 3
        datapoints         = 2
        threshold          = var.kinesis_iterator_age_seconds * 1000
      })
    },
  )
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = local.alarms

  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  dimensions          = each.value.dimensions
  statistic           = startswith(each.value.statistic, "p") ? null : each.value.statistic
  extended_statistic  = startswith(each.value.statistic, "p") ? each.value.statistic : null
  period              = each.value.period
  evaluation_periods  = each.value.evaluation_periods
  datapoints_to_alarm = each.value.datapoints
  comparison_operator = each.value.comparison
  threshold           = each.value.threshold
  treat_missing_data  = each.value.missing_data
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# The 5xx rate needs metric math: the app's and the ALB's 5xx over all
# requests.
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
