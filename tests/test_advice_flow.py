"""Every branch ends with the right next step: risk level × follow-up outcome, in kk, ru and en.

The rule (bot/advice.py): the last advice a user sees is never weaker than the result's own next
step. The bot runs end to end against the fake Bot API with a real photo; the model's cut
points are moved so that the same photo comes out low, moderate or high.
"""

import asyncio
import dataclasses

import pytest

from bot.advice import STRENGTH, advice_text, next_step
from bot.i18n import LANGUAGES, t
from inference import Screener
from inference.labels import MALIGNANT
from inference.risk import RiskThresholds

from .conftest import needs_shared
from .fake_telegram import buttons
from .test_bot_e2e import lesion_jpeg, start_user

pytestmark = needs_shared

#: Cut points that put any accepted photo at this level (low also needs a benign top class).
FORCE = {"low": RiskThresholds(1.0, 1.0), "moderate": RiskThresholds(0.0, 1.0), "high": RiskThresholds(0.0, 0.0)}
OUTCOMES = ("none_ticked", "sign_ticked", "ignored")


def forced(screener: Screener, risk: str) -> Screener:
    return Screener(screener.classifier, dataclasses.replace(screener.card, risk=FORCE[risk]))


def benign_top_photo(screener: Screener) -> bytes:
    """A real PAD-UFES-20 photo the model accepts with a benign top class (so it can be 'low')."""
    for i in range(12):
        result = screener.screen(lesion_jpeg(i))
        if result.accepted and result.top_class not in MALIGNANT:
            return lesion_jpeg(i)
    pytest.fail("no accepted PAD-UFES-20 photo with a benign top class among the first 12")


async def wait_for(condition, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


def strongest_advice(lang: str, text: str) -> int:
    """The strength of the strongest advice text contained in ``text`` (-1: none)."""
    found = [s for key, s in STRENGTH.items() if advice_text(lang, key) in text]
    return max(found, default=-1)


@pytest.mark.parametrize("risk", ["low", "moderate", "high"])
@pytest.mark.parametrize("lang", LANGUAGES)
async def test_last_advice_is_never_weaker_than_the_result(bot_factory, screener, lang, risk):
    h = await bot_factory(forced(screener, risk))
    photo = benign_top_photo(screener)
    required = next_step(risk).strength
    for uid, outcome in enumerate(OUTCOMES, start=300):
        n = await start_user(h, uid, lang, "no")
        h.fake.send_photo(uid, photo, lang)
        (result,) = await h.fake.replies(uid, 1, since=n)
        assert result["text"].startswith(t(lang, f"result.{risk}").split("\n")[0])
        assert strongest_advice(lang, result["text"]) == required
        # A low result names the polyclinic only; the oncology path and 103/112 belong to moderate/high.
        assert ("103" in result["text"]) == (risk != "low")
        assert (t(lang, "referral.path_low") in result["text"]) == (risk == "low")

        if outcome == "ignored":
            await h.fake.quiet(uid, n + 1)
            last = result
        else:
            callbacks = [b[1] for b in buttons(result)]
            if outcome == "sign_ticked":
                edits = len(h.fake.edits)
                h.fake.press(uid, result, callbacks[2], lang)  # "it has bled"
                await wait_for(lambda: len(h.fake.edits) > edits)  # the keyboard is edited in place
                done = next(c for c in callbacks if ":d:" in c).replace(":0:d:", ":4:d:")
            else:
                done = next(c for c in callbacks if ":d:" in c)
            h.fake.press(uid, result, done, lang)
            (last,) = await h.fake.replies(uid, 1, since=n + 1)
            await h.fake.quiet(uid, n + 2)
        strength = strongest_advice(lang, last["text"])
        assert strength >= required, f"{lang} {risk} {outcome}: the last advice is weaker ({strength} < {required}): {last['text'][:200]}"
        if outcome == "sign_ticked":
            assert advice_text(lang, "followup.raised") in last["text"] and "103" in last["text"]
        if outcome == "none_ticked" and risk != "low":
            assert last["text"].startswith(t(lang, "followup.stands"))
            assert advice_text(lang, f"next.{risk}") in last["text"]
        if outcome == "none_ticked" and risk == "low":
            assert advice_text(lang, "followup.low_none") in last["text"]
