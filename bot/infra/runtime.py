"""Start-up and run-time safety: the data folder, the log, and one clear line when we cannot run.

* The data folder is created 0700, its files 0600 (the database and the pseudonym secret
  included); it must be writable and have free space, checked at start-up and every few minutes
  while running, so the bot never promises storage that does not work.
* Every log record passes :class:`Redact`: the bot token never appears, at any level, in
  messages, arguments or httpx's request URLs. Library loggers that print raw updates (user ids,
  names) stay at INFO even when ``LOG_LEVEL=DEBUG``.
* A rejected token, an unreachable Bot API (after bounded retries), an unreachable database or a
  read-only folder end the process with one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import shutil
import socket
import stat
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

log = logging.getLogger(__name__)

#: Below this much free space the bot stops keeping photos (the screening goes on).
MIN_FREE_MB = 200
#: Library loggers that log raw updates, request bodies or SQL parameters (the inbox holds chat ids) at DEBUG.
CHATTY = ("httpx", "httpcore", "telegram", "telegram.ext", "apscheduler", "alembic", "tornado", "aiosqlite", "sqlalchemy", "asyncpg", "PIL")

T = TypeVar("T")


async def listen(web, port: int, address: str, setting: str, wait_s: float = 0.0, **kwargs):
    """``web.listen`` (tornado) on ``address:port``; a port in use is tried again for ``wait_s``
    (after ``kill -9`` the restarted process can find it held for a moment: the old socket, a
    supervisor's probe), then one line naming ``setting`` (StartupError, exit code 2)."""
    import errno

    loop = asyncio.get_running_loop()
    deadline, waited = loop.time() + wait_s, False
    while True:
        try:
            return web.listen(port, address, **kwargs)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE and loop.time() < deadline:
                if not waited:
                    log.warning("%s %s:%d is in use; trying again for up to %.0f s", setting, address, port, wait_s)
                waited = True
                await asyncio.sleep(0.25)
                continue
            raise StartupError(f"{setting} {address}:{port} cannot be used ({exc.strerror or exc}): give each process on a machine its own port, or 0 to switch it off") from None


class StartupError(Exception):
    """One line for the operator; ``python -m bot`` prints it and exits with code 2."""


def data_dir_problem(folder: Path, min_free_mb: int = MIN_FREE_MB) -> str | None:
    """None if ``folder`` can hold photos now, else one line that says why not."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        return f"data folder {folder} cannot be created: {exc.strerror or exc}"
    probe = folder / f".write-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        return f"data folder {folder} is not writable: {exc.strerror or exc}"
    free_mb = shutil.disk_usage(folder).free / 2**20
    if free_mb < min_free_mb:
        return f"data folder {folder} has only {free_mb:.0f} MB free (need {min_free_mb} MB)"
    return None


def secure_data_dir(folder: Path) -> None:
    """0700 for the folder and its sub-folders, 0600 for files (database, secret, photos)."""
    os.umask(0o077)
    folder.chmod(0o700)
    for path in folder.rglob("*"):
        mode = path.lstat().st_mode
        if stat.S_ISDIR(mode):
            path.chmod(0o700)
        elif stat.S_ISREG(mode):
            path.chmod(0o600)


class Redact(logging.Filter):
    """Replaces secrets (the bot token) in every record, whatever logger made it."""

    def __init__(self, *secrets: str):
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def _clean(self, value: object) -> object:
        if isinstance(value, str):
            for secret in self.secrets:
                value = value.replace(secret, "[redacted]")
            return value
        text = str(value)
        return self._clean(text) if any(s in text for s in self.secrets) else value

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._clean(record.msg)
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(self._clean(a) for a in args)
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self._clean(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


#: The Telegram update being handled, for log correlation (set by ``bot.infra.intake``); never a user id.
current_update: contextvars.ContextVar[int | None] = contextvars.ContextVar("current_update", default=None)


class JsonFormatter(logging.Formatter):
    """``LOG_FORMAT=json``: one object per line, with the update id when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (update_id := current_update.get()) is not None:
            out["update_id"] = update_id
        if record.exc_text:
            out["error"] = record.exc_text.strip().splitlines()[-1]  # one line; Redact ran first
        return json.dumps(out, ensure_ascii=False)


def setup_logging(level: str, token: str, fmt: str = "text") -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    redact = Redact(token)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redact)
        if fmt == "json":
            formatter = JsonFormatter()
            formatter.converter = time.gmtime
            handler.setFormatter(formatter)
    for name in CHATTY:
        logger = logging.getLogger(name)
        logger.setLevel(max(logging.INFO if name.startswith("telegram") else logging.WARNING, logging.getLogger().level))


