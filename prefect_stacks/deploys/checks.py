"""What a deploy checks after its rollout, before the image counts as known-good:

* **functional checks**: an HTTP request that must answer the expected status (and
  text), or a command that must exit 0; each retried within its own time limit;
* **the watch window**: for ``window_seconds`` after the checks, no alert matching the
  given labels may fire in Alertmanager (API v2).

Each failure raises :class:`DeployFailed` with the stage and what was seen, which the
deploy flow answers with a rollback. Check URLs and commands may name the image being
deployed: ``{image}``, ``{digest}``, ``{tag}``, ``{namespace}``, ``{workload}``; a
command also gets them as ``DEPLOY_IMAGE``, ``DEPLOY_DIGEST`` ... in its environment.
"""

from __future__ import annotations

import string
import time
from typing import Annotated, Literal

import httpx
from pydantic import BaseModel, Field, field_validator

from prefect_stacks._internal.process import default_logger, run_process
from prefect_stacks.blocks.alertmanager import Alertmanager
from prefect_stacks.blocks.base import load_block
from prefect_stacks.exceptions import AlertmanagerError, ConfigurationError, DeployFailed

PLACEHOLDERS = ("image", "digest", "tag", "namespace", "workload")


def _check_placeholders(text: str, field: str) -> str:
    for _, name, _, _ in string.Formatter().parse(text):
        if name is not None and name not in PLACEHOLDERS:
            raise ValueError(
                f"{field}: unknown placeholder {{{name}}}; use "
                + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
            )
    return text


class HttpCheck(BaseModel):
    """An HTTP request that must answer ``expect_status`` (and contain ``expect_text``)."""

    kind: Literal["http"] = "http"
    url: str = Field(description="URL to request; may hold {image}, {digest}, {tag} ...")
    expect_status: int = Field(default=200, ge=100, le=599)
    expect_text: str | None = Field(default=None, description="Text the body must contain.")
    within_seconds: float = Field(
        default=60, gt=0, description="Keep trying this long before the check fails."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return _check_placeholders(value, "url")

    @property
    def label(self) -> str:
        return f"GET {self.url} -> {self.expect_status}"


class CommandCheck(BaseModel):
    """A command (argv, no shell) that must exit 0."""

    kind: Literal["command"] = "command"
    command: list[str] = Field(min_length=1, description="argv; may hold {image}, {digest} ...")
    within_seconds: float = Field(default=60, gt=0, description="Time limit of the command.")

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str]) -> list[str]:
        for arg in value:
            _check_placeholders(arg, "command")
        return value

    @property
    def label(self) -> str:
        return " ".join(self.command)


FunctionalCheck = Annotated[HttpCheck | CommandCheck, Field(discriminator="kind")]


class AlertWatch(BaseModel):
    """Watch Alertmanager after the checks: an alert matching ``labels`` that fires within
    ``window_seconds`` fails the deploy."""

    alertmanager: str = Field(description="Name of the Alertmanager block.")
    labels: dict[str, str] | list[str] = Field(
        description='Labels to match: {"severity": "critical"} or matchers like '
        "'service=~\"shop|cart\"'."
    )
    window_seconds: float = Field(default=300, ge=0, description="How long to watch.")
    poll_seconds: float = Field(default=15, gt=0, description="How often to ask.")
    include_silenced: bool = Field(
        default=False, description="Count silenced alerts too (a deploy that silenced them)."
    )


def _values(
    image: str = "",
    digest: str = "",
    tag: str | None = None,
    namespace: str = "",
    workload: str = "",
) -> dict:
    return {
        "image": image,
        "digest": digest,
        "tag": tag or "",
        "namespace": namespace,
        "workload": workload,
    }


def run_checks(checks: list[HttpCheck | CommandCheck], **values: str | None) -> None:
    """Run each check in order; the first that fails raises :class:`DeployFailed`."""
    filled = _values(**values)  # type: ignore[arg-type]
    log = default_logger()
    for check in checks:
        if isinstance(check, HttpCheck):
            _http(check, check.url.format(**filled))
        else:
            _command(check, [arg.format(**filled) for arg in check.command], filled)
        log.info("check passed: %s", check.label)


def _http(check: HttpCheck, url: str) -> None:
    deadline = time.monotonic() + check.within_seconds
    seen = ""
    while True:
        try:
            response = httpx.get(url, timeout=min(10.0, check.within_seconds))
            if response.status_code == check.expect_status and (
                check.expect_text is None or check.expect_text in response.text
            ):
                return
            seen = f"HTTP {response.status_code}"
            if check.expect_text is not None and check.expect_text not in response.text:
                seen += f", {check.expect_text!r} not in the body"
        except httpx.HTTPError as exc:
            seen = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise DeployFailed(
                f"functional check {url} failed for {check.within_seconds:.0f} s: {seen} "
                f"(expected HTTP {check.expect_status})",
                stage="check",
            )
        time.sleep(1)


def _command(check: CommandCheck, argv: list[str], values: dict[str, str]) -> None:
    env = {f"DEPLOY_{k.upper()}": v for k, v in values.items()}
    try:
        result = run_process(argv, env=env, prefix="check: ", timeout=check.within_seconds)
    except FileNotFoundError:
        raise ConfigurationError(
            f"check command {argv[0]!r} was not found on the worker; fix the check"
        ) from None
    if result.returncode != 0:
        raise DeployFailed(
            f"functional check `{' '.join(argv)}` exited {result.returncode}: "
            f"{result.stderr_tail() or result.stdout.strip()[-300:]}",
            stage="check",
        )


def watch_alerts(watch: AlertWatch, sleep=time.sleep) -> None:
    """Poll Alertmanager for ``window_seconds``; a matching firing alert raises
    :class:`DeployFailed` naming it. Alertmanager unreachable for the whole window is a
    failure too: a watch that saw nothing is no evidence."""
    block = load_block(Alertmanager, watch.alertmanager, create="create it (Blocks > Alertmanager)")
    log = default_logger()
    log.info(
        "watching %s for %.0f s: alerts matching %s", block.url, watch.window_seconds, watch.labels
    )
    deadline = time.monotonic() + watch.window_seconds
    answered = False
    trouble = ""
    with block.get_client() as client:
        while True:
            try:
                firing = client.firing(watch.labels, include_silenced=watch.include_silenced)
                answered = True
            except AlertmanagerError as exc:
                if exc.status is not None and 400 <= exc.status < 500:
                    raise ConfigurationError(str(exc)) from None
                firing, trouble = [], str(exc)
                log.warning("%s", exc)
            if firing:
                names = sorted({(a.get("labels") or {}).get("alertname", "?") for a in firing})
                raise DeployFailed(
                    f"{len(firing)} alert(s) firing in the watch window: {', '.join(names)} "
                    f"(matching {watch.labels})",
                    stage="alerts",
                )
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sleep(min(watch.poll_seconds, left))
    if not answered:
        raise DeployFailed(
            f"Alertmanager did not answer during the watch window: {trouble}", stage="alerts"
        )
    log.info("no matching alert fired in %.0f s", watch.window_seconds)
