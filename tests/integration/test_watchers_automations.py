"""The git watcher on a real local bare repository (real git) and automations applied to
a real (throwaway) Prefect server, which runs them: commit -> watcher -> event ->
automation -> flow run with parameters from the event. No worker here: the runs the
automation creates are checked as created (with their parameters), not executed; the
end-to-end path with a worker is in tests/e2e."""

from __future__ import annotations

import textwrap
import time
import uuid
from pathlib import Path

import pytest
from prefect import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

from prefect_stacks import events
from prefect_stacks.events import automations, watching
from prefect_stacks.exceptions import ConfigurationError
from prefect_stacks.flows.stacks import stack_plan
from prefect_stacks.flows.watchers import git_watcher
from tests.conftest import GitRepo, git

pytestmark = pytest.mark.integration


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    return GitRepo(tmp_path)


@pytest.fixture(scope="module")
def plan_deployment(prefect_harness) -> str:
    """A deployment for automations to run (no worker: its runs stay scheduled)."""
    name = "events-" + uuid.uuid4().hex[:6]
    stack_plan.to_deployment(name=name).apply()
    return f"stack-plan/{name}"


def write_automation(directory: Path, body: str, name: str = "a.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(textwrap.dedent(body))
    return directory


def runs_of(deployment: str) -> list:
    with get_client(sync_client=True) as client:
        deployment_id = client.read_deployment_by_name(deployment).id
        return client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )


