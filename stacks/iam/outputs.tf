output "database_roles" {
  description = "Group roles and the login roles that are members of each."
  value = {
    for role in keys(local.database_roles) : role => sort([for login, roles in local.logins : login if contains(roles, role)])
  }
}

output "teams" {
  description = "Team -> login -> role."
  value = {
    for team in keys(local.teams) : team => {
      for key, role in local.team_memberships : split("/", key)[1] => role if split("/", key)[0] == team
    }
  }
}
