# One application on Kubernetes through Terraform's kubernetes provider: a Deployment and
# a Service, the image set by kubernetes-deploy (method terraform-kubernetes). The plan
# shows the image change as an in-place update of the Deployment; the rollout is waited
# for by the flow (kubectl rollout status, within its own deadline), not by Terraform.

resource "kubernetes_namespace_v1" "app" {
  count = var.create_namespace ? 1 : 0
  metadata {
    name = var.namespace
  }
}

locals {
  namespace = var.create_namespace ? kubernetes_namespace_v1.app[0].metadata[0].name : var.namespace
  labels    = { app = var.name, "app.kubernetes.io/managed-by" = "prefect-stacks" }
}

resource "kubernetes_deployment_v1" "app" {
  metadata {
    name      = var.name
    namespace = local.namespace
    labels    = local.labels
  }
  # the flow waits for the rollout with its own deadline, and rolls back on failure
  wait_for_rollout = false
  spec {
    replicas = var.replicas
    selector {
      match_labels = { app = var.name }
    }
    template {
      metadata {
        labels = local.labels
      }
      spec {
        container {
          name  = var.name
          image = var.image
          port {
            container_port = var.port
          }
          dynamic "env" {
            for_each = var.env
            content {
              name  = env.key
              value = env.value
            }
          }
        }
      }
    }
  }
}

resource "kubernetes_service_v1" "app" {
  metadata {
    name      = var.name
    namespace = local.namespace
    labels    = local.labels
  }
  spec {
    selector = { app = var.name }
    port {
      port        = 80
      target_port = var.port
    }
  }
}
