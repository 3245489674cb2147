variable "name" {
  description = "The cache's name (environments/<env>.toml `[app].cache_name`)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,39}$", var.name)) && !endswith(var.name, "-") && !strcontains(var.name, "--")
    error_message = "name must be 1-40 lowercase letters, digits or single dashes, starting with a letter."
  }
}

variable "engine" {
  description = "`valkey` (cheaper, Redis-compatible) or `redis` (Redis OSS 7)."
  type        = string
  default     = "valkey"

  validation {
    condition     = contains(["valkey", "redis"], var.engine)
    error_message = "engine must be valkey or redis."
  }
}

variable "major_engine_version" {
  description = "Major engine version: 7 or 8 for Valkey, 7 for Redis OSS."
  type        = string
  default     = "8"

  validation {
    condition     = contains(["7", "8"], var.major_engine_version)
    error_message = "major_engine_version must be 7 or 8."
  }
}

variable "vpc_id" {
  description = "The VPC of the subnets."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets of the cache's endpoints (the database subnets), in two or three AZs."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2 && length(var.subnet_ids) <= 3
    error_message = "ElastiCache Serverless takes two or three subnets."
  }
}

variable "allowed_security_groups" {
  description = "Security groups allowed to connect on 6379, by a name used in the rule's description, e.g. { eks_cluster = module.eks.cluster_security_group_id }. Nothing else is allowed in."
  type        = map(string)

  validation {
    condition     = length(var.allowed_security_groups) >= 1
    error_message = "At least one security group must be allowed in, or nothing can reach the cache."
  }
}

variable "user_group_id" {
  description = "An ElastiCache user group for RBAC (AUTH); null leaves the default user, guarded by the security group and TLS."
  type        = string
  default     = null
}

variable "max_storage_gb" {
  description = "Data storage cap in GB. At the cap the cache evicts keys with a TTL and then refuses writes; the alarm fires at 75%."
  type        = number

  validation {
    condition     = var.max_storage_gb >= 1 && var.max_storage_gb <= 5000
    error_message = "max_storage_gb must be between 1 and 5000."
  }
}

variable "max_ecpu_per_second" {
  description = "ECPU/s cap: caps the cost; above it commands are throttled. The alarm fires at 75%."
  type        = number

  validation {
    condition     = var.max_ecpu_per_second >= 1000 && var.max_ecpu_per_second <= 15000000
    error_message = "max_ecpu_per_second must be between 1,000 and 15,000,000."
  }
}

variable "min_ecpu_per_second" {
  description = "ECPU/s the cache keeps ready, at creation (null: none). Afterwards `cargo xtask prewarm`/`pause` own it."
  type        = number
  default     = null

  validation {
    condition     = var.min_ecpu_per_second == null || try(var.min_ecpu_per_second >= 1000 && var.min_ecpu_per_second <= var.max_ecpu_per_second, false)
    error_message = "min_ecpu_per_second must be null, or at least 1,000 and at most max_ecpu_per_second."
  }
}

variable "snapshot_retention_days" {
  description = "Daily snapshots to keep; 0 turns them off."
  type        = number
  default     = 1

  validation {
    condition     = var.snapshot_retention_days >= 0 && var.snapshot_retention_days <= 35
    error_message = "snapshot_retention_days must be between 0 and 35."
  }
}
