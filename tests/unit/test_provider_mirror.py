"""``TerraformStack.provider_mirror``: the CLI configuration an air-gapped worker needs
(a mirror and no `direct {}` source), written per run and handed to terraform by
``TF_CLI_CONFIG_FILE``; bad values refused naming the field."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from prefect_stacks.blocks.terraform import TerraformStack
from prefect_stacks.exceptions import ConfigurationError
from tests.conftest import write_stack


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_stack(tmp_path / "src", 'resource "terraform_data" "a" {}\n')


def stack(source: Path, tmp_path: Path, fake_terraform, mirror: str | None) -> TerraformStack:
    binary, _, _ = fake_terraform
    return TerraformStack(
        source=str(source),
        terraform_path=str(binary),
        state_dir=str(tmp_path / "state"),
        provider_mirror=mirror,
    )


def test_a_directory_mirror_is_the_only_source_terraform_is_given(source, tmp_path, fake_terraform):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    _, calls, _ = fake_terraform
    with stack(source, tmp_path, fake_terraform, str(mirror)).prepare() as wd:
        wd.init()
        root = wd.root
    config = Path(calls()[0]["env"]["TF_CLI_CONFIG_FILE"])
    text = calls()[0]["cli_config"]
    assert config.is_relative_to(root)  # private to this run, removed with it
    assert all(c["env"]["TF_CLI_CONFIG_FILE"] == str(config) for c in calls())
    assert f'filesystem_mirror {{\n    path = "{mirror.resolve()}"' in text
    assert not re.search(r"^\s*direct\s*\{", text, re.MULTILINE)  # no registry fallback
    assert not config.exists()


def test_an_https_mirror_is_a_network_mirror(source, tmp_path, fake_terraform):
    _, calls, _ = fake_terraform
    https = stack(source, tmp_path, fake_terraform, "https://mirror.example/providers")
    with https.prepare() as wd:
        wd.init()
    text = calls()[0]["cli_config"]
    assert 'network_mirror {\n    url = "https://mirror.example/providers/"' in text


def test_without_a_mirror_terraform_keeps_its_own_cli_config(source, tmp_path, fake_terraform):
    _, calls, _ = fake_terraform
    with stack(source, tmp_path, fake_terraform, None).prepare() as wd:
        wd.init()
    assert calls()[0]["env"]["TF_CLI_CONFIG_FILE"] == os.environ.get("TF_CLI_CONFIG_FILE") or (
        calls()[0]["env"]["TF_CLI_CONFIG_FILE"] == os.devnull
    )
    assert "cli_config" not in calls()[0] or "provider_mirror" not in calls()[0]["cli_config"]


def test_a_plain_http_mirror_is_refused_when_the_block_is_made(source):
    with pytest.raises(ValidationError, match="must be an https:// URL"):
        TerraformStack(source=str(source), provider_mirror="http://mirror.example/")


def test_a_missing_mirror_directory_names_the_field(source, tmp_path, fake_terraform):
    missing = tmp_path / "no-such-mirror"
    with pytest.raises(ConfigurationError, match="provider_mirror") as exc:
        stack(source, tmp_path, fake_terraform, str(missing)).prepare()
    assert str(missing) in str(exc.value)
