output "alarm_topic_arn" {
  description = "The SNS topic every alarm notifies (other stacks' alarms may publish to it)."
  value       = aws_sns_topic.alarms.arn
}

output "alarm_names" {
  description = "Names of the alarms created."
  value       = concat(aws_cloudwatch_metric_alarm.alb_5xx_rate[*].alarm_name, [for a in aws_cloudwatch_metric_alarm.this : a.alarm_name])
}

output "dashboard_name" {
  description = "The CloudWatch dashboard."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}
