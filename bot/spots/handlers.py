"""Following a spot in the conversation (#13): the reminder button, ``/spots``, naming, the
reminder job, and the comparison when a spot is photographed again.

Buttons (``callback_data``), the result's fields signed like the follow-up buttons:
    rm:<sid>:<risk>:<mal>:<tag>            "remind me" → when?
    rt:<sid>:<risk>:<mal>:<period>:<tag>   create the spot and its reminder
    sp:<spot>:<sid>:<risk>:<mal>:<tag>     this photo is of that spot → compare
    ss:<spot> / sm:<spot>:<period>         stop a spot / move its reminder (ownership checked)
``mal`` is the malignancy in thousandths; ``period`` is ``w2``, ``m3``… and must be one of the
level's choices (``advice.REMINDERS``: a doctor reminder never comes after the deadline). A
followed spot's level is the strongest advice it was given (``advice.follow``): a lower score
later never brings back "keep watching", a 3-month reminder or the polyclinic-only path.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from bot.core.buttons import (
    PATTERNS,
    RISK_BY_CODE,
    RISK_CODES,
    button_tag,
    followup_keyboard,
    is_id,
    signs_ticked,
    verify,
)
from bot.core.context import Context, user_state
from bot.core.db import DB_WAIT_S, guarded
from bot.core.errors import on_other
from bot.i18n import local_date, t
from bot.infra.storage import CONSENT_YES
from bot.medical import advice
from bot.medical.referral import referral_text
from bot.spots.picture import side_by_side
from bot.spots.reminders import deadline_text, noise_of, send_reminders
from bot.spots.store import SpotCheck

log = logging.getLogger(__name__)


def _fields(sid: int, risk: str, malignancy: float) -> str:
    return f"{sid}:{RISK_CODES[risk]}:{min(1000, max(0, round(malignancy * 1000)))}"


def _parse(context: Context, user_id: int, parts: list[str], tag: str, prefix: str = "") -> tuple[int, str, float] | None:
    """(sid, risk, malignancy) from signed button fields, or None if anything is off."""
    if len(parts) != 3:
        return None
    sid_s, code, mal_s = parts
    if not (is_id(sid_s) and code in RISK_BY_CODE and mal_s.isdigit() and int(mal_s) <= 1000):
        return None
    if not verify(context.bot_data.button_key, user_id, prefix + ":".join(parts), tag):
        return None
    return int(sid_s), RISK_BY_CODE[code], int(mal_s) / 1000


async def replied_spot(update: Update, context: Context) -> int | None:
    """The followed spot whose reminder this photo replies to, if any."""
    replied = update.effective_message.reply_to_message
    if replied is None:
        return None
    return await guarded(context, "spots", context.bot_data.spots.spot_of_message(update.effective_user.id, replied.message_id), None, "look up the replied reminder")


def _flag(parts: list[str], n: int, flags: tuple[str, ...]) -> str | None:
    """The unsigned suffix of a button with ``n`` signed parts: "" without one, the suffix if it
    is one of ``flags``, else None (refused). A suffix only ever makes advice stronger or skips
    asking twice, so it needs no tag."""
    if len(parts) == n:
        return ""
    return parts[n] if len(parts) == n + 1 and parts[n] in flags else None


async def result_rows(context: Context, user_id: int, lang: str, sid: int, result, signs: bool = False, answered: bool = False) -> tuple[list[list[InlineKeyboardButton]], bool]:
    """Rows for an accepted result's keyboard: "remind me…", and "this is spot X" when the user
    follows spots. For moderate/high the reminder is "if I have not seen a doctor": it comes
    after the doctor advice and never instead of it. ``signs``: a warning sign was ticked before
    the result, so "remind me" offers the signs intervals (the suffix is not signed: forging it
    only makes a reminder sooner). ``answered``: the questions came before the result, so the
    spot's comparison does not ask them again (``:a``; ``:s`` when a sign was ticked).
    Also says whether the user follows any spot (the result then says how to pick one)."""
    spots = await active_spots(context, user_id)
    key_bytes = context.bot_data.button_key
    fields = _fields(sid, result.risk, result.malignancy)
    asked = ":s" if signs else (":a" if answered else "")
    key = "spot.remind_button_low" if result.risk == "low" and not signs else "spot.remind_button_doctor"
    rows = [[InlineKeyboardButton(t(lang, key), callback_data=f"rm:{fields}:{button_tag(key_bytes, user_id, fields)}" + (":s" if signs else ""))]]
    for spot, check in spots[:3]:
        payload = f"{spot.id}:{fields}"
        rows.append([InlineKeyboardButton("📍 " + spot_name(lang, spot, check), callback_data=f"sp:{payload}:{button_tag(key_bytes, user_id, payload)}" + asked)])
    return rows, bool(spots)


def spot_name(lang: str, spot, check: SpotCheck | None) -> str:
    return spot.name or t(lang, "spot.unnamed", date=local_date(check.created_at if check else spot.created_at, lang))


async def active_spots(context: Context, user_id: int) -> list:
    """(spot, last check) of the user's followed spots; empty if the database does not answer.

    Read once per process and user with SQLite (one process owns it: no query per photo), on
    every photo with a shared database (another replica may have changed them)."""
    cached = context.user_data.get("spots") if context.user_data is not None else None  # (a job has no user_data)
    if cached is not None and not context.bot_data.storage.shared:
        return cached
    listed = await guarded(context, "spots", context.bot_data.spots.list(user_id), None, "read the user's spots")
    if listed is None:  # the screening answer goes out without the spot buttons
        return []
    found = [(spot, check) for spot, check, _ in listed]
    if context.user_data is not None:
        context.user_data["spots"] = found
    return found


def spots_changed(context: Context) -> None:
    context.user_data.pop("spots", None)


# ---------------------------------------------------------------- buttons


#: The intervals of "when?" and /spots buttons sent before 2026-12 (months, for every level).
OLD_MONTHS = ("1", "3", "6")



async def on_spot_button(update: Update, context: Context) -> None:
    query = update.callback_query
    st = await user_state(update, context)
    kind, _, value = query.data.partition(":")
    await query.answer()
    uid, lang = update.effective_user.id, st["lang"]
    spots = context.bot_data.spots
    parts = value.split(":")
    if kind != "rm":
        spots_changed(context)
    if kind == "rm" and (flag := _flag(parts, 4, ("s",))) is not None and (parsed := _parse(context, uid, parts[:3], parts[3])):
        signs = flag == "s" or signs_ticked(context.bot_data.button_key, uid, query.message.reply_markup if query.message else None)
        await ask_when(query, lang, ":".join(parts[:3]), parts[3], parsed[1], signs)
    elif kind == "rt" and len(parts) == 5 and parts[3] in OLD_MONTHS and (parsed := _parse(context, uid, parts[:3], parts[4])):
        # A button from before the reminders followed the level (months only): ask again.
        await ask_when(query, lang, ":".join(parts[:3]), parts[4], parsed[1])
    elif kind == "rt" and (flag := _flag(parts, 5, ("s",))) is not None and (parsed := _parse(context, uid, parts[:3], parts[4])) and (period := advice.parse_period(parts[3], parsed[1]) or advice.parse_period(parts[3], "signs")):
        # (the signs intervals are offered when a sign was ticked: sooner is never weaker)
        sid, risk, malignancy = parsed
        signs = flag == "s"
        await query.edit_message_reply_markup(None)
        created = await guarded(context, "spots", spots.create(uid, query.message.chat_id, lang, risk, malignancy, sid, period, signs=signs), None, "create a spot")
        if created is None:
            await query.message.reply_text(t(lang, "spots.unavailable"))
            return
        reminder = created[1]
        key = "spot.created_low" if risk == "low" and not signs else "spot.created_doctor"
        sent = await query.message.reply_text(t(lang, key, date=local_date(reminder.due_at, lang)))
        # a reply to it names the spot, on any replica; the reminder is set either way
        await guarded(context, "spots", spots.set_prompt(reminder.spot_id, sent.message_id), what="remember the naming prompt")
    elif kind == "sp" and (flag := _flag(parts, 5, ("s", "a"))) is not None and parts[0].isdigit() and (parsed := _parse(context, uid, parts[1:4], parts[4], prefix=parts[0] + ":")):
        sid, risk, malignancy = parsed
        await query.edit_message_reply_markup(None)  # its follow-up questions move to the comparison
        signs = flag == "s" or signs_ticked(context.bot_data.button_key, uid, query.message.reply_markup if query.message else None)
        await compare(update, context, st, int(parts[0]), risk, malignancy, sid, None, signs=signs, asked=bool(flag))
    elif kind == "ss" and value.isdigit():
        if spot := await spots.stop(uid, int(value)):
            await query.edit_message_reply_markup(None)
            await query.message.reply_text(t(lang, "spots.stopped", name=spot_name(lang, spot, None)))
        else:
            await query.message.reply_text(t(lang, "spots.not_found"))
    elif kind == "sm" and len(parts) == 2 and parts[1] in OLD_MONTHS:
        # A /spots list from before the reminders followed the level: show the current one.
        await spots_command(update, context)
    elif kind == "sm" and len(parts) == 2 and parts[0].isdigit() and len(parts[0]) <= 10:
        moved = None
        if (spot := await spots.get(uid, int(parts[0]))) is not None:
            state = advice.follow(await spots.history(spot.id), repeat_noise(context))
            if (period := advice.parse_period(parts[1], state.level)) is not None:
                moved = await spots.reschedule(uid, query.message.chat_id, lang, spot.id, period, not_after=state.deadline)
        if moved:
            spot, reminder = moved
            await query.message.reply_text(t(lang, "spots.moved", name=spot_name(lang, spot, None), date=local_date(reminder.due_at, lang)))
        else:
            await query.message.reply_text(t(lang, "spots.not_found"))
    else:
        log.warning("refused a spot button that does not verify")


async def ask_when(query, lang: str, fields: str, tag: str, risk: str, signs: bool = False) -> None:
    """"When shall I remind you?" with the level's choices (``advice.REMINDERS``); with a warning
    sign ticked on the result, the signs interval's choices (see a doctor within 2 weeks)."""
    level = advice.stronger(risk, "signs") if signs else risk
    recommended = advice.RECOMMENDED[level]
    buttons = [
        InlineKeyboardButton(advice.period_text(lang, p) + (" ✓" if p == recommended else ""), callback_data=f"rt:{fields}:{advice.period_code(p)}:{tag}" + (":s" if signs else ""))
        for p in advice.REMINDERS[level]
    ]
    when = t(lang, "spot.when") + "\n" + advice.period_text(lang, recommended) + " " + t(lang, "spot.recommended")
    await query.message.reply_text(when, parse_mode=ParseMode.HTML, reply_markup=InlineKeyboardMarkup([buttons]))


