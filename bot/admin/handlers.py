"""Review tools in Telegram, for the ids in ADMIN_USER_IDS only.

For anyone else these commands do not exist: the handlers are registered behind a user filter,
so a non-admin's ``/review`` falls through to the ordinary "I only understand photos" answer.
"""

from __future__ import annotations

import asyncio
import functools
import html
import logging

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from bot.admin.review import REVIEW_CHOICES, Case, Review
from bot.core.buttons import MAX_SID, PATTERNS
from bot.core.context import Context, user_state
from bot.core.errors import on_other
from bot.i18n import BY_CODE, local_date, local_time, number, percent, t
from bot.medical import referral

log = logging.getLogger(__name__)


def _fmt(d: dict | None, lang: str, name=None) -> str:
    """``{code: value}`` as "label value, …"; ``name`` turns a code into the admin's language."""
    if not d:
        return "—"
    label = name or (lambda k: k)
    return ", ".join(f"{label(k)} {number(v, lang, '0.00')}" if isinstance(v, float) else f"{label(k)} {v}" for k, v in d.items())


def language_name(code: str) -> str:
    """A language by its own name, as it reads inside a sentence ("қазақша")."""
    return BY_CODE[code].in_text if code in BY_CODE else code


@functools.cache
def _directory() -> referral.Directory:
    return referral.load()


def region_name(lang: str, region_id: str | None) -> str:
    if not region_id:
        return "—"
    region = _directory().get(region_id)
    return region.name(lang) if region else region_id


def reason_label(lang: str, code: str) -> str:
    """A rejection reason's short label: the user-facing text up to its advice ("• it is blurry")."""
    try:
        return t(lang, f"reason.{code}").lstrip("• ").split(" — ")[0]
    except KeyError:
        return code


def quality_label(lang: str, key: str) -> str:
    """A quality measurement's name in the admin's language (the code if it is a new one)."""
    try:
        return t(lang, f"admin.quality.{key}")
    except KeyError:
        return key


def risk_label(lang: str, code: str) -> str:
    return t(lang, f"risk.{code}") if code in ("low", "moderate", "high") else code


def case_text(lang: str, case: Case) -> str:
    s = case.submission
    top = sorted((s.probabilities or {}).items(), key=lambda kv: -kv[1])[:3]
    verdicts = "; ".join(
        f"{t(lang, f'admin.verdict.{v.verdict}') if v.verdict in REVIEW_CHOICES else v.verdict} ({v.reviewer[:6]}, {local_date(v.created_at, lang)}{': ' + v.note if v.note else ''})"
        for v in case.verdicts
    )
    return t(
        lang,
        "admin.case",
        id=s.id,
        date=local_time(s.created_at, lang),
        language=language_name(s.language),
        region=region_name(lang, s.region),
        model=s.model_version,
        risk=risk_label(lang, s.risk) if s.risk else "—",
        malignancy="—" if s.malignancy is None else number(s.malignancy, lang, "0.000"),
        top=_fmt(dict(top), lang, lambda c: t(lang, f"class.{c}")),
        status=t(lang, "admin.accepted", risk=risk_label(lang, s.risk) if s.risk else "—") if s.accepted else t(lang, "admin.rejected", reasons=", ".join(reason_label(lang, r) for r in s.reasons) or "—"),
        quality=_fmt(s.quality, lang, lambda k: quality_label(lang, k)),
        followup=", ".join(t(lang, f"followup.{k}") for k, v in (s.followup or {}).items() if v) or ("—" if s.followup is None else "✗"),
        verdicts=verdicts or "—",
    )


def verdict_keyboard(lang: str, sid: int) -> InlineKeyboardMarkup:
    buttons = [InlineKeyboardButton(t(lang, f"admin.verdict.{v}"), callback_data=f"rv:{sid}:{v}") for v in REVIEW_CHOICES]
    return InlineKeyboardMarkup([buttons[i : i + 2] for i in range(0, len(buttons), 2)])


async def _show(update: Update, context: Context, lang: str, case: Case) -> None:
    chat_id = update.effective_chat.id
    caption = case_text(lang, case)
    markup = verdict_keyboard(lang, case.submission.id)
    sha = case.submission.photo_sha256
    path = context.bot_data.storage.photos.find(case.submission.user_pseudonym, sha) if sha else None
    photo = await asyncio.to_thread(path.read_bytes) if path is not None and path.exists() else None
    if photo is not None and len(caption) <= 1024:
        await context.bot.send_photo(chat_id, photo, caption=caption, reply_markup=markup)
    else:
        await context.bot.send_message(chat_id, caption, reply_markup=markup)


