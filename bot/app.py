"""Builds the PTB ``Application`` with its services; used by ``python -m bot`` and the tests."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from datetime import timedelta

from telegram import Update
from telegram.ext import (
    AIORateLimiter,
    Application,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.account import handlers as account
from bot.admin import handlers as admin
from bot.admin.review import Review
from bot.config import Settings
from bot.core.context import CONTEXT_TYPES, Flow, count_update
from bot.core.errors import on_error, on_other
from bot.i18n import LANGUAGES
from bot.infra import observability
from bot.infra.intake import INBOX_KEEP_DONE_S, JOURNAL, InboxProcessor
from bot.infra.ratelimit import RateLimiter, RedisRateLimiter
from bot.infra.runtime import data_dir_problem, drain_abandoned
from bot.infra.storage import Storage
from bot.medical import referral
from bot.questions import handlers as questions
from bot.questions.store import Questions
from bot.screening import followup, photo
from bot.screening.result import send_result
from bot.spots import handlers as spots
from bot.spots.reminders import Dispatcher, noise_of
from bot.spots.store import Spots, fernet_key
from inference import Screener
from inference.pool import ScreeningPool

log = logging.getLogger(__name__)
COMMANDS = account.COMMANDS


class MessageRateLimiter(AIORateLimiter):
    """PTB's limiter for messages (~30/s overall, 20/min per group); chat actions skip it.

    Telegram's flood limits are about messages; a "typing…" status is throttled per chat by
    the photo handler instead, so under a burst every request slot goes to an answer.
    """

    async def process_request(self, callback, args, kwargs, endpoint, data, rate_limit_args):
        if endpoint == "sendChatAction":
            return await callback(*args, **kwargs)
        return await super().process_request(callback, args, kwargs, endpoint, data, rate_limit_args)


async def _post_init(app: Application) -> None:
    """Workers loaded before the first photo; the command menu in each language (English is the
    default for other languages)."""
    await asyncio.to_thread(app.bot_data.pool.warm_up)
    app.bot_data.pool_ready = True
    log.info("%s", startup_summary(app))
    settings = app.bot_data.settings
    if settings.health_port:
        app.bot_data.health_server = await observability.start_server(app, settings.health_listen, settings.health_port, settings.bind_wait_s)
    # Both walk the data folder: in the background, so a large photo store never delays start-up.
    app.bot_data.storage_checker = asyncio.create_task(_watch_data_dir(app))
    for lang in LANGUAGES:
        await app.bot.set_my_commands(account.menu(lang), language_code=None if lang == "en" else lang)


async def _post_shutdown(app: Application) -> None:
    """In-flight screenings finish before the process exits; then the database is closed."""
    checker, app.bot_data.storage_checker = app.bot_data.storage_checker, None
    if checker is not None:
        checker.cancel()
    server, app.bot_data.health_server = app.bot_data.health_server, None
    if server is not None:
        server.stop()
    await app.update_processor.drain()  # the last answered updates marked done
    await drain_abandoned()  # database calls given up on must finish before the engine goes
    await asyncio.to_thread(app.bot_data.pool.close)
    await app.bot_data.limiter.close()
    await app.bot_data.storage.close()


def startup_summary(app: Application) -> str:
    """One line an operator can check at a glance: mode, database (no password), absolute data
    folder, model version and card hash, languages, number of admins."""
    s: Settings = app.bot_data.settings
    screener = app.bot_data.screener
    card = hashlib.sha256(json.dumps(screener.card.raw, sort_keys=True).encode()).hexdigest()[:12]
    mode = f"webhook {s.webhook_url_redacted} (durable inbox)" if s.webhook_url else "polling (durable inbox)"
    return (
        f"starting: mode={mode} database={s.db_url_redacted} data={s.data_dir} model={screener.version} "
        f"card_sha256={card} languages={','.join(LANGUAGES)} admins={len(s.admin_user_ids)} workers={s.screening_workers}"
    )


#: This process's start (``time.time()``): a ``.tmp-`` photo from before it is a killed write.
STARTED_AT = time.time()

#: First retention run after start-up, then daily (``RETENTION_DAYS``; every replica may run it).
RETENTION_FIRST_S = 300.0


async def retention(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Daily: cases older than ``RETENTION_DAYS`` (rows and photo files) and answered updates
    older than a day are deleted, and the log says how many. ``python -m bot.admin purge`` does
    the same by hand."""
    bd = context.bot_data
    days = bd.settings.retention_days
    try:
        cases, files = await Review(bd.storage).purge(days)
        updates = await bd.storage.inbox_purge(INBOX_KEEP_DONE_S)
    except Exception as exc:  # noqa: BLE001 - the database may be down; tomorrow's run catches up
        log.warning("retention skipped (%s); it runs again in a day", type(exc).__name__)
        bd.metrics.storage_failures.labels("retention").inc()
        return
    log.info("retention: removed %d cases and %d photo files older than %d days, and %d answered updates", cases, files, days, updates)


