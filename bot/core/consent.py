"""Asking for consent: the notice, its buttons, and asking once someone who skipped /start.

Nothing about a user is kept without a "yes" here (``bot.account.handlers`` stores the answer).
"""

from __future__ import annotations

import html

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode

from bot.core.context import Context
from bot.i18n import t, tn
from bot.infra.storage import CONSENT_UNKNOWN


def consent_keyboard(lang: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(t(lang, "consent.yes_button"), callback_data="consent:yes")],
            [InlineKeyboardButton(t(lang, "consent.no_button"), callback_data="consent:no")],
        ]
    )


def consent_notice(lang: str, context: Context) -> str:
    s = context.bot_data.settings
    name = s.operator_name_for(lang) or t(lang, "operator.default")
    operator = name + (f" ({s.operator_contact})" if s.operator_contact else "")
    backups = tn(lang, "period.up_to_days", s.backup_retention_days)
    return t(lang, "consent.notice", period=tn(lang, "period.up_to_days", s.retention_days), backups=backups, operator=html.escape(operator))


async def ask_consent(update: Update, context: Context, lang: str) -> None:
    context.user_data["consent_asked"] = True
    await update.effective_message.reply_text(consent_notice(lang, context), parse_mode=ParseMode.HTML, reply_markup=consent_keyboard(lang))


async def maybe_ask_consent(update: Update, context: Context, st: dict) -> None:
    if st["consent"] == CONSENT_UNKNOWN and not st.get("db_down") and not context.user_data.get("consent_asked"):
        # Someone who skipped /start is asked once; nothing was kept for this photo.
        await ask_consent(update, context, st["lang"])
