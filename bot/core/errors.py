"""The answers of last resort, as in python-telegram-bot's ``errorhandlerbot.py``: the one error
handler, and the guidance for anything the bot does not handle (stickers, voice, text…)."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import TelegramError

from bot.core.context import Context, user_state
from bot.i18n import pick_language, t

log = logging.getLogger(__name__)


async def on_other(update: Update, context: Context) -> None:
    """Stickers, voice, video, text…: guidance, never silence."""
    lang = (await user_state(update, context))["lang"]
    await update.effective_message.reply_text(t(lang, "unsupported"))


async def on_error(update: object, context: Context) -> None:
    """The one place errors end up: log with the traceback, answer politely, never leak it."""
    log.error("error while handling an update", exc_info=context.error)
    metrics = getattr(context.bot_data, "metrics", None)
    if isinstance(context.error, TelegramError) and metrics is not None:
        metrics.telegram_errors.labels(type(context.error).__name__).inc()
    if isinstance(update, Update) and update.effective_chat:
        lang = (context.user_data or {}).get("lang") or pick_language(update.effective_user.language_code if update.effective_user else None)
        try:
            await context.bot.send_message(update.effective_chat.id, t(lang, "error"))
        except TelegramError:
            log.warning("could not send the error message")
