"""One run of a playbook through ansible-runner (:class:`PlaybookRun`) and what it left
(:class:`PlaybookResult`: the recap per host)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect_stacks._internal.process import Redactor, default_logger, write_private_file
from prefect_stacks.blocks.ansible.events import Seen, event_logger
from prefect_stacks.exceptions import AnsibleError, ConfigurationError

if TYPE_CHECKING:
    from prefect_stacks.blocks.ansible.block import AnsiblePlaybook

RECAP_COLUMNS = ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored")
# "ERROR! ..." (ansible-core < 2.19) or "[ERROR]: ..." (2.19 on)
_ERROR_LINE = re.compile(r"^(?:ERROR!|\[ERROR\]:) (.+)$", re.MULTILINE)


@dataclass
class PlaybookResult:
    """What a playbook run left: the recap per host, and its status and exit code."""

    recap: dict[str, dict[str, int]]
    status: str
    rc: int
    check_mode: bool = False
    seen: Seen = field(default_factory=Seen)

    @property
    def hosts(self) -> list[str]:
        return sorted(self.recap)

    def hosts_with(self, column: str) -> list[str]:
        return sorted(h for h, counts in self.recap.items() if counts.get(column))

    def to_markdown(self, title: str) -> str:
        rows = [
            f"| {host} | "
            + " | ".join(str(counts.get(c, 0)) for c in RECAP_COLUMNS)
            + f" | {_verdict(counts)} |"
            for host, counts in sorted(self.recap.items())
        ]
        mode = " (check mode: nothing was changed)" if self.check_mode else ""
        return "\n".join(
            [
                f"# {title}{mode}",
                "",
                "| host | ok | changed | failed | unreachable | skipped | rescued | ignored "
                "| result |",
                "|---|---|---|---|---|---|---|---|---|",
                *(rows or ["| (no host ran) | | | | | | | | |"]),
            ]
        )


def _verdict(counts: dict[str, int]) -> str:
    if counts.get("dark"):
        return "**unreachable**"
    if counts.get("failures"):
        return "**failed**"
    return "changed" if counts.get("changed") else "ok"


@dataclass
class PlaybookRun:
    """One run of a playbook: a private 0700 directory with the secrets in 0600 files,
    ansible-runner started on it, each event logged as it arrives, the directory removed
    at the end whatever happens."""

    block: AnsiblePlaybook
    playbook: Path
    extra_vars: dict[str, Any]
    limit: str
    check_mode: bool
    tags: list[str] = field(default_factory=list)
    log: Any = field(default_factory=default_logger)

    def run(self) -> PlaybookResult:
        import ansible_runner

        redact = Redactor(self.block.secrets())
        seen = Seen()
        private = Path(tempfile.mkdtemp(prefix="prefect-stacks-ansible-"))
        try:
            cmdline, envvars = self._arguments(private)
            self.log.info(
                "ansible-playbook %s on %s%s%s",
                self.playbook.name,
                "the inline inventory" if "\n" in self.block.inventory else self.block.inventory,
                f", limit {self.limit}" if self.limit else "",
                ", check mode" if self.check_mode else "",
            )
            runner = ansible_runner.run(
                private_data_dir=str(private),
                project_dir=str(self.playbook.parent),
                playbook=self.playbook.name,
                inventory=self._inventory(private),
                cmdline=cmdline,
                envvars=envvars,
                limit=self.limit or None,
                forks=self.block.forks,
                timeout=self.block.timeout_seconds,
                event_handler=event_logger(self.log, redact, seen),
                suppress_env_files=True,
                quiet=True,
                settings={"suppress_ansible_output": True},
            )
            return self._result(runner, redact, seen)
        finally:
            shutil.rmtree(private, ignore_errors=True)

    def _arguments(self, private: Path) -> tuple[str, dict[str, str]]:
        args: list[str] = []
        envvars = {
            "PATH": ansible_bin_dir() + os.pathsep + os.environ.get("PATH", ""),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            **{k: v.get_secret_value() for k, v in self.block.env.items()},
        }
        if self.extra_vars:
            args += ["-e", "@" + str(_private_file(private, "extra_vars.json", self.extra_vars))]
        block = self.block
        if block.secret_vars:
            values = block.secret_vars.get_secret_value()
            args += ["-e", "@" + str(_private_file(private, "secret_vars.json", values))]
        if block.vault_password:
            path = _private_file(private, "vault", block.vault_password.get_secret_value())
            args += ["--vault-password-file", str(path)]
        if block.ssh_private_key:
            key = block.ssh_private_key.get_secret_value().strip() + "\n"
            envvars["ANSIBLE_PRIVATE_KEY_FILE"] = str(_private_file(private, "ssh_key", key))
        if block.remote_user:
            args += ["-u", block.remote_user]
        if block.become:
            args.append("--become")
        if self.check_mode:
            args += ["--check", "--diff"]
        if self.tags:
            args += ["--tags", ",".join(self.tags)]
        return " ".join(shlex.quote(a) for a in args), envvars

    def _inventory(self, private: Path) -> str:
        inventory = self.block.inventory
        if "\n" in inventory.strip():
            suffix = ".yml" if inventory.lstrip().startswith(("all:", "---")) else ".ini"
            return str(_private_file(private, "inventory" + suffix, inventory))
        path = Path(inventory).expanduser()
        if not path.exists():
            raise ConfigurationError(
                f"AnsiblePlaybook.inventory: {path} does not exist on this worker; give a "
                "path the worker can read, or paste the inventory itself"
            )
        return str(path.resolve())

    def _result(self, runner: Any, redact: Redactor, seen: Seen) -> PlaybookResult:
        stats = runner.stats or {}
        recap: dict[str, dict[str, int]] = {}
        for column in RECAP_COLUMNS:
            for host, count in (stats.get(column) or {}).items():
                recap.setdefault(host, {c: 0 for c in RECAP_COLUMNS})[column] = count
        for host in stats.get("processed") or {}:
            recap.setdefault(host, {c: 0 for c in RECAP_COLUMNS})
        result = PlaybookResult(recap, runner.status, runner.rc, self.check_mode, seen)
        failures = seen.failures
        failed, unreachable = result.hosts_with("failures"), result.hosts_with("dark")
        if failed or unreachable:
            parts = []
            if failed:
                parts.append(f"failed on {', '.join(failed)}")
            if unreachable:
                parts.append(f"could not reach {', '.join(unreachable)}")
            said = "; ".join(f"{host}: {failures[host]}" for host in sorted(failures))
            if "Decryption failed" in said:  # vaulted variables are opened when used
                parts.append(
                    "the vault password does not open the encrypted data: fix the block's "
                    "vault_password"
                )
            raise AnsibleError(
                f"playbook {self.playbook.name} {' and '.join(parts)}"
                + (f" ({_clip(said)})" if said else ""),
                failed_hosts=failed,
                unreachable_hosts=unreachable,
                recap=recap,
            )
        if runner.status == "timeout":
            raise AnsibleError(
                f"playbook {self.playbook.name} ran past the block's timeout_seconds "
                f"({self.block.timeout_seconds} s) and was stopped",
                recap=recap,
            )
        if runner.rc != 0:
            raise AnsibleError(self._why_it_did_not_run(runner, redact), recap=recap)
        if not recap:  # Ansible calls this a success; a job that touched nothing is not
            raise AnsibleError(self._nothing_matched())
        return result

    def _nothing_matched(self) -> str:
        return (
            f"playbook {self.playbook.name}: no host of the inventory matched"
            + (f" the limit {self.limit!r}" if self.limit else "")
            + "; fix the limit or the inventory"
        )

    def _why_it_did_not_run(self, runner: Any, redact: Redactor) -> str:
        """An exit code without a failed host: Ansible refused before (or outside) the
        tasks. Its ERROR! line says why; a vault password that opens nothing is named."""
        output = redact(runner.stdout.read() if runner.stdout else "")
        errors = _ERROR_LINE.findall(output)
        said = errors[-1].strip() if errors else output.strip()[-800:]
        if "no hosts to target" in output:
            return self._nothing_matched()
        if "Decryption failed" in output or "no vault secrets" in output:
            return (
                f"playbook {self.playbook.name}: the vault password does not open the "
                f"encrypted data (Ansible said: {said}); fix the block's vault_password"
            )
        return (
            f"ansible-playbook {self.playbook.name} exited {runner.rc} before running the "
            f"tasks: {said}; fix the playbook or the inventory it names"
        )


def _clip(text: str, limit: int = 1500) -> str:
    """An error message stays readable; the whole of each failure is in the log."""
    return text if len(text) <= limit else text[: limit - 20] + " ... (see the log)"


def ansible_bin_dir() -> str:
    """The directory of ``ansible-playbook``: on the PATH, else beside this Python (a
    worker started from a virtualenv it did not activate; ansible-core is a dependency).
    It goes first on the PATH of the run, so the playbook's own tools are the same."""
    found = shutil.which("ansible-playbook") or shutil.which(
        "ansible-playbook", path=str(Path(sys.executable).parent)
    )
    if found is None:
        raise ConfigurationError(
            "ansible-playbook is not installed on this worker: pip install ansible-core "
            "(prefect-stacks depends on it) in the worker's environment"
        )
    return str(Path(found).parent)


def _private_file(directory: Path, name: str, content: Any) -> Path:
    """A 0600 file in the run's private directory (JSON unless it is text already)."""
    text = content if isinstance(content, str) else json.dumps(content)
    return write_private_file(directory / name, text)
