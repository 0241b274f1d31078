"""Settings of prefect-stacks, read from ``PREFECT_STACKS_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class StacksSettings(BaseSettings):
    """Where prefect-stacks keeps local working files. Nothing durable lives here except
    Terraform state of stacks on the default local backend (use a shared backend, e.g.
    ``pg``, when workers are many)."""

    model_config = SettingsConfigDict(env_prefix="PREFECT_STACKS_", extra="ignore")

    home: Path = Field(
        default=Path("~/.prefect-stacks"),
        description="Home directory for local Terraform state and the provider cache.",
    )

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()


def get_settings() -> StacksSettings:
    return StacksSettings()
