"""Durable intake: a photo Telegram handed over is answered, even after ``kill -9``, and with
several replicas answered once.

Telegram forgets an update once it is acknowledged: by the next ``getUpdates`` call's
``offset`` in polling mode, by a 2xx answer to its POST in webhook mode. PTB acknowledges as
soon as it has the update in memory, so a crash loses everything received but not yet answered
(451 of 1,260 photos in the crash test). Here, in both modes:

1. each update is written to the ``inbox`` table, claimed by this process, and committed
   *before* it is acknowledged; an update already there (Telegram delivered it again, to this
   or another replica) is acknowledged and not answered again;
2. the update goes through PTB's normal handlers (``Application.update_queue``);
3. :class:`InboxProcessor` marks its row done when the handlers are done (answered, or answered
   by the error handler); done rows lose their payload and are forgotten after a day;
4. a process refreshes its claims every few seconds; unanswered rows whose owner stopped
   refreshing (killed) are taken over and answered, saying they are late. A single polling
   process takes over everything at start-up.

At-least-once: a crash between an answer and its ``done`` mark answers that photo twice (its case
is logged once: ``submissions.update_id`` is unique); it can never be answered zero times. The
window is kept short: a photo's row is marked done as soon as its result is sent
(:meth:`InboxProcessor.answered`), not after the rest of its handler (a consent question or a
followed spot's comparison, which under a burst wait their turn behind Telegram's rate limit),
and the done marks of a burst share one commit every ``DONE_BATCH_S``. With a database of its
own (SQLite, one process) the id is also appended at once to a journal file in the data folder
(``JOURNAL``; a write to the page cache survives ``kill -9``), which the next process replays
before it takes anything over: the window shrinks from a database commit under load to the
moment between Telegram's answer and that write. If
the database is down the updates are still answered, just without the inbox (screening never
waits for storage), and the log says so.

The inbox keeps only what answering needs: names and usernames are removed from the payload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

from telegram import Update
from telegram.error import NetworkError, RetryAfter, TimedOut
from telegram.ext import Application, SimpleUpdateProcessor

from bot.infra.runtime import current_update, seconds, within

log = logging.getLogger(__name__)

#: The longest the intake waits for the database before answering without the inbox.
INBOX_WAIT_S = 2.0
#: How long an answered update's id is kept to recognise a repeated delivery.
INBOX_KEEP_DONE_S = 24 * 3600.0
#: Keys removed (or blanked, where Telegram's types require them) from a stored update.
_NAME_KEYS = ("last_name", "username", "title", "bio")


def scrub(payload: object) -> object:
    """The update without people's names: what answering needs and nothing more."""
    if isinstance(payload, dict):
        out = {k: scrub(v) for k, v in payload.items() if k not in _NAME_KEYS}
        if "first_name" in out and not out.get("is_bot"):
            out["first_name"] = "-"
        return out
    if isinstance(payload, list):
        return [scrub(v) for v in payload]
    return payload


#: Answered updates are marked done together, at most this long after their answer: one commit
#: for a burst instead of one per update (the bot's largest SQLite cost under load). A crash in
#: that window answers those updates again after the restart (at-least-once, as before).
DONE_BATCH_S = 0.05
#: How many marked ids the processor remembers, so a handler's own early mark and its end's mark
#: commit once (far more than the updates in flight at any time).
RECENT_MARKS = 4096
#: The answered-ids journal (one id per line) in the data folder; single-process deployments only.
JOURNAL = "answered.journal"


