output "cluster_id" {
  description = "Cluster ID with its region, e.g. fr-par/11111111-2222-3333-4444-555555555555."
  value       = scaleway_k8s_cluster.this.id
}

output "name" {
  description = "Cluster name (the name variable, or prefect-stacks-<workspace>)."
  value       = scaleway_k8s_cluster.this.name
}

output "apiserver_url" {
  description = "URL of the cluster's Kubernetes API server."
  value       = scaleway_k8s_cluster.this.apiserver_url
}

output "kubernetes_version" {
  description = "Kubernetes version the cluster was created with (latest resolved)."
  value       = scaleway_k8s_cluster.this.version
}

output "private_network_id" {
  description = "ID of the cluster's private network (made here, or the one given)."
  value       = local.private_network_id
}

output "pool_id" {
  description = "ID of the node pool, with its region."
  value       = scaleway_k8s_pool.this.id
}

# A whole kubeconfig file (YAML) built from the cluster's kubeconfig attributes, with
# our own entry names: the value for a KubernetesCluster block's `kubeconfig` field.
# It holds the cluster's admin token, hence sensitive (the provider marks
# `kubeconfig` sensitive too, so Terraform would refuse a plain output). It waits for
# the pool: the API server's DNS name resolves only once the cluster has nodes.
output "kubeconfig" {
  description = "Kubeconfig file (YAML) with the cluster's admin token, context <name>. Sensitive: read it with `terraform output -raw kubeconfig` or from the StackOutputs.sensitive of a prefect-stacks run."
  sensitive   = true
  depends_on  = [scaleway_k8s_pool.this]
  value = yamlencode({
    apiVersion = "v1"
    kind       = "Config"
    clusters = [{
      name = local.context
      cluster = {
        server                       = scaleway_k8s_cluster.this.kubeconfig[0].host
        "certificate-authority-data" = scaleway_k8s_cluster.this.kubeconfig[0].cluster_ca_certificate
      }
    }]
    users = [{
      name = "${local.context}-admin"
      user = { token = scaleway_k8s_cluster.this.kubeconfig[0].token }
    }]
    contexts = [{
      name    = local.context
      context = { cluster = local.context, user = "${local.context}-admin" }
    }]
    "current-context" = local.context
    preferences       = {}
  })
}

output "kubernetes_cluster" {
  description = "Non-secret fields for a prefect-stacks KubernetesCluster block made from this cluster: put the kubeconfig output in its kubeconfig field and use these for the rest."
  value = {
    block_type        = "kubernetes-cluster"
    kubeconfig_output = "kubeconfig"
    context           = local.context
    namespace         = "default"
    server            = scaleway_k8s_cluster.this.apiserver_url
  }
}
