"""Webhook sources: the ``WebhookSource`` block, one per sender of webhooks (a GitHub or
GitLab project, a container registry, a CI job using the generic scheme).

The receiver (``prefect-stacks webhooks serve``, :mod:`prefect_stacks.webhooks`) answers
``POST /hooks/<block name>``: the block says how to verify a delivery (``kind`` and
``secret``), how large it may be, and for a registry which host to name in events::

    from pydantic import SecretStr
    from prefect_stacks.blocks.webhooks import WebhookSource

    WebhookSource(kind="github", secret=SecretStr("…")).save("shop-github")
    # GitHub: payload URL https://hooks.example.com/hooks/shop-github

The secret is unwrapped only where a delivery is verified.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator

from prefect_stacks.blocks.base import StacksBlock

WebhookKind = Literal["github", "gitlab", "registry", "generic"]

DEFAULT_MAX_BODY_BYTES = 1_048_576


class WebhookSource(StacksBlock):
    """A sender of webhooks to the prefect-stacks receiver: how its deliveries are
    verified (HMAC signature, token or bearer token) and translated into prefect-stacks
    events (the same events the watchers emit).

    Example:
        Load a stored source (the receiver answers it at `/hooks/BLOCK_NAME`):
        ```python
        from prefect_stacks.blocks.webhooks import WebhookSource

        source = WebhookSource.load("BLOCK_NAME")
        print(source.kind, source.max_body_bytes)
        ```
    """

    _block_type_name = "Webhook Source"
    _block_type_slug = "webhook-source"
    _logo_url = "https://raw.githubusercontent.com/PrefectHQ/prefect/420d0d6a78bb6df1fc18bcf188fdad43c1d22ea9/assets/block-logos/webhook.png"  # noqa: E501
    _documentation_url = (
        "https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries"
    )
    _description = (
        "A sender of webhooks (GitHub, GitLab, a container registry, or the generic signed "
        "scheme) to the prefect-stacks receiver, with the secret that verifies it."
    )

    # pydantic puts the raw input (the secret!) into ValidationError messages otherwise
    model_config = ConfigDict(hide_input_in_errors=True)

    kind: WebhookKind = Field(
        default=...,
        description=(
            "Who sends the deliveries: `github` (X-Hub-Signature-256), `gitlab` "
            "(X-Gitlab-Token), `registry` (a Docker Distribution registry's notifications, "
            "Authorization: Bearer) or `generic` (X-Stacks-Signature over timestamp and body)."
        ),
    )
    secret: SecretStr = Field(
        default=...,
        description=(
            "The shared secret: the HMAC key for `github` and `generic`, the secret token "
            "for `gitlab`, the bearer token for `registry`. Use a long random value, e.g. "
            "`openssl rand -hex 32`."
        ),
    )
    max_body_bytes: int = Field(
        default=DEFAULT_MAX_BODY_BYTES,
        gt=0,
        le=25 * 1024 * 1024,
        description=(
            "Largest request body accepted, in bytes; a larger delivery is answered 413 "
            "without being read. GitHub caps its payloads at 25 MB; 1 MiB is plenty for "
            "pushes, pull requests, releases and registry notifications."
        ),
    )
    registry: str | None = Field(
        default=None,
        description=(
            "For `registry` sources: the registry host[:port] to name in events (what image "
            "references use, e.g. `registry.example.com` or `127.0.0.1:5000`); without it "
            "the `request.host` of each notification is used."
        ),
    )

    @field_validator("secret")
    @classmethod
    def _secret_not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("secret is empty: every delivery would be unverifiable")
        return value

    @field_validator("registry")
    @classmethod
    def _registry_host(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host = value.strip().lower().removeprefix("https://").removeprefix("http://")
        host = host.rstrip("/")
        if not host or "/" in host or any(c.isspace() for c in host):
            raise ValueError(
                f"registry {value!r} is not a host[:port] such as `registry.example.com`"
            )
        return host
