resource "github_team" "team" {
  for_each    = local.teams
  name        = each.key
  description = try(each.value.description, "Managed by prefect-stacks (stacks/iam)")
  privacy     = try(each.value.privacy, "closed")
}

resource "github_membership" "member" {
  for_each = local.org_members
  username = each.key
  role     = each.value
}

resource "github_team_membership" "member" {
  for_each = local.team_memberships
  team_id  = github_team.team[split("/", each.key)[0]].id
  username = split("/", each.key)[1]
  role     = each.value

  depends_on = [github_membership.member]
}
