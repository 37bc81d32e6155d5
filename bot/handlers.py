"""One small async callback per step of the conversation.

Services live in ``context.bot_data`` (see ``bot.app``): ``settings``, ``screener``, ``pool``,
``storage``, ``directory``, ``limiter``, ``slots``, ``turns``.  Nothing here blocks the event
loop: screening, decoding and photo encoding run in the worker processes of ``pool``
(``inference.pool``), one photo per user at a time (``UserTurns``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import html
import logging
import math
import time

from telegram import (
    BotCommand,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    ReplyParameters,
    Update,
)
from telegram.constants import ChatAction, ParseMode
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot import advice
from bot.i18n import LANGUAGES, local_time, pick_language, t, tn
from bot.observability import update_type
from bot.runtime import within
from bot.storage import CONSENT_NO, CONSENT_UNKNOWN, CONSENT_YES

log = logging.getLogger(__name__)

#: Telegram lets bots download files up to 20 MB.
MAX_DOWNLOAD = 20 * 1024 * 1024
FOLLOWUP_SIGNS = ("changed", "grew", "bled", "itched", "hurt")
LANGUAGE_NAMES = {"kk": "Қазақша", "ru": "Русский", "en": "English"}
RISK_CODES = {"low": "l", "moderate": "m", "high": "h"}
RISK_BY_CODE = {v: k for k, v in RISK_CODES.items()}
#: Largest submission id a button may carry (the column is a 32-bit integer everywhere).
MAX_SID = 2**31 - 1
#: Commands in the menu, in this order (``bot.app`` sets the default menus).
COMMANDS = ("start", "help", "language", "region", "spots", "privacy", "consent", "history", "delete")


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


# ---------------------------------------------------------------- helpers


async def count_update(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Group -1: counts every update by type for /metrics, then lets the real handlers run."""
    context.bot_data["metrics"].updates.labels(update_type(update)).inc()


def storage_failed(context: ContextTypes.DEFAULT_TYPE, op: str) -> None:
    context.bot_data["metrics"].storage_failures.labels(op).inc()


#: The longest a reply waits for the database (a locked SQLite file, a PostgreSQL that is down).
DB_WAIT_S = 2.0


async def user_state(update: Update, context: ContextTypes.DEFAULT_TYPE) -> dict:
    """Language, consent and region of the sender, cached in user_data, read from storage once
    — or once per update when the database is shared by several replicas (PostgreSQL): a user
    who withdrew consent through one replica must not have a photo kept by another.

    If the database does not answer within ``DB_WAIT_S``, the reply goes on with Telegram's
    language and unknown consent (nothing is kept), and the state is read again next time."""
    ud = context.user_data
    if "lang" not in ud or (context.bot_data["storage"].shared and ud.get("read_for") != update.update_id):
        ud["read_for"] = update.update_id
        try:
            user = await within(context.bot_data["storage"].get_user(update.effective_user.id), DB_WAIT_S)
        except Exception as exc:  # noqa: BLE001 - locked, down, timed out: degrade, never fail
            log.warning("database unavailable for a user read (%s): answering without it", type(exc).__name__)
            storage_failed(context, "read_user")
            return {"lang": pick_language(update.effective_user.language_code), "consent": CONSENT_UNKNOWN, "region": None, "db_down": True}
        if user is not None:
            ud.update(lang=user.language, consent=user.consent, region=user.region)
        else:
            ud.update(lang=pick_language(update.effective_user.language_code), consent=CONSENT_UNKNOWN, region=None)
    return ud


async def save_user(update: Update, context: ContextTypes.DEFAULT_TYPE, **fields) -> bool:
    """Remember the fields for this chat and store them; False if the database did not take them."""
    context.user_data.update({("lang" if k == "language" else k): v for k, v in fields.items()})
    try:
        await within(context.bot_data["storage"].upsert_user(update.effective_user.id, **fields), DB_WAIT_S)
        return True
    except Exception as exc:  # noqa: BLE001
        log.warning("could not store user settings (%s)", type(exc).__name__)
        storage_failed(context, "write_user")
        return False


