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
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/tickets-test-rds-monitoring" }
  }
  mock_resource "aws_rds_cluster" {
    defaults = {
      endpoint           = "tickets-test.cluster-abc.ap-northeast-2.rds.amazonaws.com"
      reader_endpoint    = "tickets-test.cluster-ro-abc.ap-northeast-2.rds.amazonaws.com"
      master_user_secret = [{ secret_arn = "arn:aws:secretsmanager:ap-northeast-2:123456789012:secret:rds!cluster-abc", kms_key_id = "k", secret_status = "active" }]
    }
  }
}

variables {
  name                    = "tickets-test"
  vpc_id                  = "vpc-0123456789abcdef0"
  subnet_ids              = ["subnet-a", "subnet-b", "subnet-c"]
  allowed_security_groups = { eks_cluster = "sg-0eks0000000000000" }
  instance_class          = "db.r6g.2xlarge"
  reader_count            = 1
  reader_autoscaling_min  = 1
  reader_autoscaling_max  = 4
}

run "the_database_is_never_public" {
  command = plan

  assert {
    condition     = alltrue([for i in aws_rds_cluster_instance.this : i.publicly_accessible == false])
    error_message = "No instance may be publicly accessible."
  }
  assert {
    condition     = length(aws_rds_cluster_instance.this) == 2
    error_message = "A writer and reader_count readers."
  }
}

run "only_mysql_from_the_cluster_security_group_is_let_in" {
  command = plan

  variables {
    allowed_security_groups = { eks_cluster = "sg-0eks0000000000000", eks_nodes = "sg-0node000000000000" }
  }

  assert {
    condition     = alltrue([for r in aws_vpc_security_group_ingress_rule.mysql : r.from_port == 3306 && r.to_port == 3306 && r.ip_protocol == "tcp"])
    error_message = "Only 3306/tcp is opened."
  }
  assert {
    condition     = toset([for r in aws_vpc_security_group_ingress_rule.mysql : r.referenced_security_group_id]) == toset(["sg-0eks0000000000000", "sg-0node000000000000"])
    error_message = "Exactly the given security groups are allowed."
  }
  assert {
    condition     = alltrue([for r in aws_vpc_security_group_ingress_rule.mysql : r.cidr_ipv4 == null && r.cidr_ipv6 == null])
    error_message = "No address range is ever allowed, only security groups."
  }
}

run "storage_and_secrets_are_encrypted_and_connections_need_tls" {
  command = apply

  assert {
    condition     = aws_rds_cluster.this.storage_encrypted && aws_rds_cluster.this.kms_key_id == module.kms.key_arn
    error_message = "Storage is encrypted with the module's key."
  }
  assert {
    condition     = aws_rds_cluster.this.manage_master_user_password && aws_rds_cluster.this.master_user_secret_kms_key_id == module.kms.key_arn
    error_message = "The master password lives in Secrets Manager, encrypted with the module's key."
  }
  assert {
    condition     = one([for p in aws_rds_cluster_parameter_group.this.parameter : p.value if p.name == "require_secure_transport"]) == "ON"
    error_message = "Unencrypted connections are refused."
  }
  assert {
    condition     = keys(output.app_users) == ["app", "migrator", "reader"]
    error_message = "The app has three users: migrator, app, reader."
  }
  assert {
    condition     = output.app_users.reader.connection.host == aws_rds_cluster.this.reader_endpoint && output.app_users.app.connection.host == aws_rds_cluster.this.endpoint && output.app_users.migrator.connection.host == aws_rds_cluster.this.endpoint
    error_message = "The reader user connects to the reader endpoint, the others to the writer."
  }
  assert {
    condition     = output.max_connections == 3000
    error_message = "db.r6g.2xlarge allows 3000 connections by default."
  }
}

run "prod_is_protected_from_deletion" {
  command = plan

  assert {
    condition     = aws_rds_cluster.this.deletion_protection && !aws_rds_cluster.this.skip_final_snapshot && aws_rds_cluster.this.final_snapshot_identifier == "tickets-test-final"
    error_message = "By default the cluster is protected and keeps a final snapshot."
  }
}

run "dev_can_be_thrown_away" {
  command = plan

  variables {
    deletion_protection = false
  }

  assert {
    condition     = !aws_rds_cluster.this.deletion_protection && aws_rds_cluster.this.skip_final_snapshot
    error_message = "Without deletion protection the cluster can be destroyed without a snapshot."
  }
}

run "reader_minimum_raised_by_prewarm_is_left_alone" {
  # Continues the state of the applies above: a different minimum in the
  # configuration is not applied.
  command = plan

  variables {
    reader_autoscaling_min = 0
  }

  assert {
    condition     = aws_appautoscaling_target.readers[0].min_capacity == 1
    error_message = "min_capacity must be in ignore_changes (prewarm owns it)."
  }
  assert {
    condition     = aws_appautoscaling_target.readers[0].scalable_dimension == "rds:cluster:ReadReplicaCount"
    error_message = "Readers scale through ReadReplicaCount."
  }
}

run "rejects_no_allowed_security_group" {
  command = plan

  variables {
    allowed_security_groups = {}
  }

  expect_failures = [var.allowed_security_groups]
}
