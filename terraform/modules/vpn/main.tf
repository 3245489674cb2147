# An AWS Client VPN endpoint into the VPC, for operators and the GitLab
# runner: mutual TLS with certificates imported into ACM (no passwords), a
# split tunnel (only the VPC's traffic goes through it), connection logs,
# and alarms before either certificate expires. A self-signed certificate
# that expired unnoticed cut the seeds' team off their GitLab; here the
# alarm says so 30 days ahead.

locals {
  log_group = "/aws/client-vpn/${var.name}"

  certificates = {
    server      = var.server_certificate_arn
    client_root = var.client_root_certificate_arn
  }
}

module "logs_key" {
  source = "../kms"

  description     = "Client VPN ${var.name} connection logs"
  alias           = "client-vpn/${var.name}"
  log_group_names = [local.log_group]
}

resource "aws_cloudwatch_log_group" "this" {
  name              = local.log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = module.logs_key.key_arn
}

resource "aws_cloudwatch_log_stream" "this" {
  name           = "connections"
  log_group_name = aws_cloudwatch_log_group.this.name
}

# VPN clients reach the VPC and nothing else through the endpoint.
resource "aws_security_group" "this" {
  name        = "${var.name}-client-vpn"
  description = "Client VPN ${var.name}: clients reach the VPC only"
  vpc_id      = var.vpc_id

  tags = { Name = "${var.name}-client-vpn" }
}

resource "aws_vpc_security_group_egress_rule" "vpc" {
  security_group_id = aws_security_group.this.id
  description       = "Everything inside the VPC"
  ip_protocol       = "-1"
  cidr_ipv4         = var.vpc_cidr
}

resource "aws_ec2_client_vpn_endpoint" "this" {
  description            = "${var.name} operators and CI runners"
  server_certificate_arn = var.server_certificate_arn
  client_cidr_block      = var.client_cidr_block
  vpc_id                 = var.vpc_id
  security_group_ids     = [aws_security_group.this.id]
  split_tunnel           = true
  transport_protocol     = "udp"
  vpn_port               = 443
  session_timeout_hours  = var.session_timeout_hours
  self_service_portal    = "disabled"
  # The VPC's resolver, so private names (EKS API, Aurora) resolve.
  dns_servers = [cidrhost(var.vpc_cidr, 2)]

  authentication_options {
    type                       = "certificate-authentication"
    root_certificate_chain_arn = var.client_root_certificate_arn
  }

  connection_log_options {
    enabled               = true
    cloudwatch_log_group  = aws_cloudwatch_log_group.this.name
    cloudwatch_log_stream = aws_cloudwatch_log_stream.this.name
  }

  tags = { Name = var.name }
}

# Each associated subnet is billed per hour: one is enough for dev, two
# survive an AZ outage.
resource "aws_ec2_client_vpn_network_association" "this" {
  count = length(var.subnet_ids)

  client_vpn_endpoint_id = aws_ec2_client_vpn_endpoint.this.id
  subnet_id              = var.subnet_ids[count.index]
}

resource "aws_ec2_client_vpn_authorization_rule" "vpc" {
  client_vpn_endpoint_id = aws_ec2_client_vpn_endpoint.this.id
  target_network_cidr    = var.vpc_cidr
  authorize_all_groups   = true
  description            = "Certificate holders reach the VPC"
}

resource "aws_cloudwatch_metric_alarm" "certificate_expiry" {
  for_each = local.certificates

  alarm_name          = "${var.name}-client-vpn-${replace(each.key, "_", "-")}-certificate-expiry"
  alarm_description   = "The Client VPN ${replace(each.key, "_", " ")} certificate expires in less than ${var.certificate_expiry_warning_days} days: import a new one into ACM and set its ARN."
  namespace           = "AWS/CertificateManager"
  metric_name         = "DaysToExpiry"
  dimensions          = { CertificateArn = each.value }
  statistic           = "Minimum"
  period              = 86400
  evaluation_periods  = 1
  comparison_operator = "LessThanThreshold"
  threshold           = var.certificate_expiry_warning_days
  treat_missing_data  = "breaching"
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]
}
