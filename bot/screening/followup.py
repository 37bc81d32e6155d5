"""The follow-up questions under a result (``fu:`` buttons): toggle a warning sign, then "Done".

"Done" stores the answers (with consent), keeps a ticked sign with a followed spot (its
reminder then comes within the signs interval) and restates the advice, never weaker than the
result's own (``bot.medical.advice.after_followup``; ``tests/test_advice_flow.py``).
"""

from __future__ import annotations

import logging

from telegram import InlineKeyboardMarkup, Update
from telegram.ext import Application, CallbackQueryHandler

from bot.core.buttons import FOLLOWUP_SIGNS, PATTERNS, followup_keyboard, parse_followup, without_followup
from bot.core.context import Context, user_state
from bot.core.db import guarded
from bot.i18n import t
from bot.infra.storage import CONSENT_YES
from bot.medical import advice
from bot.medical.referral import referral_text
from bot.screening.result import record_advice

log = logging.getLogger(__name__)


async def on_followup_button(update: Update, context: Context) -> None:
    query = update.callback_query
    st = await user_state(update, context)
    await query.answer()
    bd, uid, lang = context.bot_data, update.effective_user.id, st["lang"]
    parsed = parse_followup(bd.button_key, uid, (query.data or "")[3:])
    if parsed is None:
        log.warning("refused a follow-up button that does not verify")
        return
    sid, level, mask, action, spot_id = parsed
    if action != "d":
        mask ^= 1 << int(action)
        rows = list(followup_keyboard(bd.button_key, uid, lang, sid, level, mask, spot_id).inline_keyboard)
        # The result's other buttons ("remind me", "this is spot X") stay under the questions.
        await query.edit_message_reply_markup(InlineKeyboardMarkup(rows + without_followup(query.message.reply_markup)))
        return
    answers = {sign: bool(mask & (1 << i)) for i, sign in enumerate(FOLLOWUP_SIGNS)}
    await query.edit_message_reply_markup(None)
    if sid and st["consent"] == CONSENT_YES:
        await guarded(context, "followup", bd.storage.set_followup(uid, sid, answers), what="store follow-up answers")
    if spot_id and any(answers.values()):  # the spot keeps it: its reminder comes by the signs deadline
        if await guarded(context, "spots", bd.spots.signs_at(uid, spot_id, advice.RECOMMENDED["signs"]), what="keep the sign with the spot"):
            bd.flow.spots_changed(context)
    # Never weaker than the result's own next step (bot/medical/advice.py; tests/test_advice_flow.py).
    preface, step = advice.after_followup(level, any(answers.values()))
    raised = advice.stronger(level, "signs") if any(answers.values()) else level
    if advice.within_days(raised) != advice.within_days(level):  # the answer made the advice more urgent
        await record_advice(context, uid, sid, raised)
    parts = ([t(lang, preface)] if preface else []) + [step.text(lang)]
    parts += ["", referral_text(lang, bd.directory, st.get("region"), full=step.strength > 0)]
    await query.message.reply_text("\n".join(parts))


def register(app: Application) -> None:
    app.add_handler(CallbackQueryHandler(on_followup_button, pattern=PATTERNS["followup"]))
