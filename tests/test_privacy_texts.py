"""What the privacy texts promise matches what the code keeps (#21), and the wording defects the
medical editor found stay fixed as a class: admin screens without raw codes, one Kazakh word for
"photo", no bare «қойма»."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from bot.admin.handlers import case_text, stats_text
from bot.admin.review import Case, Verdict
from bot.i18n import LANGUAGES, catalog, t
from bot.infra.storage import Submission

#: The words for what a reminder keeps and for the spots, per language.
CHAT_ID = {"en": "chat id", "ru": "номер чата", "kk": "чат нөмір"}
SPOTS = {"en": "spot", "ru": "пятн", "kk": "дақ"}
REMINDERS = {"en": "reminder", "ru": "напоминани", "kk": "еске салу"}
LANGUAGE = {"en": "language", "ru": "язык", "kk": "тіл"}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_notice_says_what_reminders_keep_and_how_long_backups_last(lang):
    notice = t(lang, "consent.notice", period="P", backups="BACKUPS", operator="O")
    assert CHAT_ID[lang] in notice, "a reminder keeps the (encrypted) chat id: the notice says so"
    assert "BACKUPS" in notice and "/delete" in notice
    assert LANGUAGE[lang] in notice, "what is kept whatever the answer"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_no_text_says_nothing_is_kept_when_language_region_and_consent_are(lang):
    no = t(lang, "consent.saved_no")
    assert LANGUAGE[lang] in no
    assert not re.search(r"nothing is kept|ничего не сохраняется|ештеңе сақталмайды", no)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_delete_withdraw_and_stop_name_the_spots_and_reminders(lang):
    assert SPOTS[lang] in t(lang, "delete.confirm") and REMINDERS[lang] in t(lang, "delete.confirm")
    assert "{spots}" in catalog(lang)["delete.done"] and "{backups}" in catalog(lang)["delete.done"]
    assert REMINDERS[lang][:6] in t(lang, "consent.withdrawn").lower(), "withdrawing consent stops reminders: it says so"
    assert "/delete" in t(lang, "spots.stopped", name="x"), "a stopped spot's data stays until /delete: it says so"
    assert "/delete" in t(lang, "privacy.reminders")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_region_prompt_promises_what_the_code_does(lang):
    """The location finds the nearest administrative centre, not an oncology centre."""
    prompt = t(lang, "region.prompt")
    assert not re.search(r"oncology|онколог", prompt)
    assert all(city in prompt for city in {"en": ("Astana", "Almaty", "Shymkent"), "ru": ("Астана", "Алматы", "Шымкент"), "kk": ("Астана", "Алматы", "Шымкент")}[lang])


def test_kazakh_uses_one_word_for_photo_and_names_the_storage():
    for key, text in catalog("kk").items():
        assert not re.search(r"(?<![а-яәғқңөұүһі])фото(?![жа-яәғқңөұүһі]*жарқыл)", text.lower()), f"kk {key}: «фото» (the catalogue says «сурет»)"
        assert not re.search(r"(?<!деректер )қойма(?!ймын)", text), f"kk {key}: «қойма» alone"


@pytest.mark.parametrize("lang", ["kk", "ru"])
def test_admin_screens_show_no_raw_codes(lang):
    sub = Submission(
        id=7, created_at=datetime(2026, 12, 1, tzinfo=UTC), language="kk", region="abai", model_version="m1", risk="high", malignancy=0.71,
        probabilities={"mel": 0.6, "nv": 0.3, "bkl": 0.1}, reasons=["blurry"], quality={}, followup={"bled": True, "grew": False},
    )
    text = case_text(lang, Case(sub, [Verdict(submission_id=7, reviewer="abcdef123", verdict="suspicious", note=None, created_at=datetime(2026, 12, 2, tzinfo=UTC))]))
    stats = stats_text(lang, {"days": 7, "submissions": 3, "accepted": 2, "rejected_by_reason": {"blurry": 1}, "risk": {"high": 1, "low": 1}, "languages": {"kk": 2, "ru": 1},
                              "regions": {"abai": 2}, "reviewed_share": 0.5, "verdicts": 1, "disputed_cases": 0, "agreement_by_model": {}})
    for code in ("mel", "nv", "bkl", "blurry", "high", "low", "bled", "suspicious", "abai", " kk", " ru"):
        assert code not in text.replace("m1", "") and code not in stats, f"{lang}: raw code {code!r} on an admin screen"
