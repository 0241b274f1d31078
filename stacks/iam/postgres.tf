# Group roles (NOLOGIN) carry the grants; people and service accounts log in and are
# members of them.
resource "postgresql_role" "group" {
  for_each = local.database_roles
  name     = each.key
  login    = false
}

resource "postgresql_role" "login" {
  for_each = local.logins
  name     = each.key
  login    = true
  roles    = each.value

  depends_on = [postgresql_role.group]
}

resource "postgresql_grant" "grant" {
  for_each    = local.grants
  role        = postgresql_role.group[each.value.role].name
  database    = each.value.database
  schema      = try(each.value.schema, null)
  object_type = each.value.object_type
  objects     = try(each.value.objects, null)
  privileges  = each.value.privileges
}
