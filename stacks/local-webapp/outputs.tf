# Outputs come from the same values the resource is created with, so they are known
# at plan time already.

output "url" {
  description = "URL of the page, e.g. http://127.0.0.1:27217/."
  value       = local.url
}

output "port" {
  description = "TCP port the server listens on (given or derived)."
  value       = local.port
}

output "environment" {
  description = "Environment name shown on the page (var.name or the workspace name)."
  value       = local.name
}

output "version" {
  description = "Version shown on the page (the app_version variable)."
  value       = var.app_version
}

output "image" {
  description = "Container image reference shown on the page (the image variable)."
  value       = var.image
}

output "run_dir" {
  description = "Directory holding index.html, server.pid and server.log."
  value       = local.run_dir
}
