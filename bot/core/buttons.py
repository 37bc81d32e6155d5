"""Every button the bot sends: its ``callback_data`` format, the pattern that routes it, and the
helpers that sign and read it. Formats already sent to users never change: an old button in a
chat must keep working.

| kind | format | answered by |
|---|---|---|
| language | ``lang:<code>`` | ``bot.account.handlers.on_language_button`` |
| consent | ``consent:yes`` / ``consent:no`` | ``bot.account.handlers.on_consent_button`` |
| delete | ``delete:yes`` / ``delete:no`` | ``bot.account.handlers.on_delete_button`` |
| region | ``region:<id>`` / ``region:list`` | ``bot.account.handlers.on_region_button`` |
| follow-up signs after a result | ``fu:<sid>:<level>[:p<spot>]:<mask>:<action>:<tag>`` | ``bot.screening.followup.on_followup_button`` |
| questions before a result | ``qa:<wid>:<mask>:<action>:<tag>`` | ``bot.questions.handlers.on_question_button`` |
| remind me / when | ``rm:<sid>:<risk>:<mal>:<tag>[:s]`` / ``rt:<sid>:<risk>:<mal>:<period>:<tag>[:s]`` | ``bot.spots.handlers`` |
| this is spot X | ``sp:<spot>:<sid>:<risk>:<mal>:<tag>[:s|:a]`` | ``bot.spots.handlers`` |
| /spots list | ``ss:<spot>`` / ``sm:<spot>:<period>`` | ``bot.spots.handlers`` |
| review (admins) | ``rv:<sid>:<verdict>`` / ``rv:next`` | ``bot.admin.handlers`` |

``<tag>`` is 8 hex characters of an HMAC over the user and the button's signed fields
(``button_tag``): another user's submission or a lower level does not verify. ``<mask>`` has
one bit per sign of its list, ``<action>`` is a sign's index or a letter (``d`` done, ``n`` none
of these, ``s`` skip).
"""

from __future__ import annotations

import hashlib
import hmac

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.i18n import t
from bot.medical import advice

#: kind → the pattern ``bot.app`` routes it by (one route per kind).
PATTERNS = {
    "language": r"^lang:",
    "consent": r"^consent:",
    "delete": r"^delete:",
    "region": r"^region:",
    "followup": r"^fu:",
    "questions": r"^qa:",
    "spots": r"^(rm|rt|sp|ss|sm):",
    "review": r"^rv:",
}
#: Largest submission id a button may carry (the column is a 32-bit integer everywhere).
MAX_SID = 2**31 - 1
RISK_CODES = {"low": "l", "moderate": "m", "high": "h"}
RISK_BY_CODE = {v: k for k, v in RISK_CODES.items()}
#: The warning signs asked after a result (``fu:``), in the order of their mask bits.
FOLLOWUP_SIGNS = advice.FOLLOWUP_SIGNS


def button_tag(key: bytes, user_id: int, payload: str) -> str:
    """8 characters of an HMAC over the user and the button's payload: a forged or replayed
    button (another user's submission, a lower risk level) does not verify."""
    return hmac.new(key, f"{user_id}:{payload}".encode(), hashlib.sha256).hexdigest()[:8]


def verify(key: bytes, user_id: int, payload: str, tag: str) -> bool:
    return hmac.compare_digest(tag, button_tag(key, user_id, payload))


def is_id(s: str) -> bool:
    """A submission, spot or waiting id as buttons carry it."""
    return s.isdigit() and len(s) <= 10 and int(s) <= MAX_SID


def sign_rows(lang: str, signs: tuple[str, ...], mask: int, data, label=lambda sign: f"followup.{sign}") -> list[list[InlineKeyboardButton]]:
    """One ☐/☑ toggle row per warning sign; ``data(i)`` is sign ``i``'s callback data (the
    follow-up questions after a result and the questions before it share this)."""
    return [[InlineKeyboardButton(("☑ " if mask & (1 << i) else "☐ ") + t(lang, label(sign)), callback_data=data(i))] for i, sign in enumerate(signs)]


def valid_toggle(mask_s: str, action: str, signs: int, actions: tuple[str, ...]) -> bool:
    """A toggle button's mask (one bit per sign, any number of signs) and action (a sign's
    index, or one of ``actions``)."""
    if not (mask_s.isdigit() and len(mask_s) <= len(str(1 << signs)) and int(mask_s) < 1 << signs):
        return False
    return action in actions or (action.isdigit() and len(action) <= len(str(signs)) and int(action) < signs)


def followup_keyboard(key: bytes, user_id: int, lang: str, sid: int, level: str, mask: int, spot_id: int | None = None) -> InlineKeyboardMarkup:
    """The warning-sign toggles and "Done". ``level`` (``advice.ORDER``) is the photo's risk, or
    for a followed spot the strongest advice it was given: "Done" never says less than that.
    ``spot_id``: the questions of a spot's comparison; a sign ticked there is kept with the
    spot's latest check (its reminders and deadline follow it)."""
    payload = f"{sid}:{advice.CODES[level]}" + (f":p{spot_id}" if spot_id else "")
    tag = button_tag(key, user_id, payload)
    rows = sign_rows(lang, FOLLOWUP_SIGNS, mask, lambda i: f"fu:{payload}:{mask}:{i}:{tag}")
    rows.append([InlineKeyboardButton(t(lang, "followup.done"), callback_data=f"fu:{payload}:{mask}:d:{tag}")])
    return InlineKeyboardMarkup(rows)


def parse_followup(key: bytes, user_id: int, value: str) -> tuple[int, str, int, str, int | None] | None:
    """(sid, level, mask, action, spot id or None) of a follow-up button (without ``fu:``), or
    None unless every field is valid and the tag proves this bot made the button for this user."""
    parts = value.split(":")
    spot_s = None
    if len(parts) == 6:
        spot_s = parts.pop(2)
        if not (spot_s.startswith("p") and is_id(spot_s[1:])):
            return None
    if len(parts) != 5:
        return None
    sid_s, code, mask_s, action, tag = parts
    if not (is_id(sid_s) and code in advice.BY_CODE and valid_toggle(mask_s, action, len(FOLLOWUP_SIGNS), ("d",))):
        return None
    if not verify(key, user_id, f"{sid_s}:{code}" + (f":{spot_s}" if spot_s else ""), tag):
        return None
    return int(sid_s), advice.BY_CODE[code], int(mask_s), action, int(spot_s[1:]) if spot_s else None


def without_followup(markup: InlineKeyboardMarkup | None) -> list:
    """A result keyboard's rows other than the follow-up toggles ("remind me", spot buttons)."""
    return [row for row in (markup.inline_keyboard if markup else ()) if not any((b.callback_data or "").startswith("fu:") for b in row)]


def signs_ticked(key: bytes, user_id: int, markup: InlineKeyboardMarkup | None) -> bool:
    """Does a result's keyboard show a ticked warning sign (a follow-up button's mask)?"""
    for row in markup.inline_keyboard if markup else ():
        for button in row:
            data = button.callback_data or ""
            if data.startswith("fu:") and (parsed := parse_followup(key, user_id, data[3:])) and parsed[2]:
                return True
    return False