def storage_ok(context: ContextTypes.DEFAULT_TYPE) -> bool:
    """The data folder was writable with free space at the last check (bot.app, every minute)."""
    return context.bot_data.get("storage_ok", True)


def language_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(LANGUAGE_NAMES[lang], callback_data=f"lang:{lang}") for lang in LANGUAGES]])


def consent_keyboard(lang: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(t(lang, "consent.yes_button"), callback_data="consent:yes")],
            [InlineKeyboardButton(t(lang, "consent.no_button"), callback_data="consent:no")],
        ]
    )


def consent_notice(lang: str, context: ContextTypes.DEFAULT_TYPE) -> str:
    s = context.bot_data["settings"]
    name = s.operator_name_for(lang) or t(lang, "operator.default")
    operator = name + (f" ({s.operator_contact})" if s.operator_contact else "")
    backups = tn(lang, "period.up_to_days", s.backup_retention_days)
    return t(lang, "consent.notice", period=tn(lang, "period.up_to_days", s.retention_days), backups=backups, operator=html.escape(operator))


def button_tag(context: ContextTypes.DEFAULT_TYPE, user_id: int, payload: str) -> str:
    """8 characters of an HMAC over the user and the button's payload: a forged or replayed
    button (another user's submission, a lower risk level) does not verify."""
    mac = hmac.new(context.bot_data["button_key"], f"{user_id}:{payload}".encode(), hashlib.sha256)
    return mac.hexdigest()[:8]


def sign_rows(lang: str, signs: tuple[str, ...], mask: int, data) -> list[list[InlineKeyboardButton]]:
    """One ☐/☑ toggle row per warning sign; ``data(i)`` is sign ``i``'s callback data (the
    follow-up questions after a result and the questions before it share this)."""
    return [[InlineKeyboardButton(("☑ " if mask & (1 << i) else "☐ ") + t(lang, f"followup.{sign}"), callback_data=data(i))] for i, sign in enumerate(signs)]


def valid_toggle(mask_s: str, action: str, signs: int, actions: tuple[str, ...]) -> bool:
    """A toggle button's mask (one bit per sign) and action (a sign's index, or one of ``actions``)."""
    if not (mask_s.isdigit() and len(mask_s) <= 2 and int(mask_s) < 1 << signs):
        return False
    return action in actions or (action.isdigit() and len(action) == 1 and int(action) < signs)


def followup_keyboard(context: ContextTypes.DEFAULT_TYPE, user_id: int, lang: str, sid: int, level: str, mask: int, spot_id: int | None = None) -> InlineKeyboardMarkup:
    """The warning-sign toggles and "Done". ``level`` (``advice.ORDER``) is the photo's risk, or
    for a followed spot the strongest advice it was given: "Done" never says less than that.
    ``spot_id``: the questions of a spot's comparison; a sign ticked there is kept with the
    spot's latest check (its reminders and deadline follow it)."""
    payload = f"{sid}:{advice.CODES[level]}" + (f":p{spot_id}" if spot_id else "")
    tag = button_tag(context, user_id, payload)
    rows = sign_rows(lang, FOLLOWUP_SIGNS, mask, lambda i: f"fu:{payload}:{mask}:{i}:{tag}")
    rows.append([InlineKeyboardButton(t(lang, "followup.done"), callback_data=f"fu:{payload}:{mask}:d:{tag}")])
    return InlineKeyboardMarkup(rows)


