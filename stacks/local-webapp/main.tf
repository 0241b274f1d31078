# A local web server on 127.0.0.1 serving one page with the environment name and
# version. Only the built-in terraform_data resource and local-exec provisioners are
# used, so no provider has to be downloaded.
#
# The stack is usually applied and destroyed from throw-away copies of this directory,
# so nothing the server needs later lives under path.module: webapp.py copies itself,
# the page, the pid file and the log into run_dir (outside the stack directory).

terraform {
  required_version = ">= 1.4"
}

locals {
  name = var.name != "" ? var.name : terraform.workspace

  # Stable across runs and copies: derived from the workspace and name only.
  port = var.port != 0 ? var.port : 20000 + parseint(substr(sha1("${terraform.workspace}/${local.name}"), 0, 8), 16) % 12000

  # The name may hold any characters (slashes, quotes ...): keep the default run dir
  # a single, safe path component, with a hash when characters had to be replaced
  # (or the label was cut short).
  dir_label  = "${terraform.workspace}-${local.name}"
  safe_label = replace(local.dir_label, "/[^A-Za-z0-9._-]/", "_")
  run_dir = var.run_dir != "" ? var.run_dir : format(
    "/tmp/prefect-stacks-local-webapp/%s",
    local.safe_label == local.dir_label && length(local.dir_label) <= 100 ? local.dir_label : "${substr(local.safe_label, 0, 64)}-${substr(sha1(local.dir_label), 0, 8)}"
  )

  url_host = var.host == "0.0.0.0" ? "127.0.0.1" : (var.host == "::" ? "[::1]" : (length(split(":", var.host)) > 1 ? "[${var.host}]" : var.host))
  url      = "http://${local.url_host}:${local.port}/"
}

resource "terraform_data" "webapp" {
  # Any change (e.g. a new app_version) replaces the resource: the destroy-time
  # provisioner stops the old server, then the create-time one starts the new one.
  triggers_replace = {
    name    = local.name
    version = var.app_version
    image   = var.image
    port    = local.port
    host    = var.host
    run_dir = local.run_dir
  }

  # Destroy-time provisioners may only reference self (and path.*), so everything the
  # stop needs is carried here.
  input = {
    name    = local.name
    version = var.app_version
    port    = local.port
    host    = var.host
    run_dir = local.run_dir
    url     = local.url
  }

  # local-exec with "interpreter" runs interpreter + [command] directly, without a
  # shell: every value is its own argv item ("--opt=value", so that a value starting
  # with "-" is not taken for an option). webapp.py accepts its options before the
  # subcommand, which goes in "command" because Terraform quotes it in errors.
  provisioner "local-exec" {
    interpreter = [
      "python3", "${path.module}/webapp.py",
      "--name=${local.name}",
      "--version=${var.app_version}",
      "--image=${var.image}",
      "--port=${local.port}",
      "--host=${var.host}",
      "--run-dir=${local.run_dir}",
    ]
    command = "start"
  }

  # path.module may be used here (Terraform 1.11 allows self, count.index, each.key and
  # path.* in destroy-time provisioners); at destroy time it is the directory of the
  # copy being destroyed from, which holds the same webapp.py.
  provisioner "local-exec" {
    when        = destroy
    interpreter = ["python3", "${path.module}/webapp.py", "--run-dir=${self.input.run_dir}"]
    command     = "stop"
  }
}