# ---------------------------------------------------------------- /spots and naming


async def spots_command(update: Update, context: Context) -> None:
    lang = (await user_state(update, context))["lang"]
    rows = await context.bot_data.spots.list(update.effective_user.id)
    if not rows:
        await update.effective_message.reply_text(t(lang, "spots.empty"))
        return
    lines, keyboard = [t(lang, "spots.header")], []
    noise = repeat_noise(context)
    histories = await context.bot_data.spots.histories([spot.id for spot, _, _ in rows])
    for n, (spot, check, reminder) in enumerate(rows, 1):
        level = advice.follow(histories[spot.id], noise).level if histories.get(spot.id) else "low"
        when = local_date(reminder.due_at, lang) if reminder else t(lang, "spots.no_reminder")
        risk = t(lang, f"risk.{check.risk}") if check else "—"
        date = local_date(check.created_at, lang) if check else "—"
        lines.append(t(lang, "spots.item", n=n, name=html.escape(spot_name(lang, spot, check)), date=date, risk=risk, reminder=when))  # HTML message
        keyboard.append(
            [InlineKeyboardButton(t(lang, "spots.stop_button", n=n), callback_data=f"ss:{spot.id}")]
            + [InlineKeyboardButton("🔔 " + advice.period_text(lang, p), callback_data=f"sm:{spot.id}:{advice.period_code(p)}") for p in advice.REMINDERS[level]]
        )
    lines += ["", t(lang, "spots.hint")]
    await update.effective_message.reply_text("\n".join(lines), parse_mode=ParseMode.HTML, reply_markup=InlineKeyboardMarkup(keyboard))


