"""The test bed as the tests see it: what `make testbed` built (tests/testbed/build.py),
where, and, for a component it could not build, why.

Fixtures (tests/conftest.py: ``kube_cluster``, ``kubectl``, ``helm``,
``terraform_mirror``) ask :func:`binary` / :func:`unavailable` and turn a missing part into
a skip with the reason on a laptop and a failure in CI; a provider the Go proxy refuses
is the one documented exception (:func:`refused`).
"""

from __future__ import annotations

from pathlib import Path

from tests.testbed.build import Component, cli_config_path, components, load_versions, mirror_dir

__all__ = [
    "binary",
    "cli_config_path",
    "components",
    "kube_version",
    "mirror_dir",
    "refused",
    "unavailable",
]


def _component(name: str) -> Component:
    return components()[name]


def kube_version() -> str:
    return load_versions()["kubernetes"]["version"]


def binary(component: str, name: str | None = None) -> Path:
    """Path of a built binary, e.g. ``binary("kubernetes", "kubectl")``."""
    c = _component(component)
    if name is None:
        return c.path()
    return next(c.path(o) for o in c.outputs if Path(o).name == name)


def refused(component: str) -> str | None:
    """Why the Go module proxy refused to serve what ``component`` needs, or None."""
    record = _component(component).refusal
    if not record or not record.get("proxy_refused"):
        return None
    last = record["tail"].strip().splitlines()[-1] if record["tail"].strip() else ""
    return (
        f"{record['component']} cannot be built here: the Go module proxy refused "
        f"`{record['command']}` ({last.strip()})"
    )


def unavailable(component: str) -> str | None:
    """None when ``component`` is built; else what is wrong and what to run."""
    c = _component(component)
    if c.complete:
        return None
    record = c.refusal
    if record:
        return refused(component) or (
            f"{c.label}: the test bed build failed (`{record['command']}`); "
            f"run `make testbed` to see why"
        )
    return f"{c.label} is not built: run `make testbed` (it builds into {c.directory})"
