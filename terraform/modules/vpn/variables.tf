variable "name" {
  description = "Prefix of the endpoint's resources, e.g. `tickets-dev`."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,40}$", var.name))
    error_message = "name must be 2-41 lowercase letters, digits or dashes."
  }
}

variable "vpc_id" {
  description = "The VPC clients reach."
  type        = string
}

variable "vpc_cidr" {
  description = "The VPC's range: the only destination clients are authorized for and routed to."
  type        = string

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0))
    error_message = "vpc_cidr must be an IPv4 CIDR block."
  }
}

variable "subnet_ids" {
  description = "Private subnets to associate (each costs per hour): one for dev, two for resilience."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 1
    error_message = "At least one subnet must be associated."
  }
}

variable "client_cidr_block" {
  description = "Addresses handed to VPN clients, /12 to /22, not overlapping the VPC, e.g. 172.16.0.0/22."
  type        = string

  validation {
    condition     = can(cidrhost(var.client_cidr_block, 0)) && try(tonumber(split("/", var.client_cidr_block)[1]) >= 12 && tonumber(split("/", var.client_cidr_block)[1]) <= 22, false)
    error_message = "client_cidr_block must be an IPv4 CIDR block from /12 to /22."
  }
}

variable "server_certificate_arn" {
  description = "ACM ARN of the endpoint's server certificate (imported; see docs/infrastructure.md)."
  type        = string

  validation {
    condition     = can(regex("^arn:[a-z-]+:acm:[a-z0-9-]+:[0-9]{12}:certificate/.+$", var.server_certificate_arn))
    error_message = "server_certificate_arn must be an ACM certificate ARN."
  }
}

variable "client_root_certificate_arn" {
  description = "ACM ARN of the CA that signs client certificates (mutual TLS)."
  type        = string

  validation {
    condition     = can(regex("^arn:[a-z-]+:acm:[a-z0-9-]+:[0-9]{12}:certificate/.+$", var.client_root_certificate_arn))
    error_message = "client_root_certificate_arn must be an ACM certificate ARN."
  }
}

variable "session_timeout_hours" {
  description = "Hours after which a client must reconnect."
  type        = number
  default     = 12

  validation {
    condition     = contains([8, 10, 12, 24], var.session_timeout_hours)
    error_message = "session_timeout_hours must be 8, 10, 12 or 24."
  }
}

variable "log_retention_days" {
  description = "Days to keep connection logs."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts."
  }
}

variable "alarm_topic_arn" {
  description = "SNS topic the certificate-expiry alarms notify (the monitoring module's)."
  type        = string
}

variable "certificate_expiry_warning_days" {
  description = "Alarm this many days before a certificate expires."
  type        = number
  default     = 30

  validation {
    condition     = var.certificate_expiry_warning_days >= 7 && var.certificate_expiry_warning_days <= 90
    error_message = "certificate_expiry_warning_days must be between 7 and 90."
  }
}
