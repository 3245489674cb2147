variable "description" {
  description = "What the key encrypts."
  type        = string
}

variable "alias" {
  description = "The key's alias, without `alias/`, e.g. `kinesis/tickets-dev-admission-events`."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z0-9/_-]{1,250}$", var.alias)) && !startswith(var.alias, "aws/")
    error_message = "alias must be letters, digits, `/`, `_` or `-`, and not start with aws/."
  }
}

variable "log_group_names" {
  description = "CloudWatch Logs log groups that may encrypt with the key (and none else)."
  type        = list(string)
  default     = []
}

variable "cloudwatch_alarms" {
  description = "Let CloudWatch alarms use the key (to publish to an SNS topic it encrypts)."
  type        = bool
  default     = false
}
