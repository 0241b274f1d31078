"""Terraform stacks: the ``TerraformStack`` block and its tasks.

The block is the "hook" (where the configuration comes from, how terraform is invoked,
which credentials it gets); the module-level tasks are the "operators" flows compose::

    from prefect_stacks.blocks.terraform import (
        TerraformStack, terraform_init, terraform_plan, terraform_apply,
    )

    stack = TerraformStack.load("local-webapp")
    with terraform_init(stack, workspace="demo-1") as workdir:
        plan = terraform_plan(workdir)
        if plan.has_changes:
            terraform_apply(workdir, plan)

python-terraform builds the argv (and writes non-secret variables to a 0600 tfvars file);
every command then runs through :func:`prefect_stacks._internal.process.run_process`, which streams
terraform's output to the run logger line by line and masks secrets. The quirks of
python-terraform 0.10.1 with Terraform >= 1.0 are kept in :class:`_Terraform` and in the
methods of :class:`TerraformStack`, each with a test in ``tests/unit/test_terraform_quirks.py``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field, SecretStr, field_validator
from python_terraform import IsFlagged, IsNotFlagged, Terraform

from prefect_stacks._internal.git import auth_env
from prefect_stacks._internal.process import (
    ProcessResult,
    default_logger,
    run_process,
    write_private_file,
)
from prefect_stacks.blocks.base import StacksBlock, load_block
from prefect_stacks.blocks.terraform.plan import (
    AttributeChange,
    PlanSummary,
    ResourceChange,
    summarize_plan_json,
)
from prefect_stacks.exceptions import ConfigurationError, StackError, StateLockedError
from prefect_stacks.settings import get_settings

# python-terraform logs the variables it writes to its tfvars file and terraform's stderr
# through its own logger; our run logger already carries terraform's output (redacted).
logging.getLogger("python_terraform").setLevel(logging.CRITICAL)

_WORKSPACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,89}$")
_VARIABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_GIT_REF_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./+-]{0,254}$")
_BACKEND_RE = re.compile(r'^\s*(backend\s+"[^"]+"|cloud)\s*\{', re.MULTILINE)
_LOCK_ID_RE = re.compile(r"^\s*ID:\s*(\S+)", re.MULTILINE)
_GIT_SCHEMES = ("https://", "http://", "ssh://", "git://", "file://", "git@", "git::")
_BACKEND_OVERRIDE_FILE = "zz_prefect_stacks_backend_override.tf"


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
    ``var``); we run it with the block's environment, stream output to the logger,
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


class TerraformWorkdir:
    """A prepared copy of a stack: source checked out into a private temporary directory,
    ``terraform init`` done, workspace selected. Use it as a context manager so that the
    copy (and the plan files in it, which may hold secrets) is removed afterwards."""

    def __init__(self, stack: TerraformStack, path: Path, workspace: str, root: Path) -> None:
        self.stack = stack
        self.path = path
        self.workspace = workspace
        self.root = root
        self.exists = True  # False when init found no such workspace and was told not to create it
        self._tf: _Terraform | None = None

    @property
    def stack_name(self) -> str:
        return self.stack.display_name

    def terraform(self) -> _Terraform:
        if self._tf is None:
            self._tf = self.stack._terraform(self)
        return self._tf

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> TerraformWorkdir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return f"TerraformWorkdir(stack={self.stack_name!r}, workspace={self.workspace!r})"


class TerraformStack(StacksBlock):
    """A Terraform configuration run as a stack: where its code comes from (a local
    directory or a git repository), the workspace, variables (plain and secret), provider
    credentials, and the backend that holds its state and lock.

    Example:
        Load a stored stack and apply it into a workspace:
        ```python
        from prefect_stacks.blocks.terraform import TerraformStack, terraform_init, terraform_plan, terraform_apply

        stack = TerraformStack.load("BLOCK_NAME")
        with terraform_init(stack, workspace="demo-1") as workdir:
            plan = terraform_plan(workdir)
            terraform_apply(workdir, plan)
        ```
    """  # noqa: E501

    _block_type_name = "Terraform Stack"
    _block_type_slug = "terraform-stack"
    _logo_url = "https://www.datocms-assets.com/2885/1620155116-brandhcterraformverticalcolor.svg"  # noqa: E501
    _documentation_url = "https://developer.hashicorp.com/terraform/cli/commands"
    _description = (
        "A Terraform configuration (local directory or git repository) with its workspace, "
        "variables, credentials and backend, run by prefect-stacks flows."
    )

    source: str = Field(
        default=...,
        description=(
            "Where the Terraform configuration lives: a local directory, or a git URL "
            "(https://, ssh://, file://, git@host:org/repo.git) cloned per run."
        ),
    )
    git_ref: str | None = Field(
        default=None,
        description="Branch, tag or commit to check out when the source is a git URL.",
    )
    subdirectory: str | None = Field(
        default=None,
        description="Directory of the root module inside the source, e.g. `stacks/app`.",
    )
    git_token: SecretStr | None = Field(
        default=None,
        description=(
            "Token for a private https git source; sent as an HTTP header through the "
            "environment, never on the command line."
        ),
    )
    workspace: str = Field(
        default="default",
        description="Terraform workspace used when a flow names none; created on demand.",
    )
    variables: dict[str, Any] = Field(
        default_factory=dict,
        description="Input variables, written to a 0600 tfvars file for each command.",
    )
    secret_variables: dict[str, SecretStr] = Field(
        default_factory=dict,
        description=(
            "Sensitive input variables; they reach terraform only as TF_VAR_* in its "
            "environment and are masked in logs."
        ),
    )
    env: dict[str, SecretStr] = Field(
        default_factory=dict,
        description=(
            "Environment variables for terraform and its providers, e.g. cloud credentials "
            "(AWS_ACCESS_KEY_ID ...); masked in logs."
        ),
    )
    backend_config: dict[str, str] = Field(
        default_factory=dict,
        description="Non-secret backend settings, passed as `-backend-config=key=value`.",
    )
    secret_backend_config: dict[str, SecretStr] = Field(
        default_factory=dict,
        description=(
            "Secret backend settings (e.g. a pg `conn_str` with a password), written to a "
            "0600 backend config file, never on the command line."
        ),
    )
    state_dir: str | None = Field(
        default=None,
        description=(
            "For a configuration that declares no backend: directory of its local state "
            "(default: `$PREFECT_STACKS_HOME/tfstate/<stack>`). Ignored when the "
            "configuration declares a backend."
        ),
    )
    lock_timeout: int = Field(
        default=60,
        ge=0,
        description="Seconds to wait for the state lock held by another run before failing.",
    )
    terraform_path: str | None = Field(
        default=None,
        description="Path of the terraform binary; found on PATH when empty.",
    )

    @field_validator("workspace")
    @classmethod
    def _check_workspace(cls, value: str) -> str:
        return validate_workspace(value)

    @field_validator("variables", "secret_variables")
    @classmethod
    def _check_variable_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not _VARIABLE_RE.match(name):
                raise ValueError(
                    f"{name!r} is not a valid Terraform variable name "
                    "(letters, digits, '_' and '-', not starting with a digit)"
                )
        return value

    @field_validator("git_ref")
    @classmethod
    def _check_git_ref(cls, value: str | None) -> str | None:
        if value is not None and (not _GIT_REF_RE.match(value) or ".." in value):
            raise ValueError(
                f"{value!r} is not a valid git branch, tag or commit "
                "(letters, digits, '_', '.', '/', '+', '-'; not starting with '-')"
            )
        return value

    # ----------------------------------------------------------------- naming
    @property
    def display_name(self) -> str:
        name = getattr(self, "_block_document_name", None)
        if name:
            return name
        return Path(self.subdirectory or self.source.rstrip("/")).name or self.source

    def _fail(self, message: str, **kwargs: Any) -> StackError:
        return StackError(message, stack=self.display_name, **kwargs)

    # ----------------------------------------------------------------- binary
    def terraform_binary(self) -> str:
        """Absolute path of the terraform binary, or a ConfigurationError naming the field."""
        if self.terraform_path:
            path = Path(self.terraform_path).expanduser()
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
            found = shutil.which(self.terraform_path)
            if found:
                return found
            raise ConfigurationError(
                f"TerraformStack {self.display_name!r}: terraform_path "
                f"{self.terraform_path!r} is not an executable file; fix the block field "
                "`terraform_path` or clear it to use terraform from PATH."
            )
        found = shutil.which("terraform")
        if not found:
            raise ConfigurationError(
                f"TerraformStack {self.display_name!r}: no `terraform` binary on PATH "
                f"(PATH={os.environ.get('PATH', '')}); install Terraform >= 1.4 or set the "
                "block field `terraform_path`."
            )
        return found

    # ----------------------------------------------------------------- secrets
    def _secret_values(self) -> list[str]:
        values = [v.get_secret_value() for v in self.secret_variables.values()]
        values += [v.get_secret_value() for v in self.env.values()]
        values += [v.get_secret_value() for v in self.secret_backend_config.values()]
        if self.git_token:
            values.append(self.git_token.get_secret_value())
        return [v for v in values if v]

    def _environment(self) -> dict[str, str]:
        env: dict[str, str] = {
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "CHECKPOINT_DISABLE": "1",
        }
        if "TF_PLUGIN_CACHE_DIR" not in os.environ:
            cache = get_settings().home_dir / "plugin-cache"
            cache.mkdir(parents=True, exist_ok=True)
            env["TF_PLUGIN_CACHE_DIR"] = str(cache)
        cli_config = os.environ.get("TF_CLI_CONFIG_FILE")
        if cli_config and not Path(cli_config).exists():
            env["TF_CLI_CONFIG_FILE"] = os.devnull  # a missing file is only noise in logs
        env.update({k: v.get_secret_value() for k, v in self.env.items()})
        for name, value in self.secret_variables.items():
            raw = value.get_secret_value()
            env[f"TF_VAR_{name}"] = raw
        return env

    # ----------------------------------------------------------------- checkout
    def _is_git(self) -> bool:
        return self.source.startswith(_GIT_SCHEMES) or self.source.endswith(".git")

    def default_state_dir(self) -> Path:
        if self.state_dir:
            return Path(self.state_dir).expanduser().resolve()
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", self.display_name).strip("-") or "stack"
        digest = hashlib.sha1(f"{self.source}|{self.subdirectory}".encode()).hexdigest()[:8]
        return get_settings().home_dir / "tfstate" / f"{name}-{digest}"

    def _checkout(self, dest: Path) -> None:
        """Copy or clone the configuration into ``dest`` (which must not exist)."""
        if self._is_git():
            self._git_clone(dest)
            return
        src = Path(self.source).expanduser()
        if not src.is_dir():
            raise ConfigurationError(
                f"TerraformStack {self.display_name!r}: source directory {str(src)!r} does "
                "not exist; fix the block field `source` (a directory or a git URL)."
            )
        shutil.copytree(
            src,
            dest,
            symlinks=True,
            ignore=shutil.ignore_patterns(
                ".terraform", "terraform.tfstate*", "*.tfplan", ".git", "__pycache__"
            ),
        )

    def _git_clone(self, dest: Path) -> None:
        git = shutil.which("git")
        if not git:
            raise ConfigurationError(
                f"TerraformStack {self.display_name!r}: source is a git URL but `git` is "
                "not installed on this worker."
            )
        url = self.source.removeprefix("git::")
        env, token_values = auth_env(self.git_token.get_secret_value() if self.git_token else None)
        secrets = [*self._secret_values(), *token_values]
        log = default_logger()
        dest.mkdir()
        steps = [[git, "init", "-q"], [git, "remote", "add", "origin", "--", url]]
        if self.git_ref:
            steps.append([git, "fetch", "-q", "--depth", "1", "origin", "--", self.git_ref])
        else:
            steps.append([git, "fetch", "-q", "--depth", "1", "origin"])
        for argv in steps:
            result = run_process(argv, cwd=dest, env=env, secrets=secrets, logger=log)
            if result.returncode != 0:
                raise self._fail(
                    f"could not fetch git source {url!r}"
                    + (f" at {self.git_ref!r}" if self.git_ref else "")
                    + "; check the block fields `source`, `git_ref` and `git_token`",
                    command=result.command,
                    stderr_tail=result.stderr_tail(),
                    returncode=result.returncode,
                )
        target = "FETCH_HEAD"
        if not self.git_ref:
            # No ref given: the remote's default branch.
            head = run_process(
                [git, "ls-remote", "--symref", "origin", "HEAD"],
                cwd=dest,
                env=env,
                secrets=secrets,
                logger=log,
                stream=False,
            )
            match = re.search(r"ref: refs/heads/(\S+)\s+HEAD", head.stdout)
            if match:
                run_process(
                    [git, "fetch", "-q", "--depth", "1", "origin", "--", match.group(1)],
                    cwd=dest,
                    env=env,
                    secrets=secrets,
                    logger=log,
                )
        result = run_process(
            [git, "-c", "advice.detachedHead=false", "checkout", "-q", target],
            cwd=dest,
            env=env,
            secrets=secrets,
            logger=log,
        )
        if result.returncode != 0:
            raise self._fail(
                "could not check out the fetched git source",
                command=result.command,
                stderr_tail=result.stderr_tail(),
                returncode=result.returncode,
            )
        shutil.rmtree(dest / ".git", ignore_errors=True)

    def prepare(self, workspace: str | None = None) -> TerraformWorkdir:
        """Check the configuration out into a private temporary directory (0700) and,
        when it declares no backend, point the local backend at :meth:`default_state_dir`."""
        workspace = validate_workspace(workspace or self.workspace)
        self.terraform_binary()  # fail early, naming the field
        root = Path(tempfile.mkdtemp(prefix="prefect-stacks-"))
        try:
            checkout = root / "src"
            self._checkout(checkout)
            module_dir = checkout / self.subdirectory if self.subdirectory else checkout
            module_dir = module_dir.resolve()
            if not module_dir.is_relative_to(checkout.resolve()) or not module_dir.is_dir():
                raise ConfigurationError(
                    f"TerraformStack {self.display_name!r}: subdirectory "
                    f"{self.subdirectory!r} does not exist in the source; fix the block "
                    "field `subdirectory`."
                )
            tf_files = list(module_dir.glob("*.tf")) + list(module_dir.glob("*.tf.json"))
            if not tf_files:
                raise ConfigurationError(
                    f"TerraformStack {self.display_name!r}: no *.tf files in "
                    f"{self.source!r}{'/' + self.subdirectory if self.subdirectory else ''}; "
                    "fix the block fields `source` / `subdirectory`."
                )
            if not _declares_backend(tf_files):
                state_dir = self.default_state_dir()
                state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
                (module_dir / _BACKEND_OVERRIDE_FILE).write_text(
                    "# Written by prefect-stacks: the configuration declares no backend,\n"
                    "# so its local state lives outside this temporary copy.\n"
                    "terraform {\n"
                    '  backend "local" {\n'
                    f"    path          = {json.dumps(str(state_dir / 'terraform.tfstate'))}\n"
                    f"    workspace_dir = {json.dumps(str(state_dir / 'workspaces'))}\n"
                    "  }\n"
                    "}\n"
                )
            return TerraformWorkdir(self, module_dir, workspace, root)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise

    def _terraform(self, workdir: TerraformWorkdir) -> _Terraform:
        return _Terraform(
            working_dir=str(workdir.path),
            terraform_bin_path=self.terraform_binary(),
            variables=dict(self.variables),
            env=self._environment(),
            secrets=self._secret_values(),
        )

    # ----------------------------------------------------------------- commands
    def _raise_for(self, tf: _Terraform, workdir: TerraformWorkdir, what: str) -> None:
        result = tf.last_result
        assert result is not None
        stderr = result.stderr_tail()
        kwargs = dict(
            workspace=workdir.workspace,
            command=result.command,
            stderr_tail=stderr,
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
                stack=self.display_name,
                **kwargs,
            )
        raise self._fail(what, **kwargs)

    def init(self, workdir: TerraformWorkdir, create_workspace: bool = True) -> None:
        """``terraform init`` and select the workspace. With ``create_workspace=False`` a
        missing workspace is not created: ``workdir.exists`` is then False, and destroy,
        state_list and delete_workspace treat it as already gone."""
        tf = workdir.terraform()
        options: dict[str, Any] = {
            # dict -> one `-backend-config=key=value` per item (non-secret values only)
            "backend_config": dict(self.backend_config) or None,
        }
        if self.secret_backend_config:
            path = write_private_file(
                workdir.root / "backend.secret.tfbackend",
                "".join(
                    f"{k} = {json.dumps(v.get_secret_value())}\n"
                    for k, v in self.secret_backend_config.items()
                ),
            )
            # list -> `-backend-config=<file>`: secret values stay off the command line.
            options["backend-config"] = [str(path)]
        # Quirk: never pass a positional directory (removed in Terraform 0.15); the
        # working_dir is the root module. var=None: init needs no tfvars file.
        rc, _, _ = tf.init(
            reconfigure=IsFlagged,
            backend=True,
            var=None,
            lock_timeout=f"{self.lock_timeout}s",
            **options,
        )
        if rc != 0:
            self._raise_for(tf, workdir, "terraform init failed; fix the configuration or backend")
        workdir.exists = self.select_workspace(workdir, create=create_workspace)

    def select_workspace(self, workdir: TerraformWorkdir, create: bool = True) -> bool:
        """Select the workspace, creating it when ``create``; False when it does not
        exist (and was not created)."""
        tf = workdir.terraform()
        rc, _, err = tf.cmd(
            "workspace select",
            workdir.workspace,
            or_create=True if create else None,
            no_color=IsFlagged,
        )
        if rc != 0:
            if not create and _workspace_missing(err):
                default_logger().info("workspace %r does not exist", workdir.workspace)
                return False
            self._raise_for(tf, workdir, f"could not select workspace {workdir.workspace!r}")
        return True

    def plan(self, workdir: TerraformWorkdir, *, destroy: bool = False) -> PlanSummary:
        tf = workdir.terraform()
        plan_file = workdir.root / ("destroy.tfplan" if destroy else "apply.tfplan")
        # Quirk: plan runs with -detailed-exitcode: 0 = no changes, 2 = changes, 1 = error.
        rc, _, _ = tf.plan(
            detailed_exitcode=IsFlagged,
            out=str(plan_file),
            lock_timeout=f"{self.lock_timeout}s",
            destroy=IsFlagged if destroy else IsNotFlagged,
        )
        if rc not in (0, 2):
            self._raise_for(tf, workdir, "terraform plan failed")
        summary = self.show_plan(workdir, plan_file)
        summary.is_destroy = destroy
        return summary

    def show_plan(self, workdir: TerraformWorkdir, plan_file: Path) -> PlanSummary:
        tf = workdir.terraform()
        # The JSON plan holds variable values, secrets included: never streamed to logs.
        rc, out, _ = tf.cmd(
            "show", str(plan_file), json=IsFlagged, no_color=IsFlagged, stream=False
        )
        if rc != 0:
            self._raise_for(tf, workdir, "terraform show -json of the plan failed")
        summary = summarize_plan_json(
            json.loads(out),
            stack=self.display_name,
            workspace=workdir.workspace,
            secrets=self._secret_values(),
        )
        summary.plan_file = str(plan_file)
        return summary

    def apply(self, workdir: TerraformWorkdir, plan: PlanSummary | None = None) -> None:
        tf = workdir.terraform()
        if plan is not None and plan.plan_file:
            # Quirk: applying a saved plan takes no -var/-var-file (they are in the plan),
            # so var=None; python-terraform adds `-auto-approve=false` for skip_plan=False,
            # which a saved plan ignores (it never prompts).
            rc, _, _ = tf.apply(
                plan.plan_file, skip_plan=False, var=None, lock_timeout=f"{self.lock_timeout}s"
            )
        else:
            # Quirk: without a plan file, skip_plan=True is what adds -auto-approve.
            rc, _, _ = tf.apply(skip_plan=True, lock_timeout=f"{self.lock_timeout}s")
        if rc != 0:
            self._report_partial(tf, workdir, "terraform apply failed")

    def destroy(self, workdir: TerraformWorkdir) -> None:
        if not workdir.exists:
            default_logger().info("nothing to destroy: workspace %r is gone", workdir.workspace)
            return
        tf = workdir.terraform()
        # Quirk: python-terraform defaults to `-force`, removed in Terraform 0.15;
        # `-auto-approve` is the flag now.
        rc, _, _ = tf.destroy(
            force=IsNotFlagged,
            auto_approve=IsFlagged,
            lock_timeout=f"{self.lock_timeout}s",
        )
        if rc != 0:
            self._report_partial(tf, workdir, "terraform destroy failed")

    def state_list(self, workdir: TerraformWorkdir) -> list[str]:
        if not workdir.exists:
            return []
        tf = workdir.terraform()
        rc, out, _ = tf.cmd("state list", stream=False)
        if rc != 0:
            self._raise_for(tf, workdir, "terraform state list failed")
        return [line.strip() for line in out.splitlines() if line.strip()]

    def _report_partial(self, tf: _Terraform, workdir: TerraformWorkdir, what: str) -> None:
        """Raise for a failed apply/destroy, saying what the state holds now, so that a
        half-applied stack is never silent."""
        failed = tf.last_result
        try:
            remaining = self.state_list(workdir)
        except StackError:
            remaining = None
        if remaining is None:
            held = "the state could not be listed; inspect it before retrying"
        elif remaining:
            shown = ", ".join(remaining[:10]) + (" ..." if len(remaining) > 10 else "")
            held = f"the state now holds {len(remaining)} resource(s): {shown}"
        else:
            held = "the state holds no resources"
        tf.last_result = failed
        self._raise_for(
            tf,
            workdir,
            f"{what}; {held}. Fix the cause and run the job again (it is safe "
            "to re-run: Terraform resumes from the state)",
        )

    def outputs(self, workdir: TerraformWorkdir) -> StackOutputs:
        tf = workdir.terraform()
        # Quirk: output(name) breaks on Terraform >= 0.15 (-json with a name prints the bare
        # value); output(full_value=True) without a name returns every output with its
        # `sensitive` flag. It returns None on failure.
        # Values (sensitive ones included) are never streamed to the logs.
        raw = tf.output(full_value=True, no_color=IsFlagged, stream=False)
        if raw is None:
            self._raise_for(tf, workdir, "terraform output failed")
        result = StackOutputs()
        for name, item in (raw or {}).items():
            if item.get("sensitive"):
                value = item.get("value")
                result.sensitive[name] = SecretStr(
                    value if isinstance(value, str) else json.dumps(value)
                )
            else:
                result.values[name] = item.get("value")
        return result

    def delete_workspace(self, workdir: TerraformWorkdir) -> bool:
        """Delete ``workdir.workspace`` (which must be empty). Returns False when it did not
        exist. The default workspace cannot be deleted."""
        if workdir.workspace == "default" or not workdir.exists:
            return False
        tf = workdir.terraform()
        rc, _, _ = tf.cmd("workspace select", "default", no_color=IsFlagged)
        if rc != 0:
            self._raise_for(tf, workdir, "could not switch to the default workspace")
        rc, _, err = tf.cmd(
            "workspace delete",
            workdir.workspace,
            no_color=IsFlagged,
            lock_timeout=f"{self.lock_timeout}s",
        )
        if rc != 0:
            if _workspace_missing(err):
                return False
            self._raise_for(tf, workdir, f"could not delete workspace {workdir.workspace!r}")
        return True


def validate_workspace(value: str) -> str:
    if not isinstance(value, str) or not _WORKSPACE_RE.match(value):
        suggestion = workspace_slug(value) if isinstance(value, str) else ""
        raise ConfigurationError(
            f"{value!r} is not a valid Terraform workspace name: use letters, digits, "
            "'-', '_' and '.', starting with a letter or digit, at most 90 characters"
            + (f", e.g. {suggestion!r}." if suggestion else ".")
        )
    return value


def workspace_slug(value: str) -> str:
    """``value`` made a valid workspace name (``feature/login`` -> ``feature-login``);
    empty when nothing usable is left."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", value).strip("-_.")
    return re.sub(r"-{2,}", "-", slug)[:90].rstrip("-_.")


