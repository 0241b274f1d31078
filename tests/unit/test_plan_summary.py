"""Plan summaries are counted the way `terraform plan` prints them."""

from __future__ import annotations

from prefect_stacks.blocks.terraform import artifact_key, summarize_plan_json


def _rc(address: str, actions: list[str], mode: str = "managed") -> dict:
    return {"address": address, "mode": mode, "change": {"actions": actions}}


PLAN = {
    "resource_changes": [
        _rc("terraform_data.new", ["create"]),
        _rc("terraform_data.changed", ["update"]),
        _rc("terraform_data.replaced", ["delete", "create"]),
        _rc("terraform_data.cbd", ["create", "delete"]),
        _rc("terraform_data.gone", ["delete"]),
        _rc("terraform_data.same", ["no-op"]),
        _rc("data.terraform_remote_state.x", ["read"], mode="data"),
    ],
    "output_changes": {
        "url": {"actions": ["update"]},
        "unchanged": {"actions": ["no-op"]},
    },
}


def test_counts_match_terraform_cli_semantics():
    s = summarize_plan_json(PLAN, stack="web", workspace="demo-1")
    # terraform prints: 3 to add, 1 to change, 3 to destroy
    assert (s.add, s.change, s.destroy) == (3, 1, 3)
    assert [r.address for r in s.resources] == [
        "terraform_data.new",
        "terraform_data.changed",
        "terraform_data.replaced",
        "terraform_data.cbd",
        "terraform_data.gone",
    ]
    assert [r.action for r in s.resources] == ["create", "update", "replace", "replace", "delete"]
    assert s.output_changes == ["url"]
    assert s.has_changes
    assert s.headline() == "web/demo-1: 3 to add, 1 to change, 3 to destroy."


def test_empty_plan_has_no_changes():
    s = summarize_plan_json({"format_version": "1.2"}, stack="web", workspace="default")
    assert not s.has_changes
    assert s.headline() == "web/default: no changes."
    assert "No resource changes." in s.to_markdown()


def test_output_only_change_counts_as_a_change():
    s = summarize_plan_json(
        {"output_changes": {"url": {"actions": ["create"]}}}, stack="a", workspace="b"
    )
    assert s.has_changes and (s.add, s.change, s.destroy) == (0, 0, 0)


def test_markdown_table_lists_each_resource_and_totals():
    md = summarize_plan_json(PLAN, stack="web", workspace="demo-1").to_markdown()
    assert "| 3 | 1 | 3 |" in md
    assert "| `terraform_data.replaced` | replace |" in md
    assert "| `terraform_data.same`" not in md
    assert "`url`" in md


def test_artifact_keys_are_valid_prefect_keys():
    assert artifact_key("plan", "My Stack", "PR_42") == "plan-my-stack-pr-42"
    assert artifact_key("plan", "a//b", "--") == "plan-a-b"
