"""The ``AnsiblePlaybook`` block: configuration only; :meth:`AnsiblePlaybook.prepare`
hands back the :class:`~prefect_stacks.blocks.ansible.run.PlaybookRun`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect.types import SecretDict
from pydantic import Field, SecretStr, field_validator

from prefect_stacks._internal.data import playbook_path
from prefect_stacks.blocks.ansible.run import PlaybookResult, PlaybookRun
from prefect_stacks.blocks.base import StacksBlock
from prefect_stacks.exceptions import ConfigurationError


class AnsiblePlaybook(StacksBlock):
    """An Ansible playbook, the inventory it runs on and its options, run through
    ansible-runner with every task's result in the Prefect run log as it happens.

    Example:
        ```python
        from prefect_stacks.blocks.ansible import AnsiblePlaybook

        playbook = AnsiblePlaybook.load("BLOCK_NAME")
        result = playbook.run(extra_vars={"maintenance_state": "on"}, limit="web")
        print(result.recap)
        ```
    """

    _block_type_name = "Ansible Playbook"
    _block_type_slug = "ansible-playbook"
    _logo_url = "https://upload.wikimedia.org/wikipedia/commons/2/24/Ansible_logo.svg"
    _documentation_url = "https://ansible.readthedocs.io/projects/runner/en/latest/"
    _description = "An Ansible playbook and its inventory, run with each task's result logged."

    playbook: str = Field(
        default=...,
        description="Path of the playbook on the worker, or the name of one shipped with "
        "prefect-stacks: `maintenance-nginx`.",
    )
    inventory: str = Field(
        default=...,
        description="Path of an inventory file or directory on the worker, or the "
        "inventory itself (INI or YAML, several lines).",
    )
    limit: str = Field(
        default="", description="Host pattern to run on (`--limit`); empty: every host."
    )
    extra_vars: dict[str, Any] = Field(
        default_factory=dict, description="Variables passed with `-e` (not secret)."
    )
    secret_vars: SecretDict | None = Field(
        default=None,
        description="Secret variables: passed in a 0600 file (`-e @file`), masked in logs.",
    )
    vault_password: SecretStr | None = Field(
        default=None, description="Password of the Ansible Vault data the playbook reads."
    )
    ssh_private_key: SecretStr | None = Field(
        default=None, description="SSH private key (PEM/OpenSSH) to reach the hosts."
    )
    remote_user: str = Field(default="", description="SSH user (`-u`); empty: Ansible's.")
    become: bool = Field(default=False, description="Run the tasks with privilege (`--become`).")
    check_mode: bool = Field(
        default=False, description="Only report what would change (`--check --diff`)."
    )
    forks: int = Field(default=10, ge=1, le=200, description="Hosts handled in parallel.")
    timeout_seconds: int = Field(
        default=3600, ge=1, description="Stop the playbook after this many seconds."
    )
    env: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Environment variables for ansible-playbook and its modules (e.g. a "
        "cloud credential of a dynamic inventory); masked in logs.",
    )

    @field_validator("playbook", "inventory")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    def run(
        self,
        *,
        extra_vars: dict[str, Any] | None = None,
        limit: str | None = None,
        check_mode: bool | None = None,
        tags: list[str] | None = None,
    ) -> PlaybookResult:
        """Run the playbook (the arguments override the block's) and return its recap;
        a failed or unreachable host raises :class:`AnsibleError` naming it."""
        return self.prepare(
            extra_vars=extra_vars, limit=limit, check_mode=check_mode, tags=tags
        ).run()

    def prepare(self, **overrides: Any) -> PlaybookRun:
        """The run, not started: what :meth:`run` executes."""
        check = overrides.get("check_mode")
        limit = overrides.get("limit")
        return PlaybookRun(
            block=self,
            playbook=self.playbook_file(),
            extra_vars={**self.extra_vars, **(overrides.get("extra_vars") or {})},
            limit=self.limit if limit is None else limit,
            check_mode=self.check_mode if check is None else check,
            tags=list(overrides.get("tags") or []),
        )

    def playbook_file(self) -> Path:
        """The playbook's path: a shipped one by name, else the path as given."""
        if "/" not in self.playbook and not self.playbook.endswith((".yml", ".yaml")):
            try:
                return playbook_path(self.playbook)
            except FileNotFoundError as exc:
                raise ConfigurationError(f"AnsiblePlaybook.playbook: {exc}") from None
        path = Path(self.playbook).expanduser()
        if not path.is_file():
            raise ConfigurationError(
                f"AnsiblePlaybook.playbook: {path} is not a file on this worker; give a "
                "path the worker can read, or the name of a shipped playbook"
            )
        return path.resolve()

    def secrets(self) -> list[str]:
        values = [s.get_secret_value() for s in (self.vault_password, self.ssh_private_key) if s]
        values += [v.get_secret_value() for v in self.env.values()]
        if self.secret_vars:
            values += [str(v) for v in self.secret_vars.get_secret_value().values()]
        return values
