"""tests/testbed/build.py's own logic, without building anything: where components land
(keyed by version, so a new pin is a new build), the wrapper go.mod it writes, the
replace directives it carries over, and what counts as the proxy refusing a module."""

from __future__ import annotations

from pathlib import Path

import tomllib

from tests.testbed import build


def versions() -> dict:
    return build.load_versions()


def test_every_component_lands_under_a_directory_named_by_its_version(tmp_path):
    found = build.components(versions(), tmp_path)
    assert (
        found["kubernetes"].directory
        == tmp_path / f"kubernetes-{versions()['kubernetes']['version']}"
    )
    bumped = versions()
    bumped["kubernetes"]["version"] = "v1.99.0"
    assert build.components(bumped, tmp_path)["kubernetes"].directory.name == "kubernetes-v1.99.0"
    github = found["provider-github"]
    assert github.installed == (
        tmp_path / "providers/registry.terraform.io/integrations/github"
        / f"{github.version}/linux_amd64/terraform-provider-github_v{github.version}"
    )  # fmt: skip


def test_a_component_is_complete_only_with_its_record_and_every_output(tmp_path):
    kwok = build.components(versions(), tmp_path)["kwok"]
    assert not kwok.complete
    (kwok.directory / "bin").mkdir(parents=True)
    (kwok.directory / "bin/kwokctl").write_text("")
    (kwok.directory / ".complete").write_text("{}")
    assert not kwok.complete  # kwok itself is missing
    (kwok.directory / "bin/kwok").write_text("")
    assert kwok.complete


def test_the_cli_config_names_only_the_mirror(tmp_path):
    text = build.write_cli_config(tmp_path).read_text()
    assert f'path = "{tmp_path / "providers"}"' in text
    assert "direct" not in text.replace("# written by", "")
    assert "network_mirror" not in text


def test_the_wrapper_module_carries_staging_and_upstream_replaces(tmp_path):
    upstream = {
        "Replace": [
            {"Old": {"Path": "k8s.io/api"}, "New": {"Path": "./staging/src/k8s.io/api"}},
            {
                "Old": {"Path": "github.com/moby/term"},
                "New": {"Path": "github.com/moby/term", "Version": "v0.0.0-2020-dbdd9cc6608d"},
            },
        ]
    }
    replaces = build.copied_replaces(upstream)
    assert replaces == [("github.com/moby/term", "github.com/moby/term v0.0.0-2020-dbdd9cc6608d")]
    build.wrapper_module(
        tmp_path, "kubernetes", {"k8s.io/kubernetes": "v1.36.3"},
        [("k8s.io/api", "k8s.io/api v0.36.3"), *replaces], ["default=go1.26"],
        ["k8s.io/kubernetes/cmd/kubectl"],
    )  # fmt: skip
    gomod = (tmp_path / "go.mod").read_text()
    assert "require k8s.io/kubernetes v1.36.3" in gomod
    assert "replace k8s.io/api => k8s.io/api v0.36.3" in gomod
    assert "godebug default=go1.26" in gomod
    assert '_ "k8s.io/kubernetes/cmd/kubectl"' in (tmp_path / "tools.go").read_text()


def test_a_refusal_by_the_proxy_is_told_apart_from_a_compile_error(tmp_path: Path):
    refused = build.Refused(
        ["go", "mod", "tidy"],
        "reading https://proxy.golang.org/x/@v/list: 403 Forbidden\n"
        "\tserver response: This module version is not available.",
        tmp_path,
    )
    assert refused.proxy
    broken = build.Refused(["go", "build"], "main.go:3:1: syntax error", tmp_path)
    assert not broken.proxy
    assert "syntax error" in str(broken) and "go build" in str(broken)


def test_the_pins_are_one_file_with_every_component():
    with build.VERSIONS.open("rb") as fh:
        pins = tomllib.load(fh)
    assert {"kubernetes", "etcd", "kwok", "helm", "terraform", "providers"} <= set(pins)
    assert set(pins["providers"]) == {"kubernetes", "helm", "postgresql", "github"}
