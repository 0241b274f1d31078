"""tests/testbed/build.py's own logic, without building anything: where components land
(keyed by version, so a new pin is a new build), the wrapper go.mod it writes, the
replace directives it carries over, what counts as the proxy refusing a module, and the
vendored provider sources (packed deterministically, checked against their sha256)."""

from __future__ import annotations

import gzip
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
import tomllib

from tests.testbed import build, sources


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
    assert set(pins["providers"]) == {"kubernetes", "helm", "postgresql", "github", "scaleway"}


# --------------------------------------------------------------------------- vendored sources
def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid",
         "-c", "init.defaultBranch=main", *args],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


@pytest.fixture
def provider_repo(tmp_path: Path) -> Path:
    """A small provider repository with a release tag: what `go build` reads, and the rest."""
    repo = tmp_path / "terraform-provider-demo"
    files = {
        "go.mod": "module example.com/terraform-provider-demo\n\ngo 1.24.0\n",
        "go.sum": "",
        "LICENSE": "Mozilla Public License Version 2.0\n",
        "README.md": "# demo\n",
        "main.go": 'package main\n\nimport _ "embed"\n\n//go:embed assets/*.txt\n'
        "var greeting string\n\nfunc main() {}\n",
        "main_test.go": "package main\n",
        "assets/hello.txt": "hi\n",
        "assets/other.json": "{}\n",
        "internal/api/api.go": "package api\n",
        "internal/api/api_test.go": "package api\n",
        "internal/test/helper.go": "package test\n",
        "testdata/fixture.go": "package fixture\n",
        "docs/index.md": "docs\n",
        "examples/main.go": "package main\n",
        ".github/workflows/build.yml": "on: push\n",
        "tools/tools.go": '//go:build tools\n\npackage tools\n\nimport _ "example.com/gen"\n',
    }
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "release")
    git(repo, "tag", "v1.0.0")
    return repo / ".git"


def demo_versions(tmp_path: Path, git_dir: Path, sha256: str = "") -> dict:
    pins = versions()
    pins["providers"]["demo"] = {
        "address": "registry.terraform.io/example/demo",
        "module": "example.com/terraform-provider-demo",
        "version": "1.0.0",
        "tag": "v1.0.0",
        "commit": sources.tag_commit(git_dir, "v1.0.0"),
        "source": str(tmp_path / "vendor" / "provider-demo-1.0.0.tar.gz"),
        "sha256": sha256,
    }
    return pins


def test_the_pack_holds_only_what_go_build_reads_and_the_licence(tmp_path, provider_repo):
    pins = demo_versions(tmp_path, provider_repo)
    assert build.vendor(["demo", "--from", str(provider_repo)], pins) == 0
    with tarfile.open(pins["providers"]["demo"]["source"], "r:gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == [
        f"terraform-provider-demo-1.0.0/{n}"
        for n in ("LICENSE", "assets/hello.txt", "go.mod", "go.sum", "internal/api/api.go",
                  "main.go")
    ]  # fmt: skip
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {
        (0, 0, 0, "", "", 0o644)
    }


def test_packing_twice_gives_the_same_bytes(tmp_path, provider_repo, capsys):
    pins = demo_versions(tmp_path, provider_repo)
    archive = Path(pins["providers"]["demo"]["source"])
    assert build.vendor(["demo", "--from", str(provider_repo)], pins) == 0
    first = archive.read_bytes()
    archive.unlink()
    assert build.vendor(["provider-demo", "--from", str(provider_repo)], pins) == 0
    assert archive.read_bytes() == first
    assert first[4:8] == b"\0\0\0\0"  # gzip's own mtime
    assert gzip.decompress(first)  # one valid stream
    printed = capsys.readouterr().out
    assert f'sha256 = "{sources.sha256(archive)}"' in printed
    assert "put the sha256 above in [providers.demo]" in printed  # the pin is still empty


def test_vendor_refuses_a_tag_that_is_not_the_pinned_commit(tmp_path, provider_repo, capsys):
    pins = demo_versions(tmp_path, provider_repo)
    pins["providers"]["demo"]["commit"] = "0" * 40
    assert build.vendor(["demo", "--from", str(provider_repo)], pins) == 1
    err = capsys.readouterr().err
    assert "tag v1.0.0" in err and "0" * 40 in err
    assert not Path(pins["providers"]["demo"]["source"]).exists()


def test_a_checksum_mismatch_fails_the_build_naming_the_file_and_both_hashes(
    tmp_path, provider_repo
):
    pins = demo_versions(tmp_path, provider_repo)
    build.vendor(["demo", "--from", str(provider_repo)], pins)
    archive = Path(pins["providers"]["demo"]["source"])
    actual = sources.sha256(archive)
    pins["providers"]["demo"]["sha256"] = pinned = "ab" * 32
    c = build.components(pins, tmp_path / "cache")["provider-demo"]
    c.directory.mkdir(parents=True)
    old = {"component": c.label, "command": "go mod download", "workdir": "", "tail": "403",
           "proxy_refused": True, "at": "2026-01-01T00:00:00Z"}  # fmt: skip
    (c.directory / ".refused").write_text(json.dumps(old))
    outcome = build.Outcome()
    build.run_component(c, build.build_provider, pins["providers"]["demo"], {}, outcome)
    assert outcome.failed == ["provider-demo"] and outcome.refused == []
    record = json.loads((c.directory / ".refused").read_text())
    assert record["proxy_refused"] is False  # failed, not refused: CI fails, it never skips
    assert str(archive) in record["tail"]
    assert pinned in record["tail"] and actual in record["tail"]
    assert not (c.directory / "terraform-provider-demo-1.0.0").exists()  # never unpacked


def test_an_archive_unpacks_into_the_component_directory_replacing_an_old_copy(
    tmp_path, provider_repo
):
    pins = demo_versions(tmp_path, provider_repo)
    build.vendor(["demo", "--from", str(provider_repo)], pins)
    archive = Path(pins["providers"]["demo"]["source"])
    stale = tmp_path / "c" / "terraform-provider-demo-1.0.0" / "stale.go"
    stale.parent.mkdir(parents=True)
    stale.write_text("package main\n")
    top = sources.unpack(archive, tmp_path / "c")
    assert top == stale.parent and not stale.exists()
    assert (top / "assets/hello.txt").read_text() == "hi\n"


def test_a_build_of_an_older_vendored_archive_is_not_complete_and_a_refusal_never_wins(
    tmp_path,
):
    c = build.components(versions(), tmp_path)["provider-helm"]
    assert c.source_sha256 == versions()["providers"]["helm"]["sha256"]
    c.directory.mkdir(parents=True)
    c.path().write_text("")
    c.installed.parent.mkdir(parents=True)
    c.installed.write_text("")
    (c.directory / ".refused").write_text(json.dumps({"proxy_refused": True}))
    (c.directory / ".complete").write_text(json.dumps({"source_sha256": "old"}))
    assert not c.complete and c.refusal == {"proxy_refused": True}
    (c.directory / ".complete").write_text(json.dumps({"source_sha256": c.source_sha256}))
    assert c.complete and c.refusal is None


def test_every_vendored_archive_in_the_checkout_matches_its_pin():
    vendored = {n: s for n, s in versions()["providers"].items() if s.get("source")}
    assert set(vendored) == {"kubernetes", "helm", "postgresql"}
    for name, spec in vendored.items():
        archive = build.HERE / spec["source"]
        assert archive.name == f"provider-{name}-{spec['version']}.tar.gz"
        sources.verify(archive, spec["sha256"])
        assert len(spec["commit"]) == 40 and spec["tag"] == f"v{spec['version']}"
