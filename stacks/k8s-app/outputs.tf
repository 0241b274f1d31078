output "workload" {
  value       = "deployment/${kubernetes_deployment_v1.app.metadata[0].name}"
  description = "The workload kubernetes-deploy waits for."
}

output "namespace" {
  value       = local.namespace
  description = "Namespace of the application."
}

output "image" {
  value       = var.image
  description = "Image the Deployment runs."
}
