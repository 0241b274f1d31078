locals {
  # Names are derived from the workspace and the variables only, so a re-run finds the
  # same objects. Workspace names may hold '_', '.' and capitals: slug them.
  workspace_slug = trim(replace(lower(terraform.workspace), "/[^a-z0-9-]+/", "-"), "-")
  name           = var.name != "" ? var.name : trim(substr("prefect-stacks-${local.workspace_slug}", 0, 40), "-")
  zone           = var.zone != "" ? var.zone : "${var.region}-1"
  tags           = distinct(concat(["prefect-stacks"], var.tags))

  # The pool's name carries its zone and node type: both force a new pool, and with
  # create_before_destroy the new one must not take the old one's name.
  node_slug = trim(replace(lower(var.node_type), "/[^a-z0-9]+/", "-"), "-")
  pool_name = "${local.name}-${local.zone}-${local.node_slug}"

  # What Kapsule does with a null min/max (provider docs): min 1 (0 for an empty
  # pool), max the size. Used only to check them.
  pool_min = var.pool_min_size != null ? var.pool_min_size : (var.pool_size > 0 ? 1 : 0)
  pool_max = var.pool_max_size != null ? var.pool_max_size : var.pool_size

  private_network_id = var.private_network_id != "" ? var.private_network_id : scaleway_vpc_private_network.this[0].id

  # Kubeconfig context (and cluster/user entry) names, shown in the kubernetes_cluster output.
  context = local.name
}

data "scaleway_k8s_version" "this" {
  name   = var.kubernetes_version
  region = var.region

  lifecycle {
    postcondition {
      condition     = contains(self.available_cnis, var.cni)
      error_message = "Kapsule does not offer the CNI \"${var.cni}\" with Kubernetes ${self.name} in ${var.region}; it offers: ${join(", ", self.available_cnis)}. Set the variable \"cni\"."
    }
  }
}

# Kapsule clusters must sit in a private network (provider >= 2.x docs: "Private
# Networks are now mandatory with Kapsule Clusters").
resource "scaleway_vpc_private_network" "this" {
  count = var.private_network_id == "" ? 1 : 0

  name   = "${local.name}-pn"
  region = var.region
  tags   = local.tags
}

resource "scaleway_k8s_cluster" "this" {
  name                        = local.name
  type                        = var.cluster_type
  version                     = data.scaleway_k8s_version.this.name
  cni                         = var.cni
  region                      = var.region
  private_network_id          = local.private_network_id
  delete_additional_resources = var.delete_additional_resources
  tags                        = local.tags
  description                 = "Made by prefect-stacks (stacks/kubernetes-cluster), workspace ${terraform.workspace}."
}

resource "scaleway_k8s_pool" "this" {
  cluster_id  = scaleway_k8s_cluster.this.id
  name        = local.pool_name
  region      = var.region
  zone        = local.zone
  node_type   = var.node_type
  size        = var.pool_size
  min_size    = var.pool_min_size
  max_size    = var.pool_max_size
  autoscaling = var.pool_autoscaling
  autohealing = var.pool_autohealing
  tags        = local.tags

  lifecycle {
    # A new node type or zone is a new pool (its name differs): make it, then drain
    # and remove the old one, so the cluster keeps nodes.
    create_before_destroy = true

    precondition {
      condition     = can(regex("^${var.region}-[0-9]+$", local.zone))
      error_message = "The zone \"${local.zone}\" is not in the region \"${var.region}\": set the variable \"zone\" to <region>-1, -2 or -3, or leave it empty."
    }
    precondition {
      condition     = local.pool_min <= var.pool_size && var.pool_size <= local.pool_max
      error_message = "The pool sizes must satisfy pool_min_size <= pool_size <= pool_max_size; got ${local.pool_min} <= ${var.pool_size} <= ${local.pool_max} (a null min is 1, or 0 for pool_size 0; a null max is pool_size)."
    }
    precondition {
      condition     = var.pool_size > 0 || var.pool_autoscaling
      error_message = "A pool of size 0 never gets a node without autoscaling: set pool_size >= 1 or pool_autoscaling = true."
    }
  }
}
