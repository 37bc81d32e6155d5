"""One way to call the database from a handler: within ``DB_WAIT_S``, and on failure degrade,
log one line and count it (``bot_storage_failures_total{op}``), never fail the reply.

A locked SQLite file or a PostgreSQL that is down must not cost a user their answer: the answer
goes out without what the database would have added (a stored case, the spot buttons…).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

from bot.infra.runtime import within

log = logging.getLogger(__name__)

#: The longest a reply waits for the database (a locked SQLite file, a PostgreSQL that is down).
DB_WAIT_S = 2.0
#: A fallback that tells failure apart from a call that returned None.
FAILED = object()


def storage_failed(context: Any, op: str) -> None:
    context.bot_data.metrics.storage_failures.labels(op).inc()


async def guarded(context: Any, op: str, call: Awaitable, fallback: Any = None, what: str | None = None) -> Any:
    """``await call`` within ``DB_WAIT_S``; on any failure: log "could not <what>", count ``op``
    and return ``fallback``."""
    try:
        return await within(call, DB_WAIT_S)
    except Exception as exc:  # noqa: BLE001 - locked, down, timed out: degrade, never fail
        log.warning("could not %s (%s)", what or op.replace("_", " "), type(exc).__name__)
        storage_failed(context, op)
        return fallback
