output "endpoint_id" {
  description = "The Client VPN endpoint (download its configuration with `aws ec2 export-client-vpn-client-configuration`)."
  value       = aws_ec2_client_vpn_endpoint.this.id
}

output "dns_name" {
  description = "The endpoint's DNS name."
  value       = aws_ec2_client_vpn_endpoint.this.dns_name
}

output "security_group_id" {
  description = "The clients' security group (allow it where operators need access, e.g. the EKS API)."
  value       = aws_security_group.this.id
}
