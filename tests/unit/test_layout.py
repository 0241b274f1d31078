"""The house rules that keep the package's layout (DESIGN.md, README "Where to put new
code") hold as it grows: read from the source, so a new module is checked without
touching this test."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "prefect_stacks"
MAX_LINES = 400
# A module may be longer when its first lines say why, with this marker.
LONG_MARKER = "Longer than 400 lines because"


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_package_or_module(dotted: str) -> bool:
    path = PACKAGE.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(path: Path) -> list[tuple[str, str | None]]:
    """(module, name) pairs: ``import a.b`` -> ("a.b", None); ``from a import b`` ->
    ("a", "b"); relative imports resolved against the module."""
    tree = ast.parse(path.read_text(), str(path))
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found += [(base, alias.name) for alias in node.names]
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_small_or_say_why(path: Path):
    lines = path.read_text().splitlines()
    if len(lines) > MAX_LINES:
        head = "\n".join(lines[:30])
        assert LONG_MARKER in head, (
            f"{path.relative_to(PACKAGE)} has {len(lines)} lines: split it by responsibility "
            f"or say at its top why not ({LONG_MARKER!r} ...)"
        )


def test_no_flow_module_imports_another():
    offenders = []
    for path in (PACKAGE / "flows").glob("*.py"):
        for module, name in _imports(path):
            target = f"{module}.{name}" if name else module
            if target.startswith("prefect_stacks.flows.") or module == "prefect_stacks.flows":
                offenders.append(f"{path.name}: {target}")
    assert not offenders, "flows compose; shared code belongs below them: " + ", ".join(offenders)


def test_no_private_name_is_imported_across_modules():
    offenders = []
    for path in _modules():
        for module, name in _imports(path):
            if not module.startswith("prefect_stacks") or not name:
                continue
            # the private modules the layout names (_internal, _cli, _version) are the exception
            parts = [
                p for p in [*module.split("."), name] if p not in ("_internal", "_cli", "_version")
            ]
            if any(p.startswith("_") and not p.startswith("__") for p in parts):
                offenders.append(f"{_module_name(path)}: from {module} import {name}")
    assert not offenders, "make the name public or move the code: " + ", ".join(offenders)


def test_nothing_inside_the_package_imports_its_top_level_init():
    offenders = []
    for path in _modules():
        if path == PACKAGE / "__init__.py":
            continue
        for module, name in _imports(path):
            if module == "prefect_stacks" and (
                name is None or not _is_package_or_module(f"prefect_stacks.{name}")
            ):
                offenders.append(f"{_module_name(path)}: {name or 'import prefect_stacks'}")
    assert not offenders, "import from the submodule (e.g. _internal.data, _version): " + (
        ", ".join(offenders)
    )


def test_every_exception_class_lives_in_exceptions_py():
    offenders = []
    for path in _modules():
        if path.name == "exceptions.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                (isinstance(b, ast.Name) and b.id.endswith(("Error", "Exception")))
                or (isinstance(b, ast.Attribute) and b.attr.endswith(("Error", "Exception")))
                or (isinstance(b, ast.Name) and b.id in {"TimeoutError", "Exception"})
                for b in node.bases
            ):
                offenders.append(f"{_module_name(path)}.{node.name}")
    assert not offenders, "every error class belongs in exceptions.py: " + ", ".join(offenders)


def test_the_version_is_written_once():
    import prefect_stacks
    from prefect_stacks._version import __version__

    pyproject = (PACKAGE.parent / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject
    assert prefect_stacks.__version__ == __version__
