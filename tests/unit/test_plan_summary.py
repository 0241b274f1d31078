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


# A replace and an update as `terraform show -json` (Terraform 1.x) prints them.
SECRET = "s3cret-pw-value"
DETAILED = {
    "variables": {"pw": {"value": SECRET}, "v": {"value": "two"}},
    "configuration": {
        "root_module": {"variables": {"pw": {"sensitive": True}, "v": {"default": "one"}}}
    },
    "resource_changes": [
        {
            "address": "terraform_data.web",
            "mode": "managed",
            "action_reason": "replace_because_cannot_update",
            "change": {
                "actions": ["delete", "create"],
                "before": {
                    "id": "9fa47c23",
                    "input": "one",
                    "output": "one",
                    "triggers_replace": ["one"],
                    "big": "x" * 500,
                },
                "after": {"input": "two", "triggers_replace": ["two"], "big": "y" * 500},
                "after_unknown": {"id": True, "output": True, "triggers_replace": [False]},
                "before_sensitive": {"triggers_replace": [False]},
                "after_sensitive": {"triggers_replace": [False]},
                "replace_paths": [["triggers_replace"]],
            },
        },
        {
            "address": "terraform_data.sec",
            "mode": "managed",
            "change": {
                "actions": ["update"],
                "before": {
                    "id": "efce",
                    "input": {"name": "one", "pw": SECRET, "token": "tok-old"},
                    # not marked sensitive by Terraform, though it holds the secret
                    "output": {"name": "one", "pw": SECRET},
                    "note": f"pw={SECRET}",
                    "tags": {"env": "a", "same": "s"},
                },
                "after": {
                    "id": "efce",
                    "input": {"name": "two", "pw": SECRET, "token": "tok-new"},
                    "output": [SECRET],
                    "note": "pw=changed",
                    "tags": {"env": "b", "same": "s"},
                },
                "after_unknown": {"input": {}},
                "before_sensitive": {"input": {"pw": True, "token": True}},
                "after_sensitive": {"input": {"pw": True, "token": True}},
            },
        },
        _rc("terraform_data.new", ["create"]),
    ],
}


def _details(plan=DETAILED, **kwargs):
    s = summarize_plan_json(plan, stack="web", workspace="demo", **kwargs)
    return s, {r.address: r for r in s.resources}


def test_replace_shows_reason_and_forcing_attributes():
    s, by = _details()
    web = by["terraform_data.web"]
    assert web.action_reason == "replace_because_cannot_update"
    assert web.replace_paths == ["triggers_replace"]
    changes = {c.path: c for c in web.changes}
    # what forces the replacement comes first
    assert web.changes[0].path == "triggers_replace[0]" and web.changes[0].forces_replacement
    assert (changes["input"].before, changes["input"].after) == ("one", "two")
    assert changes["id"].after == "(known after apply)"
    assert changes["output"].after == "(known after apply)"
    md = s.to_markdown()
    assert "#### `terraform_data.web`: replace" in md
    assert "cannot be updated in place" in md and "forced by `triggers_replace`" in md
    assert "| `triggers_replace[0]` (forces replacement) | `one` → `two` |" in md
    assert "| `input` | `one` → `two` |" in md


def test_long_values_are_cut_and_create_lists_no_attributes():
    _, by = _details()
    big = next(c for c in by["terraform_data.web"].changes if c.path == "big")
    assert len(big.before) <= 60 and big.before.endswith("…")
    assert by["terraform_data.new"].changes == []


def test_sensitive_values_never_appear():
    s, by = _details(secrets=["tok-new"])
    changes = {c.path: c for c in by["terraform_data.sec"].changes}
    assert changes["input.name"].before == "one" and changes["input.name"].after == "two"
    assert changes["input.token"].before == "(sensitive)"
    assert changes["input.token"].after == "(sensitive)"
    assert "input.pw" not in changes  # sensitive on both sides and unchanged
    # Terraform does not mark `output` sensitive; it holds a sensitive variable's value
    assert changes["output"].before == "(sensitive)" == changes["output"].after
    assert changes["note"].before == "(sensitive)" and changes["note"].after == "pw=changed"
    assert changes["tags.env"].before == "a" and "tags.same" not in changes
    everything = s.to_markdown() + s.model_dump_json()
    assert SECRET not in everything and "tok-old" not in everything
    assert "tok-new" not in everything


def test_a_secret_at_the_cut_is_hidden_whole():
    plan = {
        "resource_changes": [
            {
                "address": "a.b",
                "mode": "managed",
                "change": {
                    "actions": ["update"],
                    "before": {"v": "p" * 55 + "topsecretvalue"},
                    "after": {"v": "q"},
                },
            }
        ]
    }
    s = summarize_plan_json(plan, stack="x", workspace="y", secrets=["topsecretvalue"])
    assert s.resources[0].changes[0].before == "(sensitive)"
    assert "topsec" not in s.to_markdown()


def test_table_cells_stay_one_cell():
    plan = {
        "resource_changes": [
            {
                "address": "a.b",
                "mode": "managed",
                "change": {
                    "actions": ["update"],
                    "before": {"v": "a|b`c\nd"},
                    "after": {"v": None},
                },
            }
        ]
    }
    md = summarize_plan_json(plan, stack="x", workspace="y").to_markdown()
    assert "| `v` | `a\\|b'c d` → _(none)_ |" in md
