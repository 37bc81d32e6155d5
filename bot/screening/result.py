"""The one place a result message is built: its text (``result_text``) and its keyboard, sent by
``send_result``. The questions (``bot.questions``) send their answered result through it too,
handed over as ``Flow.send_result``; the spot buttons come from ``Flow.spot_rows``."""

from __future__ import annotations

from telegram import InlineKeyboardMarkup, ReplyParameters
from telegram.constants import ParseMode

from bot.core.buttons import followup_keyboard
from bot.core.context import Context, answered
from bot.core.db import guarded
from bot.i18n import t
from bot.medical import advice
from bot.medical.referral import Directory, referral_text
from inference import ScreeningResult


def result_text(lang: str, result: ScreeningResult, directory: Directory, region_id: str | None, answers: dict[str, bool] | None = None) -> str:
    """The answer to a photo. ``answers``: the warning signs the user ticked before the result
    (None: not asked, skipped or timed out); they can raise the advice, never lower it
    (``advice.with_answers``)."""
    if not result.accepted:
        parts = [t(lang, "reject.intro")]
        parts += [t(lang, f"reason.{code}") for code in result.reasons]
        parts += ["", t(lang, "reject.outro")]
        return "\n".join(parts)
    preface, step = advice.with_answers(result.risk, answers)
    parts = [t(lang, f"result.{result.risk}")]
    if answers is not None:
        ticked = [(name := t(lang, f"followup.{sign}"))[:1].lower() + name[1:] for sign, yes in answers.items() if yes]
        parts += ["", t(lang, "ask.noted", signs="; ".join(ticked)) if ticked else t(lang, "ask.noted_none")]
    if preface:
        parts += ["", t(lang, preface)]
    parts += ["", step.text(lang)]
    if result.top_class == "inflammatory":
        parts += ["", t(lang, "result.inflammatory")]
    parts += ["", referral_text(lang, directory, region_id, full=step.strength > 0), "", t(lang, "disclaimer")]
    return "\n".join(parts)


async def send_result(context: Context, user_id: int, chat_id: int, reply_to: int, lang: str, region: str | None, result: ScreeningResult, sid: int, stored: bool,
                      answers: dict[str, bool] | None = None, late: bool = False, preface: str | None = None, spot_buttons: bool = True,
                      update_id: int | None = None):  # fmt: skip
    """One message per photo, replying to it. Without ``answers`` the follow-up questions ride
    on it as its keyboard; with them (asked before the result) only "remind me" and the spot
    buttons, at the level the answers gave. ``spot_buttons`` False: a photo of a followed spot
    (its comparison, sent next, asks the questions at the spot's level). ``update_id``: the update
    this message answers, marked answered the moment it is sent (before anything else is stored)."""
    bd = context.bot_data
    text = result_text(lang, result, bd.directory, region, answers)
    if not stored:
        text += "\n\n" + t(lang, "storage.not_saved")
    if preface:
        text = t(lang, preface) + "\n\n" + text
    if late:
        text = t(lang, "late") + "\n\n" + text
    markup = None
    if result.accepted and spot_buttons:
        spot_rows, follows = await bd.flow.spot_rows(context, user_id, lang, sid, result, signs=advice.answers_band(answers) != "none", answered=answers is not None)
        rows = []
        if answers is None:
            text += "\n\n" + t(lang, "followup.question")
            rows += followup_keyboard(bd.button_key, user_id, lang, sid, result.risk, 0).inline_keyboard
        if follows:
            text += ("\n" if answers is None else "\n\n") + t(lang, "compare.pick")
        markup = InlineKeyboardMarkup(rows + spot_rows)
    # A photo deleted meanwhile (a late answer, a timed-out question screen) still gets its result.
    reply = ReplyParameters(reply_to, allow_sending_without_reply=True)
    sent = await context.bot.send_message(chat_id, text, parse_mode=ParseMode.HTML, reply_parameters=reply, reply_markup=markup)
    answered(context, update_id)  # before the advice is stored: a crash from here on does not send it again
    if result.accepted:
        await record_advice(context, user_id, sid, advice.answers_level(result.risk, answers))
    return sent


async def record_advice(context: Context, user_id: int, sid: int, level: str) -> None:
    """Count the advice given (``bot_advice_total{within_days}``) and keep it with the logged case."""
    days = advice.within_days(level)
    context.bot_data.metrics.advice.labels(days).inc()
    if sid:
        await guarded(context, "advice", context.bot_data.storage.set_advice(user_id, sid, days), what="keep the advice with the case")
