# A team through the github provider, pointed at any GitHub API by base_url (the tests:
# the GitHub fake). The test bed's smoke test only installs it from the mirror.
terraform {
  required_version = ">= 1.4"
  required_providers {
    github = {
      source = "integrations/github"
    }
  }
}

variable "base_url" {
  type    = string
  default = "https://api.github.com/"
}

variable "owner" {
  type    = string
  default = "example-org"
}

provider "github" {
  base_url = var.base_url
  owner    = var.owner
}

resource "github_team" "platform" {
  name        = "platform"
  description = "Managed by prefect-stacks"
  privacy     = "closed"
}
