# A namespace and a Deployment through Terraform's kubernetes provider (the test bed's
# smoke test: plan, apply, an image change as an in-place update, destroy).
terraform {
  required_version = ">= 1.4"
  required_providers {
    kubernetes = {
      source = "hashicorp/kubernetes"
    }
  }
}

variable "kubeconfig" {
  type = string
}

variable "namespace" {
  type = string
}

variable "image" {
  type = string
}

provider "kubernetes" {
  config_path = var.kubeconfig
}

resource "kubernetes_namespace_v1" "app" {
  metadata {
    name = var.namespace
  }
}

resource "kubernetes_deployment_v1" "web" {
  metadata {
    name      = "web"
    namespace = kubernetes_namespace_v1.app.metadata[0].name
    labels    = { app = "web" }
  }
  spec {
    replicas = 2
    selector {
      match_labels = { app = "web" }
    }
    template {
      metadata {
        labels = { app = "web" }
      }
      spec {
        container {
          name  = "web"
          image = var.image
        }
      }
    }
  }
}

output "deployment" {
  value = "${kubernetes_deployment_v1.web.metadata[0].namespace}/${kubernetes_deployment_v1.web.metadata[0].name}"
}
