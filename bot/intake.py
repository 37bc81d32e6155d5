"""Durable intake: a photo Telegram handed over is answered, even after ``kill -9``.

Telegram forgets an update once the next ``getUpdates`` call acknowledges it (its ``offset``).
PTB's Updater acknowledges as soon as it has fetched, so a crash loses everything fetched but
not yet answered (451 of 1,260 photos in the crash test). Here:

1. ``getUpdates`` → each update that needs an answer is written to the ``inbox`` table and
   committed, *before* the next ``getUpdates`` acknowledges it;
2. the update goes through PTB's normal handlers (``Application.update_queue``);
3. :class:`InboxProcessor` deletes its row when the handlers are done (answered, or answered
   by the error handler);
4. at start-up, rows still in the inbox are processed first, and their answers say they are late.

At-least-once: a crash between an answer and the row's deletion answers that photo twice; it
can never be answered zero times. If the database is down the updates are still answered,
just without the inbox (screening never waits for storage), and the log says so.

The inbox keeps only what answering needs: names and usernames are removed from the payload.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from telegram import Update
from telegram.error import NetworkError, RetryAfter, TimedOut
from telegram.ext import Application, SimpleUpdateProcessor

from bot.runtime import within

log = logging.getLogger(__name__)

#: The longest the intake waits for the database before answering without the inbox.
INBOX_WAIT_S = 2.0
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


class InboxProcessor(SimpleUpdateProcessor):
    """PTB's concurrent processor, plus: an update's inbox row goes when its handlers are done."""

    def __init__(self, max_concurrent_updates: int):
        super().__init__(max_concurrent_updates)
        self.storage = None  # set by bot.app once storage exists

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        try:
            await coroutine
        finally:
            if self.storage is not None and isinstance(update, Update):
                try:
                    await within(self.storage.inbox_done(update.update_id), INBOX_WAIT_S)
                except Exception:  # noqa: BLE001 - answered anyway; the row is answered again after a restart
                    log.warning("could not remove update %s from the inbox", update.update_id)


class Intake:
    """The polling loop: fetch, persist, hand to PTB, acknowledge on the next fetch."""

    def __init__(self, app: Application, allowed_updates: list[str], poll_timeout: int = 10):
        self.app = app
        self.storage = app.bot_data["storage"]
        self.allowed_updates = allowed_updates
        self.poll_timeout = poll_timeout
        self.offset: int | None = None
        self.stopping = asyncio.Event()
        self.recovered: set[int] = set()  # queued from the inbox: Telegram may deliver them again

    async def recover(self) -> int:
        """Queue what a previous process received and did not answer; returns how many."""
        try:
            rows = await self.storage.inbox_pending()
        except Exception:  # noqa: BLE001
            log.warning("could not read the inbox: updates received before a crash are not recovered")
            return 0
        late = self.app.bot_data.setdefault("late_updates", set())
        for row in rows:
            update = Update.de_json(row.payload, self.app.bot)
            late.add(update.update_id)
            self.recovered.add(update.update_id)
            await self.app.update_queue.put(update)
        if rows:
            log.info("recovered %d unanswered update(s) from the inbox", len(rows))
        return len(rows)

    async def persist(self, updates: list[Update]) -> None:
        rows = [(u.update_id, u.effective_user.id if u.effective_user else None, scrub(u.to_dict())) for u in updates]
        try:
            await within(self.storage.inbox_add(rows), INBOX_WAIT_S)
        except Exception:  # noqa: BLE001 - the answer matters more than durability
            log.warning("inbox write failed: answering %d update(s) without a crash guarantee", len(rows))
            self.app.bot_data["metrics"].storage_failures.labels("inbox").inc()

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
                await self._sleep(float(exc.retry_after if isinstance(exc.retry_after, (int, float)) else exc.retry_after.total_seconds()))
                continue
            except (NetworkError, TimedOut) as exc:
                log.warning("getUpdates failed (%s); retrying in %.0f s", type(exc).__name__, delay)
                self.app.bot_data["metrics"].telegram_errors.labels(type(exc).__name__).inc()
                await self._sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            delay = 1.0
            if not updates:
                continue
            self.offset = updates[-1].update_id + 1
            updates = [u for u in updates if u.update_id not in self.recovered]
            await self.persist(updates)  # committed before the next getUpdates acknowledges them
            for update in updates:
                await self.app.update_queue.put(update)
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
    """Run the application with the durable intake until SIGINT/SIGTERM (what ``run_polling``
    does for PTB's own Updater): in-flight updates finish before the process exits."""
    import signal

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, intake.stop)
    async with app:
        if app.post_init:
            await app.post_init(app)
        await intake.recover()
        await app.start()
        try:
            await intake.run()
        finally:
            await app.stop()  # waits for the update queue to drain
            if app.post_shutdown:
                await app.post_shutdown(app)
