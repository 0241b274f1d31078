# A role and a grant through the postgresql provider, on the PostgreSQL the tests start.
terraform {
  required_version = ">= 1.4"
  required_providers {
    postgresql = {
      source = "cyrilgdn/postgresql"
    }
  }
}

variable "port" {
  type = number
}

variable "database" {
  type    = string
  default = "postgres"
}

provider "postgresql" {
  host      = "127.0.0.1"
  port      = var.port
  username  = "postgres"
  sslmode   = "disable"
  superuser = true
}

resource "postgresql_role" "reader" {
  name  = "stacks_reader"
  login = true
}

resource "postgresql_grant" "reader_connect" {
  database    = var.database
  role        = postgresql_role.reader.name
  object_type = "database"
  privileges  = ["CONNECT"]
}
