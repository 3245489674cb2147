variable "name" {
  description = "Repository name, e.g. `tickets/admission`."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$", var.name)) && length(var.name) <= 256
    error_message = "name must be a valid ECR repository name (lowercase, `/`-separated)."
  }
}

variable "keep_tagged_images" {
  description = "How many of the newest images to keep; older ones expire."
  type        = number
  default     = 50

  validation {
    condition     = var.keep_tagged_images >= 5 && var.keep_tagged_images <= 10000
    error_message = "keep_tagged_images must be between 5 and 10000 (keep enough to roll back)."
  }
}

variable "untagged_expiry_days" {
  description = "Days after which untagged images expire."
  type        = number
  default     = 7

  validation {
    condition     = var.untagged_expiry_days >= 1
    error_message = "untagged_expiry_days must be at least 1."
  }
}

variable "kms_key_arn" {
  description = "A customer-managed KMS key for the images; null uses the AWS-managed `aws/ecr` key."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:[a-z-]+:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN or null."
  }
}

variable "force_delete" {
  description = "Let `terraform destroy` delete the repository while it still holds images (only for throwaway environments)."
  type        = bool
  default     = false
}
