variable "access_file" {
  description = "The file people edit: who is in which team and which database role (see access.yaml). Relative paths are from this directory."
  type        = string
  default     = "access.yaml"
}

variable "postgres_host" {
  description = "PostgreSQL server whose roles and grants this stack manages."
  type        = string
  default     = "127.0.0.1"
}

variable "postgres_port" {
  description = "PostgreSQL port."
  type        = number
  default     = 5432
}

variable "postgres_database" {
  description = "Database the provider connects to (grants name their own databases)."
  type        = string
  default     = "postgres"
}

variable "postgres_username" {
  description = "Role the provider connects as; it must be able to create roles and grant (the password: PGPASSWORD in the block's env)."
  type        = string
  default     = "postgres"
}

variable "postgres_sslmode" {
  description = "libpq sslmode: require (or verify-full) for a server across a network; disable only on a loopback test server."
  type        = string
  default     = "require"
  validation {
    condition     = contains(["disable", "require", "verify-ca", "verify-full"], var.postgres_sslmode)
    error_message = "postgres_sslmode must be disable, require, verify-ca or verify-full."
  }
}

variable "postgres_superuser" {
  description = "Whether the provider's role is a superuser (false on managed databases such as RDS)."
  type        = bool
  default     = true
}

variable "github_owner" {
  description = "GitHub organization whose teams and memberships this stack manages; empty: the file's teams and GitHub logins are ignored (PostgreSQL only)."
  type        = string
  default     = ""
}

variable "github_base_url" {
  description = "GitHub's API: https://api.github.com/ or https://HOST/ for GitHub Enterprise Server."
  type        = string
  default     = "https://api.github.com/"
}

variable "github_write_delay_ms" {
  description = "Milliseconds between GitHub writes (GitHub asks integrations to space their writes; the provider's default is 1000)."
  type        = number
  default     = 1000
}
