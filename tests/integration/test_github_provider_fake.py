"""The real Terraform github provider (integrations/github, from the test bed's mirror)
against the GitHub contract fake with organizations (``FakeGitHubOrgs``): teams, team
memberships and organization memberships are applied, planned clean, drift made by hand
is seen, and everything is destroyed.

The provider is given the fake's root as ``base_url``; like any ``base_url`` but
api.github.com, it then talks to it as to GitHub Enterprise Server: REST under
``/api/v3/``, GraphQL at ``/api/graphql`` (which it asks, after creating a team, for the
members to drop the creator GitHub made a maintainer)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_provider
from tests.fakes.github_orgs import FakeGitHubOrgs

pytestmark = pytest.mark.integration

TOKEN = "ghp_terraform_provider_0123456789"
OWNER = "acme-admin"
CONFIG = """\
terraform {
  required_providers {
    github = {
      source  = "integrations/github"
      version = "~> 6.6"
    }
  }
}

variable "github_base_url" {
  type = string
}

variable "github_token" {
  type      = string
  sensitive = true
}

provider "github" {
  owner    = "acme"
  base_url = var.github_base_url
  token    = var.github_token
}

resource "github_team" "t" {
  for_each = toset(["platform", "billing"])
  name     = each.key
  privacy  = "closed"
}

resource "github_team_membership" "m" {
  for_each = {
    "platform/alice" = "maintainer"
    "platform/bob"   = "member"
    "billing/alice"  = "member"
  }
  team_id  = github_team.t[split("/", each.key)[0]].id
  username = split("/", each.key)[1]
  role     = each.value
}

resource "github_membership" "org" {
  for_each = toset(["alice", "bob"])
  username = each.key
  role     = "member"
}
"""


class Terraform:
    """terraform in ``workdir``, with a CLI config that installs from the mirror only."""

    def __init__(self, binary: str, workdir: Path, mirror: Path, fake: FakeGitHubOrgs) -> None:
        self.binary, self.workdir = binary, workdir
        cli_config = workdir.parent / "terraformrc"
        cli_config.write_text(
            "disable_checkpoint = true\n"
            f'provider_installation {{\n  filesystem_mirror {{\n    path = "{mirror}"\n  }}\n}}\n'
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "TF_"))}
        self.env = {
            **env,
            "TF_CLI_CONFIG_FILE": str(cli_config),
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "CHECKPOINT_DISABLE": "1",
            "TF_VAR_github_base_url": fake.base_url + "/",
            "TF_VAR_github_token": TOKEN,
        }

    def __call__(self, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [self.binary, *args, "-no-color"],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode in ok, (
            f"terraform {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
        return done


def test_github_provider_applies_plans_clean_sees_drift_and_destroys(
    tmp_path, terraform_bin, terraform_mirror
):
    require_provider("github")
    workdir = tmp_path / "stack"
    workdir.mkdir()
    (workdir / "main.tf").write_text(CONFIG)
    with FakeGitHubOrgs(
        tokens={TOKEN: OWNER}, orgs=["acme"], users=["alice", "bob"], repos=()
    ) as gh:
        tf = Terraform(terraform_bin, workdir, terraform_mirror, gh)
        tf("init", "-input=false")

        applied = tf("apply", "-auto-approve", "-input=false")
        assert "Apply complete! Resources: 7 added, 0 changed, 0 destroyed." in applied.stdout
        assert sorted(gh.teams()) == ["billing", "platform"]
        for slug in ("platform", "billing"):
            team = gh.team(slug)
            assert team is not None and team.privacy == "closed" and team.name == slug
        # the provider dropped the creator GitHub makes a maintainer (create_default_maintainer)
        assert gh.team_members("platform") == {"alice": "maintainer", "bob": "member"}
        assert gh.team_members("billing") == {"alice": "member"}
        assert gh.org_members() == {OWNER: "admin", "alice": "member", "bob": "member"}
        calls = gh.counts_by_path()
        assert calls["POST /orgs/acme/teams"] == 2
        assert calls["POST /api/graphql"] == 2
        assert all(r.raw_path.startswith(("/api/v3/", "/api/graphql")) for r in gh.requests)
        assert gh.count(status=404) == 0, [f"{r.method} {r.raw_path}" for r in gh.requests]

        gh.clear_requests()
        clean = tf("plan", "-detailed-exitcode", "-input=false")  # exit 2 would be changes
        assert "No changes." in clean.stdout
        assert gh.count(status=304) > 0  # the provider reads with the ETags it stored
        assert gh.count(method="GET") == len(gh.requests)  # a plan writes nothing

        gh.set_team_membership("platform", "bob", "maintainer")  # by hand, on GitHub
        drift = tf("plan", "-detailed-exitcode", "-input=false", ok=(2,))
        assert 'github_team_membership.m["platform/bob"] will be updated in-place' in drift.stdout
        assert '~ role     = "maintainer" -> "member"' in drift.stdout
        assert "Plan: 0 to add, 1 to change, 0 to destroy." in drift.stdout

        gh.clear_requests()
        destroyed = tf("destroy", "-auto-approve", "-input=false")
        assert "Destroy complete! Resources: 7 destroyed." in destroyed.stdout
        assert gh.teams() == []
        assert gh.org_members() == {OWNER: "admin"}
        assert gh.count(status=404) == 0, [f"{r.method} {r.raw_path}" for r in gh.requests]
        state = tf("state", "list")
        assert state.stdout.strip() == ""
