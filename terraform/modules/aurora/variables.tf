variable "name" {
  description = "Cluster identifier (environments/<env>.toml `[app].aurora_cluster`), prefix of its secrets."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,62}$", var.name)) && !endswith(var.name, "-") && !strcontains(var.name, "--")
    error_message = "name must be 1-63 lowercase letters, digits or single dashes, starting with a letter."
  }
}

variable "vpc_id" {
  description = "The VPC of the database subnets."
  type        = string
}

variable "subnet_ids" {
  description = "Database subnets (no internet route), in at least two AZs."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "Aurora needs subnets in at least two availability zones."
  }
}

variable "allowed_security_groups" {
  description = "Security groups allowed to connect on 3306, by a name used in the rule's description, e.g. { eks_cluster = module.eks.cluster_security_group_id }. Nothing else is allowed in."
  type        = map(string)

  validation {
    condition     = length(var.allowed_security_groups) >= 1
    error_message = "At least one security group must be allowed in, or nothing can reach the database."
  }
}

variable "engine_version" {
  description = "Aurora MySQL 3 (MySQL 8.0) engine version; minor upgrades are applied automatically in the maintenance window."
  type        = string
  default     = "8.0.mysql_aurora.3.10.3" # 3.10 is a long-term-support release

  validation {
    condition     = can(regex("^8\\.0\\.mysql_aurora\\.3\\.[0-9]{2}\\.[0-9]+$", var.engine_version))
    error_message = "engine_version must be an Aurora MySQL 3 version such as 8.0.mysql_aurora.3.10.3."
  }
}

variable "database_name" {
  description = "The schema the app uses."
  type        = string
  default     = "tickets"

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9_]{0,63}$", var.database_name))
    error_message = "database_name must be a valid MySQL database name."
  }
}

variable "instance_class" {
  description = "Instance class of the writer and every reader, e.g. db.t4g.medium (dev) or db.r6g.2xlarge (prod)."
  type        = string

  validation {
    condition     = can(regex("^db\\.[a-z0-9]+\\.[a-z0-9]+$", var.instance_class))
    error_message = "instance_class must look like db.r6g.2xlarge."
  }
}

variable "reader_count" {
  description = "Readers Terraform keeps at all times (failover targets). Application Auto Scaling may add more."
  type        = number
  default     = 0

  validation {
    condition     = var.reader_count >= 0 && var.reader_count <= 15
    error_message = "reader_count must be between 0 and 15."
  }
}

variable "reader_autoscaling_min" {
  description = "Minimum readers the auto scaling target keeps, at creation. Afterwards `cargo xtask prewarm`/`pause` own it."
  type        = number
  default     = 0

  validation {
    condition     = var.reader_autoscaling_min >= 0 && var.reader_autoscaling_min <= 15
    error_message = "reader_autoscaling_min must be between 0 and 15."
  }
}

variable "reader_autoscaling_max" {
  description = "Maximum readers Application Auto Scaling may reach; 0 turns reader auto scaling off."
  type        = number
  default     = 0

  validation {
    condition     = var.reader_autoscaling_max >= 0 && var.reader_autoscaling_max <= 15 && (var.reader_autoscaling_max == 0 || var.reader_autoscaling_max >= var.reader_autoscaling_min)
    error_message = "reader_autoscaling_max must be between 0 (off) and 15, and at least reader_autoscaling_min."
  }
}

variable "reader_target_cpu" {
  description = "The readers' average CPU (%) that auto scaling keeps them at."
  type        = number
  default     = 60

  validation {
    condition     = var.reader_target_cpu >= 20 && var.reader_target_cpu <= 90
    error_message = "reader_target_cpu must be between 20 and 90."
  }
}

variable "max_connections" {
  description = "Set MySQL's max_connections; null keeps Aurora's default for the instance class (known classes are tabled for the alarm)."
  type        = number
  default     = null

  validation {
    condition     = var.max_connections == null || try(var.max_connections >= 10 && var.max_connections <= 16000, false)
    error_message = "max_connections must be null or between 10 and 16000."
  }
}

variable "ca_cert_identifier" {
  description = "The CA of the instances' server certificates (clients that verify them trust its bundle); null keeps the region's default."
  type        = string
  default     = "rds-ca-rsa2048-g1"

  validation {
    condition     = var.ca_cert_identifier == null || can(regex("^rds-ca-", var.ca_cert_identifier))
    error_message = "ca_cert_identifier must be an RDS CA such as rds-ca-rsa2048-g1, or null."
  }
}

variable "require_tls" {
  description = "Refuse unencrypted connections (require_secure_transport)."
  type        = bool
  default     = true
}

variable "backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery window)."
  type        = number
  default     = 7

  validation {
    condition     = var.backup_retention_days >= 1 && var.backup_retention_days <= 35
    error_message = "backup_retention_days must be between 1 and 35."
  }
}

variable "deletion_protection" {
  description = "Refuse to delete the cluster, keep a final snapshot and secrets for 30 days (prod). Off: throwaway (dev)."
  type        = bool
  default     = true
}

variable "monitoring_interval_seconds" {
  description = "Enhanced Monitoring interval in seconds; 0 turns it off."
  type        = number
  default     = 60

  validation {
    condition     = contains([0, 1, 5, 10, 15, 30, 60], var.monitoring_interval_seconds)
    error_message = "monitoring_interval_seconds must be one of 0, 1, 5, 10, 15, 30, 60."
  }
}

variable "performance_insights" {
  description = "Turn on Performance Insights (7 days, free tier; encrypted with the cluster's key)."
  type        = bool
  default     = true
}

variable "user_password_version" {
  description = "Version of the app users' generated passwords: raise it to generate new ones."
  type        = number
  default     = 1

  validation {
    condition     = var.user_password_version >= 1
    error_message = "user_password_version must be at least 1."
  }
}
