"""Messages in Kazakh, Russian and English from gettext catalogues (``bot/locales``).

msgids are symbolic keys (``result.high``); each language's ``messages.po`` holds the text.
Translators edit the .po files with any gettext tool; Babel reads them at start-up, so there is
no compile step to forget.  ``tests/test_i18n.py`` fails on a missing key or a placeholder
mismatch in any language.
"""

from __future__ import annotations

import string
from functools import cache
from importlib import resources

from babel.messages.pofile import read_po

LANGUAGES = ("kk", "ru", "en")
DEFAULT = "en"


def pick_language(code: str | None) -> str:
    """Telegram's ``language_code`` → kk / ru / en."""
    code = (code or "").lower()
    for lang in ("kk", "ru"):
        if code == lang or code.startswith(lang + "-"):
            return lang
    return DEFAULT


@cache
def catalog(lang: str) -> dict[str, str]:
    path = resources.files("bot") / "locales" / lang / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as fh:
        cat = read_po(fh, locale=lang)
    return {m.id: m.string for m in cat if m.id and isinstance(m.id, str) and m.string}


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def t(lang: str, key: str, **kwargs: object) -> str:
    """The text for ``key`` in ``lang`` (English if the language is unknown)."""
    msgs = catalog(lang if lang in LANGUAGES else DEFAULT)
    text = msgs.get(key) or catalog(DEFAULT).get(key)
    if text is None:
        raise KeyError(f"no message {key!r}")
    return text.format(**kwargs) if kwargs else text
