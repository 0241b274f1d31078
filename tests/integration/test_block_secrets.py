"""Every secret of every prefect-stacks block is masked in every non-secret view.

The test walks all blocks the package exports (a block added later is covered without
touching this file), fills every secret it finds in the *annotations* (not in the schema's
``secret_fields``, which is what is under test) with a unique value — dicts and lists
non-empty, nested models walked — saves the block through a real Prefect server, then
reads it back without secrets three ways: the client
(``read_block_document_by_name(include_secrets=False)``), the REST API
(``GET /api/block_documents/{id}``, what the UI shows) and ``prefect block inspect``. No
unique value may appear in any of them. Read back *with* secrets, every value is there
(so the test cannot pass by saving nothing).
"""

from __future__ import annotations

import enum
import os
import subprocess
import sys
import types
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import httpx
import pytest
from prefect import get_client
from prefect.blocks.core import Block
from prefect.settings import PREFECT_API_URL
from prefect.types import SecretDict
from pydantic import BaseModel, Secret, SecretBytes, SecretStr

import prefect_stacks
from prefect_stacks.blocks.base import package_blocks

BLOCKS = package_blocks()


class Secrets:
    """Hands out unique secret values and remembers them."""

    def __init__(self) -> None:
        self.values: list[str] = []

    def new(self) -> str:
        value = f"s3cr3t-{uuid.uuid4().hex}"
        self.values.append(value)
        return value


