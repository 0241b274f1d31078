"""Where terraform installs providers from: the block's ``provider_mirror``.

An air-gapped worker cannot reach registry.terraform.io. Terraform's answer is a CLI
configuration whose ``provider_installation`` names a mirror and no ``direct {}``
source, so no registry is ever asked: a local directory (the layout of
``terraform providers mirror``, packed zips or unpacked binaries) or an https network
mirror. prefect-stacks writes that file into the run's private directory and points
``TF_CLI_CONFIG_FILE`` at it. And when ``terraform init`` fails to install a provider,
:func:`explain_init_failure` says what to fix.
"""

from __future__ import annotations

import json
from pathlib import Path

from prefect_stacks.exceptions import ConfigurationError

CLI_CONFIG_FILE = "terraform.rc"


def check_provider_mirror(value: str | None) -> str | None:
    """The field's own check: an https URL or a directory path (existence is checked on
    the worker, where terraform runs)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if "://" in value and not value.startswith("https://"):
        raise ValueError(
            f"{value!r}: a network mirror must be an https:// URL (terraform refuses "
            "others); a local mirror is a directory path"
        )
    return value


def write_cli_config(dest_dir: Path, mirror: str, stack: str) -> Path:
    """Write the CLI config for ``mirror`` into ``dest_dir``; its path."""
    if mirror.startswith("https://"):
        source = f"  network_mirror {{\n    url = {json.dumps(mirror.rstrip('/') + '/')}\n  }}\n"
    else:
        path = Path(mirror).expanduser().resolve()
        if not path.is_dir():
            raise ConfigurationError(
                f"TerraformStack {stack!r}: provider_mirror {mirror!r} is not a directory on "
                "this worker; fix the block field `provider_mirror` (a directory made by "
                "`terraform providers mirror`, or an https:// network mirror) or clear it."
            )
        source = f"  filesystem_mirror {{\n    path = {json.dumps(str(path))}\n  }}\n"
    config = dest_dir / CLI_CONFIG_FILE
    config.write_text(
        "# Written by prefect-stacks: providers come from the block's provider_mirror\n"
        "# only; without a direct {} source no registry is asked.\n"
        "disable_checkpoint = true\n"
        f"provider_installation {{\n{source}}}\n"
    )
    return config


def explain_init_failure(stderr: str) -> str:
    """What to fix when ``terraform init`` failed, for the failures with a known fix."""
    stderr = " ".join(stderr.split())  # terraform wraps its messages
    if "was not found in any of the search locations" in stderr:
        return (
            "terraform init failed: a provider the configuration requires is in none of "
            "terraform's provider sources (with the block field `provider_mirror` set, "
            "that mirror is the only one); add it to the mirror (`terraform providers "
            "mirror <dir>`) or fix `provider_mirror`"
        )
    if "checksums previously recorded in the dependency lock file" in stderr:
        return (
            "terraform init failed: the configuration's .terraform.lock.hcl records other "
            "builds of a provider than the ones installed here (a mirror's own builds); "
            "regenerate it with `terraform providers lock -fs-mirror=<dir> "
            "-platform=linux_amd64` or remove it"
        )
    return "terraform init failed; fix the configuration or backend"
