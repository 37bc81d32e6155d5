"""The warning-sign questions asked before the result (#20): one screen of toggles per photo.

A usable photo gets, instead of its result, one message (a reply to the photo) with a toggle per
sign, "None of these", "Skip" and "Done". "Done" / "None of these" send the result with the
answers (``advice.with_answers``: a ticked sign means "see a doctor within 2 weeks" whatever the
photo showed); "Skip", or no answer within ``ANSWERS_WAIT_S``, sends today's image-only result
with the follow-up questions under it. Every photo of an album gets its own screen (each spot
may differ). A photo sent as a reply to a spot's reminder goes straight to its comparison,
which asks at the spot's level. The waiting result lives in the database (``bot.questions.store``).
"""

from __future__ import annotations

import logging
import math

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import Forbidden, TelegramError
from telegram.ext import Application, CallbackQueryHandler

from bot.core.buttons import PATTERNS, button_tag, is_id, sign_rows, valid_toggle, verify
from bot.core.consent import maybe_ask_consent
from bot.core.context import Context, user_state
from bot.core.db import DB_WAIT_S, guarded, storage_failed
from bot.i18n import t, tn
from bot.infra.runtime import within
from bot.infra.storage import CONSENT_YES
from bot.medical import advice
from bot.questions.store import Waiting
from inference import ScreeningResult

log = logging.getLogger(__name__)

#: The signs asked before the result (``bot.medical.advice.ASK_SIGNS``): PAD-UFES-20's six
#: answers (docs/model/answers.json) and what NICE NG12's weighted checklist also needs.
SIGNS = advice.ASK_SIGNS


def keyboard(context: Context, user_id: int, lang: str, wid: int, mask: int) -> InlineKeyboardMarkup:
    tag = button_tag(context.bot_data.button_key, user_id, f"q{wid}")
    rows = sign_rows(lang, SIGNS, mask, lambda i: f"qa:{wid}:{mask}:{i}:{tag}")
    # «None of these» only while nothing is ticked: pressed after a tick it would throw the tick
    # away. «Skip» carries the ticks: what was ticked is counted, never dropped.
    last = [InlineKeyboardButton(t(lang, "ask.none"), callback_data=f"qa:{wid}:0:n:{tag}")] if not mask else []
    rows.append(last + [InlineKeyboardButton(t(lang, "ask.skip"), callback_data=f"qa:{wid}:{mask}:s:{tag}")])
    rows.append([InlineKeyboardButton(t(lang, "followup.done"), callback_data=f"qa:{wid}:{mask}:d:{tag}")])
    return InlineKeyboardMarkup(rows)


def parse(context: Context, user_id: int, data: str) -> tuple[int, int, str] | None:
    """(waiting id, mask, action) of a question button, or None unless it is this bot's button
    for this user. Actions: a sign's index (toggle), ``d`` Done, ``n`` none of these, ``s`` skip."""
    parts = data.split(":")
    if len(parts) != 5 or parts[0] != "qa":
        return None
    _, wid_s, mask_s, action, tag = parts
    if not (is_id(wid_s) and valid_toggle(mask_s, action, len(SIGNS), ("d", "n", "s"))):
        return None
    if not verify(context.bot_data.button_key, user_id, f"q{wid_s}", tag):
        return None
    return int(wid_s), int(mask_s), action


async def ask(update: Update, context: Context, st: dict, result: ScreeningResult, sid: int, stored: bool, late: bool) -> bool:
    """Ask before the result; False when the result must go out at once instead (questions
    off, an update answered again after a restart, or the database not taking the row)."""
    bd = context.bot_data
    wait_s = bd.settings.answers_wait_s
    questions = bd.questions
    msg = update.effective_message
    try:
        if late:  # the crash may have come after its row was written: that row must not answer it again
            await within(questions.forget_update(update.update_id), DB_WAIT_S)
            return False
        if wait_s <= 0:
            return False
        wid = await within(questions.add(update.effective_user.id, msg.chat_id, msg.message_id, st["lang"], result, sid, stored, update.update_id, wait_s), DB_WAIT_S)
    except Exception as exc:  # noqa: BLE001 - the result goes out now, from the photo alone
        log.warning("could not keep the result for the questions (%s): answering at once", type(exc).__name__)
        storage_failed(context, "questions")
        return False
    lang = st["lang"]
    text = t(lang, "ask.question", wait=tn(lang, "period.within_minutes", max(1, math.ceil(wait_s / 60))))
    screen = await msg.reply_text(text, reply_to_message_id=msg.message_id, reply_markup=keyboard(context, update.effective_user.id, lang, wid, 0))
    bd.metrics.questions.labels("asked").inc()
    try:
        await within(questions.set_screen(wid, screen.message_id), DB_WAIT_S)
    except Exception as exc:  # noqa: BLE001 - only the screen's buttons stay after a timeout
        log.warning("could not remember the question screen (%s)", type(exc).__name__)
    return True


