output "release" {
  value       = helm_release.app.name
  description = "Release name."
}

output "revision" {
  value       = helm_release.app.metadata.revision
  description = "Release revision after the apply."
}

output "workload" {
  value       = "deployment/${var.name}"
  description = "The workload kubernetes-deploy waits for."
}
