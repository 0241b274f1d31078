variable "name" {
  type        = string
  description = "Name of the Deployment and Service (and their `app` label)."
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.name))
    error_message = "name must be a DNS label: lowercase letters, digits and '-', at most 63 characters."
  }
}

variable "namespace" {
  type        = string
  description = "Namespace to deploy into; created when create_namespace is true."
}

variable "create_namespace" {
  type        = bool
  default     = false
  description = "Create (and own) the namespace. Leave false when it exists already."
}

variable "image" {
  type        = string
  description = "Image pinned by digest: `registry/repository[:tag]@sha256:...` (kubernetes-deploy sets it)."
  validation {
    condition     = can(regex("@sha256:[0-9a-f]{64}$", var.image))
    error_message = "image must be pinned by digest (repository@sha256:...): a tag can move between plan and apply."
  }
}

variable "replicas" {
  type        = number
  default     = 2
  description = "Number of pods."
  validation {
    condition     = var.replicas >= 0 && floor(var.replicas) == var.replicas
    error_message = "replicas must be a whole number, 0 or more."
  }
}

variable "port" {
  type        = number
  default     = 8080
  description = "Port the container listens on; the Service exposes it on port 80."
}

variable "env" {
  type        = map(string)
  default     = {}
  description = "Environment variables of the container (no secrets: they are in the plan)."
}