class InboxProcessor(SimpleUpdateProcessor):
    """PTB's concurrent processor, plus: an update's inbox row is marked done when its handlers are."""

    def __init__(self, max_concurrent_updates: int):
        super().__init__(max_concurrent_updates)
        self.storage = None  # set by bot.app once storage exists
        self._done: list[int] = []
        self._marked: dict[int, None] = {}  # recently marked ids, oldest first: answered() is idempotent
        self._flushing: asyncio.Task | None = None
        self._journal: int | None = None  # fd of JOURNAL (O_APPEND) when this process owns the database
        self._journal_path: Path | None = None
        self._replayed = False

    def use_journal(self, path: Path) -> None:
        """Append answered ids to ``path`` as they happen (see the module docstring)."""
        self._journal_path = path
        self._journal = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    async def replay_journal(self) -> int:
        """Mark done the ids a killed predecessor wrote to the journal but may not have committed;
        then empty it. Runs at the first take-over of a process only. Returns how many ids it held."""
        if self._journal_path is None or self.storage is None or self._replayed:
            return 0
        self._replayed = True  # once per process: later entries are this process's own, committed by its batches
        ids = [int(x) for x in self._journal_path.read_text().split() if x.isdigit()]
        if ids:
            await within(self.storage.inbox_done(sorted(set(ids))), INBOX_WAIT_S)
        if not self._done:
            os.ftruncate(self._journal, 0)
        return len(ids)

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        if isinstance(update, Update):
            current_update.set(update.update_id)  # this task's log lines carry it (LOG_FORMAT=json)
        try:
            await coroutine
        finally:
            if isinstance(update, Update):
                self.answered(update.update_id)

    def answered(self, update_id: int) -> None:
        """The update's answer has gone out: mark its row done with the next batch (a handler
        calls it right after the answer, before whatever else it still sends; once more at its
        end does nothing new)."""
        if self.storage is None or update_id in self._marked:
            return
        self._marked[update_id] = None
        if self._journal is not None:
            try:
                os.write(self._journal, f"{update_id}\n".encode())
            except OSError as exc:  # a full disk: the database mark still comes with the batch
                log.warning("could not journal an answered update (%s)", exc.strerror)
        if len(self._marked) > RECENT_MARKS:
            del self._marked[next(iter(self._marked))]
        self._done.append(update_id)
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        await asyncio.sleep(DONE_BATCH_S)
        ids, self._done, self._flushing = self._done, [], None
        try:
            await within(self.storage.inbox_done(ids), INBOX_WAIT_S)
        except Exception:  # noqa: BLE001 - answered anyway; the rows are answered again after a restart
            log.warning("could not mark %d update(s) done in the inbox", len(ids))
            return
        if self._journal is not None and not self._done:  # everything journalled is committed
            os.ftruncate(self._journal, 0)

    async def drain(self) -> None:
        """The last answers' rows are marked done (``bot.app`` calls it before closing storage)."""
        if self._flushing is not None:
            await self._flushing


class Inbox:
    """What both modes share: persist and claim, queue, refresh claims, take over stale ones."""

    def __init__(self, app: Application, lease_s: float = 30.0):
        self.app = app
        self.storage = app.bot_data.storage
        self.owner = uuid.uuid4().hex  # this process, in the inbox's ``owner`` column
        self.lease_s = lease_s

    async def accept(self, updates: list[Update]) -> list[Update]:
        """Persist, then queue the updates this process must answer; returns them. Safe to
        acknowledge to Telegram when it returns."""
        if not updates:
            return []
        rows = [(u.update_id, u.effective_user.id if u.effective_user else None, scrub(u.to_dict())) for u in updates]
        try:
            new = await within(self.storage.inbox_add(rows, self.owner), INBOX_WAIT_S)
        except Exception:  # noqa: BLE001 - the answer matters more than durability
            log.warning("inbox write failed: answering %d update(s) without a crash guarantee", len(rows))
            self.app.bot_data.metrics.storage_failures.labels("inbox").inc()
            new = {u.update_id for u in updates}
        fresh = [u for u in updates if u.update_id in new]
        if len(fresh) < len(updates):
            self.app.bot_data.metrics.duplicates.inc(len(updates) - len(fresh))
        for update in fresh:
            await self.app.update_queue.put(update)
        return fresh

    async def take_over(self, stale_s: float) -> int:
        """Queue unanswered updates whose owner stopped refreshing them (all of them with
        ``stale_s=0``); their answers say they are late. Returns how many."""
        processor = self.app.update_processor
        try:
            if isinstance(processor, InboxProcessor) and (replayed := await processor.replay_journal()):
                log.info("%d answered update(s) from the journal marked done", replayed)
        except Exception as exc:  # noqa: BLE001 - those few may be answered again (at-least-once)
            log.warning("could not replay the answered-updates journal (%s)", type(exc).__name__)
        try:
            rows = await self.storage.inbox_claim(self.owner, stale_s)
        except Exception:  # noqa: BLE001
            log.warning("could not read the inbox: updates received before a crash are not recovered now")
            return 0
        late = self.app.bot_data.late_updates
        for row in rows:
            if row.payload is None:
                continue
            update = Update.de_json(row.payload, self.app.bot)
            late.add(update.update_id)
            await self.app.update_queue.put(update)
        if rows:
            log.info("took over %d unanswered update(s) from the inbox", len(rows))
        return len(rows)

    async def keep(self) -> None:
        """Until cancelled: refresh this process's claims and take over stale ones, every third
        of the lease (answered updates are forgotten by the daily retention job, ``bot.app``)."""
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                await within(self.storage.inbox_heartbeat(self.owner), INBOX_WAIT_S)
                await self.take_over(self.lease_s)
            except Exception as exc:  # noqa: BLE001 - the database may be down for a while
                log.warning("inbox upkeep failed (%s); trying again", type(exc).__name__)