def _sample(annotation: Any, secrets: Secrets) -> tuple[bool, Any]:
    """(holds a secret, a value for the annotation with every secret filled)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _sample(args[0], secrets)
    if origin is Union or origin is types.UnionType:
        for arg in args:
            found, value = _sample(arg, secrets)
            if found:
                return True, value
        return False, _plain(next(a for a in args if a is not type(None)))
    if isinstance(annotation, type) and issubclass(annotation, SecretDict):
        return True, SecretDict({"key-a": secrets.new(), "key-b": secrets.new()})
    if annotation is SecretStr:
        return True, SecretStr(secrets.new())
    if annotation is SecretBytes:
        return True, SecretBytes(secrets.new().encode())
    if isinstance(origin or annotation, type) and issubclass(origin or annotation, Secret):
        return True, Secret(secrets.new())
    if isinstance(origin, type) and issubclass(origin, Mapping) and args:
        found, value = _sample(args[-1], secrets)
        if found:
            second = _sample(args[-1], secrets)[1]
            return True, {"KEY_A": value, "KEY_B": second}
        return False, {}
    if origin in (list, tuple, set, frozenset) and args:
        found, value = _sample(args[0], secrets)
        return (True, [value]) if found else (False, [])
    if (
        isinstance(annotation, type)
        and issubclass(annotation, BaseModel)
        and not Block.is_block_class(annotation)
    ):
        found, value = _construct(annotation, secrets)
        return found, value
    return False, _plain(annotation)


def _plain(annotation: Any) -> Any:
    """Some value of a non-secret type (validators are bypassed by model_construct)."""
    origin = get_origin(annotation)
    if origin is Literal:
        return get_args(annotation)[0]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return next(iter(annotation))
    for kind, value in ((bool, False), (int, 1), (float, 1.0), (str, "sample")):
        if annotation is kind:
            return value
    if origin in (list, tuple, set, frozenset) or annotation in (list, tuple, set):
        return []
    if origin is dict or annotation is dict:
        return {}
    return None


def _construct(model: type[BaseModel], secrets: Secrets) -> tuple[bool, Any]:
    values: dict[str, Any] = {}
    found_any = False
    for name, field in model.model_fields.items():
        found, value = _sample(field.annotation, secrets)
        if found:
            values[name] = value
            found_any = True
        elif field.is_required():
            values[name] = value
    return found_any, model.model_construct(**values)


def test_the_walk_finds_the_secrets_it_must_mask():
    # the package's known secrets, so that a walk that finds nothing cannot pass below
    secrets = Secrets()
    found, stack = _construct(prefect_stacks.TerraformStack, secrets)
    assert found
    assert set(stack.env) == {"KEY_A", "KEY_B"}
    assert isinstance(stack.secret_variables["KEY_A"], SecretStr)
    assert len(secrets.values) == 7  # git_token + 2 x (secret_variables, env, backend)


@pytest.mark.parametrize("block_cls", BLOCKS, ids=lambda cls: cls.__name__)
def test_every_secret_is_masked_when_read_without_secrets(block_cls, prefect_harness, tmp_path):
    secrets = Secrets()
    found, block = _construct(block_cls, secrets)
    if not found:
        pytest.skip(f"{block_cls.__name__} has no secret field")
    name = f"secrets-{uuid.uuid4().hex[:8]}"
    block_id = block.save(name)
    slug = block_cls.get_block_type_slug()

    with get_client(sync_client=True) as client:
        masked = client.read_block_document_by_name(name, slug, include_secrets=False)
        clear = client.read_block_document_by_name(name, slug, include_secrets=True)
    api = str(PREFECT_API_URL.value()).rstrip("/")
    rest = httpx.get(f"{api}/block_documents/{block_id}", timeout=30)
    rest.raise_for_status()
    inspect = subprocess.run(
        [sys.executable, "-m", "prefect", "block", "inspect", f"{slug}/{name}"],
        env={**os.environ, "PREFECT_API_URL": api, "COLUMNS": "400"},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(tmp_path),
    )
    assert inspect.returncode == 0, inspect.stderr

    views = {
        "client (include_secrets=False)": masked.model_dump_json(),
        "GET /api/block_documents/{id}": rest.text,
        "prefect block inspect": inspect.stdout + inspect.stderr,
    }
    leaks = {
        view: [value for value in secrets.values if value in text] for view, text in views.items()
    }
    assert not any(leaks.values()), f"{block_cls.__name__} shows secrets in clear: {leaks}"
    assert "********" in views["GET /api/block_documents/{id}"]

    saved = clear.model_dump_json()
    assert all(value in saved for value in secrets.values), "the secrets were not all saved"


def test_a_document_saved_under_the_old_schema_is_upgraded_and_still_loads(prefect_harness):
    """A TerraformStack saved by 0.1.0 (Prefect's own secret_fields: ``env``, which masks
    nothing once the dict is non-empty) shows its secrets until `prefect-stacks blocks
    upgrade` points it at the current schema; its data (secrets included) is unchanged."""
    from prefect.blocks.core import schema_extra
    from prefect.client.schemas.actions import BlockDocumentCreate, BlockSchemaCreate
    from typer.testing import CliRunner

    from prefect_stacks._cli import app
    from prefect_stacks.blocks.terraform import TerraformStack

    TerraformStack.register_type_and_schema()
    old_fields = TerraformStack.model_json_schema()
    schema_extra(old_fields, TerraformStack)  # what Prefect alone lists
    assert "env" in old_fields["secret_fields"] and "env.*" not in old_fields["secret_fields"]
    password, key = f"pw-{uuid.uuid4().hex}", f"key-{uuid.uuid4().hex}"
    name = f"old-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        old_schema = client.create_block_schema(
            BlockSchemaCreate(
                fields=old_fields,
                block_type_id=TerraformStack._block_type_id,
                capabilities=[],
                version="0.1.0",
            )
        )
        client.create_block_document(
            BlockDocumentCreate(
                name=name,
                block_schema_id=old_schema.id,
                block_type_id=TerraformStack._block_type_id,
                data={
                    "source": "/srv/infra",
                    "secret_variables": {"db_password": password},
                    "env": {"AWS_SECRET_ACCESS_KEY": key},
                },
            )
        )

        def masked_text() -> str:
            doc = client.read_block_document_by_name(name, "terraform-stack", include_secrets=False)
            return doc.model_dump_json()

        assert password in masked_text() and key in masked_text()  # the defect, as saved

        runner = CliRunner()
        api = str(PREFECT_API_URL.value())
        dry = runner.invoke(app, ["blocks", "upgrade", "--dry-run"], env={"PREFECT_API_URL": api})
        assert dry.exit_code == 0, dry.output
        assert f"would upgrade  terraform-stack/{name}" in dry.output
        assert password in masked_text()  # a dry run changes nothing

        result = runner.invoke(app, ["blocks", "upgrade"], env={"PREFECT_API_URL": api})
        assert result.exit_code == 0, result.output
        assert f"terraform-stack/{name}" in result.output
        text = masked_text()
        assert password not in text and key not in text
        assert "********" in text

        again = runner.invoke(app, ["blocks", "upgrade"], env={"PREFECT_API_URL": api})
        assert f"terraform-stack/{name}" not in again.output  # idempotent

    loaded = TerraformStack.load(name)
    assert loaded.secret_variables["db_password"].get_secret_value() == password
    assert loaded.env["AWS_SECRET_ACCESS_KEY"].get_secret_value() == key
    assert loaded.source == "/srv/infra"
