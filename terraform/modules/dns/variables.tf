variable "zone_name" {
  description = "The public Route 53 hosted zone (environments/<env>.toml `[ingress].zone`), e.g. `example.com`. It must exist: it is where the domain is delegated."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", var.zone_name))
    error_message = "zone_name must be a lowercase DNS name without a trailing dot."
  }
}

variable "domain_name" {
  description = "The app's host name (environments/<env>.toml `[ingress].host`), inside zone_name."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9*]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", var.domain_name)) && (var.domain_name == var.zone_name || endswith(var.domain_name, ".${var.zone_name}"))
    error_message = "domain_name must be a lowercase DNS name inside zone_name."
  }
}

variable "subject_alternative_names" {
  description = "Other names in the same zone the certificate also covers."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for n in var.subject_alternative_names : n == var.zone_name || endswith(n, ".${var.zone_name}")])
    error_message = "subject_alternative_names must be inside zone_name (their validation records go there)."
  }
}
