output "vpc_id" {
  description = "The VPC's id."
  value       = aws_vpc.this.id
}

output "vpc_cidr" {
  description = "The VPC's IPv4 range (the app's TRUSTED_PROXIES: the ALB forwards from inside it)."
  value       = aws_vpc.this.cidr_block
}

output "azs" {
  description = "The availability zones used, in subnet order."
  value       = var.azs
}

output "public_subnet_ids" {
  description = "Public subnets (internet-facing ALBs, NAT gateways), one per AZ."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "Private subnets (EKS nodes and pods, internal load balancers), one per AZ."
  value       = aws_subnet.private[*].id
}

output "database_subnet_ids" {
  description = "Database subnets (Aurora, ElastiCache), no route to the internet, one per AZ."
  value       = aws_subnet.database[*].id
}

output "private_route_table_ids" {
  description = "Route tables of the private subnets."
  value       = aws_route_table.private[*].id
}

output "nat_public_ips" {
  description = "The NAT gateways' public addresses: what third parties see as our egress."
  value       = aws_eip.nat[*].public_ip
}
