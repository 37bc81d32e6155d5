"""A photo, or an image sent as a file: screen it and answer; keep it only with consent.

``on_image`` reads as the steps a photo takes:
accept the file (``_media``) → screen it in a worker (``_screen``) → keep the case if the user
consented (``_keep``) → the questions before the result or a followed spot's comparison, handed
over by ``bot.app`` (``Flow``) → the result (``bot.screening.result``) → ask for consent once.
Nothing here blocks the event loop: decoding, screening and re-encoding run in the worker
processes of ``inference.pool``, one photo per user at a time (``UserTurns``).
"""

from __future__ import annotations

import logging
import time

from telegram import Message, Update
from telegram.constants import ChatAction
from telegram.ext import Application, MessageHandler, filters

from bot.core.consent import maybe_ask_consent
from bot.core.context import Context, user_state
from bot.core.db import FAILED, guarded
from bot.i18n import t
from bot.infra.storage import CONSENT_YES
from bot.screening.result import send_result
from inference import ScreeningResult

log = logging.getLogger(__name__)

#: Telegram lets bots download files up to 20 MB.
MAX_DOWNLOAD = 20 * 1024 * 1024
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif")


async def on_image(update: Update, context: Context) -> None:
    msg = update.effective_message
    st = await user_state(update, context)
    lang = st["lang"]
    allowed, warn = await context.bot_data.limiter.check(update.effective_user.id)
    if not allowed:
        if warn:
            await msg.reply_text(t(lang, "rate_limited"))
        return
    media = await _media(msg, lang)
    if media is None:
        return
    keep = st["consent"] == CONSENT_YES and context.bot_data.storage_ok
    result, jpeg = await _screen(update, context, media, keep)
    # "Nothing was kept" is said whenever the user could have expected their photo to be kept.
    stored = not st.get("db_down") and not (st["consent"] == CONSENT_YES and not keep)
    sid = 0
    if keep:
        kept = await _keep(update, context, result, jpeg)
        stored = stored and kept is not FAILED
        sid = 0 if kept is FAILED else kept or 0
    late = update.update_id in context.bot_data.late_updates  # received before a restart: answered at once, said late
    flow = context.bot_data.flow
    spot_id = None
    if result.accepted:
        spot_id = await flow.replied_spot(update, context)  # a reply to a reminder: that spot
        # The warning-sign questions before the result; a followed spot's come with its comparison.
        if spot_id is None and await flow.ask(update, context, st, result, sid, stored, late):
            return
    # (marked answered the moment it is sent: a crash after that does not send it again)
    await send_result(context, update.effective_user.id, msg.chat_id, msg.message_id, lang, st.get("region"), result, sid, stored, late=late, spot_buttons=spot_id is None, update_id=update.update_id)
    if spot_id is not None:
        await flow.compare(update, context, st, spot_id, result.risk, result.malignancy, sid, jpeg if keep else None)
    await maybe_ask_consent(update, context, st)


async def _media(msg: Message, lang: str):
    """The photo's largest size, or an image document; None (and the reason said) otherwise."""
    if msg.photo:
        media = msg.photo[-1]  # the largest size Telegram made
    else:
        media = msg.document
        mime = (media.mime_type or "").lower()
        name = (media.file_name or "").lower()
        if not (mime.startswith("image/") or name.endswith(IMAGE_SUFFIXES)):
            await msg.reply_text(t(lang, "file.not_image"))
            return None
    if media.file_size and media.file_size > MAX_DOWNLOAD:
        await msg.reply_text(t(lang, "file.too_big"))
        return None
    return media


async def _screen(update: Update, context: Context, media, keep: bool) -> tuple[ScreeningResult, bytes | None]:
    """Download and screen in a worker process with a memory limit; for consenting users the
    photo is also re-encoded there without metadata (EXIF, GPS)."""
    bd, msg = context.bot_data, update.effective_message
    async with bd.turns.turn(update.effective_user.id), bd.slots:  # one per user; bounds memory
        last = context.chat_data.get("typing_at", 0.0)
        if time.monotonic() - last > 4.0:  # Telegram shows it ~5 s; once is enough for an album
            context.chat_data["typing_at"] = time.monotonic()
            await context.bot.send_chat_action(msg.chat_id, ChatAction.TYPING)
        tg_file = await media.get_file()
        data = bytes(await tg_file.download_as_bytearray())
        started = time.monotonic()
        result, jpeg = await bd.pool.screen(data, keep_jpeg=keep)
        bd.metrics.screened(result, time.monotonic() - started)
        log.debug("screened in %.0f ms: accepted=%s risk=%s reasons=%s", (time.monotonic() - started) * 1000, result.accepted, result.risk, ",".join(result.reasons))
    return result, jpeg


async def _keep(update: Update, context: Context, result: ScreeningResult, jpeg: bytes | None):
    """Log the case (consent given): its id, or ``FAILED`` if the database did not take it."""
    store = context.bot_data.storage.add_submission(
        update.effective_user.id,
        jpeg,
        update_id=update.update_id,
        accepted=result.accepted,
        reasons=result.reasons,
        quality=result.quality,
        probabilities=result.probabilities,
        risk=result.risk,
        malignancy=result.malignancy,
        model_version=result.model,
    )
    return await guarded(context, "submission", store, FAILED, "store a submission")


def register(app: Application) -> None:
    app.add_handler(MessageHandler(filters.PHOTO | filters.Document.ALL, on_image))