async def on_question_button(update: Update, context: Context) -> None:
    query = update.callback_query
    await query.answer()
    st = await user_state(update, context)
    uid, lang = update.effective_user.id, st["lang"]
    parsed = parse(context, uid, query.data or "")
    if parsed is None:
        log.warning("refused a question button that does not verify")
        return
    wid, mask, action = parsed
    if action.isdigit():
        await query.edit_message_reply_markup(keyboard(context, uid, lang, wid, mask ^ (1 << int(action))))
        return
    bd = context.bot_data
    try:
        waiting = await within(bd.questions.claim(wid, uid, bd.process_id, bd.settings.inbox_lease_s), DB_WAIT_S)
    except Exception as exc:  # noqa: BLE001 - the overdue pass answers it from the photo alone
        log.warning("could not read a waiting result (%s)", type(exc).__name__)
        storage_failed(context, "questions")
        await query.message.reply_text(t(lang, "storage.down"))
        return
    await query.edit_message_reply_markup(None)
    if waiting is None:  # answered already (timed out, or a second press)
        await query.message.reply_text(t(lang, "ask.already_ticks" if mask else "ask.already"))
        return
    # «Skip» after ticking counts the ticks (as «Done»); «Skip» with nothing ticked is the photo alone.
    answers = None if action == "s" and not mask else {sign: bool(mask & (1 << i)) for i, sign in enumerate(SIGNS)}
    bd.metrics.questions.labels("skip" if answers is None else ("signs" if any(answers.values()) else "none")).inc()
    if answers is not None and waiting.sid and st["consent"] == CONSENT_YES:
        await guarded(context, "followup", bd.storage.set_followup(uid, waiting.sid, answers), what="store the answers")
    try:
        await deliver(context, waiting, lang, st.get("region"), answers, update_id=update.update_id)
    except TelegramError:  # the overdue pass sends it (from the photo alone) instead of waiting out the lease
        await bd.questions.release(waiting.id, bd.process_id)
        raise
    await maybe_ask_consent(update, context, st)


async def deliver(context: Context, waiting: Waiting, lang: str, region: str | None, answers: dict[str, bool] | None, preface: str | None = None, update_id: int | None = None) -> None:
    """Send a claimed result, then forget it (a crash between the two answers it twice)."""
    await context.bot_data.flow.send_result(context, waiting.user_id, waiting.chat_id, waiting.message_id, lang, region, waiting.result, waiting.sid, waiting.stored, answers=answers, preface=preface, update_id=update_id)
    await context.bot_data.questions.done(waiting.id)


async def answer_overdue(context: Context) -> None:
    """Job, every ``ANSWERS_TICK_S``: results nobody answered within ``ANSWERS_WAIT_S`` (or whose
    process died) go out from the photo alone, with the follow-up questions, as "Skip" does."""
    bd = context.bot_data
    questions = bd.questions
    try:
        due = await questions.overdue(bd.process_id, bd.settings.inbox_lease_s)
    except Exception as exc:  # noqa: BLE001 - the database may be down; the next pass tries again
        if not bd.questions_down:  # one line per outage, not one every ANSWERS_TICK_S
            log.warning("could not look for unanswered questions (%s); trying every %.0f s", type(exc).__name__, bd.settings.answers_tick_s)
        bd.questions_down = True
        return
    if bd.questions_down:
        bd.questions_down = False
        log.info("unanswered questions are looked for again")
    for waiting in due:
        region = None
        try:
            user = await within(bd.storage.get_user(waiting.user_id), DB_WAIT_S)
            region = user.region if user else None
        except Exception:  # noqa: BLE001 - the referral then asks for the region
            pass
        if waiting.screen_id:
            try:
                await context.bot.edit_message_reply_markup(waiting.chat_id, waiting.screen_id, reply_markup=None)
            except TelegramError:
                pass  # deleted by the user, or too old: the result goes out anyway
        bd.metrics.questions.labels("timeout").inc()
        try:
            await deliver(context, waiting, waiting.language, region, None, preface="ask.timeout")
        except Forbidden:  # blocked the bot: nobody to answer
            await questions.done(waiting.id)
        except TelegramError as exc:
            log.warning("could not send an unanswered result (%s); trying again", type(exc).__name__)
            await questions.release(waiting.id, bd.process_id)


def register(app: Application) -> None:
    app.add_handler(CallbackQueryHandler(on_question_button, pattern=PATTERNS["questions"]))
    if app.bot_data.settings.answers_wait_s > 0:
        settings = app.bot_data.settings
        app.job_queue.run_repeating(answer_overdue, interval=settings.answers_tick_s, first=min(2.0, settings.answers_tick_s), name="questions")
