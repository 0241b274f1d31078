"""The base of every prefect-stacks block: secrets masked however they are nested.

Prefect masks a saved block's secrets in every non-secret view (the REST API without
``include_secrets``, ``prefect block inspect``, the UI) by the paths listed in the block
schema's ``secret_fields``; it replaces the value found at exactly that path of the
flattened document, or everything below a ``name.*`` wildcard. Prefect 3 lists a
``dict[str, SecretStr]`` field as ``name``, but a non-empty dict is flattened one level
deeper (``name.<key>``), so nothing matches and every value is shown in clear; a list of
models with a secret field is listed as ``name.field`` although lists are not flattened.

:func:`secret_paths` computes the paths from the annotations so that the server's rule
masks what is there: a mapping whose values hold a secret is ``name.*``, a sequence that
holds one is ``name`` (masked whole), a plain secret is ``name``, a nested model is walked.
:class:`StacksBlock` puts that list into the schema in place of Prefect's.

The block schema checksum leaves ``secret_fields`` out, so a server keeps the schema it
was first given for a package version: the version of prefect-stacks is the schema
version, and a fix to ``secret_fields`` ships with a new version. Block documents saved
under an older schema keep it until they are saved again (``prefect-stacks blocks
upgrade``).
"""

from __future__ import annotations

import types
from abc import ABC
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from prefect.blocks.core import Block, schema_extra
from prefect.types import SecretDict
from pydantic import BaseModel, ConfigDict, Secret, SecretBytes, SecretStr

B = TypeVar("B", bound=Block)
_SECRET_TYPES = (SecretStr, SecretBytes, Secret)
_SEQUENCES = (list, tuple, set, frozenset)


def _is_secret(annotation: Any) -> bool:
    origin = get_origin(annotation) or annotation
    return isinstance(origin, type) and issubclass(origin, _SECRET_TYPES)


def secret_paths(name: str, annotation: Any) -> list[str]:
    """The ``secret_fields`` entries of one field: where its secrets sit in the saved,
    flattened block document."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return secret_paths(name, args[0])
    if origin is Union or origin is types.UnionType:
        found: list[str] = []
        for arg in args:
            found += [p for p in secret_paths(name, arg) if p not in found]
        return found
    if isinstance(annotation, type) and issubclass(annotation, SecretDict):
        return [f"{name}.*"]
    if _is_secret(annotation):
        return [name]
    if isinstance(origin, type) and issubclass(origin, Mapping):
        return [f"{name}.*"] if args and secret_paths("v", args[-1]) else []
    if origin in _SEQUENCES:
        return [name] if any(secret_paths("v", arg) for arg in args) else []
    if Block.is_block_class(annotation):  # saved as a reference: masked by its own schema
        return [f"{name}.{s}" for s in annotation.model_json_schema()["secret_fields"]]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        found = []
        for field_name, field in annotation.model_fields.items():
            found += secret_paths(f"{name}.{field_name}", field.annotation)
        return found
    return []


def _stacks_schema_extra(schema: dict[str, Any], model: type[Block]) -> None:
    schema_extra(schema, model)
    paths: list[str] = []
    for name, field in model.model_fields.items():
        paths += secret_paths(name, field.annotation)
    schema["secret_fields"] = paths


class StacksBlock(Block, ABC):
    """A Prefect block whose schema lists every secret where the server can mask it.

    Abstract (``ABC`` among its own bases): Prefect's block registry, which a server
    registers at start, skips it, so the UI's catalog shows no "stacksblock" type."""

    model_config = ConfigDict(json_schema_extra=_stacks_schema_extra)


def package_blocks() -> list[type[Block]]:
    """Every block class prefect-stacks exports (what ``prefect block register -m
    prefect_stacks`` registers)."""
    from prefect_stacks import blocks

    return sorted(
        (
            obj
            for obj in vars(blocks).values()
            if isinstance(obj, type)
            and issubclass(obj, Block)
            and obj.__module__.startswith("prefect_stacks")
        ),
        key=lambda cls: cls.__name__,
    )


