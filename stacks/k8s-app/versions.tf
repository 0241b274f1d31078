terraform {
  required_version = ">= 1.4"
  required_providers {
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = ">= 2.23, < 4.0"
    }
  }
}

# Credentials come from the environment: kubernetes-deploy sets KUBE_CONFIG_PATH (a
# private copy of the KubernetesCluster block's kubeconfig) and KUBE_CTX (its context).
provider "kubernetes" {}
