"""The account: /start, /help, /language, /region (and a shared location), /privacy, /consent,
/history, /delete, and their buttons. One small callback per step, each routed by its own
pattern (``bot.core.buttons.PATTERNS``)."""

from __future__ import annotations

import logging
import math

from telegram import (
    BotCommand,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from bot.core.buttons import PATTERNS
from bot.core.consent import ask_consent, consent_keyboard, consent_notice
from bot.core.context import Context, save_user, user_state
from bot.i18n import BY_CODE, LANGUAGES, local_time, t, tn
from bot.infra.storage import CONSENT_NO, CONSENT_UNKNOWN, CONSENT_YES
from bot.medical.referral import referral_text

log = logging.getLogger(__name__)

#: Commands in the menu, in this order (``bot.app`` sets the default menus).
COMMANDS = ("start", "help", "language", "region", "spots", "privacy", "consent", "history", "delete")


def language_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(BY_CODE[lang].native, callback_data=f"lang:{lang}") for lang in LANGUAGES]])


def menu(lang: str) -> list[BotCommand]:
    """The command menu in ``lang``."""
    return [BotCommand(c, t(lang, f"cmd.{c}")) for c in COMMANDS]


async def set_chat_menu(context: Context, chat_id: int, lang: str) -> None:
    """The command menu of this chat in the language the user picked (Telegram's own default
    follows the app's language, not /language)."""
    try:
        await context.bot.set_my_commands(menu(lang), scope=BotCommandScopeChat(chat_id))
    except TelegramError:
        log.warning("could not set the chat's command menu")


def region_keyboard(context: Context, lang: str) -> InlineKeyboardMarkup:
    """Regions sorted by their name in ``lang``, two short labels per row."""
    regions = sorted(context.bot_data.directory.regions, key=lambda r: r.button(lang).casefold())
    buttons = [InlineKeyboardButton(r.button(lang), callback_data=f"region:{r.id}") for r in regions]
    return InlineKeyboardMarkup([buttons[i : i + 2] for i in range(0, len(buttons), 2)])


# ---------------------------------------------------------------- commands


async def start(update: Update, context: Context) -> None:
    st = await user_state(update, context)
    await save_user(update, context, language=st["lang"])
    lang = st["lang"]
    await update.effective_message.reply_text(t(lang, "welcome", tips=t(lang, "tips")), parse_mode=ParseMode.HTML, reply_markup=language_keyboard())
    if st["consent"] == CONSENT_UNKNOWN:
        await ask_consent(update, context, lang)


async def whoami_command(update: Update, context: Context) -> None:
    """Your own Telegram id, to you only (not in the menu): how a maintainer finds the id to put
    in ADMIN_USER_IDS. Nothing is stored or logged."""
    lang = (await user_state(update, context))["lang"]
    await update.effective_message.reply_text(t(lang, "whoami", id=update.effective_user.id))


async def help_command(update: Update, context: Context) -> None:
    lang = (await user_state(update, context))["lang"]
    await update.effective_message.reply_text(t(lang, "help") + "\n\n" + t(lang, "tips"), parse_mode=ParseMode.HTML)


async def language_command(update: Update, context: Context) -> None:
    lang = (await user_state(update, context))["lang"]
    await update.effective_message.reply_text(t(lang, "choose_language"), reply_markup=language_keyboard())


async def privacy_command(update: Update, context: Context) -> None:
    st = await user_state(update, context)
    lang = st["lang"]
    status = t(lang, f"privacy.status_{st['consent']}")
    text = t(lang, "privacy", notice=consent_notice(lang, context), status=status) + "\n\n" + t(lang, "privacy.reminders")
    settings = context.bot_data.settings
    if settings.answers_wait_s > 0:  # what the questions before a result keep, and for how long (bot.questions.store)
        text += "\n\n" + t(lang, "privacy.questions", wait_max=tn(lang, "period.up_to_minutes", math.ceil((settings.answers_wait_s + settings.inbox_lease_s) / 60)))
    await update.effective_message.reply_text(text, parse_mode=ParseMode.HTML)


async def consent_command(update: Update, context: Context) -> None:
    lang = (await user_state(update, context))["lang"]
    await update.effective_message.reply_text(consent_notice(lang, context), parse_mode=ParseMode.HTML, reply_markup=consent_keyboard(lang))


async def delete_command(update: Update, context: Context) -> None:
    lang = (await user_state(update, context))["lang"]
    keyboard = InlineKeyboardMarkup(
        [[InlineKeyboardButton(t(lang, "delete.yes_button"), callback_data="delete:yes"), InlineKeyboardButton(t(lang, "delete.no_button"), callback_data="delete:no")]]
    )
    await update.effective_message.reply_text(t(lang, "delete.confirm"), reply_markup=keyboard)


async def history_command(update: Update, context: Context) -> None:
    st = await user_state(update, context)
    lang = st["lang"]
    if st["consent"] != CONSENT_YES:
        await update.effective_message.reply_text(t(lang, "history.no_consent"))
        return
    rows = await context.bot_data.storage.history(update.effective_user.id)
    if not rows:
        await update.effective_message.reply_text(t(lang, "history.empty"))
        return
    lines = [t(lang, "history.header")]
    for r in rows:
        date = local_time(r.created_at, lang)
        lines.append(t(lang, "history.item", date=date, risk=t(lang, f"risk.{r.risk}")) if r.accepted else t(lang, "history.item_rejected", date=date))
    await update.effective_message.reply_text("\n".join(lines))


