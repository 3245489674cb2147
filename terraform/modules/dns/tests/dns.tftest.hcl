mock_provider "aws" {
  mock_data "aws_route53_zone" {
    defaults = { zone_id = "Z0123456789ABCDEFGHIJ", name = "example.com" }
  }
  mock_resource "aws_acm_certificate" {
    defaults = { arn = "arn:aws:acm:ap-northeast-2:123456789012:certificate/00000000-0000-0000-0000-000000000000" }
  }
}

# What ACM answers at plan time: one validation record per name.
override_resource {
  target          = aws_acm_certificate.this
  override_during = plan
  values = {
    arn = "arn:aws:acm:ap-northeast-2:123456789012:certificate/00000000-0000-0000-0000-000000000000"
    domain_validation_options = [
      { domain_name = "tickets.example.com", resource_record_name = "_x1.tickets.example.com.", resource_record_type = "CNAME", resource_record_value = "_y1.acm-validations.aws." },
      { domain_name = "www.tickets.example.com", resource_record_name = "_x2.www.tickets.example.com.", resource_record_type = "CNAME", resource_record_value = "_y2.acm-validations.aws." },
    ]
  }
}

variables {
  zone_name                 = "example.com"
  domain_name               = "tickets.example.com"
  subject_alternative_names = ["www.tickets.example.com"]
}

run "certificate_is_validated_through_dns_in_the_zone" {
  command = plan

  assert {
    condition     = aws_acm_certificate.this.validation_method == "DNS"
    error_message = "DNS validation, so ACM renews the certificate by itself."
  }
  assert {
    condition     = length(aws_route53_record.validation) == 2 && alltrue([for r in aws_route53_record.validation : r.zone_id == "Z0123456789ABCDEFGHIJ" && r.type == "CNAME"])
    error_message = "One validation record per name, in the hosted zone."
  }
  assert {
    condition     = output.certificate_arn == aws_acm_certificate.this.arn
    error_message = "The output is the validated certificate."
  }
  assert {
    condition     = output.zone_id == "Z0123456789ABCDEFGHIJ"
    error_message = "The zone id is passed on (external-dns)."
  }
}

run "rejects_a_name_outside_the_zone" {
  command = plan

  variables {
    domain_name = "tickets.example.org"
  }

  expect_failures = [var.domain_name]
}
