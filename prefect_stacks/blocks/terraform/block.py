"""The ``TerraformStack`` block: where a stack's configuration comes from (a local
directory or a git repository), the workspace, variables (plain and secret), provider
credentials and the backend; the checks of those fields; and :meth:`TerraformStack.prepare`,
which checks the configuration out and builds the :class:`TerraformWorkdir` that runs it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator

from prefect_stacks.blocks.base import StacksBlock
from prefect_stacks.blocks.terraform.cli_config import check_provider_mirror, write_cli_config
from prefect_stacks.blocks.terraform.plan import PlanSummary
from prefect_stacks.blocks.terraform.requirements import Requirements, read_requirements
from prefect_stacks.blocks.terraform.source import check_out
from prefect_stacks.blocks.terraform.workdir import StackOutputs, TerraformWorkdir
from prefect_stacks.exceptions import ConfigurationError
from prefect_stacks.settings import get_settings

_WORKSPACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,89}$")
_VARIABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_GIT_REF_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./+-]{0,254}$")


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
    parallelism: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description=(
            "Resources Terraform changes at once in apply and destroy (`-parallelism`; "
            "empty: Terraform's 10). 1 for providers that cannot change two resources of "
            "one object at once, such as postgresql's grants (stacks/iam)."
        ),
    )
    terraform_path: str | None = Field(
        default=None,
        description="Path of the terraform binary; found on PATH when empty.",
    )
    provider_mirror: str | None = Field(
        default=None,
        description=(
            "Install providers only from this mirror, never from a registry (air-gapped "
            "workers): a directory on the worker (made by `terraform providers mirror`, or "
            "unpacked `<host>/<namespace>/<type>/<version>/<os_arch>/` binaries) or an "
            "https:// network mirror. Empty: terraform's own CLI configuration."
        ),
    )

    @field_validator("provider_mirror")
    @classmethod
    def _check_provider_mirror(cls, value: str | None) -> str | None:
        return check_provider_mirror(value)

    @field_validator("workspace")
    @classmethod
    def _check_workspace(cls, value: str) -> str:
        return validate_workspace(value)

    @field_validator("variables", "secret_variables")
    @classmethod
    def _check_variable_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in invalid_variable_names(value):
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

    @property
    def display_name(self) -> str:
        name = getattr(self, "_block_document_name", None)
        if name:
            return name
        return Path(self.subdirectory or self.source.rstrip("/")).name or self.source

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

    def default_state_dir(self) -> Path:
        if self.state_dir:
            return Path(self.state_dir).expanduser().resolve()
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", self.display_name).strip("-") or "stack"
        digest = hashlib.sha1(f"{self.source}|{self.subdirectory}".encode()).hexdigest()[:8]
        return get_settings().home_dir / "tfstate" / f"{name}-{digest}"

    # ----------------------------------------------------------------- the run object
    def prepare(self, workspace: str | None = None) -> TerraformWorkdir:
        """Check the configuration out into a private temporary directory (0700) and,
        when it declares no backend, point the local backend at :meth:`default_state_dir`;
        return the :class:`TerraformWorkdir` that runs terraform in it."""
        workspace = validate_workspace(workspace or self.workspace)
        terraform_bin = self.terraform_binary()  # fail early, naming the field
        root = Path(tempfile.mkdtemp(prefix="prefect-stacks-"))
        try:
            module_dir = check_out(self, root / "src")
            env = self._environment()
            if self.provider_mirror:
                config = write_cli_config(root, self.provider_mirror, self.display_name)
                env["TF_CLI_CONFIG_FILE"] = str(config)
            return TerraformWorkdir(
                stack_name=self.display_name,
                path=module_dir,
                root=root,
                workspace=workspace,
                terraform_bin=terraform_bin,
                variables=dict(self.variables),
                env=env,
                secrets=self.secret_values(),
                backend_config=dict(self.backend_config),
                secret_backend_config=dict(self.secret_backend_config),
                lock_timeout=self.lock_timeout,
                parallelism=self.parallelism,
            )
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise

    def requirements(self) -> Requirements:
        """What the configuration requires of Terraform and its providers (its
        ``required_version`` and ``required_providers``), read from a private checkout
        that is removed afterwards; no terraform binary is needed."""
        root = Path(tempfile.mkdtemp(prefix="prefect-stacks-"))
        try:
            return read_requirements(check_out(self, root / "src"), name=self.display_name)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def secret_values(self) -> list[str]:
        """Every secret value of the block: masked in all output."""
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
            env[f"TF_VAR_{name}"] = value.get_secret_value()
        return env

    # --------------- the workdir's commands, for callers written against the block
    def init(self, workdir: TerraformWorkdir, create_workspace: bool = True) -> None:
        workdir.init(create_workspace=create_workspace)

    def plan(self, workdir: TerraformWorkdir, *, destroy: bool = False) -> PlanSummary:
        return workdir.plan(destroy=destroy)

    def apply(self, workdir: TerraformWorkdir, plan: PlanSummary | None = None) -> None:
        workdir.apply(plan)

    def destroy(self, workdir: TerraformWorkdir) -> None:
        workdir.destroy()

    def state_list(self, workdir: TerraformWorkdir) -> list[str]:
        return workdir.state_list()

    def outputs(self, workdir: TerraformWorkdir) -> StackOutputs:
        return workdir.outputs()

    def delete_workspace(self, workdir: TerraformWorkdir) -> bool:
        return workdir.delete_workspace()


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


def invalid_variable_names(names: Iterable[Any]) -> list[str]:
    """The names that are not valid Terraform variable names, in their order."""
    return [str(n) for n in names if not _VARIABLE_RE.match(str(n))]
