# `terraform test` for this stack with a mocked scaleway provider: plans only, no
# credentials, no Scaleway API. It still needs the provider itself (its schema), so
# `terraform init` first; mock_provider needs Terraform >= 1.7. The stack is never
# applied here: see the README.

mock_provider "scaleway" {
  # Mocked values are used at plan time, so outputs and names can be asserted on.
  override_during = plan

  # `name` is an argument, so the mock keeps the one given (the real data source
  # resolves "latest" to the newest version's name).
  mock_data "scaleway_k8s_version" {
    defaults = {
      available_cnis = ["cilium", "calico", "kilo", "none"]
    }
  }

  mock_resource "scaleway_vpc_private_network" {
    defaults = {
      id = "fr-par/aaaaaaaa-0000-4000-8000-000000000001"
    }
  }

  mock_resource "scaleway_k8s_cluster" {
    defaults = {
      id            = "fr-par/cccccccc-0000-4000-8000-000000000001"
      apiserver_url = "https://cccccccc-0000-4000-8000-000000000001.api.k8s.fr-par.scw.cloud:6443"
      kubeconfig = [{
        config_file            = "(not used by the stack)"
        host                   = "https://cccccccc-0000-4000-8000-000000000001.api.k8s.fr-par.scw.cloud:6443"
        cluster_ca_certificate = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg=="
        token                  = "mock-admin-token"
      }]
    }
  }
}

run "defaults" {
  command = plan

  assert {
    condition     = scaleway_k8s_cluster.this.name == "prefect-stacks-default"
    error_message = "An empty name must give prefect-stacks-<workspace>."
  }
  assert {
    condition     = scaleway_k8s_cluster.this.version == data.scaleway_k8s_version.this.name && data.scaleway_k8s_version.this.name == "latest"
    error_message = "The cluster version must come from the scaleway_k8s_version lookup of \"latest\"."
  }
  assert {
    condition     = length(scaleway_vpc_private_network.this) == 1 && scaleway_k8s_cluster.this.private_network_id == scaleway_vpc_private_network.this[0].id
    error_message = "Without private_network_id the stack must make a private network and put the cluster in it."
  }
  assert {
    condition     = scaleway_k8s_pool.this.zone == "fr-par-1" && scaleway_k8s_pool.this.name == "prefect-stacks-default-fr-par-1-dev1-m"
    error_message = "The pool must default to <region>-1 and be named <name>-<zone>-<node type>."
  }
  assert {
    condition     = scaleway_k8s_cluster.this.delete_additional_resources == false
    error_message = "delete_additional_resources must default to false."
  }
  assert {
    condition     = contains(scaleway_k8s_cluster.this.tags, "prefect-stacks")
    error_message = "The prefect-stacks tag must always be set."
  }
  assert {
    condition     = yamldecode(output.kubeconfig)["current-context"] == "prefect-stacks-default"
    error_message = "The kubeconfig's current context must be the cluster name."
  }
  assert {
    condition     = yamldecode(output.kubeconfig).users[0].user.token == "mock-admin-token"
    error_message = "The kubeconfig must carry the cluster's admin token."
  }
  assert {
    condition     = yamldecode(output.kubeconfig).clusters[0].cluster.server == output.apiserver_url
    error_message = "The kubeconfig must point at the cluster's API server."
  }
  assert {
    condition     = yamldecode(output.kubeconfig).clusters[0].cluster["certificate-authority-data"] == "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg=="
    error_message = "The kubeconfig must carry the cluster CA (base64, as certificate-authority-data)."
  }
  assert {
    condition     = output.kubernetes_cluster.context == "prefect-stacks-default" && output.kubernetes_cluster.kubeconfig_output == "kubeconfig"
    error_message = "The kubernetes_cluster hint must name the context and the kubeconfig output."
  }
}

run "existing_private_network_and_autoscaling" {
  command = plan

  variables {
    name               = "shop"
    kubernetes_version = "1.34.1"
    region             = "nl-ams"
    zone               = "nl-ams-2"
    node_type          = "PRO2-XXS"
    private_network_id = "nl-ams/bbbbbbbb-0000-4000-8000-000000000001"
    pool_size          = 0
    pool_min_size      = 0
    pool_max_size      = 5
    pool_autoscaling   = true
    tags               = ["team=web"]
  }

  assert {
    condition     = scaleway_k8s_cluster.this.version == "1.34.1" && data.scaleway_k8s_version.this.region == "nl-ams"
    error_message = "A pinned kubernetes_version must be looked up in the cluster's region and used."
  }
  assert {
    condition     = length(scaleway_vpc_private_network.this) == 0
    error_message = "A given private_network_id must not make another private network."
  }
  assert {
    condition     = scaleway_k8s_cluster.this.private_network_id == "nl-ams/bbbbbbbb-0000-4000-8000-000000000001"
    error_message = "The cluster must use the given private network."
  }
  assert {
    condition     = scaleway_k8s_pool.this.name == "shop-nl-ams-2-pro2-xxs" && scaleway_k8s_pool.this.max_size == 5
    error_message = "The pool must take the name, zone, node type and sizes given."
  }
  assert {
    condition     = toset(scaleway_k8s_cluster.this.tags) == toset(["prefect-stacks", "team=web"])
    error_message = "Tags must be the given ones plus prefect-stacks."
  }
}

run "pool_size_above_max" {
  command = plan

  variables {
    pool_size     = 5
    pool_max_size = 3
  }

  expect_failures = [scaleway_k8s_pool.this]
}

run "pool_size_below_min" {
  command = plan

  variables {
    pool_size     = 1
    pool_min_size = 2
    pool_max_size = 4
  }

  expect_failures = [scaleway_k8s_pool.this]
}

run "empty_pool_without_autoscaling" {
  command = plan

  variables {
    pool_size = 0
  }

  expect_failures = [scaleway_k8s_pool.this]
}

run "zone_outside_region" {
  command = plan

  variables {
    region = "nl-ams"
    zone   = "fr-par-2"
  }

  expect_failures = [scaleway_k8s_pool.this]
}

run "cni_not_offered" {
  command = plan

  variables {
    cni = "cilium_native"
  }

  expect_failures = [data.scaleway_k8s_version.this]
}
