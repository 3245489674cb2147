variable "name_prefix" {
  description = "Secrets are named `<name_prefix>/<user>`."
  type        = string
}

variable "users" {
  description = "Users by name: what each is for, and the connection details stored beside the password."
  type = map(object({
    purpose = string
    connection = object({
      engine = string
      host   = string
      port   = number
      dbname = string
    })
  }))

  validation {
    condition     = alltrue([for k in keys(var.users) : can(regex("^[a-z][a-z0-9_]{0,31}$", k))])
    error_message = "User names must be 1-32 lowercase letters, digits or underscores (MySQL's limit is 32)."
  }
}

variable "kms_key_arn" {
  description = "Customer-managed key that encrypts the secrets."
  type        = string
}

variable "password_version" {
  description = "Raise to generate and write new passwords."
  type        = number
}

variable "recovery_window_in_days" {
  description = "Days a deleted secret can be restored (0: deleted at once, for throwaway environments)."
  type        = number

  validation {
    condition     = var.recovery_window_in_days == 0 || (var.recovery_window_in_days >= 7 && var.recovery_window_in_days <= 30)
    error_message = "recovery_window_in_days must be 0 or 7-30."
  }
}