async def on_reply_text(update: Update, context: Context) -> None:
    """A text replying to "name this spot", or "N name" replying to the /spots list, names a
    spot (both found from the database, so any replica can handle them); any other text gets
    the usual guidance (``bot.core.errors.on_other``)."""
    if not await _name_a_spot(update, context):
        await on_other(update, context)


#: How many times a reply to a naming prompt looks again for the prompt's row (within DB_WAIT_S).
PROMPT_WAIT_STEPS = 10


def _is_naming_prompt(lang: str, text: str) -> bool:
    """Does ``text`` start like "Done: I will remind you on …" (either kind of reminder)?"""
    return any(text.startswith(t(lang, key, date="\x00").split("\x00")[0]) for key in ("spot.created_low", "spot.created_doctor"))


async def _name_a_spot(update: Update, context: Context) -> bool:
    msg = update.effective_message
    replied = msg.reply_to_message
    if replied is None or not msg.text or not (replied.from_user and replied.from_user.is_bot):
        return False
    uid = update.effective_user.id
    spots = context.bot_data.spots
    lang = (await user_state(update, context))["lang"]
    spot_id, name = await spots.spot_of_prompt(uid, replied.message_id), msg.text
    if spot_id is None and _is_naming_prompt(lang, replied.text or ""):
        # The prompt is sent first and its message id stored next: a reply that overtakes that
        # write (a fast reply, a slow database) waits for it instead of being told "photos only".
        for _ in range(PROMPT_WAIT_STEPS):
            await asyncio.sleep(DB_WAIT_S / PROMPT_WAIT_STEPS)
            if (spot_id := await spots.spot_of_prompt(uid, replied.message_id)) is not None:
                break
    if spot_id is None:
        if not (replied.text or "").startswith(re.sub(r"<[^>]+>", "", t(lang, "spots.header"))):
            return False
        match = re.match(r"\s*(\d+)[.)]?\s+(.+)", msg.text, re.S)
        listed = await spots.list(uid)
        if not match or not 1 <= int(match.group(1)) <= len(listed):
            return False
        spot_id, name = listed[int(match.group(1)) - 1][0].id, match.group(2)
    spots_changed(context)
    name = " ".join(name.split())[:64]
    if name and await context.bot_data.spots.rename(update.effective_user.id, spot_id, name):
        await msg.reply_text(t(lang, "spot.named", name=name))
    else:
        await msg.reply_text(t(lang, "spots.not_found"))
    return True


