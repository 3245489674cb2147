terraform {
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # State in S3, one bucket per account, locked with an S3 lock file
  # (Terraform 1.10+, no DynamoDB table). The bucket and region are given at
  # init (partial configuration), see docs/infrastructure.md:
  #   terraform init -backend-config=bucket=tickets-tfstate-<account_id> \
  #                  -backend-config=region=ap-northeast-2
  backend "s3" {
    key          = "admission/terraform.tfstate"
    encrypt      = true
    use_lockfile = true
  }
}

provider "aws" {
  region = var.region
  # Refuse to touch any other account: dev's variables can never be
  # applied to prod's account, or the other way round.
  allowed_account_ids = [var.account_id]

  default_tags {
    tags = {
      Project     = "tickets"
      Service     = "admission"
      Environment = var.environment
      ManagedBy   = "terraform"
    }
  }
}
