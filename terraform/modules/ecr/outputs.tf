output "repository_url" {
  description = "`<account>.dkr.ecr.<region>.amazonaws.com/<name>`, where CI pushes and the chart pulls."
  value       = aws_ecr_repository.this.repository_url
}

output "repository_arn" {
  description = "The repository's ARN."
  value       = aws_ecr_repository.this.arn
}

output "name" {
  description = "The repository's name."
  value       = aws_ecr_repository.this.name
}