def _workspace_missing(stderr: str) -> bool:
    return "doesn't exist" in stderr or "does not exist" in stderr


def _declares_backend(tf_files: list[Path]) -> bool:
    for path in tf_files:
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.name.endswith(".tf.json"):
            try:
                data = json.loads(text)
            except ValueError:
                continue
            blocks = data.get("terraform") or []
            blocks = blocks if isinstance(blocks, list) else [blocks]
            if any(isinstance(b, dict) and ("backend" in b or "cloud" in b) for b in blocks):
                return True
        elif _BACKEND_RE.search(_strip_hcl_comments(text)):
            return True
    return False


def _strip_hcl_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    return re.sub(r"(#|//).*$", "", text, flags=re.MULTILINE)


# ---------------------------------------------------------------------------- tasks


@task(cache_policy=NO_CACHE, task_run_name="terraform-init-{workspace}")
def terraform_init(
    stack: TerraformStack, workspace: str | None = None, create_workspace: bool = True
) -> TerraformWorkdir:
    """Check the stack out, ``terraform init`` it and select the workspace (created on
    demand unless ``create_workspace=False``, for destroy: a missing workspace is then
    "already gone"). Returns a :class:`TerraformWorkdir`; use it in a ``with`` block."""
    workdir = stack.prepare(workspace)
    try:
        stack.init(workdir, create_workspace=create_workspace)
    except BaseException:
        workdir.cleanup()
        raise
    return workdir


