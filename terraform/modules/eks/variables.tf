variable "cluster_name" {
  description = "The cluster's name (environments/<env>.toml `[kubernetes].cluster`)."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{0,99}$", var.cluster_name))
    error_message = "cluster_name must start with a letter and have up to 100 letters, digits or dashes."
  }
}

variable "kubernetes_version" {
  description = "Kubernetes minor version of the control plane, e.g. `1.35`. Upgrade one minor version at a time, before standard support ends (14 months after release)."
  type        = string

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "kubernetes_version must look like 1.33."
  }
}

variable "subnet_ids" {
  description = "Private subnets for the control plane's network interfaces and the nodes (at least two AZs)."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "EKS needs subnets in at least two availability zones."
  }
}

variable "additional_security_group_ids" {
  description = "Security groups attached to the control plane's network interfaces beside the one EKS creates (e.g. a group the data stores already trust)."
  type        = list(string)
  default     = []
}

variable "endpoint_public_access" {
  description = "Also expose the API server endpoint publicly (only from endpoint_public_access_cidrs). Off: reach it through the VPN."
  type        = bool
  default     = false
}

variable "endpoint_public_access_cidrs" {
  description = "Ranges allowed to the public API endpoint when it is on (e.g. the office, the GitLab runners' egress)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.endpoint_public_access_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "endpoint_public_access_cidrs must be CIDR blocks, and not 0.0.0.0/0."
  }
}

variable "cluster_creator_admin" {
  description = "Give whoever creates the cluster an admin access entry (the bootstrap path)."
  type        = bool
  default     = true
}

variable "admin_principal_arns" {
  description = "IAM roles or users given cluster-admin access entries (operators' SSO role, the deploy role)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.admin_principal_arns : can(regex("^arn:[a-z-]+:iam::[0-9]{12}:(role|user)/.+$", a))])
    error_message = "admin_principal_arns must be IAM role or user ARNs."
  }
}

variable "log_retention_days" {
  description = "Days to keep control-plane logs (audit logs are voluminous: throwaway environments keep fewer)."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, ...)."
  }
}

variable "node_instance_types" {
  description = "Instance types of the node group, e.g. [\"t3.medium\"] (dev) or [\"t3.xlarge\"] (prod)."
  type        = list(string)

  validation {
    condition     = length(var.node_instance_types) >= 1 && alltrue([for t in var.node_instance_types : can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", t))])
    error_message = "node_instance_types must list EC2 instance types such as t3.xlarge."
  }
}

variable "node_ami_type" {
  description = "EKS-optimized AMI family of the nodes."
  type        = string
  default     = "AL2023_x86_64_STANDARD"

  validation {
    condition     = contains(["AL2023_x86_64_STANDARD", "AL2023_ARM_64_STANDARD", "BOTTLEROCKET_x86_64", "BOTTLEROCKET_ARM_64"], var.node_ami_type)
    error_message = "node_ami_type must be an AL2023 or Bottlerocket AMI type."
  }
}

variable "node_capacity_type" {
  description = "ON_DEMAND, or SPOT (cheaper, can be reclaimed: dev only)."
  type        = string
  default     = "ON_DEMAND"

  validation {
    condition     = contains(["ON_DEMAND", "SPOT"], var.node_capacity_type)
    error_message = "node_capacity_type must be ON_DEMAND or SPOT."
  }
}

variable "node_disk_size_gb" {
  description = "Root volume size of each node (gp3, encrypted)."
  type        = number
  default     = 50

  validation {
    condition     = var.node_disk_size_gb >= 20 && var.node_disk_size_gb <= 1000
    error_message = "node_disk_size_gb must be between 20 and 1000."
  }
}

variable "node_min_size" {
  description = "Nodes at least, at creation. Afterwards `cargo xtask prewarm`/`pause` own it."
  type        = number

  validation {
    condition     = var.node_min_size >= 0
    error_message = "node_min_size must not be negative."
  }
}

variable "node_desired_size" {
  description = "Nodes at creation. Afterwards the Cluster Autoscaler owns it."
  type        = number

  validation {
    condition     = var.node_desired_size >= 0 && var.node_desired_size >= var.node_min_size
    error_message = "node_desired_size must not be negative nor below node_min_size."
  }
}

variable "node_max_size" {
  description = "Nodes at most: the Cluster Autoscaler never goes beyond, and it caps the cost."
  type        = number

  validation {
    condition     = var.node_max_size >= 1 && var.node_max_size >= var.node_min_size && var.node_max_size >= var.node_desired_size
    error_message = "node_max_size must be at least 1 and at least node_min_size and node_desired_size."
  }
}

variable "addons" {
  description = "EKS-managed add-ons by name, each with a version (null: the default for the cluster's Kubernetes version)."
  type        = map(object({ version = optional(string) }))
  default = {
    "vpc-cni"    = {}
    "kube-proxy" = {}
    "coredns"    = {}
  }
}

variable "app_role_name" {
  description = "Name of the app's IRSA role (environments/<env>.toml `[app].role_name`)."
  type        = string
}

variable "app_service_account" {
  description = "The app's ServiceAccount, the only identity that may assume the app's role."
  type = object({
    namespace = string
    name      = string
  })
}

variable "addons_namespace" {
  description = "Namespace of the add-ons' ServiceAccounts (their IRSA roles trust it)."
  type        = string
  default     = "kube-system"
}

variable "addon_role_names" {
  description = "Names of the add-ons' IRSA roles (lb_controller, external_dns, node_autoscaler); each null: derived from cluster_name."
  type = object({
    lb_controller   = optional(string)
    external_dns    = optional(string)
    node_autoscaler = optional(string)
  })
  default = {}
}

variable "app_kinesis_stream_arn" {
  description = "The app's Kinesis stream (its role may write there, nowhere else)."
  type        = string
}

variable "app_kinesis_kms_key_arn" {
  description = "The KMS key of the app's stream."
  type        = string
}

variable "external_dns_zone_ids" {
  description = "Route 53 hosted zones external-dns may change."
  type        = list(string)
  default     = []
}
