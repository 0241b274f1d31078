"""Where a stack's configuration comes from: :func:`check_out` copies a local directory
or clones a git URL (the one clone) into a private directory, finds the root module
(``subdirectory``), and points the local backend at the block's state directory when the
configuration declares no backend."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from prefect_stacks._internal.git import clone
from prefect_stacks._internal.process import default_logger
from prefect_stacks.blocks.terraform.backend import declares_backend, write_local_backend
from prefect_stacks.exceptions import ConfigurationError, GitError, StackError

if TYPE_CHECKING:
    from prefect_stacks.blocks.terraform.block import TerraformStack

GIT_SCHEMES = ("https://", "http://", "ssh://", "git://", "file://", "git@", "git::")


def check_out(stack: TerraformStack, dest: Path) -> Path:
    """Copy or clone the configuration into ``dest`` (which must not exist); return
    its root module directory, with the local backend override written when the
    configuration declares no backend."""
    if stack.source.startswith(GIT_SCHEMES) or stack.source.endswith(".git"):
        _git_clone(stack, dest)
    else:
        _copy(stack, dest)
    module_dir = (dest / stack.subdirectory if stack.subdirectory else dest).resolve()
    if not module_dir.is_relative_to(dest.resolve()) or not module_dir.is_dir():
        raise ConfigurationError(
            f"TerraformStack {stack.display_name!r}: subdirectory "
            f"{stack.subdirectory!r} does not exist in the source; fix the block "
            "field `subdirectory`."
        )
    tf_files = list(module_dir.glob("*.tf")) + list(module_dir.glob("*.tf.json"))
    if not tf_files:
        raise ConfigurationError(
            f"TerraformStack {stack.display_name!r}: no *.tf files in "
            f"{stack.source!r}{'/' + stack.subdirectory if stack.subdirectory else ''}; "
            "fix the block fields `source` / `subdirectory`."
        )
    if not declares_backend(tf_files):
        write_local_backend(module_dir, stack.default_state_dir())
    return module_dir


def _copy(stack: TerraformStack, dest: Path) -> None:
    src = Path(stack.source).expanduser()
    if not src.is_dir():
        raise ConfigurationError(
            f"TerraformStack {stack.display_name!r}: source directory {str(src)!r} does "
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


def _git_clone(stack: TerraformStack, dest: Path) -> None:
    url = stack.source.removeprefix("git::")
    try:
        clone(
            url,
            dest,
            ref=stack.git_ref,
            token=stack.git_token.get_secret_value() if stack.git_token else None,
            secrets=stack.secret_values(),
            logger=default_logger(),
        )
    except ConfigurationError as exc:  # no git on this worker
        raise ConfigurationError(
            f"TerraformStack {stack.display_name!r}: source is a git URL, but {exc}"
        ) from exc
    except GitError as exc:
        at = f" at {stack.git_ref!r}" if stack.git_ref else ""
        what = (
            f"could not fetch git source {url!r}{at}; check the block fields "
            "`source`, `git_ref` and `git_token`"
        )
        if exc.step == "checkout":
            what = "could not check out the fetched git source"
        raise StackError(
            what,
            stack=stack.display_name,
            command=exc.result.command,
            stderr_tail=exc.result.stderr_tail(),
            returncode=exc.result.returncode,
        ) from exc
    shutil.rmtree(dest / ".git", ignore_errors=True)


__all__ = ["GIT_SCHEMES", "check_out"]
