"""Flow parameter types that the Prefect UI shows as one plain field.

A ``str | None`` parameter is a str/None toggle in the run form ('Property is type
"None"'), and a ``dict | None`` one too. ``Text`` and ``Variables`` are one text box / one
JSON object, and still take the ``null`` that API callers and `prefect-stacks trigger`
sent when these parameters were optional: it becomes ``""`` / ``{}``.
"""

from __future__ import annotations

import warnings
from typing import Annotated, Any

from pydantic import BeforeValidator, PydanticSchemaGenerationError
from pydantic.json_schema import PydanticJsonSchemaWarning


class _Unset:
    """An empty default that the parameter schema leaves out.

    Prefect's server lets ``null`` through its schema check only for a property without
    a default; a default of ``""`` or ``{}`` would refuse the ``null`` that API callers
    and `prefect-stacks trigger` sent when these parameters were ``str | None``. So the
    default is an empty ``str``/``dict`` that pydantic cannot put in a JSON schema: it is
    left out (and Prefect's validation turns it into a plain ``""``/``{}`` for the run)."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        raise PydanticSchemaGenerationError("an unset flow parameter default")


class _UnsetText(_Unset, str):
    pass


class _UnsetDict(_Unset, dict):
    pass


NO_TEXT: str = _UnsetText()
NO_VARIABLES: dict[str, Any] = _UnsetDict()
# pydantic says so for each such default; that is the point, not a problem
warnings.filterwarnings(
    "ignore",
    message=r"Default value (|\{\}) is not JSON serializable",
    category=PydanticJsonSchemaWarning,
)


def _empty_text(value: Any) -> Any:
    return "" if value is None else value


def _empty_dict(value: Any) -> Any:
    return {} if value is None else value


# One text box in the run form (not a str/None toggle); null from the API is "".
Text = Annotated[str, BeforeValidator(_empty_text)]
# A JSON object in the run form; null from the API is {}.
Variables = Annotated[dict[str, Any], BeforeValidator(_empty_dict)]
