# ElastiCache Serverless is not in moto: this mocked plan/apply, with
# checkov, is how the module is checked.
mock_provider "aws" {
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:ap-northeast-2:123456789012:key/00000000-0000-0000-0000-000000000000" }
  }
  mock_resource "aws_elasticache_serverless_cache" {
    defaults = {
      endpoint        = [{ address = "tickets-test-queue-abc.serverless.apn2.cache.amazonaws.com", port = 6379 }]
      reader_endpoint = [{ address = "tickets-test-queue-abc.serverless.apn2.cache.amazonaws.com", port = 6380 }]
    }
  }
}

variables {
  name                    = "tickets-test-queue"
  vpc_id                  = "vpc-0123456789abcdef0"
  subnet_ids              = ["subnet-a", "subnet-b", "subnet-c"]
  allowed_security_groups = { eks_cluster = "sg-0eks0000000000000" }
  max_storage_gb          = 10
  max_ecpu_per_second     = 100000
  min_ecpu_per_second     = 5000
}

run "clients_connect_with_tls_only" {
  command = apply

  assert {
    condition     = startswith(output.url, "rediss://") && endswith(output.url, ":6379")
    error_message = "The app's URL must be rediss:// (serverless accepts TLS only)."
  }
  assert {
    condition     = output.address == "tickets-test-queue-abc.serverless.apn2.cache.amazonaws.com"
    error_message = "address is the bare host name (environments build rediss://<host>:6379)."
  }
  assert {
    condition     = contains(["valkey", "redis"], aws_elasticache_serverless_cache.this.engine)
    error_message = "Serverless Valkey/Redis, always cluster mode and TLS."
  }
}

run "data_is_encrypted_at_rest_with_the_modules_key" {
  command = apply

  assert {
    condition     = aws_elasticache_serverless_cache.this.kms_key_id == module.kms.key_arn
    error_message = "The cache is encrypted with the module's customer-managed key."
  }
}

run "only_redis_from_the_cluster_security_group_is_let_in" {
  command = plan

  assert {
    condition     = alltrue([for r in aws_vpc_security_group_ingress_rule.redis : r.from_port == 6379 && r.to_port == 6379 && r.ip_protocol == "tcp" && r.cidr_ipv4 == null && r.cidr_ipv6 == null])
    error_message = "Only 6379/tcp from security groups is opened."
  }
  assert {
    condition     = [for r in aws_vpc_security_group_ingress_rule.redis : r.referenced_security_group_id] == ["sg-0eks0000000000000"]
    error_message = "Exactly the given security groups are allowed."
  }
}

run "usage_limits_cap_the_cost" {
  command = plan

  assert {
    condition     = aws_elasticache_serverless_cache.this.cache_usage_limits[0].data_storage[0].maximum == 10 && aws_elasticache_serverless_cache.this.cache_usage_limits[0].data_storage[0].unit == "GB"
    error_message = "Storage is capped."
  }
  assert {
    condition     = aws_elasticache_serverless_cache.this.cache_usage_limits[0].ecpu_per_second[0].maximum == 100000 && aws_elasticache_serverless_cache.this.cache_usage_limits[0].ecpu_per_second[0].minimum == 5000
    error_message = "ECPU/s has the given maximum and starting minimum."
  }
}

run "prewarmed_minimum_is_left_alone" {
  # Continues the applied state: another minimum in the configuration is
  # not applied, while the maximum still is.
  command = plan

  variables {
    min_ecpu_per_second = 1000
    max_ecpu_per_second = 200000
  }

  assert {
    condition     = aws_elasticache_serverless_cache.this.cache_usage_limits[0].ecpu_per_second[0].minimum == 5000
    error_message = "The ECPU/s minimum must be in ignore_changes (prewarm owns it)."
  }
  assert {
    condition     = aws_elasticache_serverless_cache.this.cache_usage_limits[0].ecpu_per_second[0].maximum == 200000
    error_message = "The maximum stays under Terraform's control."
  }
}

run "rejects_a_minimum_above_the_maximum" {
  command = plan

  variables {
    min_ecpu_per_second = 200000
  }

  expect_failures = [var.min_ecpu_per_second]
}