async def _sweep(app: Application) -> None:
    try:
        swept = await app.bot_data.storage.sweep(started_at=STARTED_AT)
        for kind, n in swept.items():
            app.bot_data.metrics.swept.labels(kind).inc(n)
        if any(swept.values()):
            log.info("start-up sweep of the photo store: %s", swept)
    except Exception as exc:  # noqa: BLE001 - the database may be down at start-up: the bot still answers
        log.warning("start-up sweep skipped (%s)", type(exc).__name__)


async def _watch_data_dir(app: Application, every_s: float = 60.0) -> None:
    """First the start-up sweep of the photo store, then every minute: is the data folder still
    writable with free space? Photos are kept only while it is, and the consent confirmation
    says so when it is not."""
    settings = app.bot_data.settings
    await _sweep(app)
    while True:
        problem = await asyncio.to_thread(data_dir_problem, settings.data_dir)
        if problem and app.bot_data.storage_ok:
            log.error("%s: photos are not kept until this is fixed", problem)
        elif not problem and not app.bot_data.storage_ok:
            log.info("data folder writable again: photos are kept again")
        app.bot_data.storage_ok = problem is None
        await asyncio.sleep(every_s)


def build_application(settings: Settings, screener: Screener | None = None) -> Application:
    """Updates come through the durable inbox in both modes (``bot.infra.intake``, ``bot.infra.webhook``),
    so PTB's Updater is not used."""
    screener = screener or Screener.load(settings.model_path)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    secret = settings.secret()
    storage = Storage(settings.db_url, settings.photos_dir, secret)
    processor = InboxProcessor(settings.concurrent_updates)
    builder = (
        Application.builder()
        .token(settings.telegram_bot_token.get_secret_value())
        .base_url(settings.telegram_api_base_url)
        .base_file_url(settings.telegram_file_base_url)
        .concurrent_updates(processor)
        .connection_pool_size(settings.connection_pool_size)
        .pool_timeout(30)
        .rate_limiter(MessageRateLimiter(overall_max_rate=settings.telegram_messages_per_s, max_retries=3))
        .post_init(_post_init)
        .post_shutdown(_post_shutdown)
        .updater(None)
        .context_types(CONTEXT_TYPES)
    )
    app = builder.build()
    processor.storage = storage
    if not storage.shared:  # one process owns this database: it may journal its answers (bot.infra.intake)
        processor.use_journal(settings.data_dir / JOURNAL)
    bd = app.bot_data
    bd.settings, bd.screener, bd.storage, bd.directory = settings, screener, storage, referral.load()
    bd.button_key = hashlib.sha256(b"buttons:" + secret).digest()  # signs every button (bot.core.buttons)
    bd.pool = ScreeningPool(screener, workers=settings.screening_workers, memory_mb=settings.screening_memory_mb)
    bd.metrics = observability.Metrics(screener.version, lambda: bd.pool.queued)
    bd.limiter = (
        RedisRateLimiter(settings.rate_limit_photos, settings.rate_limit_window_s, settings.redis_url, storage.pseudonym)
        if settings.redis_url
        else RateLimiter(settings.rate_limit_photos, settings.rate_limit_window_s)
    )
    bd.slots = asyncio.Semaphore(settings.screening_workers * 8)
    bd.spots = Spots(storage, (chat_key := fernet_key(settings.reminder_key.get_secret_value(), secret)))
    bd.questions = Questions(storage, chat_key)  # results waiting for the questions before them
    bd.process_id = uuid.uuid4().hex  # this process, as the claimer of waiting results
    bd.dispatcher = Dispatcher(bd.spots, settings.reminder_rate_per_s, settings.reminder_tick_s, settings.reminder_lease_s, noise_of(screener))
    # What one feature needs of another, handed over here so that none imports another.
    bd.flow = Flow(
        replied_spot=spots.replied_spot,
        ask=questions.ask,
        compare=spots.compare,
        spot_rows=spots.result_rows,
        send_result=send_result,
        spots_changed=spots.spots_changed,
    )
    app.add_handler(TypeHandler(Update, count_update), group=-1)  # metrics only; never stops an update
    admin.register(app, settings.admin_user_ids)  # before the catch-all handlers
    account.register(app)
    spots.register(app)
    questions.register(app)
    followup.register(app)
    photo.register(app)
    app.add_handler(CallbackQueryHandler(on_unknown_button))
    app.add_handler(MessageHandler(~filters.UpdateType.EDITED & ~filters.StatusUpdate.ALL, on_other))
    app.add_error_handler(on_error)
    app.job_queue.run_repeating(retention, interval=timedelta(days=1), first=RETENTION_FIRST_S, name="retention")
    return app


async def on_unknown_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A button no pattern claims (an old format or a forged one): the spinner stops, the log says so."""
    await update.callback_query.answer()
    log.warning("unknown button %r", update.callback_query.data)


ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]