def parse_followup(context: ContextTypes.DEFAULT_TYPE, user_id: int, value: str) -> tuple[int, str, int, str, int | None] | None:
    """(sid, level, mask, action, spot id or None) of a follow-up button, or None unless every
    field is valid and the tag proves this bot made the button for this user."""
    parts = value.split(":")
    spot_s = None
    if len(parts) == 6:
        spot_s = parts.pop(2)
        if not (spot_s.startswith("p") and spot_s[1:].isdigit() and len(spot_s) <= 11 and int(spot_s[1:]) <= MAX_SID):
            return None
    if len(parts) != 5:
        return None
    sid_s, code, mask_s, action, tag = parts
    if not (sid_s.isdigit() and len(sid_s) <= 10 and int(sid_s) <= MAX_SID and code in advice.BY_CODE and valid_toggle(mask_s, action, len(FOLLOWUP_SIGNS), ("d",))):
        return None
    sid, mask = int(sid_s), int(mask_s)
    if not hmac.compare_digest(tag, button_tag(context, user_id, f"{sid}:{code}" + (f":{spot_s}" if spot_s else ""))):
        return None
    return sid, advice.BY_CODE[code], mask, action, int(spot_s[1:]) if spot_s else None


def referral_text(lang: str, context: ContextTypes.DEFAULT_TYPE, region_id: str | None, full: bool = True) -> str:
    """Where to go. ``full`` (moderate/high, /region): the region's centre, the main path, 1406,
    103/112. Otherwise (low) the polyclinic path only."""
    if not full:
        return t(lang, "referral.path_low")
    region = context.bot_data["directory"].get(region_id)
    lines = []
    if region is None:
        lines.append(t(lang, "referral.no_region"))
    elif not region.centres:
        lines.append(t(lang, "referral.no_centre", region=region.name(lang)))
    else:
        for centre in region.centres:
            lines.append(t(lang, "referral.region", region=region.name(lang), centre=centre.name(lang)))
            extra = ", ".join(x for x in (centre.address, centre.phone, centre.website) if x)
            if extra:
                lines[-1] += f" {html.escape(extra)}"
    lines.append(t(lang, "referral.path"))
    return "\n".join(lines)


def result_text(lang: str, result, context: ContextTypes.DEFAULT_TYPE, region_id: str | None, answers: dict[str, bool] | None = None) -> str:
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
    parts += ["", referral_text(lang, context, region_id, full=step.strength > 0), "", t(lang, "disclaimer")]
    return "\n".join(parts)


def menu(lang: str) -> list[BotCommand]:
    """The command menu in ``lang``."""
    return [BotCommand(c, t(lang, f"cmd.{c}")) for c in COMMANDS]


async def set_chat_menu(context: ContextTypes.DEFAULT_TYPE, chat_id: int, lang: str) -> None:
    """The command menu of this chat in the language the user picked (Telegram's own default
    follows the app's language, not /language)."""
    try:
        await context.bot.set_my_commands(menu(lang), scope=BotCommandScopeChat(chat_id))
    except TelegramError:
        log.warning("could not set the chat's command menu")


# ---------------------------------------------------------------- commands


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    st = await user_state(update, context)
    await save_user(update, context, language=st["lang"])
    lang = st["lang"]
    await update.effective_message.reply_text(t(lang, "welcome", tips=t(lang, "tips")), parse_mode=ParseMode.HTML, reply_markup=language_keyboard())
    if st["consent"] == CONSENT_UNKNOWN:
        await ask_consent(update, context, lang)