def retry(what: str, attempt: Callable[[], T], tries: int, first_delay: float, fatal: tuple[type[BaseException], ...] = ()) -> T:
    """Call ``attempt`` until it succeeds, with exponential backoff; a ``fatal`` exception, an
    error that waiting cannot fix (:func:`permanent`) or the last failure becomes a
    :class:`StartupError` naming ``what``."""
    delay = first_delay
    for i in range(1, tries + 1):
        try:
            return attempt()
        except fatal as exc:
            raise StartupError(f"{what}: {one_line(exc)}") from None
        except Exception as exc:  # noqa: BLE001 - network and driver errors of every library
            if hint := permanent(exc):
                raise StartupError(f"{what}: {hint} ({one_line(exc)})") from None
            if i == tries:
                raise StartupError(f"{what} after {tries} {'try' if tries == 1 else 'tries'}: {one_line(exc)}") from None
            log.warning("%s failed (%s); retrying in %.0f s", what, one_line(exc), delay)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


#: Driver errors that mean the settings are wrong, not that a server is still starting.
PERMANENT = {
    "InvalidPasswordError": "the password was refused: check DATABASE_URL",
    "InvalidAuthorizationSpecificationError": "the user was refused: check DATABASE_URL",
    "InvalidCatalogNameError": "the database does not exist: create it or check DATABASE_URL",
    "InvalidToken": "Telegram rejected the token: check TELEGRAM_BOT_TOKEN (from @BotFather)",
}


def permanent(exc: BaseException) -> str | None:
    """What to check when ``exc`` (or anything it was raised from) will not go away by waiting:
    a host name that does not exist, a refused password or user, a missing database, a rejected
    token. None for errors worth retrying (refused or timed-out connections, a DNS server that
    did not answer)."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, socket.gaierror) and e.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            return "this host name does not exist: check the URL in the settings"
        if type(e).__name__ in PERMANENT:
            return PERMANENT[type(e).__name__]
        stack += [e.__cause__, e.__context__, getattr(e, "orig", None)]
    return None


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


async def within(awaitable: Awaitable[T], timeout: float) -> T:
    """``awaitable``'s result, or TimeoutError after ``timeout`` seconds *without waiting for it
    to wind down*: ``asyncio.wait_for`` would wait for the cancelled database call to finish its
    clean-up, which behind a locked SQLite file is the full busy timeout again."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        ABANDONED.add(task)
        task.add_done_callback(_forget)
        raise TimeoutError(f"no answer within {timeout:g} s")
    return task.result()


#: Database calls given up on by :func:`within` and still winding down; shutdown waits for them
#: (:func:`drain_abandoned`) before the engine is disposed, or their clean-up would wait forever.
ABANDONED: set[asyncio.Task] = set()


def _forget(task: asyncio.Task) -> None:
    ABANDONED.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: no "never retrieved" warning


async def drain_abandoned(timeout: float = 10.0) -> None:
    if ABANDONED:
        await asyncio.wait(set(ABANDONED), timeout=timeout)


def seconds(value) -> float:
    """A PTB duration (``RetryAfter.retry_after``): seconds, or a ``timedelta`` (PTB_TIMEDELTA)."""
    return float(value) if isinstance(value, (int, float)) else value.total_seconds()
