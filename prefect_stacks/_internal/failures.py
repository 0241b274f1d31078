"""User errors end a flow run as ``Failed`` with one log line, not a traceback.

A flow that raises logs Prefect's "Encountered exception during execution" traceback
(tens of lines, and again in the final state). For an error the user can act on (a
``ConfigurationError``: a missing block, a bad parameter) that buries the one line
that matters. :func:`fails_cleanly` turns such an error into a ``Failed`` state whose
message is the error's message, logged once at ERROR. The state carries the exception,
so a caller of the flow function (a test, a parent flow) still gets it raised.
Anything else (a bug, a terraform failure with its own retries) propagates unchanged.

In a worker, Prefect's engine still logs "Engine execution exited with unexpected
exception" with a traceback into the run's logs when a flow *returns* a Failed or
Cancelled state; :class:`QuietDeliberateEnds` (installed on ``prefect.flow_runs`` when
this module is imported) drops exactly that record for those deliberate ends.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from prefect import get_run_logger
from prefect.exceptions import CancelledRun, FailedRun
from prefect.states import Failed

from prefect_stacks.exceptions import ConfigurationError

F = TypeVar("F", bound=Callable[..., Any])


def fails_cleanly(fn: F) -> F:
    """Decorate a flow function (under ``@flow``) so a ``ConfigurationError`` becomes a
    ``Failed`` state with its message, logged once, without a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigurationError as exc:
            get_run_logger().error("%s", exc)
            return Failed(message=str(exc), data=exc)

    # Prefect reads the flow's parameters from inspect.signature(), which follows
    # __wrapped__ to annotations as written: strings under `from __future__ import
    # annotations`, which its parameter model cannot resolve. Give the wrapper the
    # signature with the annotations evaluated in the flow module.
    try:
        wrapper.__signature__ = inspect.signature(fn, eval_str=True)  # type: ignore[attr-defined]
    except NameError:  # a name only imported under TYPE_CHECKING: keep them as written
        pass
    return wrapper  # type: ignore[return-value]


class QuietDeliberateEnds(logging.Filter):
    """Drops the traceback Prefect's engine logs into a deployment run's logs after the
    flow itself ended the run Cancelled or Failed on purpose (a rejected approval, a
    ConfigurationError): the state's message already says what happened and what to do."""

    _MESSAGE = "Engine execution exited with unexpected exception"

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and str(record.msg).startswith(self._MESSAGE):
            return not isinstance(record.exc_info[1], (CancelledRun, FailedRun, ConfigurationError))
        return True


_flow_run_logger = logging.getLogger("prefect.flow_runs")
if not any(isinstance(f, QuietDeliberateEnds) for f in _flow_run_logger.filters):
    _flow_run_logger.addFilter(QuietDeliberateEnds())
