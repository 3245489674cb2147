terraform {
  # 1.7+: `terraform test` with mock providers; 1.11: write-only attributes.
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100, < 6.0"
    }
  }
}
