variable "name" {
  description = "Name of the VPC and prefix of everything in it, e.g. `tickets-dev`."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,38}[a-z0-9]$", var.name))
    error_message = "name must be 3-40 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "cidr" {
  description = "The VPC's IPv4 range, a /16 to /18: a third of it goes to the private subnets, where pods take their addresses."
  type        = string
  default     = "10.0.0.0/16"

  validation {
    condition     = can(cidrhost(var.cidr, 0)) && try(tonumber(split("/", var.cidr)[1]) >= 16 && tonumber(split("/", var.cidr)[1]) <= 18, false)
    error_message = "cidr must be an IPv4 CIDR block from /16 to /18."
  }
}

variable "azs" {
  description = "Availability zones, one subnet of each tier per zone. The Load Balancer Controller needs at least two."
  type        = list(string)

  validation {
    condition     = length(var.azs) >= 2 && length(var.azs) <= 3 && length(distinct(var.azs)) == length(var.azs)
    error_message = "azs must list two or three distinct availability zones."
  }
}

variable "cluster_name" {
  description = "The EKS cluster whose load balancers use these subnets (the `kubernetes.io/cluster/<name>` tag)."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{0,99}$", var.cluster_name))
    error_message = "cluster_name must be a valid EKS cluster name."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all AZs (cheap, for dev) instead of one per AZ (an AZ outage then cuts the others' egress)."
  type        = bool
  default     = false
}

variable "interface_endpoints" {
  description = "AWS services reached through interface VPC endpoints instead of NAT, e.g. `kinesis-streams`, `ecr.api`, `ecr.dkr`, `sts`. Each costs per hour and AZ. An S3 gateway endpoint (free) is always created."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.interface_endpoints : can(regex("^[a-z0-9.-]+$", s))])
    error_message = "interface_endpoints are service names such as `kinesis-streams` or `ecr.dkr`."
  }
}

variable "flow_logs_retention_days" {
  description = "Days to keep VPC flow logs in CloudWatch Logs; 0 turns flow logs off."
  type        = number
  default     = 365

  validation {
    condition     = contains([0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.flow_logs_retention_days)
    error_message = "flow_logs_retention_days must be 0 or a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ..., 365, ...)."
  }
}
