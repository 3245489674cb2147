output "name" {
  description = "The stream's name (KINESIS_STREAM)."
  value       = aws_kinesis_stream.this.name
}

output "arn" {
  description = "The stream's ARN, which the app's IRSA role may write to."
  value       = aws_kinesis_stream.this.arn
}

output "kms_key_arn" {
  description = "The key that encrypts the stream; writers need kms:GenerateDataKey on it."
  value       = module.kms.key_arn
}

output "mode" {
  description = "ON_DEMAND or PROVISIONED."
  value       = aws_kinesis_stream.this.stream_mode_details[0].stream_mode
}