async def whoami_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Your own Telegram id, to you only (not in the menu): how a maintainer finds the id to put
    in ADMIN_USER_IDS. Nothing is stored or logged."""
    lang = (await user_state(update, context))["lang"]
    await update.effective_message.reply_text(t(lang, "whoami", id=update.effective_user.id))


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    lang = (await user_state(update, context))["lang"]
    await update.effective_message.reply_text(t(lang, "help") + "\n\n" + t(lang, "tips"), parse_mode=ParseMode.HTML)


async def language_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    lang = (await user_state(update, context))["lang"]
    await update.effective_message.reply_text(t(lang, "choose_language"), reply_markup=language_keyboard())


async def privacy_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    st = await user_state(update, context)
    lang = st["lang"]
    status = t(lang, f"privacy.status_{st['consent']}")
    text = t(lang, "privacy", notice=consent_notice(lang, context), status=status) + "\n\n" + t(lang, "privacy.reminders")
    wait_s = context.bot_data["settings"].answers_wait_s
    if wait_s > 0:  # what the questions before a result keep, and for how long (bot.questions)
        text += "\n\n" + t(lang, "privacy.questions", wait_max=tn(lang, "period.up_to_minutes", math.ceil((wait_s + context.bot_data["settings"].inbox_lease_s) / 60)))
    await update.effective_message.reply_text(text, parse_mode=ParseMode.HTML)


async def consent_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    lang = (await user_state(update, context))["lang"]
    await update.effective_message.reply_text(consent_notice(lang, context), parse_mode=ParseMode.HTML, reply_markup=consent_keyboard(lang))


async def delete_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    lang = (await user_state(update, context))["lang"]
    keyboard = InlineKeyboardMarkup(
        [[InlineKeyboardButton(t(lang, "delete.yes_button"), callback_data="delete:yes"), InlineKeyboardButton(t(lang, "delete.no_button"), callback_data="delete:no")]]
    )
    await update.effective_message.reply_text(t(lang, "delete.confirm"), reply_markup=keyboard)


async def history_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    st = await user_state(update, context)
    lang = st["lang"]
    if st["consent"] != CONSENT_YES:
        await update.effective_message.reply_text(t(lang, "history.no_consent"))
        return
    rows = await context.bot_data["storage"].history(update.effective_user.id)
    if not rows:
        await update.effective_message.reply_text(t(lang, "history.empty"))
        return
    lines = [t(lang, "history.header")]
    for r in rows:
        date = local_time(r.created_at, lang)
        lines.append(t(lang, "history.item", date=date, risk=t(lang, f"risk.{r.risk}")) if r.accepted else t(lang, "history.item_rejected", date=date))
    await update.effective_message.reply_text("\n".join(lines))


async def region_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    lang = (await user_state(update, context))["lang"]
    await update.effective_message.reply_text(t(lang, "region.prompt"), reply_markup=region_keyboard(context, lang))
    location = ReplyKeyboardMarkup([[KeyboardButton(t(lang, "region.share_button"), request_location=True)]], resize_keyboard=True, one_time_keyboard=True)
    await update.effective_message.reply_text("📍", reply_markup=location)


def region_keyboard(context: ContextTypes.DEFAULT_TYPE, lang: str) -> InlineKeyboardMarkup:
    """Regions sorted by their name in ``lang``, two short labels per row."""
    regions = sorted(context.bot_data["directory"].regions, key=lambda r: r.button(lang).casefold())
    buttons = [InlineKeyboardButton(r.button(lang), callback_data=f"region:{r.id}") for r in regions]
    return InlineKeyboardMarkup([buttons[i : i + 2] for i in range(0, len(buttons), 2)])


# ---------------------------------------------------------------- buttons


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    st = await user_state(update, context)
    kind, _, value = (query.data or "").partition(":")
    await query.answer()
    if kind == "lang" and value in LANGUAGES:
        await save_user(update, context, language=value)
        await query.edit_message_reply_markup(None)
        await query.message.reply_text(t(value, "language_set") + "\n\n" + t(value, "help"), parse_mode=ParseMode.HTML)
        await set_chat_menu(context, query.message.chat_id, value)
    elif kind == "consent" and value in ("yes", "no"):
        before = st["consent"]
        answer = CONSENT_YES if value == "yes" else CONSENT_NO
        saved = await save_user(update, context, consent=answer)
        await query.edit_message_reply_markup(None)
        if not saved:  # the confirmation only promises what the storage did
            lang = st["lang"]
            context.user_data.pop("lang", None)  # read again next time
            await query.message.reply_text(t(lang, "storage.down"))
            return
        if answer == CONSENT_NO:  # withdrawing consent stops reminders (and erases their chat ids)
            await context.bot_data["spots"].stop_user(update.effective_user.id)
        key = "consent.saved_yes" if answer == CONSENT_YES else ("consent.withdrawn" if before == CONSENT_YES else "consent.saved_no")
        if answer == CONSENT_YES and not storage_ok(context):
            key = "consent.saved_yes_unavailable"
        await query.message.reply_text(t(st["lang"], key))
    elif kind == "delete":
        await query.edit_message_reply_markup(None)
        if value == "yes":
            spots = await context.bot_data["spots"].delete_user(update.effective_user.id)  # spots, checks, reminders
            await context.bot_data["questions"].delete_user(update.effective_user.id)  # results waiting for answers
            gone = await context.bot_data["storage"].delete_user(update.effective_user.id)
            lang = st["lang"]
            context.user_data.clear()
            photos, results = tn(lang, "count.photos", gone.photos), tn(lang, "count.results", gone.submissions)
            backups = tn(lang, "period.up_to_days", context.bot_data["settings"].backup_retention_days)
            done = t(lang, "delete.done", photos=photos, results=results, spots=tn(lang, "count.spots", spots), backups=backups)
            await query.message.reply_text(done, reply_markup=ReplyKeyboardRemove())
        else:
            await query.message.reply_text(t(st["lang"], "delete.cancelled"))
    elif kind == "region" and value == "list":
        await query.edit_message_reply_markup(None)
        await query.message.reply_text(t(st["lang"], "region.prompt"), reply_markup=region_keyboard(context, st["lang"]))
    elif kind == "region":
        region = context.bot_data["directory"].get(value)
        if region is not None:
            await save_user(update, context, region=region.id)
            await query.edit_message_reply_markup(None)
            await query.message.reply_text(
                t(st["lang"], "region.set", region=region.name(st["lang"])) + "\n\n" + referral_text(st["lang"], context, region.id),
                reply_markup=ReplyKeyboardRemove(),
            )
    elif kind == "fu":
        await on_followup(update, context, value, st)
    else:
        log.warning("unknown button %r", query.data)


async def on_followup(update: Update, context: ContextTypes.DEFAULT_TYPE, value: str, st: dict) -> None:
    query = update.callback_query
    parsed = parse_followup(context, update.effective_user.id, value)
    if parsed is None:
        log.warning("refused a follow-up button that does not verify")
        return
    sid, risk, mask, action, spot_id = parsed
    lang = st["lang"]
    if action != "d":
        mask ^= 1 << int(action)
        rows = list(followup_keyboard(context, update.effective_user.id, lang, sid, risk, mask, spot_id).inline_keyboard)
        # The result's other buttons ("remind me", "this is spot X") stay under the questions.
        markup = query.message.reply_markup
        rows += [row for row in (markup.inline_keyboard if markup else ()) if not any((b.callback_data or "").startswith("fu:") for b in row)]
        await query.edit_message_reply_markup(InlineKeyboardMarkup(rows))
        return
    answers = {sign: bool(mask & (1 << i)) for i, sign in enumerate(FOLLOWUP_SIGNS)}
    await query.edit_message_reply_markup(None)
    if sid and st["consent"] == CONSENT_YES:
        try:
            await within(context.bot_data["storage"].set_followup(update.effective_user.id, sid, answers), DB_WAIT_S)
        except Exception as exc:  # noqa: BLE001 - the advice below matters more than the log
            log.warning("could not store follow-up answers (%s)", type(exc).__name__)
            storage_failed(context, "followup")
    if spot_id and any(answers.values()):  # the spot keeps it: its reminder comes by the signs deadline
        spots = context.bot_data["spots"]
        try:
            if await within(spots.signs_at(update.effective_user.id, spot_id, advice.RECOMMENDED["signs"]), DB_WAIT_S):
                from bot.spot_handlers import spots_changed  # (it imports this module's helpers)

                spots_changed(context)
        except Exception as exc:  # noqa: BLE001 - the advice below is sent either way
            log.warning("could not keep the sign with the spot (%s)", type(exc).__name__)
            storage_failed(context, "spots")
    # Never weaker than the result's own next step (bot/advice.py; tests/test_advice_flow.py).
    preface, step = advice.after_followup(risk, any(answers.values()))
    parts = ([t(lang, preface)] if preface else []) + [step.text(lang)]
    parts += ["", referral_text(lang, context, st.get("region"), full=step.strength > 0)]
    await query.message.reply_text("\n".join(parts))


# ---------------------------------------------------------------- photos


async def on_location(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    st = await user_state(update, context)
    loc = update.effective_message.location
    region = context.bot_data["directory"].nearest(loc.latitude, loc.longitude)  # used once, never stored
    lang = st["lang"]
    # Near a border the nearest administrative centre can be across it: ask before saving.
    keyboard = InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(t(lang, "region.confirm_yes", region=region.button(lang)), callback_data=f"region:{region.id}")],
            [InlineKeyboardButton(t(lang, "region.confirm_other"), callback_data="region:list")],
        ]
    )
    await update.effective_message.reply_text(t(lang, "region.confirm", city=region.city(lang), region=region.name(lang)), reply_markup=keyboard)


async def on_image(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A photo, or an image sent as a file: screen it and answer; log it only with consent."""
    msg = update.effective_message
    st = await user_state(update, context)
    lang = st["lang"]
    allowed, warn = await context.bot_data["limiter"].check(update.effective_user.id)
    if not allowed:
        if warn:
            await msg.reply_text(t(lang, "rate_limited"))
        return
    if msg.photo:
        media = msg.photo[-1]  # the largest size Telegram made
    else:
        media = msg.document
        mime = (media.mime_type or "").lower()
        name = (media.file_name or "").lower()
        if not (mime.startswith("image/") or name.endswith((".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif"))):
            await msg.reply_text(t(lang, "file.not_image"))
            return
    if media.file_size and media.file_size > MAX_DOWNLOAD:
        await msg.reply_text(t(lang, "file.too_big"))
        return

    bd = context.bot_data
    async with bd["turns"].turn(update.effective_user.id), bd["slots"]:  # one per user; bounds memory
        last = context.chat_data.get("typing_at", 0.0)
        if time.monotonic() - last > 4.0:  # Telegram shows it ~5 s; once is enough for an album
            context.chat_data["typing_at"] = time.monotonic()
            await context.bot.send_chat_action(msg.chat_id, ChatAction.TYPING)
        tg_file = await media.get_file()
        data = bytes(await tg_file.download_as_bytearray())
        keep = st["consent"] == CONSENT_YES and storage_ok(context)
        # In a worker process with a memory limit; for consenting users also re-encoded there
        # without metadata (EXIF, GPS).
        started = time.monotonic()
        result, jpeg = await bd["pool"].screen(data, keep_jpeg=keep)
        bd["metrics"].screened(result, time.monotonic() - started)
        log.debug("screened in %.0f ms: accepted=%s risk=%s reasons=%s", (time.monotonic() - started) * 1000, result.accepted, result.risk, ",".join(result.reasons))

    # "Nothing was kept" is said whenever the user could have expected their photo to be kept.
    sid, stored = 0, not st.get("db_down") and not (st["consent"] == CONSENT_YES and not keep)
    if keep:
        store = bd["storage"].add_submission(
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
        try:
            sid = await within(store, DB_WAIT_S) or 0
        except Exception as exc:  # noqa: BLE001 - the answer matters more than the log
            log.warning("could not store a submission (%s)", type(exc).__name__)
            storage_failed(context, "submission")
            stored = False
    late = update.update_id in bd.get("late_updates", ())  # received before a restart: answered at once, said late
    spot_id = None
    if result.accepted:
        from bot import question_handlers as qh, spot_handlers as sh  # (they import this module's helpers)

        spot_id = await sh.replied_spot(update, context)  # a reply to a reminder: that spot
        # The warning-sign questions before the result; a followed spot's come with its comparison.
        if spot_id is None and await qh.ask(update, context, st, result, sid, stored, late):
            return
    await send_result(context, update.effective_user.id, msg.chat_id, msg.message_id, lang, st.get("region"), result, sid, stored, late=late, spot_buttons=spot_id is None)
    if spot_id is not None:
        await sh.compare(update, context, st, spot_id, result.risk, result.malignancy, sid, jpeg if keep else None)
    await maybe_ask_consent(update, context, st)


async def send_result(context: ContextTypes.DEFAULT_TYPE, user_id: int, chat_id: int, reply_to: int, lang: str, region: str | None, result, sid: int, stored: bool,
                      answers: dict[str, bool] | None = None, late: bool = False, preface: str | None = None, spot_buttons: bool = True):  # fmt: skip
    """One message per photo, replying to it. Without ``answers`` the follow-up questions ride
    on it as its keyboard; with them (asked before the result) only "remind me" and the spot
    buttons, at the level the answers gave. ``spot_buttons`` False: a photo of a followed spot
    (its comparison, sent next, asks the questions at the spot's level)."""
    text = result_text(lang, result, context, region, answers)
    if not stored:
        text += "\n\n" + t(lang, "storage.not_saved")
    if preface:
        text = t(lang, preface) + "\n\n" + text
    if late:
        text = t(lang, "late") + "\n\n" + text
    markup = None
    if result.accepted and spot_buttons:
        from bot import spot_handlers as sh

        followed = await sh.active_spots(context, user_id)
        rows = []
        if answers is None:
            text += "\n\n" + t(lang, "followup.question")
            rows += followup_keyboard(context, user_id, lang, sid, result.risk, 0).inline_keyboard
        if followed:
            text += ("\n" if answers is None else "\n\n") + t(lang, "compare.pick")
        rows += sh.result_buttons(context, user_id, lang, sid, result, followed, signs=any((answers or {}).values()), answered=answers is not None)
        markup = InlineKeyboardMarkup(rows)
    # A photo deleted meanwhile (a late answer, a timed-out question screen) still gets its result.
    reply = ReplyParameters(reply_to, allow_sending_without_reply=True)
    return await context.bot.send_message(chat_id, text, parse_mode=ParseMode.HTML, reply_parameters=reply, reply_markup=markup)


async def maybe_ask_consent(update: Update, context: ContextTypes.DEFAULT_TYPE, st: dict) -> None:
    if st["consent"] == CONSENT_UNKNOWN and not st.get("db_down") and not context.user_data.get("consent_asked"):
        # Someone who skipped /start is asked once; nothing was kept for this photo.
        await ask_consent(update, context, st["lang"])


async def ask_consent(update: Update, context: ContextTypes.DEFAULT_TYPE, lang: str) -> None:
    context.user_data["consent_asked"] = True
    await update.effective_message.reply_text(consent_notice(lang, context), parse_mode=ParseMode.HTML, reply_markup=consent_keyboard(lang))


async def on_other(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Stickers, voice, video, text…: guidance, never silence."""
    lang = (await user_state(update, context))["lang"]
    await update.effective_message.reply_text(t(lang, "unsupported"))


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The one place errors end up: log with the traceback, answer politely, never leak it."""
    log.error("error while handling an update", exc_info=context.error)
    if isinstance(context.error, TelegramError) and "metrics" in context.bot_data:
        context.bot_data["metrics"].telegram_errors.labels(type(context.error).__name__).inc()
    if isinstance(update, Update) and update.effective_chat:
        lang = (context.user_data or {}).get("lang") or pick_language(update.effective_user.language_code if update.effective_user else None)
        try:
            await context.bot.send_message(update.effective_chat.id, t(lang, "error"))
        except TelegramError:
            log.warning("could not send the error message")
