"""What every handler gets: the bot's services (typed, ``BotServices``) and the sender's state.

PTB keeps ``context.bot_data`` for the whole application; ``bot.app`` makes it a
``BotServices`` (``ContextTypes(bot_data=BotServices)``), so a handler reads
``context.bot_data.storage`` with a type instead of one of twenty string keys. The services
are set once by ``bot.app.build_application``; the flags below them change while the bot runs.

``Flow`` is how one feature reaches another without importing it: ``bot.app`` hands over the
few functions the photo's way needs (the questions, a followed spot's comparison, the result's
spot buttons), so ``screening`` never imports ``spots`` or ``questions`` and no circle forms.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from telegram import Update
from telegram.ext import CallbackContext, ContextTypes, ExtBot

from bot.core.db import DB_WAIT_S, FAILED, guarded, storage_failed
from bot.i18n import pick_language
from bot.infra.intake import InboxProcessor
from bot.infra.observability import update_type
from bot.infra.runtime import within
from bot.infra.storage import CONSENT_UNKNOWN

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.infra.observability import Metrics
    from bot.infra.storage import Storage
    from bot.medical.referral import Directory
    from inference import Screener

log = logging.getLogger(__name__)


class UserTurns:
    """One screening at a time per user, first come first served between users.

    Without it, eight slow or hostile files from one account fill the worker queue and every
    other user waits behind them; with it, that account holds at most one worker at a time.
    """

    def __init__(self) -> None:
        self._locks: dict[int, asyncio.Lock] = {}
        self._users: dict[int, int] = {}

    @contextlib.asynccontextmanager
    async def turn(self, user_id: int):
        lock = self._locks.setdefault(user_id, asyncio.Lock())
        self._users[user_id] = self._users.get(user_id, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[user_id] -= 1
            if not self._users[user_id]:  # nobody waiting: forget the user (memory stays bounded)
                del self._users[user_id], self._locks[user_id]


@dataclass
class Flow:
    """Functions one feature hands another through ``bot.app`` (see the module docstring).

    - ``replied_spot(update, context)``: the followed spot a photo replies to (spots), or None;
    - ``ask(update, context, st, result, sid, stored, late)``: ask the questions before the
      result (questions); False when the result must go out at once;
    - ``compare(update, context, st, spot_id, risk, malignancy, sid, jpeg)``: a followed spot's
      comparison (spots);
    - ``spot_rows(context, user_id, lang, sid, result, signs, answered)``: "remind me" and
      "this is spot X" rows under a result, and whether the user follows spots (spots);
    - ``send_result(...)``: the one result message (screening), for the questions' answers;
    - ``spots_changed(context)``: forget the cached list of spots after a change (spots).
    """

    replied_spot: Callable[..., Awaitable[int | None]] | None = None
    ask: Callable[..., Awaitable[bool]] | None = None
    compare: Callable[..., Awaitable[None]] | None = None
    spot_rows: Callable[..., Awaitable[tuple[list, bool]]] | None = None
    send_result: Callable[..., Awaitable[Any]] | None = None
    spots_changed: Callable[..., None] | None = None


@dataclass
class BotServices:
    """``context.bot_data``: the services (set by ``bot.app``), then the running flags."""

    settings: Settings = None  # type: ignore[assignment]
    screener: Screener = None  # type: ignore[assignment]
    storage: Storage = None  # type: ignore[assignment]
    directory: Directory = None  # type: ignore[assignment]
    button_key: bytes = b""  # signs the buttons (bot.core.buttons)
    pool: Any = None  # inference.pool.ScreeningPool
    turns: UserTurns = field(default_factory=UserTurns)
    metrics: Metrics = None  # type: ignore[assignment]
    limiter: Any = None  # bot.infra.ratelimit.RateLimiter or RedisRateLimiter
    slots: asyncio.Semaphore | None = None  # bounds photos in flight (memory)
    spots: Any = None  # bot.spots.store.Spots
    questions: Any = None  # bot.questions.store.Questions
    dispatcher: Any = None  # bot.spots.reminders.Dispatcher
    process_id: str = ""  # this process, as the claimer of waiting results
    flow: Flow = field(default_factory=Flow)
    # running state
    storage_ok: bool = True  # the data folder was writable with free space at the last check
    pool_ready: bool = False  # workers loaded (the health check's "model")
    late_updates: set[int] = field(default_factory=set)  # received before a restart: answered at once, said late
    questions_down: bool = False  # the overdue-questions job saw the database down (logged once)
    health_server: Any = None
    storage_checker: asyncio.Task | None = None


Context = CallbackContext[ExtBot, dict, dict, BotServices]
CONTEXT_TYPES = ContextTypes(bot_data=BotServices)


async def count_update(update: Update, context: Context) -> None:
    """Group -1: counts every update by type for /metrics, then lets the real handlers run."""
    context.bot_data.metrics.updates.labels(update_type(update)).inc()


async def user_state(update: Update, context: Context) -> dict:
    """Language, consent and region of the sender, cached in user_data, read from storage once
    — or once per update when the database is shared by several replicas (PostgreSQL): a user
    who withdrew consent through one replica must not have a photo kept by another.

    If the database does not answer within ``DB_WAIT_S``, the reply goes on with Telegram's
    language and unknown consent (nothing is kept), and the state is read again next time."""
    ud = context.user_data
    storage = context.bot_data.storage
    if "lang" not in ud or (storage.shared and ud.get("read_for") != update.update_id):
        ud["read_for"] = update.update_id
        try:
            user = await within(storage.get_user(update.effective_user.id), DB_WAIT_S)
        except Exception as exc:  # noqa: BLE001 - locked, down, timed out: degrade, never fail
            log.warning("database unavailable for a user read (%s): answering without it", type(exc).__name__)
            storage_failed(context, "read_user")
            return {"lang": pick_language(update.effective_user.language_code), "consent": CONSENT_UNKNOWN, "region": None, "db_down": True}
        if user is not None:
            ud.update(lang=user.language, consent=user.consent, region=user.region)
        else:
            ud.update(lang=pick_language(update.effective_user.language_code), consent=CONSENT_UNKNOWN, region=None)
    return ud


async def save_user(update: Update, context: Context, **fields) -> bool:
    """Remember the fields for this chat and store them; False if the database did not take them."""
    context.user_data.update({("lang" if k == "language" else k): v for k, v in fields.items()})
    done = await guarded(context, "write_user", context.bot_data.storage.upsert_user(update.effective_user.id, **fields), FAILED, "store user settings")
    return done is not FAILED


def answered(context: Context, update_id: int | None) -> None:
    """Mark the update answered now, not after the rest of its handler: a crash from here on does
    not send the answer again (``bot.infra.intake``, the at-least-once window)."""
    processor = context.application.update_processor
    if update_id is not None and isinstance(processor, InboxProcessor):
        processor.answered(update_id)
