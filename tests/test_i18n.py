"""Every user-facing message exists in kk, ru and en with the same placeholders."""

import re
from datetime import UTC, datetime

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


@pytest.mark.parametrize("lang", LANGUAGES)
def test_plural_messages_have_every_form_of_the_language(lang):
    from bot.i18n import plural_catalog, plural_rule

    assert set(plural_catalog(lang)) == set(plural_catalog("en"))
    nforms = plural_rule(lang)[0]
    for key, forms in plural_catalog(lang).items():
        assert len(forms) == nforms, (lang, key)
        assert all("{n}" in f for f in forms if not (lang == "en" and f == "within a month")), (lang, key)


@pytest.mark.parametrize(
    "lang, key, expected",
    [
        ("ru", "period.up_to_days", ["1 дня", "2 дней", "5 дней", "21 дня", "31 дня"]),  # «не дольше N …»
        ("ru", "count.photos", ["1 фотография", "2 фотографии", "5 фотографий", "21 фотография", "31 фотография"]),
        ("ru", "count.results", ["1 результат", "2 результата", "5 результатов", "21 результат", "31 результат"]),
        ("ru", "period.in_months", ["через 1 месяц", "через 2 месяца", "через 5 месяцев", "через 21 месяц", "через 31 месяц"]),
        ("ru", "period.within_weeks", ["в течение 1 недели", "в течение 2 недель", "в течение 5 недель", "в течение 21 недели", "в течение 31 недели"]),
        ("kk", "period.up_to_days", ["1 күннен", "2 күннен", "5 күннен", "21 күннен", "31 күннен"]),  # Kazakh: no plural after a numeral
        ("kk", "count.photos", ["1 сурет", "2 сурет", "5 сурет", "21 сурет", "31 сурет"]),
        ("en", "count.photos", ["1 photo", "2 photos", "5 photos", "21 photos", "31 photos"]),
    ],
)
def test_plural_forms(lang, key, expected):
    from bot.i18n import tn

    assert [tn(lang, key, n) for n in (1, 2, 5, 21, 31)] == expected


def test_retention_period_in_the_consent_notice_is_declined():
    from bot.i18n import tn

    assert "не дольше 21 дня" in t("ru", "consent.notice", period=tn("ru", "period.up_to_days", 21), backups="Y", operator="X")
    assert "{days}" not in EN["consent.notice"]


def test_times_are_shown_in_kazakhstan_local_time():
    from datetime import UTC, datetime

    from bot.i18n import local_time

    stored = datetime(2026, 3, 1, 20, 30, tzinfo=UTC)  # 01:30 on 2 March in Almaty (UTC+5)
    assert local_time(stored, "ru") == "02.03.2026, 01:30"
    assert local_time(stored, "kk").endswith("01:30") and "02.03" in local_time(stored, "kk")
    assert local_time(stored.replace(tzinfo=None), "en") == "3/2/26, 1:30\u202fAM"  # naive = UTC, as the DB returns it


def test_intervals_are_filled_into_the_advice_in_every_language():
    from bot.medical.advice import HIGH_WITHIN_WEEKS, LOW_RECHECK_MONTHS, advice_text

    assert f"within {HIGH_WITHIN_WEEKS} weeks" in advice_text("en", "next.high")
    assert f"в течение {HIGH_WITHIN_WEEKS} недель" in advice_text("ru", "next.high")
    assert f"{HIGH_WITHIN_WEEKS} апта ішінде" in advice_text("kk", "next.high")
    assert f"again in {LOW_RECHECK_MONTHS} months" in advice_text("en", "next.low")
    assert "within a month" in advice_text("en", "next.moderate")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_low_with_a_warning_sign_has_one_deadline_from_advice_py(lang):
    """#21: "low + a warning sign" said "without waiting 3 months" (en) and "immediately" (ru/kk);
    every language now says the one signs interval from bot/advice.py, and nothing else."""
    from bot.i18n import tn
    from bot.medical.advice import SIGNS_WITHIN_WEEKS, advice_text

    within = tn(lang, "period.within_weeks", SIGNS_WITHIN_WEEKS)
    for key in ("next.low", "followup.low_none"):
        text = advice_text(lang, key)
        assert within in text, (lang, key)
        for word in ("сразу", "бірден", "немедленно", "immediately", "without waiting 3", "не дожидаясь 3", "айды күтпей"):
            assert word not in text, (lang, key, word)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_a_date_at_the_end_of_a_sentence_gets_one_full_stop(lang):
    from bot.i18n import local_date

    for month in range(1, 13):
        date = local_date(datetime(2026, month, 6, 12, tzinfo=UTC), lang)
        for key in ("compare.deadline", "compare.overdue", "spot.created_low", "spots.moved"):
            text = t(lang, key, first=date, deadline=date, date=date, name="x")
            assert ".." not in text, text


def test_high_risk_wording_is_not_categorical():
    assert "not necessarily" in t("en", "result.high")
    assert "не обязательно" in t("ru", "result.high") and "пятно" in t("ru", "result.high")
    assert "міндетті түрде" in t("kk", "result.high")
    for lang, phrase in (("en", "Low risk is not no risk"), ("ru", "не значит нулевой"), ("kk", "мүлде жоқ екенін білдірмейді")):
        assert phrase in t(lang, "result.low")


def test_every_language_of_the_table_has_its_pieces():
    """Adding a language is one row in ``bot.i18n.TABLE``, its catalogue and its region names;
    this names whichever piece is missing."""
    from importlib import resources

    from bot.i18n import TABLE
    from bot.medical import referral

    directory = referral.load()
    for lang in TABLE:
        po = resources.files("bot.i18n") / "locales" / lang.code / "LC_MESSAGES" / "messages.po"
        assert po.is_file(), f"{lang.code}: no catalogue at bot/i18n/locales/{lang.code}/LC_MESSAGES/messages.po"
        assert lang.native and lang.in_text, f"{lang.code}: no native name in bot.i18n.TABLE"
        for region in directory.regions:
            assert region.name(lang.code) and region.city(lang.code), f"{lang.code}: region {region.id} has no name"


def test_a_region_without_a_languages_name_is_refused_by_name():
    import pytest
    from pydantic import ValidationError

    from bot.medical.referral import Names

    with pytest.raises(ValidationError, match="no name in kk"):
        Names.model_validate({"ru": "Алматы", "en": "Almaty"})
    assert Names.model_validate({"kk": "Алматы", "ru": "Алматы", "en": "Almaty"})("kk") == "Алматы"
