"""The ``ContainerRegistry`` block: a registry's API root, the credentials to read it
(prefect-docker's ``DockerRegistryCredentials``, the same block `docker login` and the
image builds use), and the request budget that watchers must stay within."""

from __future__ import annotations

from urllib.parse import urlsplit

from prefect_docker.credentials import DockerRegistryCredentials
from pydantic import Field, field_validator

from prefect_stacks._internal.http import ResponseCache
from prefect_stacks.blocks.base import StacksBlock
from prefect_stacks.blocks.registry.auth import plain_http_off_machine
from prefect_stacks.blocks.registry.client import RegistryClient

DOCKER_HUB_API = "https://registry-1.docker.io"


class ContainerRegistry(StacksBlock):
    """A container registry (Distribution, Docker Hub, GHCR, GitLab, Harbor, ECR ... any
    OCI distribution API v2) that prefect-stacks reads tags and digests from.

    Example:
        The digest `latest` points at now:
        ```python
        from prefect_stacks.blocks.registry import ContainerRegistry

        registry = ContainerRegistry.load("BLOCK_NAME")
        with registry.get_client() as client:
            print(client.digest("acme/shop", "latest"))
        ```
    """

    _block_type_name = "Container Registry"
    _block_type_slug = "container-registry"
    _logo_url = "https://cdn.sanity.io/images/3ugk85nk/production/14a315b79990200db7341e42553e23650b34bb96-250x250.png"  # noqa: E501
    _documentation_url = "https://distribution.github.io/distribution/spec/api/"
    _description = (
        "A container registry (OCI distribution API v2): where prefect-stacks reads the tags "
        "and digests it watches and deploys, with the credentials and request budget for it."
    )

    url: str = Field(
        default=...,
        description=(
            "API root of the registry, e.g. `https://ghcr.io`, `https://registry.gitlab.com`, "
            f"`{DOCKER_HUB_API}` (Docker Hub), `http://127.0.0.1:5000` (plain http only "
            "for a registry on this machine)."
        ),
    )
    credentials: DockerRegistryCredentials | None = Field(
        default=None,
        description=(
            "Username and password (or token) for a private registry; sent as basic auth, "
            "or to the registry's token service when it asks for a bearer token. Empty: "
            "anonymous."
        ),
    )
    requests_per_second: float = Field(
        default=5.0,
        gt=0,
        le=100,
        description=(
            "Request budget towards this registry: requests are spaced evenly (never a "
            "burst), and a 429 is waited out as its Retry-After says."
        ),
    )
    timeout: float = Field(default=30.0, gt=0, description="Seconds per request.")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        parts = urlsplit(value)
        if (
            parts.scheme not in ("https", "http")
            or not parts.netloc
            or parts.path not in ("", "/v2")
        ):
            raise ValueError(
                f"{value!r} is not a registry API root: give https://host[:port] "
                "(e.g. https://ghcr.io)"
            )
        if plain_http_off_machine(value):
            raise ValueError(
                f"{value!r}: plain http is only for a registry on this machine (credentials "
                "and digests would travel unprotected); use https://"
            )
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def host(self) -> str:
        """The host as it is written in image references (`ghcr.io`, `127.0.0.1:5000`;
        Docker Hub's API host is `docker.io`)."""
        netloc = urlsplit(self.url).netloc
        return "docker.io" if netloc == "registry-1.docker.io" else netloc

    def get_client(self, cache: ResponseCache | None = None) -> RegistryClient:
        """A client for this registry; ``cache`` keeps the ETags of digests between
        clients (a watcher's, persisted), else they live as long as the client."""
        creds = self.credentials
        return RegistryClient(
            base_url=self.url,
            host=self.host,
            username=creds.username if creds else None,
            password=creds.password.get_secret_value() if creds else None,
            requests_per_second=self.requests_per_second,
            timeout=self.timeout,
            cache=cache,
        )
