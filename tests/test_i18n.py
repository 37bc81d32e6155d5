"""Every user-facing message exists in kk, ru and en with the same placeholders."""

import re

import pytest

from bot.app import COMMANDS
from bot.i18n import LANGUAGES, catalog, pick_language, placeholders, t
from inference.decode import ERROR_CODES as DECODE_CODES
from inference.quality import REASON_CODES as QUALITY_CODES
from inference.risk import RISK_LEVELS

EN = catalog("en")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_same_keys_and_placeholders(lang):
    msgs = catalog(lang)
    assert set(msgs) == set(EN), set(msgs) ^ set(EN)
    for key, text in msgs.items():
        assert text.strip(), f"{lang}:{key} is empty"
        assert placeholders(text) == placeholders(EN[key]), f"{lang}:{key}"


@pytest.mark.parametrize("lang", ["kk", "ru"])
def test_translations_are_not_english(lang):
    same = [k for k, v in catalog(lang).items() if v == EN[k] and re.search(r"[A-Za-z]{4,}", v) and "{" not in v]
    assert not same, same


def test_every_code_the_core_can_give_has_advice():
    for code in QUALITY_CODES + DECODE_CODES:
        t("kk", f"reason.{code}")  # KeyError if missing
    for level in RISK_LEVELS:
        assert t("ru", f"result.{level}") and t("kk", f"next.{level}") and t("en", f"risk.{level}")
    for cmd in COMMANDS:
        assert t("kk", f"cmd.{cmd}")


def test_medical_wording_never_says_you_have_cancer():
    for lang in LANGUAGES:
        for key, text in catalog(lang).items():
            low = text.lower()
            assert "you have cancer" not in low and "у вас рак" not in low and "сізде обыр" not in low, key
    for lang, phrase in (("en", "not a diagnosis"), ("ru", "не диагноз"), ("kk", "диагноз емес")):
        assert phrase in t(lang, "disclaimer").lower()


@pytest.mark.parametrize("code, lang", [("kk", "kk"), ("kk-KZ", "kk"), ("ru", "ru"), ("ru-RU", "ru"), ("en", "en"), ("de", "en"), (None, "en"), ("rus", "en")])
def test_language_from_telegram(code, lang):
    assert pick_language(code) == lang
