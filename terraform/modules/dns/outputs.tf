output "certificate_arn" {
  description = "The validated certificate (the Ingress's certificate-arn); known only once validation succeeded."
  value       = aws_acm_certificate_validation.this.certificate_arn
}

output "zone_id" {
  description = "The hosted zone's id (external-dns manages the app's record there)."
  value       = data.aws_route53_zone.this.zone_id
}

output "domain_name" {
  description = "The app's host name."
  value       = aws_acm_certificate.this.domain_name
}
