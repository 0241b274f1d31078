terraform {
  required_version = ">= 1.4"
  required_providers {
    postgresql = {
      source  = "cyrilgdn/postgresql"
      version = "~> 1.26"
    }
    github = {
      source  = "integrations/github"
      version = "~> 6.6"
    }
  }
}

# Credentials come from the environment (the TerraformStack block's `env`, secrets):
# PGPASSWORD for PostgreSQL, GITHUB_TOKEN for GitHub. Never in variables or argv.
provider "postgresql" {
  host      = var.postgres_host
  port      = var.postgres_port
  database  = var.postgres_database
  username  = var.postgres_username
  sslmode   = var.postgres_sslmode
  superuser = var.postgres_superuser
}

provider "github" {
  owner          = var.github_owner
  base_url       = var.github_base_url
  write_delay_ms = var.github_write_delay_ms
}
