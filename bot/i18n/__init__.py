"""Messages in Kazakh, Russian and English from gettext catalogues (``bot/i18n/locales``).

msgids are symbolic keys (``result.high``); each language's ``messages.po`` holds the text.
Translators edit the .po files with any gettext tool; Babel reads them at start-up, so there is
no compile step to forget.  ``tests/test_i18n.py`` fails on a missing key or a placeholder
mismatch in any language.

Numbers shown to a user go through :func:`tn` and the catalogue's own plural forms (Russian
has three: 1 день, 2 дня, 5 дней, 21 день).  Dates and times go through :func:`local_time`:
stored in UTC, shown in Kazakhstan's time (UTC+5, ``Asia/Almaty``) in the user's language.
"""

from __future__ import annotations

import gettext
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent


@dataclass(frozen=True)
class Language:
    """One row of the languages table. Adding a language is this row, its catalogue
    ``locales/<code>/LC_MESSAGES/messages.po`` (its plural rule is the catalogue's Plural-Forms
    header) and the region names in ``bot/data/regions.json``; ``tests/test_i18n.py`` names
    whichever piece is missing."""

    code: str  # Telegram's language_code prefix, and the catalogue's folder
    native: str  # the language's own name, as the language buttons show it
    in_text: str  # the same inside a sentence (admin screens: "language: қазақша")


TABLE: tuple[Language, ...] = (
    Language("kk", "Қазақша", "қазақша"),
    Language("ru", "Русский", "русский"),
    Language("en", "English", "English"),
)
BY_CODE = {lang.code: lang for lang in TABLE}
LANGUAGES = tuple(lang.code for lang in TABLE)
DEFAULT = "en"
#: Kazakhstan has one time zone since 1 March 2024.
TIMEZONE = ZoneInfo("Asia/Almaty")


def pick_language(code: str | None) -> str:
    """Telegram's ``language_code`` → kk / ru / en."""
    code = (code or "").lower()
    for lang in LANGUAGES:
        if code == lang or code.startswith(lang + "-"):
            return lang
    return DEFAULT


@cache
def _read(lang: str):
    path = resources.files("bot.i18n") / "locales" / lang / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as fh:
        return read_po(fh, locale=lang)


@cache
def catalog(lang: str) -> dict[str, str]:
    """Singular messages: key → text."""
    return {m.id: m.string for m in _read(lang) if m.id and isinstance(m.id, str) and m.string}


@cache
def plural_catalog(lang: str) -> dict[str, tuple[str, ...]]:
    """Plural messages: key (the msgid) → one text per plural form of the language."""
    return {m.id[0]: tuple(m.string) for m in _read(lang) if isinstance(m.id, tuple) and all(m.string)}


@cache
def plural_rule(lang: str) -> tuple[int, Callable[[int], int]]:
    """(number of forms, n → form index) from the catalogue's Plural-Forms header."""
    cat = _read(lang)
    return cat.num_plurals, gettext.c2py(cat.plural_expr)


def tn(lang: str, key: str, n: int, **kwargs: object) -> str:
    """The plural text for ``key`` with the number ``n`` (placeholder ``{n}``)."""
    lang = lang if lang in LANGUAGES else DEFAULT
    forms = plural_catalog(lang).get(key)
    if forms is None:
        raise KeyError(f"no plural message {key!r}")
    return forms[min(plural_rule(lang)[1](n), len(forms) - 1)].format(n=n, **kwargs)


def local_time(value: datetime, lang: str) -> str:
    """A stored (UTC) timestamp as Kazakhstan's local date and time, in the user's language."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return format_datetime(value, "short", tzinfo=TIMEZONE, locale=lang if lang in LANGUAGES else DEFAULT)


def local_date(value: datetime, lang: str) -> str:
    """The local (Asia/Almaty) date of a stored UTC timestamp, in the user's language."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    lang = lang if lang in LANGUAGES else DEFAULT
    # Kazakh's "medium" pattern is "2026 ж. 06 жел.": the month is spelled out instead.
    return format_date(value.astimezone(TIMEZONE), "long" if lang == "kk" else "medium", locale=lang)


def percent(value: float, lang: str) -> str:
    return format_percent(value, locale=lang if lang in LANGUAGES else DEFAULT)


def number(value: float, lang: str, fmt: str = "#,##0.##") -> str:
    return format_decimal(value, format=fmt, locale=lang if lang in LANGUAGES else DEFAULT)


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def t(lang: str, key: str, **kwargs: object) -> str:
    """The text for ``key`` in ``lang`` (English if the language is unknown)."""
    msgs = catalog(lang if lang in LANGUAGES else DEFAULT)
    text = msgs.get(key) or catalog(DEFAULT).get(key)
    if text is None:
        raise KeyError(f"no message {key!r}")
    if not kwargs:
        return text
    for name, value in kwargs.items():
        # Babel's ru/kk dates end in an abbreviation's full stop ("6 дек. 2026 г.", "6 мам."):
        # a sentence that ends with one gets a single full stop, never "г..".
        if isinstance(value, str) and value.endswith("."):
            text = text.replace("{%s}." % name, "{%s}" % name)
    return text.format(**kwargs)
