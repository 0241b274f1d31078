variable "name" {
  description = "Environment name shown on the page. Empty (the default) means the Terraform workspace name."
  type        = string
  default     = ""
  nullable    = false
}

# Terraform reserves the variable name "version" (it is a meta-argument of module
# blocks: "The variable name "version" is reserved due to its special meaning inside
# module blocks."), so the version shown on the page is "app_version".
variable "app_version" {
  description = "Version string shown on the page. Changing it replaces the server (old one stopped, new one started)."
  type        = string
  default     = "0.1.0"
  nullable    = false
}

variable "image" {
  description = "Container image reference shown on the page (e.g. registry/app:sha@sha256:...), as a deploy would run it. Empty (the default) shows none."
  type        = string
  default     = ""
  nullable    = false
}

variable "port" {
  description = "TCP port to listen on. 0 (the default) derives a stable port in 20000-31999 from the workspace and name (below Linux's ephemeral ports, 32768 and up, which any client socket or test service may hold)."
  type        = number
  default     = 0
  nullable    = false

  validation {
    condition     = var.port == 0 || (var.port == floor(var.port) && var.port >= 1024 && var.port <= 65535)
    error_message = "The variable \"port\" must be 0 (derive a port from the workspace and name) or a whole number from 1024 to 65535."
  }
}

variable "host" {
  description = "Address the server binds to. Keep 127.0.0.1 unless you mean to expose the page to your network."
  type        = string
  default     = "127.0.0.1"
  nullable    = false

  validation {
    condition     = length(trimspace(var.host)) > 0
    error_message = "The variable \"host\" must not be empty."
  }
}

variable "run_dir" {
  description = "Absolute directory for the page, pid file and server log. Empty (the default) means /tmp/prefect-stacks-local-webapp/<workspace>-<name>. Must stay the same between apply and destroy and must be unique per workspace."
  type        = string
  default     = ""
  nullable    = false

  validation {
    condition     = var.run_dir == "" || substr(var.run_dir, 0, 1) == "/"
    error_message = "The variable \"run_dir\" must be empty (use the default) or an absolute path: the stack runs in a temporary copy of its directory."
  }
}