def wait_for_runs(deployment: str, count: int, timeout: float = 30.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = runs_of(deployment)
        if len(runs) >= count:
            return runs
        time.sleep(0.25)
    return runs_of(deployment)


def test_two_commits_two_events_two_runs_and_a_quiet_rerun(
    repo: GitRepo, plan_deployment: str, tmp_path: Path
):
    repository = str(repo.bare)
    first = repo.commit()
    watcher = "git-test-" + uuid.uuid4().hex[:6]
    directory = write_automation(
        tmp_path / "automations",
        f"""
        automations:
          - name: plan-on-push-{watcher}
            description: plan when main moves
            trigger:
              expect: [stacks.git.commit]
              match:
                stacks.repository: "{events.normalize_repository(repository)}"
                stacks.branch: main
            actions:
              - type: run-deployment
                deployment: {plan_deployment}
                parameters:
                  workspace: "{{{{ event.payload.branch }}}}"
                  variables:
                    app_version: "{{{{ event.payload.sha }}}}"
                    before: "{{{{ event.payload.before }}}}"
        """,
    )
    assert automations.apply(directory)["created"] == [f"plan-on-push-{watcher}"]

    # first run: a baseline, no event, no run
    report = git_watcher(repository=repository, watcher=watcher)
    assert report["baseline"] == ["main"] and report["emitted"] == []

    second = repo.commit()
    assert git_watcher(repository=repository, watcher=watcher)["emitted"] == ["main"]
    third = repo.commit()
    assert git_watcher(repository=repository, watcher=watcher)["emitted"] == ["main"]

    runs = wait_for_runs(plan_deployment, 2)
    params = sorted(
        (r.parameters["variables"]["app_version"], r.parameters["variables"]["before"])
        for r in runs
        if r.parameters.get("variables", {}).get("app_version") in (second, third)
    )
    assert params == sorted([(second, first), (third, second)])
    assert all(r.parameters["workspace"] == "main" for r in runs)

    # no new commit: no event, and no new run
    assert git_watcher(repository=repository, watcher=watcher)["emitted"] == []
    time.sleep(3)
    assert len(runs_of(plan_deployment)) == len(runs)


def test_state_is_kept_when_the_server_refuses_the_event(
    repo: GitRepo, prefect_harness, monkeypatch
):
    repository = str(repo.bare)
    repo.commit()
    watcher = "git-test-" + uuid.uuid4().hex[:6]
    git_watcher(repository=repository, watcher=watcher)
    sha = repo.commit()

    def refuse(evts, **kwargs):
        raise events.EmitError("the Prefect server did not accept 1 event(s): 503")

    monkeypatch.setattr(watching, "emit", refuse)  # what watch() emits with
    state = git_watcher(repository=repository, watcher=watcher, return_state=True)
    assert state.is_failed() and "did not accept" in state.message
    monkeypatch.undo()
    # the change was not lost: the next run emits it
    assert events.WatcherState(watcher).load()["main"] != sha
    assert git_watcher(repository=repository, watcher=watcher)["emitted"] == ["main"]
    assert events.WatcherState(watcher).load()["main"] == sha


def test_branch_patterns_new_branches_and_no_baseline(repo: GitRepo, prefect_harness):
    repository = str(repo.bare)
    repo.commit("main")
    repo.commit("release/1.0")
    repo.commit("feature/x")
    watcher = "git-test-" + uuid.uuid4().hex[:6]
    report = git_watcher(
        repository=repository,
        watcher=watcher,
        branches=["main", "release/*"],
        baseline_on_first_run=False,
    )
    assert sorted(report["emitted"]) == ["main", "release/1.0"]
    repo.commit("release/2.0")
    repo.commit("feature/x")
    assert git_watcher(repository=repository, watcher=watcher, branches=["main", "release/*"])[
        "emitted"
    ] == ["release/2.0"]
    git("push", "-q", "origin", "--delete", "release/1.0", cwd=repo.work)
    report = git_watcher(repository=repository, watcher=watcher, branches=["main", "release/*"])
    assert report["forgotten"] == ["release/1.0"] and report["emitted"] == []


def test_watcher_bad_input(prefect_harness, tmp_path: Path):
    state = git_watcher(repository=str(tmp_path / "nope.git"), watcher="git-x", return_state=True)
    assert state.is_failed() and "git ls-remote" in state.message
    state = git_watcher(
        repository="https://user:hunter2@example.invalid/a/b.git", return_state=True
    )
    assert state.is_failed() and "Secret block" in state.message
    assert "hunter2" not in state.message
    state = git_watcher(repository=str(tmp_path), watcher="Bad Name!", return_state=True)
    assert state.is_failed() and "not a valid watcher name" in state.message


def test_automations_apply_is_idempotent_and_updates_changes(plan_deployment: str, tmp_path):
    name = "idem-" + uuid.uuid4().hex[:6]
    body = f"""
    automations:
      - name: {name}
        description: DESCRIPTION
        trigger:
          expect: ["stacks.pull-request.*"]
          match: {{stacks.repository: "github.com/acme/shop"}}
        actions:
          - type: run-deployment
            deployment: {plan_deployment}
            parameters: {{workspace: "PR_{{{{ event.payload.number }}}}"}}
    """
    directory = write_automation(tmp_path / "a", body.replace("DESCRIPTION", "one"))
    assert automations.apply(directory)["created"] == [name]
    assert automations.apply(directory)["unchanged"] == [name]
    write_automation(directory, body.replace("DESCRIPTION", "two"))
    assert automations.apply(directory)["updated"] == [name]
    with get_client(sync_client=True) as client:
        found = client.read_automations_by_name(name)
    assert len(found) == 1 and found[0].description == "two"
    assert "prefect-stacks" in found[0].tags


@pytest.mark.parametrize(
    ("trigger", "parameters", "message"),
    [
        ("[stacks.git.commit]", '{workspace: "{{ event.payload.brnch }}"}', "brnch"),
        ("[stacks.git.commit]", "{w: \"{{ event.resource['stacks.tag'] }}\"}", "stacks.tag"),
        ("[stacks.git.commit]", '{w: "{{ event.paylod.sha }}"}', "event.paylod"),
        ("[stacks.git.comit]", "{w: x}", "not a prefect-stacks event"),
        ("[stacks.git.commit]", '{w: "{{ event.payload.sha "}', "does not parse"),
        # `number` is in every pull-request event but not in stacks.git.commit
        ('["stacks.*"]', '{w: "{{ event.payload.number }}"}', "not in stacks.git.commit"),
    ],
)
def test_a_bad_template_is_refused_and_nothing_is_applied(
    plan_deployment: str, tmp_path: Path, trigger: str, parameters: str, message: str
):
    name = "bad-" + uuid.uuid4().hex[:6]
    directory = write_automation(
        tmp_path / "bad",
        f"""
        automations:
          - name: {name}
            trigger: {{expect: {trigger}}}
            actions:
              - type: run-deployment
                deployment: {plan_deployment}
                parameters: {parameters}
        """,
    )
    with pytest.raises(ConfigurationError, match="a.yaml: automation") as raised:
        automations.apply(directory)
    assert message in str(raised.value)
    with get_client(sync_client=True) as client:
        assert client.read_automations_by_name(name) == []


def test_unknown_deployment_is_refused(prefect_harness, tmp_path: Path):
    directory = write_automation(
        tmp_path / "nodep",
        """
        automations:
          - name: no-deployment
            trigger: {expect: [stacks.git.commit]}
            actions: [{type: run-deployment, deployment: nope/nope}]
        """,
    )
    with pytest.raises(ConfigurationError, match="'nope/nope', which does not exist"):
        automations.apply(directory)


def test_the_shipped_automations_apply(prefect_harness):
    """deployments/automations/*.yaml parse and pass the template check (their
    deployments need not exist for --check)."""
    files = automations.load_files(automations.automations_dir())
    assert files, "no shipped automation files"
    for file in files:
        for raw in file.automations:
            ids = {a["deployment"]: uuid.uuid4() for a in raw["actions"] if "deployment" in a}
            automation = automations.build(raw, file.path.name, ids)
            assert automation.trigger.expect


def test_cli_apply_check_and_apply(plan_deployment: str, tmp_path: Path):
    from typer.testing import CliRunner

    from prefect_stacks._cli import app

    name = "cli-" + uuid.uuid4().hex[:6]
    directory = write_automation(
        tmp_path / "cli",
        f"""
        automations:
          - name: {name}
            trigger: {{expect: [stacks.image.updated]}}
            actions:
              - type: run-deployment
                deployment: {plan_deployment}
                parameters: {{workspace: "{{{{ event.payload.tg }}}}"}}
        """,
    )
    runner = CliRunner()
    bad = runner.invoke(app, ["automations", "apply", str(directory), "--check"])
    assert bad.exit_code == 1 and "`event.payload.tg` is not in stacks.image.updated" in bad.output
    (directory / "a.yaml").write_text((directory / "a.yaml").read_text().replace(".tg", ".tag"))
    ok = runner.invoke(app, ["automations", "apply", str(directory), "--check"])
    assert ok.exit_code == 0 and "1 automation(s) valid" in ok.output
    with get_client(sync_client=True) as client:
        assert client.read_automations_by_name(name) == []  # --check wrote nothing
    applied = runner.invoke(app, ["automations", "apply", str(directory)])
    assert applied.exit_code == 0 and f"created    {name}" in applied.output
    again = runner.invoke(app, ["automations", "apply", str(directory)])
    assert f"unchanged  {name}" in again.output


def test_the_same_change_seen_twice_runs_once(plan_deployment: str, tmp_path: Path):
    """A watcher and a webhook (or two watcher runs) report one change with one event
    id; Prefect's triggers skip an id they processed (for 30 minutes), so one run."""
    repository = f"github.com/acme/twice-{uuid.uuid4().hex[:6]}"
    directory = write_automation(
        tmp_path / "twice",
        f"""
        automations:
          - name: twice-{uuid.uuid4().hex[:6]}
            trigger:
              expect: [stacks.git.commit]
              match: {{stacks.repository: "{repository}"}}
            actions:
              - type: run-deployment
                deployment: {plan_deployment}
                parameters: {{variables: {{app_version: "{{{{ event.payload.sha }}}}"}}}}
        """,
    )
    automations.apply(directory)
    sha = uuid.uuid4().hex + "00000000"
    events.emit([events.git_commit(f"https://{repository}.git", "main", sha)])
    events.emit([events.git_commit(f"git@github.com:{repository.split('/', 1)[1]}", "main", sha)])

    def mine() -> list:
        return [
            r
            for r in runs_of(plan_deployment)
            if r.parameters.get("variables") == {"app_version": sha}
        ]

    deadline = time.monotonic() + 20
    while not mine() and time.monotonic() < deadline:
        time.sleep(0.25)
    time.sleep(3)  # the second event has long been processed by now
    assert len(mine()) == 1
