# Access as code: everything comes from one file a person edits (access.yaml); the
# iam-apply flow shows what a change means in words, waits for an approval bound to the
# plan, and applies exactly that plan. drift-check reports changes made by hand.
locals {
  access = yamldecode(file(startswith(var.access_file, "/") ? var.access_file : "${path.module}/${var.access_file}"))

  people           = try(local.access.people, {})
  github           = var.github_owner != ""
  teams            = local.github ? try(local.access.teams, {}) : {}
  database_roles   = try(local.access.database_roles, {})
  service_accounts = try(local.access.service_accounts, {})

  # PostgreSQL login roles: one per person who has database roles, one per service account
  logins = merge(
    { for name, p in local.people : name => try(p.database_roles, []) if length(try(p.database_roles, [])) > 0 },
    { for name, s in local.service_accounts : name => try(s.database_roles, []) },
  )

  # one grant per role and target: "readers/app/billing/table" -> {role, database, ...};
  # keyed by what it is about, so adding a grant in the middle of a list moves nothing
  grants = merge([
    for role, spec in local.database_roles : {
      for grant in try(spec.grants, []) :
      "${role}/${grant.database}/${try(grant.schema, "")}/${grant.object_type}" => merge(grant, { role = role })
    }
  ]...)

  # one membership per (team, login): "platform/alice" -> maintainer | member
  team_memberships = merge([
    for name, p in local.people : {
      for team, role in try(p.teams, {}) : "${team}/${p.github}" => role
    } if local.github && try(p.github, null) != null
  ]...)

  org_members = { for name, p in local.people : p.github => try(p.org_role, "member") if local.github && try(p.github, null) != null }
}
