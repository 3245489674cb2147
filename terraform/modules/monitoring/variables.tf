variable "name" {
  description = "Prefix of the alarms, the topic and the dashboard's name, e.g. `tickets-dev`."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z0-9_-]{1,200}$", var.name))
    error_message = "name must be letters, digits, `_` or `-`."
  }
}

variable "alarm_email" {
  description = "Where alarms are mailed (environments/<env>.toml `[alarms].email`); the address must confirm the subscription."
  type        = string

  validation {
    condition     = can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be an e-mail address."
  }
}

variable "alb_arn_suffix" {
  description = "The app ALB's ARN suffix (`app/<name>/<id>`). The Load Balancer Controller creates the ALB at the first deploy: null until then, and the ALB alarms do not exist."
  type        = string
  default     = null

  validation {
    condition     = var.alb_arn_suffix == null || can(regex("^app/[^/]+/[0-9a-f]+$", var.alb_arn_suffix))
    error_message = "alb_arn_suffix must look like app/k8s-admission-0123456789/0123456789abcdef, or be null."
  }
}

variable "target_group_arn_suffix" {
  description = "The app target group's ARN suffix (`targetgroup/<name>/<id>`), for the healthy-targets alarm; null until the first deploy."
  type        = string
  default     = null

  validation {
    condition     = var.target_group_arn_suffix == null || can(regex("^targetgroup/[^/]+/[0-9a-f]+$", var.target_group_arn_suffix))
    error_message = "target_group_arn_suffix must look like targetgroup/k8s-admissio-0123456789/0123456789abcdef, or be null."
  }
}

variable "alb_5xx_percent" {
  description = "Alarm when more than this share of requests (%) are answered 5xx."
  type        = number
  default     = 1

  validation {
    condition     = var.alb_5xx_percent > 0 && var.alb_5xx_percent <= 100
    error_message = "alb_5xx_percent must be in (0, 100]."
  }
}

variable "alb_p99_seconds" {
  description = "Alarm when the p99 target response time exceeds this (seconds)."
  type        = number
  default     = 1

  validation {
    condition     = var.alb_p99_seconds > 0
    error_message = "alb_p99_seconds must be positive."
  }
}

variable "aurora_cluster_id" {
  description = "The Aurora cluster identifier."
  type        = string
}

variable "aurora_cpu_percent" {
  description = "Alarm when the writer's or the readers' CPU exceeds this (%)."
  type        = number
  default     = 70

  validation {
    condition     = var.aurora_cpu_percent > 0 && var.aurora_cpu_percent < 100
    error_message = "aurora_cpu_percent must be between 0 and 100."
  }
}

variable "aurora_max_connections" {
  description = "The writer's max_connections (the aurora module's output)."
  type        = number

  validation {
    condition     = var.aurora_max_connections >= 1
    error_message = "aurora_max_connections must be positive."
  }
}

variable "aurora_connections_ratio" {
  description = "Alarm when the writer's connections exceed this share of max_connections."
  type        = number
  default     = 0.8

  validation {
    condition     = var.aurora_connections_ratio > 0 && var.aurora_connections_ratio < 1
    error_message = "aurora_connections_ratio must be between 0 and 1."
  }
}

variable "cache_name" {
  description = "The ElastiCache Serverless cache's name."
  type        = string
}

variable "cache_max_ecpu_per_second" {
  description = "The cache's ECPU/s cap (the cache module's output)."
  type        = number
}

variable "cache_max_storage_gb" {
  description = "The cache's storage cap in GB (the cache module's output)."
  type        = number
}

variable "cache_limit_ratio" {
  description = "Alarm when the cache's ECPU/s or storage exceed this share of their caps."
  type        = number
  default     = 0.75

  validation {
    condition     = var.cache_limit_ratio > 0 && var.cache_limit_ratio < 1
    error_message = "cache_limit_ratio must be between 0 and 1."
  }
}

variable "stream_name" {
  description = "The Kinesis stream's name."
  type        = string
}

variable "kinesis_iterator_age_seconds" {
  description = "Alarm when consumers lag behind the stream by more than this (seconds)."
  type        = number
  default     = 60

  validation {
    condition     = var.kinesis_iterator_age_seconds >= 1
    error_message = "kinesis_iterator_age_seconds must be at least 1."
  }
}
