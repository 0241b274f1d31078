# Validation blocks may refer only to their own variable before Terraform 1.9, and this
# stack supports 1.4: the checks that compare variables (zone in region, pool
# min <= size <= max) are preconditions in main.tf, checked by `terraform plan`.

variable "name" {
  description = "Cluster name; also the prefix of the private network and pool names and the kubeconfig context. Empty (the default) means prefect-stacks-<workspace>."
  type        = string
  default     = ""
  nullable    = false

  validation {
    condition     = var.name == "" || can(regex("^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$", var.name))
    error_message = "The variable \"name\" must be empty (prefect-stacks-<workspace>) or 1-40 lowercase letters, digits and '-', starting and ending with a letter or digit."
  }
}

variable "project_id" {
  description = "Scaleway project ID to create everything in. Empty (the default) means the provider's: SCW_DEFAULT_PROJECT_ID."
  type        = string
  default     = ""
  nullable    = false

  validation {
    condition     = var.project_id == "" || can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.project_id))
    error_message = "The variable \"project_id\" must be empty (use SCW_DEFAULT_PROJECT_ID) or a project UUID such as 11111111-2222-3333-4444-555555555555."
  }
}

variable "region" {
  description = "Scaleway region of the cluster and its private network: fr-par, nl-ams or pl-waw."
  type        = string
  default     = "fr-par"
  nullable    = false

  validation {
    condition     = contains(["fr-par", "nl-ams", "pl-waw"], var.region)
    error_message = "The variable \"region\" must be one of fr-par, nl-ams, pl-waw."
  }
}

variable "zone" {
  description = "Availability zone of the pool's nodes, inside the region (e.g. fr-par-2). Empty (the default) means <region>-1."
  type        = string
  default     = ""
  nullable    = false

  validation {
    condition     = var.zone == "" || can(regex("^(fr-par|nl-ams|pl-waw)-[1-3]$", var.zone))
    error_message = "The variable \"zone\" must be empty (<region>-1) or a zone such as fr-par-1, nl-ams-2, pl-waw-3."
  }
}

variable "cluster_type" {
  description = "Kapsule offer: kapsule (shared control plane) or kapsule-dedicated-4, -8, -16 (dedicated control plane, billed)."
  type        = string
  default     = "kapsule"
  nullable    = false

  validation {
    condition     = contains(["kapsule", "kapsule-dedicated-4", "kapsule-dedicated-8", "kapsule-dedicated-16"], var.cluster_type)
    error_message = "The variable \"cluster_type\" must be kapsule, kapsule-dedicated-4, kapsule-dedicated-8 or kapsule-dedicated-16 (multicloud/Kosmos clusters are not what this stack makes)."
  }
}

variable "kubernetes_version" {
  description = "Kubernetes version, as Kapsule names it (e.g. 1.35.3), or latest: Kapsule's newest, looked up at each plan, so a later plan can upgrade the cluster. Pin a version for a long-lived cluster."
  type        = string
  default     = "latest"
  nullable    = false

  validation {
    condition     = var.kubernetes_version == "latest" || can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.kubernetes_version))
    error_message = "The variable \"kubernetes_version\" must be latest or a version such as 1.35.3 (no leading v)."
  }
}

variable "cni" {
  description = "Container Network Interface of the cluster: cilium (the default), cilium_native, calico, kilo or none. Changing it replaces the cluster. The plan also checks it is offered for the chosen Kubernetes version."
  type        = string
  default     = "cilium"
  nullable    = false

  validation {
    condition     = contains(["cilium", "cilium_native", "calico", "kilo", "none"], var.cni)
    error_message = "The variable \"cni\" must be one of cilium, cilium_native, calico, kilo, none."
  }
}

variable "node_type" {
  description = "Instance type of the pool's nodes (e.g. DEV1-M, GP1-XS, PRO2-XXS). Changing it makes a new pool before the old one is removed."
  type        = string
  default     = "DEV1-M"
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_-]*$", var.node_type)) && !contains(["DEV1-S", "PLAY2-PICO", "STARDUST1-S", "EXTERNAL"], upper(replace(var.node_type, "_", "-")))
    error_message = "The variable \"node_type\" must be a Scaleway instance type with enough memory for Kapsule (not DEV1-S, PLAY2-PICO, STARDUST1-S; not external, which is for multicloud clusters), e.g. DEV1-M."
  }
}

variable "pool_size" {
  description = "Number of nodes the pool is created with. With autoscaling on, only the first apply uses it; the autoscaler owns the size afterwards."
  type        = number
  default     = 1
  nullable    = false

  validation {
    condition     = var.pool_size == floor(var.pool_size) && var.pool_size >= 0
    error_message = "The variable \"pool_size\" must be a whole number >= 0 (0 only with pool_autoscaling)."
  }
}

variable "pool_min_size" {
  description = "Fewest nodes the autoscaler keeps. null (the default) means Kapsule's: 1 when pool_size > 0, else 0. Must be <= pool_size."
  type        = number
  default     = null

  validation {
    condition     = var.pool_min_size == null || (floor(coalesce(var.pool_min_size, 0)) == coalesce(var.pool_min_size, 0) && coalesce(var.pool_min_size, 0) >= 0)
    error_message = "The variable \"pool_min_size\" must be null (Kapsule's default) or a whole number >= 0."
  }
}

variable "pool_max_size" {
  description = "Most nodes the autoscaler makes. null (the default) means pool_size. Must be >= pool_size."
  type        = number
  default     = null

  validation {
    condition     = var.pool_max_size == null || (floor(coalesce(var.pool_max_size, 1)) == coalesce(var.pool_max_size, 1) && coalesce(var.pool_max_size, 1) >= 1)
    error_message = "The variable \"pool_max_size\" must be null (pool_size) or a whole number >= 1."
  }
}

variable "pool_autoscaling" {
  description = "Let the cluster autoscaler move the pool between pool_min_size and pool_max_size."
  type        = bool
  default     = false
  nullable    = false
}

variable "pool_autohealing" {
  description = "Replace nodes that stay unhealthy."
  type        = bool
  default     = true
  nullable    = false
}

variable "tags" {
  description = "Tags for the private network, the cluster and the pool; the tag prefect-stacks is always added. On a pool, a tag taint=key=value:Effect taints its nodes (Scaleway's cloud controller)."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for t in var.tags : length(t) > 0 && trimspace(t) == t])
    error_message = "The variable \"tags\" must hold non-empty tags without leading or trailing spaces."
  }
}

variable "private_network_id" {
  description = "ID of an existing private network in the region to put the cluster in (Kapsule requires one). Empty (the default) means the stack creates <name>-pn."
  type        = string
  default     = ""
  nullable    = false

  validation {
    condition     = var.private_network_id == "" || can(regex("^([a-z]{2}-[a-z]{3}/)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.private_network_id))
    error_message = "The variable \"private_network_id\" must be empty (create one) or a private network ID: a UUID, optionally prefixed by its region (fr-par/...)."
  }
}

variable "delete_additional_resources" {
  description = "On destroy, also delete what Kubernetes made in Scaleway: block volumes (retained ones too), load balancers named after the cluster, and the cluster's private network when empty (even one given in private_network_id). true loses that data; false (the default) leaves them, and billed."
  type        = bool
  default     = false
  nullable    = false
}