async def region_command(update: Update, context: Context) -> None:
    lang = (await user_state(update, context))["lang"]
    await update.effective_message.reply_text(t(lang, "region.prompt"), reply_markup=region_keyboard(context, lang))
    location = ReplyKeyboardMarkup([[KeyboardButton(t(lang, "region.share_button"), request_location=True)]], resize_keyboard=True, one_time_keyboard=True)
    await update.effective_message.reply_text("📍", reply_markup=location)


async def on_location(update: Update, context: Context) -> None:
    st = await user_state(update, context)
    loc = update.effective_message.location
    region = context.bot_data.directory.nearest(loc.latitude, loc.longitude)  # used once, never stored
    lang = st["lang"]
    # Near a border the nearest administrative centre can be across it: ask before saving.
    keyboard = InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(t(lang, "region.confirm_yes", region=region.button(lang)), callback_data=f"region:{region.id}")],
            [InlineKeyboardButton(t(lang, "region.confirm_other"), callback_data="region:list")],
        ]
    )
    await update.effective_message.reply_text(t(lang, "region.confirm", city=region.city(lang), region=region.name(lang)), reply_markup=keyboard)


# ---------------------------------------------------------------- buttons


async def _pressed(update: Update, context: Context) -> tuple[dict, str]:
    """Answer the press (Telegram stops the spinner) and read the sender's state and the value."""
    query = update.callback_query
    st = await user_state(update, context)
    await query.answer()
    return st, (query.data or "").partition(":")[2]


async def on_language_button(update: Update, context: Context) -> None:
    query = update.callback_query
    _, value = await _pressed(update, context)
    if value not in LANGUAGES:
        log.warning("unknown button %r", query.data)
        return
    await save_user(update, context, language=value)
    await query.edit_message_reply_markup(None)
    await query.message.reply_text(t(value, "language_set") + "\n\n" + t(value, "help"), parse_mode=ParseMode.HTML)
    await set_chat_menu(context, query.message.chat_id, value)


async def on_consent_button(update: Update, context: Context) -> None:
    query = update.callback_query
    st, value = await _pressed(update, context)
    if value not in ("yes", "no"):
        log.warning("unknown button %r", query.data)
        return
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
        await context.bot_data.spots.stop_user(update.effective_user.id)
    key = "consent.saved_yes" if answer == CONSENT_YES else ("consent.withdrawn" if before == CONSENT_YES else "consent.saved_no")
    if answer == CONSENT_YES and not context.bot_data.storage_ok:
        key = "consent.saved_yes_unavailable"
    await query.message.reply_text(t(st["lang"], key))


async def on_delete_button(update: Update, context: Context) -> None:
    query = update.callback_query
    st, value = await _pressed(update, context)
    await query.edit_message_reply_markup(None)
    if value != "yes":
        await query.message.reply_text(t(st["lang"], "delete.cancelled"))
        return
    bd, uid = context.bot_data, update.effective_user.id
    spots = await bd.spots.delete_user(uid)  # spots, checks, reminders
    await bd.questions.delete_user(uid)  # results waiting for answers
    gone = await bd.storage.delete_user(uid)
    lang = st["lang"]
    context.user_data.clear()
    photos, results = tn(lang, "count.photos", gone.photos), tn(lang, "count.results", gone.submissions)
    backups = tn(lang, "period.up_to_days", bd.settings.backup_retention_days)
    done = t(lang, "delete.done", photos=photos, results=results, spots=tn(lang, "count.spots", spots), backups=backups)
    await query.message.reply_text(done, reply_markup=ReplyKeyboardRemove())


async def on_region_button(update: Update, context: Context) -> None:
    query = update.callback_query
    st, value = await _pressed(update, context)
    lang = st["lang"]
    if value == "list":
        await query.edit_message_reply_markup(None)
        await query.message.reply_text(t(lang, "region.prompt"), reply_markup=region_keyboard(context, lang))
        return
    region = context.bot_data.directory.get(value)
    if region is None:
        log.warning("unknown button %r", query.data)
        return
    await save_user(update, context, region=region.id)
    await query.edit_message_reply_markup(None)
    text = t(lang, "region.set", region=region.name(lang)) + "\n\n" + referral_text(lang, context.bot_data.directory, region.id)
    await query.message.reply_text(text, reply_markup=ReplyKeyboardRemove())


def register(app: Application) -> None:
    for name, callback in (
        ("start", start),
        ("help", help_command),
        ("whoami", whoami_command),
        ("language", language_command),
        ("privacy", privacy_command),
        ("consent", consent_command),
        ("delete", delete_command),
        ("history", history_command),
        ("region", region_command),
    ):
        app.add_handler(CommandHandler(name, callback))
    app.add_handler(CallbackQueryHandler(on_language_button, pattern=PATTERNS["language"]))
    app.add_handler(CallbackQueryHandler(on_consent_button, pattern=PATTERNS["consent"]))
    app.add_handler(CallbackQueryHandler(on_delete_button, pattern=PATTERNS["delete"]))
    app.add_handler(CallbackQueryHandler(on_region_button, pattern=PATTERNS["region"]))
    app.add_handler(MessageHandler(filters.LOCATION, on_location))
