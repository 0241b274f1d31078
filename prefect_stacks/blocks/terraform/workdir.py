"""The object that runs terraform: a :class:`TerraformWorkdir` holds one checked-out copy
of a stack with everything needed to run it (binary, environment, values to mask,
variables, backend settings) and owns init, plan, apply, destroy, outputs and the
workspace commands. ``TerraformStack.prepare()`` builds it once; it never calls back
into the block (prefect-shell's ``ShellOperation.trigger()`` -> ``ShellProcess``).

python-terraform builds the argv (and writes non-secret variables to a 0600 tfvars file);
every command then runs through :func:`prefect_stacks._internal.process.run_process`,
which streams terraform's output to the run logger line by line and masks secrets. The
quirks of python-terraform 0.10.1 with Terraform >= 1.0 are kept in :class:`_Terraform`
and in the methods of :class:`TerraformWorkdir`, each with a test in
``tests/unit/test_terraform_quirks.py``.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr
from python_terraform import IsFlagged, IsNotFlagged, Terraform

from prefect_stacks._internal.process import (
    ProcessResult,
    default_logger,
    run_process,
    write_private_file,
)
from prefect_stacks.blocks.terraform.cli_config import explain_init_failure
from prefect_stacks.blocks.terraform.plan import PlanSummary, summarize_plan_json
from prefect_stacks.exceptions import StackError, StateLockedError

# python-terraform logs the variables it writes to its tfvars file and terraform's stderr
# through its own logger; our run logger already carries terraform's output (redacted).
logging.getLogger("python_terraform").setLevel(logging.CRITICAL)

_LOCK_ID_RE = re.compile(r"^\s*ID:\s*(\S+)", re.MULTILINE)


class StackOutputs(BaseModel):
    """Root-module outputs of a stack; sensitive values are kept as ``SecretStr``."""

    values: dict[str, Any] = Field(default_factory=dict, description="Non-sensitive outputs.")
    sensitive: dict[str, SecretStr] = Field(
        default_factory=dict, description="Sensitive outputs, never printed."
    )

    def __getitem__(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        return self.sensitive[name]

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default


class _Terraform(Terraform):
    """python-terraform with its ``cmd`` routed through our subprocess helper.

    python-terraform still builds every argv (options, flags, the tfvars file for
    ``var``); we run it with the stack's environment, stream output to the logger,
    mask secrets, and keep the last :class:`ProcessResult` for error messages.
    """

    def __init__(
        self,
        *,
        working_dir: str,
        terraform_bin_path: str,
        variables: dict[str, Any],
        env: dict[str, str],
        secrets: list[str],
    ) -> None:
        # Set before super().__init__: python-terraform's __getattr__ turns any missing
        # attribute into a terraform command.
        self._env = env
        self._secrets = secrets
        self.last_result: ProcessResult | None = None
        super().__init__(
            working_dir=working_dir,
            terraform_bin_path=terraform_bin_path,
            variables=variables,
        )

    def read_state_file(self, file_path: str | None = None) -> None:
        # Quirk: python-terraform parses ./terraform.tfstate after every command; state
        # lives in a backend (local path elsewhere, or pg/s3), so there is nothing to read.
        self.tfstate = None

    def cmd(self, cmd: str, *args: Any, **kwargs: Any) -> tuple[int, str, str]:
        stream = kwargs.pop("stream", True)
        for unsupported in ("capture_output", "raise_on_error", "synchronous"):
            kwargs.pop(unsupported, None)
        argv = self.generate_cmd_string(cmd, *args, **kwargs)
        try:
            result = run_process(
                argv,
                cwd=self.working_dir,
                env=self._env,
                secrets=self._secrets,
                # looked up per command: the workdir outlives the task that made it, and
                # each line belongs to the task (plan, apply ...) running it now
                logger=default_logger(),
                stream=stream,
                prefix=f"terraform {cmd.split()[0]}: ",
            )
        finally:
            self.temp_var_files.clean_up()
        self.last_result = result
        return result.returncode, result.stdout, result.stderr


def _workspace_missing(stderr: str) -> bool:
    return "doesn't exist" in stderr or "does not exist" in stderr


class TerraformWorkdir:
    """A prepared copy of a stack: source checked out into a private temporary directory
    ``root`` (the root module at ``path``), ready to run terraform in ``workspace``. Use
    it as a context manager so that the copy (and the plan files in it, which may hold
    secrets) is removed afterwards.

    Made by ``TerraformStack.prepare()``, which resolves the block once: ``env`` holds
    the unwrapped credentials and ``TF_VAR_*`` secrets, ``secrets`` the values masked
    in every logged line and error message.
    """

    def __init__(
        self,
        *,
        stack_name: str,
        path: Path,
        root: Path,
        workspace: str,
        terraform_bin: str,
        variables: dict[str, Any],
        env: dict[str, str],
        secrets: list[str],
        backend_config: dict[str, str],
        secret_backend_config: dict[str, SecretStr],
        lock_timeout: int,
        parallelism: int | None = None,
    ) -> None:
        self.stack_name = stack_name
        self.path = path
        self.root = root
        self.workspace = workspace
        self.secrets = secrets
        self.backend_config = backend_config
        self.secret_backend_config = secret_backend_config
        self.lock_timeout = lock_timeout
        self.parallelism = parallelism
        self.exists = True  # False when init found no such workspace and was told not to create it
        self._shown: tuple[tuple[str, int, int], dict[str, Any]] | None = None
        self._tf = _Terraform(
            working_dir=str(path),
            terraform_bin_path=terraform_bin,
            variables=variables,
            env=env,
            secrets=secrets,
        )

    def terraform(self) -> _Terraform:
        """The python-terraform object that builds and runs this copy's commands."""
        return self._tf

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> TerraformWorkdir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return f"TerraformWorkdir(stack={self.stack_name!r}, workspace={self.workspace!r})"

    # ----------------------------------------------------------------- errors
    def _raise_for(self, what: str) -> None:
        """Raise for the last command: StateLockedError when another run holds the lock
        (with the lock id and how to release it), else StackError with its stderr tail."""
        result = self._tf.last_result
        assert result is not None
        kwargs = dict(
            stack=self.stack_name,
            workspace=self.workspace,
            command=result.command,
            stderr_tail=result.stderr_tail(),
            returncode=result.returncode,
        )
        if "Error acquiring the state lock" in result.stderr:
            match = _LOCK_ID_RE.search(result.stderr)
            lock_id = match.group(1) if match else None
            raise StateLockedError(
                f"{what}: the state is locked by another run and was not released within "
                f"lock_timeout={self.lock_timeout}s; wait for that run, raise the block field "
                "`lock_timeout`, or if no run holds it: "
                f"`terraform force-unlock {lock_id or '<LOCK ID>'}`",
                lock_id=lock_id,
                **kwargs,
            )
        raise StackError(what, **kwargs)

    def _report_partial(self, what: str) -> None:
        """Raise for a failed apply/destroy, saying what the state holds now, so that a
        half-applied stack is never silent."""
        failed = self._tf.last_result
        try:
            remaining = self.state_list()
        except StackError:
            remaining = None
        if remaining is None:
            held = "the state could not be listed; inspect it before retrying"
        elif remaining:
            shown = ", ".join(remaining[:10]) + (" ..." if len(remaining) > 10 else "")
            held = f"the state now holds {len(remaining)} resource(s): {shown}"
        else:
            held = "the state holds no resources"
        self._tf.last_result = failed
        self._raise_for(
            f"{what}; {held}. Fix the cause and run the job again (it is safe "
            "to re-run: Terraform resumes from the state)"
        )

    # ----------------------------------------------------------------- commands
    def init(self, create_workspace: bool = True) -> None:
        """``terraform init`` and select the workspace. With ``create_workspace=False`` a
        missing workspace is not created: ``exists`` is then False, and destroy,
        state_list and delete_workspace treat it as already gone."""
        options: dict[str, Any] = {
            # dict -> one `-backend-config=key=value` per item (non-secret values only)
            "backend_config": dict(self.backend_config) or None,
        }
        if self.secret_backend_config:
            path = write_private_file(
                self.root / "backend.secret.tfbackend",
                "".join(
                    f"{k} = {json.dumps(v.get_secret_value())}\n"
                    for k, v in self.secret_backend_config.items()
                ),
            )
            # list -> `-backend-config=<file>`: secret values stay off the command line.
            options["backend-config"] = [str(path)]
        # Quirk: never pass a positional directory (removed in Terraform 0.15); the
        # working_dir is the root module. var=None: init needs no tfvars file.
        rc, _, _ = self._tf.init(
            reconfigure=IsFlagged,
            backend=True,
            var=None,
            lock_timeout=f"{self.lock_timeout}s",
            **options,
        )
        if rc != 0:
            self._raise_for(explain_init_failure(self._tf.last_result.stderr))
        self.exists = self.select_workspace(create=create_workspace)

    def select_workspace(self, create: bool = True) -> bool:
        """Select the workspace, creating it when ``create``; False when it does not
        exist (and was not created)."""
        rc, _, err = self._tf.cmd(
            "workspace select",
            self.workspace,
            or_create=True if create else None,
            no_color=IsFlagged,
        )
        if rc != 0:
            if not create and _workspace_missing(err):
                default_logger().info("workspace %r does not exist", self.workspace)
                return False
            self._raise_for(f"could not select workspace {self.workspace!r}")
        return True

    def plan(self, *, destroy: bool = False) -> PlanSummary:
        """Plan into a saved plan file in ``root``; its summary (secrets masked)."""
        plan_file = self.root / ("destroy.tfplan" if destroy else "apply.tfplan")
        # Quirk: plan runs with -detailed-exitcode: 0 = no changes, 2 = changes, 1 = error.
        rc, _, _ = self._tf.plan(
            detailed_exitcode=IsFlagged,
            out=str(plan_file),
            lock_timeout=f"{self.lock_timeout}s",
            destroy=IsFlagged if destroy else IsNotFlagged,
        )
        if rc not in (0, 2):
            self._raise_for("terraform plan failed")
        summary = self.show_plan(plan_file)
        summary.is_destroy = destroy
        return summary

    def plan_json(self, plan_file: Path) -> dict[str, Any]:
        """``terraform show -json`` of a saved plan, read once per file. It holds every
        variable value, secrets included: read what you need, never publish it."""
        stat = plan_file.stat()
        key = (str(plan_file), stat.st_mtime_ns, stat.st_size)
        if self._shown is not None and self._shown[0] == key:
            return self._shown[1]
        rc, out, _ = self._tf.cmd(
            "show", str(plan_file), json=IsFlagged, no_color=IsFlagged, stream=False
        )
        if rc != 0:
            self._raise_for("terraform show -json of the plan failed")
        self._shown = (key, json.loads(out))
        return self._shown[1]

    def show_plan(self, plan_file: Path) -> PlanSummary:
        summary = summarize_plan_json(
            self.plan_json(plan_file),
            stack=self.stack_name,
            workspace=self.workspace,
            secrets=self.secrets,
        )
        summary.plan_file = str(plan_file)
        return summary

    def apply(self, plan: PlanSummary | None = None) -> None:
        # parallelism=None: python-terraform leaves the flag out (terraform's 10)
        options = {"lock_timeout": f"{self.lock_timeout}s", "parallelism": self.parallelism}
        if plan is not None and plan.plan_file:
            # Quirk: applying a saved plan takes no -var/-var-file (they are in the plan),
            # so var=None; python-terraform adds `-auto-approve=false` for skip_plan=False,
            # which a saved plan ignores (it never prompts).
            rc, _, _ = self._tf.apply(plan.plan_file, skip_plan=False, var=None, **options)
        else:
            # Quirk: without a plan file, skip_plan=True is what adds -auto-approve.
            rc, _, _ = self._tf.apply(skip_plan=True, **options)
        if rc != 0:
            self._report_partial("terraform apply failed")

    def destroy(self) -> None:
        if not self.exists:
            default_logger().info("nothing to destroy: workspace %r is gone", self.workspace)
            return
        # Quirk: python-terraform defaults to `-force`, removed in Terraform 0.15;
        # `-auto-approve` is the flag now.
        rc, _, _ = self._tf.destroy(
            force=IsNotFlagged,
            auto_approve=IsFlagged,
            lock_timeout=f"{self.lock_timeout}s",
            parallelism=self.parallelism,
        )
        if rc != 0:
            self._report_partial("terraform destroy failed")

    def state_list(self) -> list[str]:
        if not self.exists:
            return []
        rc, out, _ = self._tf.cmd("state list", stream=False)
        if rc != 0:
            self._raise_for("terraform state list failed")
        return [line.strip() for line in out.splitlines() if line.strip()]

    def outputs(self) -> StackOutputs:
        # Quirk: output(name) breaks on Terraform >= 0.15 (-json with a name prints the bare
        # value); output(full_value=True) without a name returns every output with its
        # `sensitive` flag. It returns None on failure.
        # Values (sensitive ones included) are never streamed to the logs.
        raw = self._tf.output(full_value=True, no_color=IsFlagged, stream=False)
        if raw is None:
            self._raise_for("terraform output failed")
        result = StackOutputs()
        for name, item in (raw or {}).items():
            value = item.get("value")
            if item.get("sensitive"):
                result.sensitive[name] = SecretStr(
                    value if isinstance(value, str) else json.dumps(value)
                )
            else:
                result.values[name] = value
        return result

    def delete_workspace(self) -> bool:
        """Delete the workspace (which must be empty). Returns False when it did not
        exist. The default workspace cannot be deleted."""
        if self.workspace == "default" or not self.exists:
            return False
        rc, _, _ = self._tf.cmd("workspace select", "default", no_color=IsFlagged)
        if rc != 0:
            self._raise_for("could not switch to the default workspace")
        rc, _, err = self._tf.cmd(
            "workspace delete",
            self.workspace,
            no_color=IsFlagged,
            lock_timeout=f"{self.lock_timeout}s",
        )
        if rc != 0:
            if _workspace_missing(err):
                return False
            self._raise_for(f"could not delete workspace {self.workspace!r}")
        return True