def upgrade_block_documents(*, dry_run: bool = False) -> dict[str, list[str]]:
    """Point every saved prefect-stacks block document at its block type's current schema
    (registering it first), so the server masks its secrets by today's ``secret_fields``.
    The data is kept as it is; a document the current class does not validate is left
    alone and reported. Returns ``{"upgraded"|"current"|"invalid": ["slug/name", ...]}``."""
    from prefect import get_client
    from prefect.client.schemas.actions import BlockDocumentUpdate
    from pydantic import ValidationError

    from prefect_stacks.exceptions import PrefectStacksError

    report: dict[str, list[str]] = {"upgraded": [], "current": [], "invalid": []}
    with get_client(sync_client=True) as client:
        for cls in package_blocks():
            cls.register_type_and_schema(client=client)
            slug = cls.get_block_type_slug()
            for doc in _documents_of_type(client, slug):
                label = f"{slug}/{doc.name}"
                if doc.is_anonymous or doc.block_schema_id == cls._block_schema_id:
                    report["current"].append(label)
                    continue
                try:
                    cls.model_validate(doc.data)
                except (ValidationError, ValueError, PrefectStacksError) as exc:
                    report["invalid"].append(f"{label}: {str(exc).splitlines()[0]}")
                    continue
                if not dry_run:
                    client.update_block_document(
                        doc.id,
                        BlockDocumentUpdate(
                            block_schema_id=cls._block_schema_id,
                            data=doc.data,
                            merge_existing_data=False,
                        ),
                    )
                report["upgraded"].append(label)
    return report


def secret_value(name: str | None, *, field: str) -> str | None:
    """The text of Prefect's ``Secret`` block ``name`` (None when no name is given, or the
    secret is empty); a missing block is a ConfigurationError naming ``field``, the
    parameter to fix or leave empty (public sources need no token)."""
    if not name:
        return None
    from prefect.blocks.system import Secret

    secret = load_block(
        Secret,
        name,
        create=f"create it (Blocks > Secret) or leave {field} empty for a public source",
    )
    return str(secret.get()) or None


def stored_blocks(block_type: type[B]) -> tuple[dict[str, B], dict[str, str]]:
    """Every named document of ``block_type`` on the server, loaded: ``(blocks by name,
    error by name)`` for those that no longer validate. No type registered yet: none."""
    from prefect import get_client

    found: dict[str, B] = {}
    invalid: dict[str, str] = {}
    with get_client(sync_client=True) as client:
        try:
            documents = _documents_of_type(client, block_type.get_block_type_slug())
        except Exception as exc:  # noqa: BLE001 - only "no such type" is expected
            if "not found" in str(exc).lower():
                return found, invalid
            raise
    for doc in documents:
        if doc.is_anonymous or not doc.name:
            continue
        try:
            found[doc.name] = block_type.model_validate(doc.data)
        except Exception as exc:  # noqa: BLE001 - reported by name, the others go on
            invalid[doc.name] = str(exc).splitlines()[0]
    return found, invalid


def _documents_of_type(client: Any, slug: str, page: int = 200) -> list[Any]:
    documents: list[Any] = []
    while True:
        batch = client.read_block_documents_by_type(
            slug, offset=len(documents), limit=page, include_secrets=True
        )
        documents += batch
        if len(batch) < page:
            return documents


def _is_missing(exc: ValueError) -> bool:
    """Whether ``Block.load`` raised because there is no such document (Prefect turns
    the client's ObjectNotFound into a ValueError)."""
    from prefect.exceptions import ObjectNotFound

    return isinstance(exc.__cause__, ObjectNotFound) or "Unable to find block document" in str(exc)


def find_block(block_type: type[B], name: str) -> B | None:
    """The block document ``name`` of ``block_type``, or None when there is none; any
    other failure (server down, a document that does not validate) is raised."""
    try:
        return block_type.load(name, _sync=True)
    except ValueError as exc:
        if _is_missing(exc):
            return None
        raise


async def afind_block(block_type: type[B], name: str) -> B | None:
    """:func:`find_block` from async code."""
    try:
        return await block_type.aload(name)
    except ValueError as exc:
        if _is_missing(exc):
            return None
        raise


def load_block(block_type: type[B], name: str, *, create: str) -> B:
    """The block document ``name`` of ``block_type``. A missing one is a
    ``ConfigurationError`` naming the type and name, the documents that do exist, and
    ``create`` (how to make one, or what to leave empty instead)."""
    from prefect_stacks.exceptions import ConfigurationError

    found = find_block(block_type, name)
    if found is not None:
        return found
    raise ConfigurationError(
        f"no {block_type.__name__} block named {name!r} ({existing_block_names(block_type)}); "
        f"{create}"
    )


def existing_block_names(block_type: type[Block], shown: int = 20) -> str:
    """``existing: a, b, c`` (sorted, the first ``shown``), ``there are none yet``, or
    that the server could not say: a hint for a missing-block error."""
    from prefect import get_client

    try:
        with get_client(sync_client=True) as client:
            documents = _documents_of_type(client, block_type.get_block_type_slug())
    except Exception:  # noqa: BLE001 - the error is about the missing block; this is a hint
        return "the existing ones could not be listed"
    names = sorted(d.name for d in documents if d.name and not d.is_anonymous)
    if not names:
        return "there are none yet"
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return "existing: " + ", ".join(names[:shown]) + more
