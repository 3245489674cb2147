# Offline: a mocked AWS provider, so only the plan (and what this module
# computes from its inputs) is checked, never AWS itself.
mock_provider "aws" {
  mock_data "aws_region" {
    defaults = { name = "ap-northeast-2" }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  # Arguments that the provider validates as ARNs need ARN-shaped mocks.
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:ap-northeast-2:123456789012:log-group:/aws/vpc/tickets-test/flow-logs" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/tickets-test-vpc-flow-logs" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:ap-northeast-2:123456789012:key/00000000-0000-0000-0000-000000000000" }
  }
}

variables {
  name         = "tickets-test"
  cluster_name = "tickets-test"
  azs          = ["ap-northeast-2a", "ap-northeast-2b", "ap-northeast-2c"]
}

run "public_subnets_are_where_internet_facing_albs_go" {
  command = plan

  assert {
    condition     = length(aws_subnet.public) == 3
    error_message = "One public subnet per AZ expected."
  }
  assert {
    condition     = alltrue([for s in aws_subnet.public : lookup(s.tags, "kubernetes.io/role/elb", "") == "1"])
    error_message = "Every public subnet needs kubernetes.io/role/elb = 1, or the Load Balancer Controller finds no subnet for an internet-facing ALB."
  }
  assert {
    condition     = alltrue([for s in aws_subnet.public : lookup(s.tags, "kubernetes.io/cluster/tickets-test", "") == "shared"])
    error_message = "Every public subnet needs the cluster tag kubernetes.io/cluster/<cluster> = shared."
  }
  assert {
    condition     = alltrue([for s in aws_subnet.public : !contains(keys(s.tags), "kubernetes.io/role/internal-elb")])
    error_message = "Public subnets must not be offered for internal load balancers."
  }
  assert {
    condition     = alltrue([for s in aws_subnet.public : s.map_public_ip_on_launch == false])
    error_message = "Nothing launched in a public subnet should get a public address by default."
  }
}

run "private_subnets_are_where_internal_load_balancers_and_pods_go" {
  command = plan

  assert {
    condition     = alltrue([for s in aws_subnet.private : lookup(s.tags, "kubernetes.io/role/internal-elb", "") == "1" && lookup(s.tags, "kubernetes.io/cluster/tickets-test", "") == "shared"])
    error_message = "Every private subnet needs kubernetes.io/role/internal-elb = 1 and the cluster tag."
  }
  assert {
    condition     = alltrue([for s in aws_subnet.private : !contains(keys(s.tags), "kubernetes.io/role/elb")])
    error_message = "Private subnets must not be offered for internet-facing load balancers."
  }
  assert {
    condition     = [for s in aws_subnet.private : s.cidr_block] == ["10.0.0.0/19", "10.0.32.0/19", "10.0.64.0/19"]
    error_message = "Private subnets should be the large /19s pods take addresses from."
  }
  assert {
    condition     = tolist([for s in aws_subnet.private : s.availability_zone]) == var.azs
    error_message = "One private subnet per AZ, in order."
  }
}

run "database_subnets_are_never_offered_to_load_balancers" {
  command = plan

  assert {
    condition     = alltrue([for s in aws_subnet.database : length([for k in keys(s.tags) : k if startswith(k, "kubernetes.io/")]) == 0])
    error_message = "Database subnets must carry no kubernetes.io tags."
  }
  assert {
    condition     = length(setintersection(toset([for s in aws_subnet.database : s.cidr_block]), toset(concat([for s in aws_subnet.private : s.cidr_block], [for s in aws_subnet.public : s.cidr_block])))) == 0
    error_message = "Subnet ranges must not repeat."
  }
}

run "database_subnets_have_no_route_to_the_internet" {
  # apply against the mock, so ids exist to compare
  command = apply

  assert {
    condition     = !contains([for r in aws_route.private_nat : r.route_table_id], aws_route_table.database.id) && aws_route.public_internet.route_table_id != aws_route_table.database.id
    error_message = "The database route table must have no default route."
  }
  assert {
    condition     = alltrue([for a in aws_route_table_association.database : a.route_table_id == aws_route_table.database.id])
    error_message = "Every database subnet uses the isolated route table."
  }
}

run "dev_shares_one_nat_gateway" {
  command = apply

  variables {
    single_nat_gateway = true
  }

  assert {
    condition     = length(aws_nat_gateway.this) == 1
    error_message = "single_nat_gateway must create exactly one NAT gateway."
  }
  assert {
    condition     = alltrue([for r in aws_route.private_nat : r.nat_gateway_id == aws_nat_gateway.this[0].id])
    error_message = "Every private route table must use the single NAT gateway."
  }
}

run "prod_has_a_nat_gateway_per_az" {
  command = apply

  assert {
    condition     = length(aws_nat_gateway.this) == 3
    error_message = "One NAT gateway per AZ expected."
  }
  assert {
    condition     = [for r in aws_route.private_nat : r.nat_gateway_id] == [for n in aws_nat_gateway.this : n.id]
    error_message = "Each AZ's private route table must use its own AZ's NAT gateway."
  }
  assert {
    condition     = [for n in aws_nat_gateway.this : n.subnet_id] == [for s in aws_subnet.public : s.id]
    error_message = "NAT gateways live in the public subnets."
  }
}

run "interface_endpoints_are_private_and_opt_in" {
  command = plan

  variables {
    interface_endpoints = ["kinesis-streams", "ecr.dkr"]
  }

  assert {
    condition     = aws_vpc_endpoint.interface["kinesis-streams"].service_name == "com.amazonaws.ap-northeast-2.kinesis-streams"
    error_message = "Interface endpoint names are built from the region."
  }
  assert {
    condition     = alltrue([for e in aws_vpc_endpoint.interface : e.private_dns_enabled])
    error_message = "Interface endpoints need private DNS so SDKs use them without configuration."
  }
  assert {
    condition     = aws_vpc_security_group_ingress_rule.endpoints_https[0].from_port == 443 && aws_vpc_security_group_ingress_rule.endpoints_https[0].cidr_ipv4 == "10.0.0.0/16"
    error_message = "Endpoints accept HTTPS from the VPC only."
  }
  assert {
    condition     = aws_vpc_endpoint.s3.vpc_endpoint_type == "Gateway"
    error_message = "The S3 endpoint is the free gateway kind."
  }
}

run "flow_logs_go_to_an_encrypted_log_group" {
  command = plan

  assert {
    condition     = aws_flow_log.this[0].traffic_type == "ALL" && aws_cloudwatch_log_group.flow_logs[0].retention_in_days == 365
    error_message = "Flow logs record all traffic and are kept for the retention asked."
  }
}

run "rejects_a_single_az" {
  command = plan

  variables {
    azs = ["ap-northeast-2a"]
  }

  expect_failures = [var.azs]
}

run "rejects_a_range_too_small_for_pods" {
  command = plan

  variables {
    cidr = "10.0.0.0/24"
  }

  expect_failures = [var.cidr]
}
