# Client VPN is not in moto: this mocked plan/apply, with checkov, is how the
# module is checked.
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
}

variables {
  name                        = "tickets-test"
  vpc_id                      = "vpc-0123456789abcdef0"
  vpc_cidr                    = "10.0.0.0/16"
  subnet_ids                  = ["subnet-a"]
  client_cidr_block           = "172.16.0.0/22"
  server_certificate_arn      = "arn:aws:acm:ap-northeast-2:123456789012:certificate/11111111-1111-1111-1111-111111111111"
  client_root_certificate_arn = "arn:aws:acm:ap-northeast-2:123456789012:certificate/22222222-2222-2222-2222-222222222222"
  alarm_topic_arn             = "arn:aws:sns:ap-northeast-2:123456789012:tickets-test-alarms"
}

run "clients_authenticate_with_certificates_and_reach_only_the_vpc" {
  command = plan

  assert {
    condition     = one(aws_ec2_client_vpn_endpoint.this.authentication_options).type == "certificate-authentication"
    error_message = "Mutual TLS: clients present a certificate signed by the client root CA."
  }
  assert {
    condition     = one(aws_ec2_client_vpn_endpoint.this.authentication_options).root_certificate_chain_arn == var.client_root_certificate_arn
    error_message = "Client certificates are checked against the given CA."
  }
  assert {
    condition     = aws_ec2_client_vpn_endpoint.this.split_tunnel
    error_message = "Split tunnel: only the VPC's traffic goes through the VPN."
  }
  assert {
    condition     = aws_ec2_client_vpn_authorization_rule.vpc.target_network_cidr == "10.0.0.0/16" && aws_vpc_security_group_egress_rule.vpc.cidr_ipv4 == "10.0.0.0/16"
    error_message = "Clients are authorized for, and can send to, the VPC only."
  }
  assert {
    condition     = aws_ec2_client_vpn_endpoint.this.dns_servers == tolist(["10.0.0.2"])
    error_message = "Clients resolve through the VPC's resolver."
  }
  assert {
    condition     = one(aws_ec2_client_vpn_endpoint.this.connection_log_options).enabled
    error_message = "Connections are logged."
  }
}

run "both_certificates_are_watched_before_they_expire" {
  command = plan

  assert {
    condition     = toset([for a in aws_cloudwatch_metric_alarm.certificate_expiry : a.dimensions.CertificateArn]) == toset([var.server_certificate_arn, var.client_root_certificate_arn])
    error_message = "The server and the client CA certificates each have an expiry alarm."
  }
  assert {
    condition     = alltrue([for a in aws_cloudwatch_metric_alarm.certificate_expiry : a.threshold == 30 && a.metric_name == "DaysToExpiry"])
    error_message = "Alarm 30 days before expiry."
  }
}

run "rejects_a_client_range_too_small" {
  command = plan

  variables {
    client_cidr_block = "172.16.0.0/24"
  }

  expect_failures = [var.client_cidr_block]
}