@task(cache_policy=NO_CACHE)
def terraform_plan(
    workdir: TerraformWorkdir, destroy: bool = False, artifact: bool = True
) -> PlanSummary:
    """Plan into a saved plan file; return its :class:`PlanSummary` and publish it as a
    markdown artifact (key ``plan-<stack>-<workspace>``)."""
    summary = workdir.stack.plan(workdir, destroy=destroy)
    log = default_logger()
    log.info(summary.headline())
    if artifact:
        create_markdown_artifact(
            key=artifact_key("plan", summary.stack, summary.workspace),
            markdown=summary.to_markdown(),
            description=summary.headline(),
        )
    return summary


@task(cache_policy=NO_CACHE)
def terraform_apply(workdir: TerraformWorkdir, plan: PlanSummary | None = None) -> None:
    """Apply the saved plan (or, without one, the configuration with -auto-approve)."""
    workdir.stack.apply(workdir, plan)


@task(cache_policy=NO_CACHE)
def terraform_destroy(workdir: TerraformWorkdir) -> None:
    """Destroy everything in the workspace's state; an empty state is success."""
    workdir.stack.destroy(workdir)


@task(cache_policy=NO_CACHE)
def terraform_outputs(workdir: TerraformWorkdir) -> StackOutputs:
    """Read root-module outputs; sensitive ones come back as ``SecretStr``."""
    outputs = workdir.stack.outputs(workdir)
    default_logger().info(
        "outputs: %s", ", ".join(f"{k}={v!r}" for k, v in outputs.values.items()) or "(none)"
    )
    return outputs


