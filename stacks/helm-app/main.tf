# One Helm release through Terraform's helm provider: the chart (the small one in
# ./chart by default, or an upstream chart), its image set by kubernetes-deploy (method
# terraform-helm) as image.repository / image.digest values. The plan shows the values
# that change. Helm does not wait: the flow waits for the rollout within its own
# deadline, rolls back on failure, and recovers a release an interrupted run left
# pending-install / pending-upgrade / pending-rollback before it applies.

resource "helm_release" "app" {
  name             = var.name
  namespace        = var.namespace
  create_namespace = true
  chart            = var.chart != "" ? var.chart : "${path.module}/chart"
  repository       = var.repository
  version          = var.chart_version
  wait             = false
  atomic           = false
  max_history      = 10

  set = concat(
    [
      { name = "image.repository", value = var.image_repository },
      { name = "image.digest", value = var.image_digest },
      { name = "image.tag", value = var.image_tag },
    ],
    [for k, v in var.values : { name = k, value = v }],
  )
}
