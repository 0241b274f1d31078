# A chart from a local directory through Terraform's helm provider (the test bed's smoke
# test: install, upgrade with new values, uninstall).
terraform {
  required_version = ">= 1.4"
  required_providers {
    helm = {
      source = "hashicorp/helm"
    }
  }
}

variable "kubeconfig" {
  type = string
}

variable "namespace" {
  type = string
}

variable "chart" {
  type        = string
  description = "Path of the chart directory."
}

variable "greeting" {
  type = string
}

provider "helm" {
  kubernetes = {
    config_path = var.kubeconfig
  }
}

resource "helm_release" "hello" {
  name             = "hello"
  chart            = var.chart
  namespace        = var.namespace
  create_namespace = true
  wait             = true
  timeout          = 120
  set = [
    {
      name  = "greeting"
      value = var.greeting
    },
  ]
}

output "revision" {
  value = helm_release.hello.metadata.revision
}
