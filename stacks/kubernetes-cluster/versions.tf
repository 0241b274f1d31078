# A Scaleway Kubernetes Kapsule cluster: a private network, the cluster and one node
# pool. Credentials are never variables: the provider reads SCW_ACCESS_KEY,
# SCW_SECRET_KEY and SCW_DEFAULT_PROJECT_ID from its environment (the TerraformStack
# block's `env` field).

terraform {
  required_version = ">= 1.4"

  required_providers {
    scaleway = {
      source = "scaleway/scaleway"
      # 2.81.0 is the release checked here (terraform validate); any later 2.x will do.
      version = "~> 2.81"
    }
  }
}

provider "scaleway" {
  region     = var.region
  zone       = local.zone
  project_id = var.project_id != "" ? var.project_id : null
}