@task(cache_policy=NO_CACHE)
def terraform_delete_workspace(workdir: TerraformWorkdir) -> bool:
    """Delete the (destroyed) workspace; False when it was already gone."""
    return workdir.stack.delete_workspace(workdir)


def artifact_key(*parts: str) -> str:
    """An artifact key from free text: lowercase letters, digits and dashes only."""
    key = "-".join(parts).lower()
    key = re.sub(r"[^a-z0-9-]+", "-", key)
    return re.sub(r"-{2,}", "-", key).strip("-")[:120] or "stack"


__all__ = [
    "AttributeChange",
    "PlanSummary",
    "ResourceChange",
    "StackOutputs",
    "TerraformStack",
    "TerraformWorkdir",
    "artifact_key",
    "load_stack",
    "summarize_plan_json",
    "terraform_apply",
    "terraform_delete_workspace",
    "terraform_destroy",
    "terraform_init",
    "terraform_outputs",
    "terraform_plan",
    "validate_workspace",
]


def load_stack(name: str, variables: dict[str, Any] | None = None) -> TerraformStack:
    """Load a TerraformStack block document by name, with ``variables`` for this run merged
    over the block's, and an error that says how to make one (and which exist) when it
    does not exist."""
    stack = load_block(
        TerraformStack,
        name,
        create="create it in the Prefect UI (Blocks > Terraform Stack) or in Python with "
        f"TerraformStack(source=...).save({name!r}), then run again.",
    )
    if variables:
        bad = sorted(str(k) for k in variables if not _VARIABLE_RE.match(str(k)))
        if bad:
            raise ConfigurationError(
                f"variables: {', '.join(map(repr, bad))} not valid Terraform variable "
                "name(s) (letters, digits, '_' and '-', not starting with a digit)."
            )
        stack.variables = {**stack.variables, **variables}
    return stack
