"""regions.json: every named centre cites full source URLs and where it was copied from; no
check is claimed that was not made; none is invented."""

import json

import pytest
from pydantic import ValidationError

from bot.i18n import LANGUAGES
from bot.medical import referral


def test_every_named_centre_cites_full_urls_and_claims_no_visit_nobody_made():
    directory = referral.load()
    assert len(directory.regions) == 20
    named = [c for r in directory.regions for c in r.centres]
    assert len(named) >= 14
    for c in named:
        assert c.sources and all(s.url.startswith("https://") for s in c.sources)
        assert c.copied_from.startswith("shared/kazakhstan.md")
        assert c.opened is None and not c.address and not c.phone  # no page has been opened yet
    raw = (referral.resources.files("bot") / "data" / "regions.json").read_text(encoding="utf-8")
    assert '"checked"' not in raw


def test_a_phone_without_an_opened_page_is_refused(tmp_path):
    raw = json.loads(json.dumps(referral.load().model_dump(mode="json")))
    raw["regions"][0]["centres"][0]["phone"] = "+7 7222 00 00 00"
    path = tmp_path / "regions.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ValidationError):
        referral.load(path)


def test_regions_with_nothing_verified_name_no_centre():
    directory = referral.load()
    for rid in ("aktobe", "west_kazakhstan", "kostanay", "almaty_region"):
        assert directory.get(rid).centres == [], rid


def test_a_centre_without_a_source_is_refused(tmp_path):
    raw = json.loads(json.dumps(referral.load().model_dump(mode="json")))
    del raw["regions"][0]["centres"][0]["sources"]
    path = tmp_path / "regions.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ValidationError):
        referral.load(path)


def test_official_russian_names_of_the_new_regions():
    directory = referral.load()
    assert directory.get("abai").name("ru") == "область Абай"
    assert directory.get("jetisu").name("ru") == "область Жетісу"
    assert directory.get("ulytau").name("ru") == "область Ұлытау"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_button_labels_are_short(lang):
    for r in referral.load().regions:
        assert 3 <= len(r.button(lang)) <= 24, r.button(lang)
