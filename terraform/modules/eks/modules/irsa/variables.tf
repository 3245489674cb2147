variable "cluster_name" {
  description = "The EKS cluster's name; prefixes the add-on roles and scopes the autoscaler's rights."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{0,99}$", var.cluster_name))
    error_message = "cluster_name must be a valid EKS cluster name."
  }
}

variable "oidc_issuer_url" {
  description = "The cluster's OIDC issuer, `https://oidc.eks.<region>.amazonaws.com/id/<id>`."
  type        = string

  validation {
    condition     = startswith(var.oidc_issuer_url, "https://")
    error_message = "oidc_issuer_url must be an https:// URL."
  }
}

variable "app_role_name" {
  description = "Name of the app's IAM role (environments/<env>.toml `[app].role_name`)."
  type        = string

  validation {
    condition     = can(regex("^[\\w+=,.@-]{1,64}$", var.app_role_name))
    error_message = "app_role_name must be a valid IAM role name (1-64 characters)."
  }
}

variable "app_service_account" {
  description = "The app's Kubernetes ServiceAccount, the only identity that may assume the app's role."
  type = object({
    namespace = string
    name      = string
  })

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", var.app_service_account.namespace)) && can(regex("^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", var.app_service_account.name))
    error_message = "app_service_account needs a valid Kubernetes namespace and name."
  }
}

variable "addons_namespace" {
  description = "Namespace of the add-ons' ServiceAccounts (aws-load-balancer-controller, external-dns, cluster-autoscaler): environments/<env>.toml `[kubernetes.addons].namespace`."
  type        = string
  default     = "kube-system"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", var.addons_namespace))
    error_message = "addons_namespace must be a Kubernetes namespace name."
  }
}

variable "addon_role_names" {
  description = "Names of the add-ons' roles (environments/<env>.toml `[kubernetes.addons].*_role_name`); each null: `<cluster>-aws-load-balancer-controller`, `<cluster>-external-dns`, `<cluster>-cluster-autoscaler`."
  type = object({
    lb_controller   = optional(string)
    external_dns    = optional(string)
    node_autoscaler = optional(string)
  })
  default = {}

  validation {
    condition     = alltrue([for n in values(var.addon_role_names) : n == null || can(regex("^[\\w+=,.@-]{1,64}$", n))])
    error_message = "addon_role_names must be valid IAM role names (1-64 characters)."
  }
}

variable "app_kinesis_stream_arn" {
  description = "The app's stream: its role may write there and nowhere else."
  type        = string

  validation {
    condition     = can(regex("^arn:[a-z-]+:kinesis:[a-z0-9-]+:[0-9]{12}:stream/.+$", var.app_kinesis_stream_arn))
    error_message = "app_kinesis_stream_arn must be a Kinesis stream ARN."
  }
}

variable "app_kinesis_kms_key_arn" {
  description = "The KMS key that encrypts the app's stream (the role gets kms:GenerateDataKey on it)."
  type        = string

  validation {
    condition     = can(regex("^arn:[a-z-]+:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.app_kinesis_kms_key_arn))
    error_message = "app_kinesis_kms_key_arn must be a KMS key ARN."
  }
}

variable "external_dns_zone_ids" {
  description = "Route 53 hosted zones external-dns may change records in."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for z in var.external_dns_zone_ids : can(regex("^Z[A-Z0-9]{1,32}$", z))])
    error_message = "external_dns_zone_ids are hosted zone ids such as Z0123456789ABC."
  }
}