async def review_command(update: Update, context: Context) -> None:
    lang = (await user_state(update, context))["lang"]
    await _next(update, context, lang)


async def _next(update: Update, context: Context, lang: str) -> None:
    context.user_data.pop("note_for", None)
    case = await Review(context.bot_data.storage).next_case(context.user_data.setdefault("skipped", set()))
    if case is None:
        await context.bot.send_message(update.effective_chat.id, t(lang, "admin.no_cases"))
        return
    await _show(update, context, lang, case)


async def case_command(update: Update, context: Context) -> None:
    lang = (await user_state(update, context))["lang"]
    if len(context.args) != 1 or not context.args[0].isdigit():
        await update.effective_message.reply_text(t(lang, "admin.case_usage"))
        return
    case = await Review(context.bot_data.storage).case(int(context.args[0]))
    if case is None:
        await update.effective_message.reply_text(t(lang, "admin.case_not_found", id=int(context.args[0])))
        return
    await _show(update, context, lang, case)


def stats_text(lang: str, st: dict) -> str:
    agreement = ", ".join(f"{m}: {percent(a['agree'], lang)} (n={a['n']})" for m, a in st["agreement_by_model"].items()) or "—"
    return t(
        lang,
        "admin.stats",
        days=st["days"],
        submissions=st["submissions"],
        accepted=st["accepted"],
        rejected=_fmt(st["rejected_by_reason"], lang, lambda c: reason_label(lang, c)),
        risk=_fmt(st["risk"], lang, lambda c: risk_label(lang, c)),
        languages=_fmt(st["languages"], lang, language_name),
        regions=_fmt(st["regions"], lang, lambda c: region_name(lang, c)),
        reviewed=percent(st["reviewed_share"], lang),
        verdicts=st["verdicts"],
        disputed=st["disputed_cases"],
        agreement=html.escape(agreement),
    )


async def stats_command(update: Update, context: Context) -> None:
    lang = (await user_state(update, context))["lang"]
    review = Review(context.bot_data.storage)
    blocks = [stats_text(lang, await review.stats(days)) for days in (7, 30)]
    text = "\n\n".join(blocks)
    await update.effective_message.reply_text(text, parse_mode=ParseMode.HTML)


async def on_review_button(update: Update, context: Context) -> None:
    query = update.callback_query
    await query.answer()
    if update.effective_user.id not in context.bot_data.settings.admin_user_ids:
        return  # a forged button press from a non-admin: nothing happens
    lang = (await user_state(update, context))["lang"]
    parts = (query.data or "").split(":")
    if parts == ["rv", "next"]:
        await query.edit_message_reply_markup(None)
        await _next(update, context, lang)
        return
    valid = len(parts) == 3 and parts[1].isdigit() and len(parts[1]) <= 10 and int(parts[1]) <= MAX_SID and parts[2] in REVIEW_CHOICES
    if not valid:
        log.warning("refused a malformed review button")
        return
    sid, verdict = int(parts[1]), parts[2]
    await query.edit_message_reply_markup(None)
    if verdict == "skip":
        context.user_data.setdefault("skipped", set()).add(sid)
        await _next(update, context, lang)
        return
    vid = await Review(context.bot_data.storage).add_verdict(sid, update.effective_user.id, verdict)
    if vid is None:
        await query.message.reply_text(t(lang, "admin.case_not_found", id=sid))
        return
    context.user_data["note_for"] = vid
    next_button = InlineKeyboardMarkup([[InlineKeyboardButton(t(lang, "admin.next"), callback_data="rv:next")]])
    await context.bot.send_message(update.effective_chat.id, t(lang, "admin.saved"), reply_markup=next_button)


async def on_admin_text(update: Update, context: Context) -> None:
    """A text right after a verdict is its note; any other text gets the usual answer."""
    vid = context.user_data.pop("note_for", None)
    if vid is None:
        await on_other(update, context)
        return
    lang = (await user_state(update, context))["lang"]
    await Review(context.bot_data.storage).add_note(vid, update.effective_user.id, update.effective_message.text)
    await update.effective_message.reply_text(t(lang, "admin.note_saved"))
    await _next(update, context, lang)


def register(app: Application, admin_ids: list[int]) -> None:
    """Add the admin handlers; call before the catch-all handlers."""
    admins = filters.User(user_id=admin_ids)
    app.add_handler(CommandHandler("review", review_command, filters=admins))
    app.add_handler(CommandHandler("case", case_command, filters=admins))
    app.add_handler(CommandHandler("stats", stats_command, filters=admins))
    app.add_handler(CallbackQueryHandler(on_review_button, pattern=PATTERNS["review"]), group=0)
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND & admins, on_admin_text))
