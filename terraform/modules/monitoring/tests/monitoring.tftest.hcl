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
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:ap-northeast-2:123456789012:key/00000000-0000-0000-0000-000000000000" }
  }
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:ap-northeast-2:123456789012:tickets-test-alarms" }
  }
}

variables {
  name                      = "tickets-test"
  alarm_email               = "oncall@example.com"
  aurora_cluster_id         = "tickets-test"
  aurora_max_connections    = 3000
  cache_name                = "tickets-test-queue"
  cache_max_ecpu_per_second = 100000
  cache_max_storage_gb      = 10
  stream_name               = "tickets-test-admission-events"
}

run "before_the_first_deploy_there_are_no_alb_alarms" {
  command = apply

  assert {
    condition     = length([for k in keys(aws_cloudwatch_metric_alarm.this) : k if startswith(k, "alb-")]) == 0 && length(aws_cloudwatch_metric_alarm.alb_5xx_rate) == 0
    error_message = "Without the ALB's ARN suffix there is nothing to alarm on."
  }
  assert {
    condition     = length(output.alarm_names) == 8
    error_message = "Aurora (2 CPU, connections), cache (ECPU, storage, throttles) and Kinesis (throttles, age) alarms exist from the start."
  }
}

run "alarms_fire_at_the_documented_thresholds" {
  command = apply

  assert {
    condition     = aws_cloudwatch_metric_alarm.this["aurora-connections"].threshold == 2400
    error_message = "Connections alarm at 80% of max_connections."
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.this["aurora-writer-cpu"].threshold == 70 && aws_cloudwatch_metric_alarm.this["aurora-reader-cpu"].threshold == 70
    error_message = "Aurora CPU alarms at 70%."
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.this["cache-ecpu"].threshold == 100000 * 60 * 0.75
    error_message = "ECPU alarm at 75% of a minute's worth of the cap."
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.this["cache-storage"].threshold == 7500000000
    error_message = "Storage alarm at 75% of the cap."
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.this["cache-throttled"].threshold == 0 && aws_cloudwatch_metric_alarm.this["kinesis-write-throttled"].threshold == 0
    error_message = "Any throttled command or write alarms."
  }
  assert {
    condition     = alltrue([for a in aws_cloudwatch_metric_alarm.this : a.alarm_actions == toset([aws_sns_topic.alarms.arn])])
    error_message = "Alarms notify the topic."
  }
  assert {
    condition     = aws_sns_topic_subscription.email.protocol == "email" && aws_sns_topic_subscription.email.endpoint == "oncall@example.com"
    error_message = "The topic mails alarm_email."
  }
  assert {
    condition     = aws_sns_topic.alarms.kms_master_key_id == module.kms.key_arn
    error_message = "The topic is encrypted with a key CloudWatch may use."
  }
}

run "after_the_first_deploy_the_alb_is_watched" {
  command = apply

  variables {
    alb_arn_suffix          = "app/k8s-admission-0123456789/0123456789abcdef"
    target_group_arn_suffix = "targetgroup/k8s-admissio-0123456789/0123456789abcdef"
    alb_p99_seconds         = 0.5
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.this["alb-no-healthy-targets"].threshold == 1 && aws_cloudwatch_metric_alarm.this["alb-no-healthy-targets"].comparison_operator == "LessThanThreshold"
    error_message = "Alarm when healthy targets drop to 0."
  }
  assert {
    condition     = length(aws_cloudwatch_metric_alarm.alb_5xx_rate) == 1 && length(output.alarm_names) == 11
    error_message = "With the ALB known, the 5xx, p99 and healthy-targets alarms join the others."
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.this["alb-no-healthy-targets"].treat_missing_data == "breaching"
    error_message = "No data about healthy targets is itself an alarm."
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.this["alb-p99-latency"].extended_statistic == "p99" && aws_cloudwatch_metric_alarm.this["alb-p99-latency"].statistic == null && aws_cloudwatch_metric_alarm.this["alb-p99-latency"].threshold == 0.5
    error_message = "p99 latency alarm at the given threshold."
  }
  assert {
    condition     = length(jsondecode(aws_cloudwatch_dashboard.this.dashboard_body).widgets) == 10
    error_message = "The dashboard shows the ALB, targets, Aurora, cache and Kinesis."
  }
}

run "rejects_a_full_arn_instead_of_the_suffix" {
  command = plan

  variables {
    alb_arn_suffix = "arn:aws:elasticloadbalancing:ap-northeast-2:123456789012:loadbalancer/app/x/0123"
  }

  expect_failures = [var.alb_arn_suffix]
}
