variable "name" {
  type        = string
  description = "Release name; also the name of the chart's Deployment."
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?$", var.name))
    error_message = "name must be a DNS label of at most 53 characters (Helm's release name limit)."
  }
}

variable "namespace" {
  type        = string
  description = "Namespace of the release (created when missing)."
}

variable "chart" {
  type        = string
  default     = ""
  description = "Chart: a local directory, or a chart name with `repository`; empty: the small chart shipped in ./chart."
}

variable "repository" {
  type        = string
  default     = null
  description = "Chart repository URL (or oci://...) for an upstream chart; null for a local chart."
}

variable "chart_version" {
  type        = string
  default     = null
  description = "Chart version for a repository chart; null for a local chart."
}

variable "image_repository" {
  type        = string
  description = "Image repository, e.g. registry.example.com/shop/web (kubernetes-deploy sets it)."
}

variable "image_digest" {
  type        = string
  description = "Image digest, sha256:... (kubernetes-deploy sets it)."
  validation {
    condition     = can(regex("^sha256:[0-9a-f]{64}$", var.image_digest))
    error_message = "image_digest must be sha256:<64 hex digits>."
  }
}

variable "image_tag" {
  type        = string
  default     = ""
  description = "The tag the image was pushed as (shown beside the digest); may be empty."
}

variable "values" {
  type        = map(string)
  default     = {}
  description = "More chart values, as `--set` pairs (e.g. replicas = \"3\")."
}