# ---------------------------------------------------------------- comparison


async def compare(update: Update, context: Context, st: dict, spot_id: int, risk: str, malignancy: float, sid: int, jpeg: bytes | None, signs: bool = False, asked: bool = False) -> None:
    """This photo is of a followed spot: compare with its previous check, advise at the spot's
    level (the strongest advice it was given, ``advice.follow``), ask the follow-up questions at
    that level, record the check and set the next reminder at that level's interval.
    ``signs``: a warning sign was ticked for this photo (before its result, or on the result);
    ``asked``: the questions came before the result, so they are not asked again."""
    uid, lang = update.effective_user.id, st["lang"]
    spots = context.bot_data.spots
    message = update.effective_message
    spot = await spots.get(uid, spot_id)
    if spot is None:
        await message.reply_text(t(lang, "spots.not_found"))
        return
    previous = await spots.add_check(spot_id, risk, malignancy, sid, signs=signs)
    spots_changed(context)
    if previous is None:
        return
    state = advice.follow(await spots.history(spot_id), repeat_noise(context))
    parts = [t(lang, "compare.header", date=local_date(previous.created_at, lang), before=t(lang, f"risk.{previous.risk}"), now=t(lang, f"risk.{risk}"))]
    parts += [t(lang, state.outcome), state.advice.text(lang)]
    if state.deadline is not None:
        parts += [deadline_text(lang, state, spots.clock())]
    parts += ["", referral_text(lang, context.bot_data.directory, st.get("region"), full=state.advice.strength > 0)]
    before_photo = await spots.photo_of(uid, previous.submission_id) if st["consent"] == CONSENT_YES else None
    if jpeg is None:  # picked from a button: this photo's own logged case
        jpeg = await spots.photo_of(uid, sid)
    if before_photo is None or jpeg is None:
        parts += ["", t(lang, "compare.levels_only")]
    parts += ["", t(lang, "disclaimer")] + ([] if asked else ["", t(lang, "followup.question")])
    reply_to = message.message_id if update.message else None
    keyboard = None if asked else followup_keyboard(context.bot_data.button_key, uid, lang, sid, state.level, 0, spot_id)
    await message.reply_text("\n".join(parts), parse_mode=ParseMode.HTML, reply_to_message_id=reply_to, reply_markup=keyboard)
    if before_photo is not None and jpeg is not None:
        before_label = t(lang, "compare.label", date=local_date(previous.created_at, lang), risk=t(lang, f"risk.{previous.risk}"))
        now_label = t(lang, "compare.label", date=local_date(spots.clock(), lang), risk=t(lang, f"risk.{risk}"))
        picture = await asyncio.to_thread(side_by_side, before_photo, jpeg, before_label, now_label)
        caption = t(lang, "compare.caption", before=before_label, now=now_label)
        await message.reply_photo(picture, caption=caption)
    if moved := await spots.reschedule(uid, message.chat_id, lang, spot_id, advice.RECOMMENDED[state.level], not_after=state.deadline):
        reminder = moved[1]
        await message.reply_text(t(lang, "spots.moved", name=spot_name(lang, spot, previous), date=local_date(reminder.due_at, lang)))


def repeat_noise(context: Context) -> float:
    return noise_of(context.bot_data.screener)


def register(app: Application) -> None:
    settings = app.bot_data.settings
    app.add_handler(CommandHandler("spots", spots_command))
    app.add_handler(CallbackQueryHandler(on_spot_button, pattern=PATTERNS["spots"]))
    app.add_handler(MessageHandler(filters.REPLY & filters.TEXT & ~filters.COMMAND & ~filters.UpdateType.EDITED, on_reply_text))  # naming a spot
    app.job_queue.run_repeating(send_reminders, interval=settings.reminder_tick_s, first=min(10.0, settings.reminder_tick_s), name="reminders")