class Intake:
    """The polling loop: fetch, persist, hand to PTB, acknowledge on the next fetch."""

    def __init__(self, app: Application, allowed_updates: list[str], poll_timeout: int = 10):
        self.app = app
        self.inbox = Inbox(app)
        self.allowed_updates = allowed_updates
        self.poll_timeout = poll_timeout
        self.offset: int | None = None
        self.stopping = asyncio.Event()

    async def recover(self) -> int:
        """One polling process per bot: everything unanswered in the inbox is a previous
        process's, so it is taken over at once."""
        return await self.inbox.take_over(0)

    async def run(self) -> None:
        """Until :meth:`stop`: long-poll, persist, queue. Network errors back off and retry."""
        await self.app.bot.delete_webhook()
        delay = 1.0
        while not self.stopping.is_set():
            try:
                updates = await self.app.bot.get_updates(
                    offset=self.offset, timeout=self.poll_timeout, allowed_updates=self.allowed_updates, read_timeout=self.poll_timeout + 10
                )
            except RetryAfter as exc:
                await self._sleep(seconds(exc.retry_after))
                continue
            except (NetworkError, TimedOut) as exc:
                log.warning("getUpdates failed (%s); retrying in %.0f s", type(exc).__name__, delay)
                self.app.bot_data.metrics.telegram_errors.labels(type(exc).__name__).inc()
                await self._sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            delay = 1.0
            if not updates:
                continue
            self.offset = updates[-1].update_id + 1
            await self.inbox.accept(updates)  # committed before the next getUpdates acknowledges them
        if self.offset is not None:  # acknowledge what was persisted, so a clean restart does not re-fetch it
            try:
                await self.app.bot.get_updates(offset=self.offset, timeout=0, allowed_updates=self.allowed_updates)
            except Exception as exc:  # noqa: BLE001 - re-fetched after a restart, answered at least once
                log.debug("final acknowledgement failed (%s)", type(exc).__name__)

    async def _sleep(self, seconds: float) -> None:
        try:
            await within(self.stopping.wait(), timeout=seconds)
        except TimeoutError:
            pass

    def stop(self) -> None:
        self.stopping.set()


async def serve(app: Application, intake: Intake) -> None:
    """Long polling with the durable intake until SIGINT/SIGTERM (what ``run_polling`` does for
    PTB's own Updater): in-flight updates finish before the process exits."""
    async with running(app, intake.stop):
        await intake.recover()
        await intake.run()


@contextlib.asynccontextmanager
async def running(app: Application, stop) -> AsyncIterator[None]:
    """The application started (``post_init`` first), ``stop`` wired to SIGINT/SIGTERM; on exit
    the update queue drains, then ``post_shutdown``."""
    import signal

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    async with app:
        if app.post_init:
            await app.post_init(app)
        await app.start()
        try:
            yield
        finally:
            await app.stop()  # waits for the update queue to drain
            if app.post_shutdown:
                await app.post_shutdown(app)
