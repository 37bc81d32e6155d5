"""Every branch ends with the right next step, in kk, ru and en: risk level × follow-up outcome,
and for a followed spot earlier level × comparison outcome × follow-up outcome × reminder.

The rule (bot/advice.py): the last advice a user sees is never weaker than the result's own next
step. The bot runs end to end against the fake Bot API with a real photo; the model's cut
points are moved so that the same photo comes out low, moderate or high.
"""

import asyncio
import dataclasses

import pytest

from bot.i18n import LANGUAGES, t
from bot.medical import advice
from bot.medical.advice import STRENGTH, advice_text, next_step
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
        if outcome == "sign_ticked" and risk == "high":  # the stronger wording stays: urgent, oncologist
            assert last["text"].startswith(t(lang, "followup.signs_high")) and advice_text(lang, "next.high_signs") in last["text"]
        elif outcome == "sign_ticked":
            assert advice_text(lang, "followup.raised") in last["text"] and "103" in last["text"]
        if outcome == "none_ticked" and risk != "low":
            assert last["text"].startswith(t(lang, "followup.stands"))
            assert advice_text(lang, f"next.{risk}") in last["text"]
        if outcome == "none_ticked" and risk == "low":
            assert advice_text(lang, "followup.low_none") in last["text"]


# ---------------------------------------------------------------- followed spots (#21)


def test_doctor_reminders_come_on_or_before_the_deadline():
    from datetime import datetime

    start = datetime(2026, 1, 31)
    for level, choices in advice.REMINDERS.items():
        assert advice.RECOMMENDED[level] in choices
        if level in advice.DEADLINE:
            deadline = advice.add_period(start, advice.DEADLINE[level])
            assert all(advice.add_period(start, p) <= deadline for p in choices), level


@pytest.mark.parametrize(
    ("history", "level", "since"),
    [
        ([("low", 0.1)], "low", 0),
        ([("high", 0.8), ("low", 0.1)], "high", 0),  # a drop keeps the earlier advice and its deadline
        ([("moderate", 0.5), ("moderate", 0.5), ("moderate", 0.5)], "moderate", 0),  # counted from the first
        ([("low", 0.1), ("moderate", 0.5)], "signs", 1),  # a rise: a warning sign, from then on
        ([("low", 0.1), ("low", 0.4)], "signs", 1),  # malignancy up beyond the noise
        ([("moderate", 0.5), ("high", 0.8), ("low", 0.1)], "high", 1),
        ([("low", 0.1), ("moderate", 0.5), ("high", 0.9)], "high", 2),
    ],
)
def test_a_spot_keeps_its_strongest_advice_and_its_first_date(history, level, since):
    from datetime import UTC, datetime, timedelta

    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    state = advice.follow([(t0 + timedelta(days=30 * i), r, m) for i, (r, m) in enumerate(history)], noise=0.17)
    assert (state.level, state.since) == (level, t0 + timedelta(days=30 * since))

#: (earlier level, new level) → the comparison's outcome with the same photo (same malignancy).
TRANSITIONS = {
    ("low", "low"): "compare.same",
    ("low", "moderate"): "compare.higher",
    ("low", "high"): "compare.higher",
    ("moderate", "low"): "compare.lower",
    ("moderate", "moderate"): "compare.same",
    ("moderate", "high"): "compare.higher",
    ("high", "low"): "compare.lower",
    ("high", "moderate"): "compare.lower",
    ("high", "high"): "compare.same",
}


def spot_level(before: str, now_: str) -> str:
    """What the spot must be advised at: never below the earlier level; a rise is a warning sign."""
    if TRANSITIONS[(before, now_)] == "compare.higher":
        return advice.stronger(now_, "signs")
    return advice.stronger(before, now_)


def assert_reminder(lang: str, text: str, level: str) -> None:
    if level == "low":
        assert "ABCDE" in text and t(lang, "spot.reminder_doctor", name="", date="", risk="").split("\n")[1] not in text
        return
    header = t(lang, "spot.reminder_doctor", name="X", date="Y", risk="Z")
    assert text.split("\n")[1] == header.split("\n")[1], f"{lang} {level}: 'if you have not seen a doctor yet, go now'"
    assert advice_text(lang, advice.KEY[level]) in text, f"{lang} {level}: the reminder restates the advice"
    assert t(lang, "referral.path") in text, "the polyclinic path"
    assert any(t(lang, key, first="", deadline="").split("(")[0] in text for key in ("compare.deadline", "compare.overdue")), "the deadline"


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_a_followed_spot_never_weakens_advice(bot_factory, screener, lang):
    """Every earlier level × comparison outcome (higher, same, lower) × follow-up outcome
    (nothing ticked, a sign ticked, ignored) × the reminders before and after, end to end."""
    from .test_spots import later, run_reminder_job

    photo = benign_top_photo(screener)
    bots = {risk: await bot_factory(forced(screener, risk)) for risk in ("low", "moderate", "high")}
    for i, h in enumerate(bots.values()):
        h.fake.update_id = 10_000 * (i + 1)  # one database: update ids never repeat across the fakes
    users = {pair: 6000 + i for i, pair in enumerate(TRANSITIONS)}

    # 1. Each user follows a spot at the earlier level, with that level's recommended reminder.
    for (before, _), uid in users.items():
        h = bots[before]
        n = await start_user(h, uid, lang, "no")
        h.fake.send_photo(uid, photo, lang)
        (result,) = await h.fake.replies(uid, 1, since=n)
        h.fake.press(uid, result, next(c for _, c in buttons(result) if c.startswith("rm:")), lang)
        (when,) = await h.fake.replies(uid, 1, since=n + 1)
        offered = [c.split(":")[4] for _, c in buttons(when)]
        assert offered == [advice.period_code(p) for p in advice.REMINDERS[before]], f"{before}: {offered}"
        h.fake.press(uid, when, next(c for _, c in buttons(when) if c.split(":")[4] == advice.period_code(advice.RECOMMENDED[before])), lang)
        await h.fake.replies(uid, 1, since=n + 2)

    # 2. The first reminders (sent through one bot: the queue is shared).
    sender = bots["low"]
    later(sender, 100)
    counts = {uid: len(sender.fake.sent.get(uid, [])) for uid in users.values()}
    await run_reminder_job(sender)
    reminders = {}
    for (before, now_), uid in users.items():
        (reminders[(before, now_)],) = await sender.fake.replies(uid, 1, since=counts[uid])
        assert_reminder(lang, reminders[(before, now_)]["text"], before)

    # 3. A new photo as a reply, screened at the new level: the comparison and its questions.
    for (before, now_), uid in users.items():
        h, level = bots[now_], spot_level(before, now_)
        later(h, 100)
        seen = len(h.fake.sent.get(uid, []))
        h.fake.send_photo(uid, photo, lang, reply_to=reminders[(before, now_)])
        result, comparison, moved = await h.fake.replies(uid, 3, since=seen)
        assert not buttons(result), "a followed spot's questions ride on the comparison, not on the bare result"
        text = comparison["text"]
        assert t(lang, TRANSITIONS[(before, now_)]) in text, (before, now_)
        assert advice_text(lang, advice.KEY[level]) in text, f"{before}->{now_}: advised at {level}"
        assert strongest_advice(lang, text) >= next_step(before).strength
        if level != "low":
            assert "103" in text and any(k in text for k in (t(lang, "compare.overdue", first="", deadline="").split("(")[0], t(lang, "compare.deadline", first="", deadline="").split("(")[0]))
        callbacks = [c for _, c in buttons(comparison)]
        assert all(c.startswith("fu:") for c in callbacks) and f":{advice.CODES[level]}:" in callbacks[0]
        done = next(c for c in callbacks if ":d:" in c)
        h.fake.press(uid, comparison, done, lang)  # nothing ticked
        (none_ticked,) = await h.fake.replies(uid, 1, since=seen + 3)
        h.fake.press(uid, comparison, done.replace(":0:d:", ":4:d:"), lang)  # "it has bled"
        (sign_ticked,) = await h.fake.replies(uid, 1, since=seen + 4)
        for outcome, last in (("ignored", comparison), ("none_ticked", none_ticked), ("sign_ticked", sign_ticked)):
            strength = strongest_advice(lang, last["text"])
            assert strength >= advice.of_level(level).strength, f"{lang} {before}->{now_} {outcome}: {last['text'][:160]}"
        if level == "low":
            assert advice_text(lang, "followup.low_none") in none_ticked["text"]
        else:
            assert advice_text(lang, advice.KEY[level]) in none_ticked["text"]
        if level == "high":
            assert sign_ticked["text"].startswith(t(lang, "followup.signs_high")) and advice_text(lang, "next.high_signs") in sign_ticked["text"]
        else:
            assert advice_text(lang, "followup.raised") in sign_ticked["text"]

    # 4. The next reminder: at the spot's level — "signs" at least, since a sign was ticked last
    # (kept with the spot's check: before, a low spot went back to "photograph it again") —
    # before its deadline, with its own text.
    async with sender.storage.sessions() as s:
        from sqlalchemy import select

        from bot.spots.store import PENDING, Reminder

        pending = {r.user_pseudonym: r for r in await s.scalars(select(Reminder).where(Reminder.status == PENDING))}
    for (before, now_), uid in users.items():
        level = advice.stronger(spot_level(before, now_), "signs")
        row = pending[sender.storage.pseudonym(uid)]
        due = row.due_at.replace(tzinfo=None)
        # the spot's own interval, or the signs interval from the tick if that is sooner
        now_at = sender.app.bot_data.spots.clock().replace(tzinfo=None)
        expected = min(advice.add_period(now_at, advice.RECOMMENDED[spot_level(before, now_)]), advice.add_period(now_at, advice.RECOMMENDED["signs"]))
        assert abs((due - expected).total_seconds()) < 120, f"{before}->{now_}: next reminder at {level}'s interval"
    later(sender, 300)
    counts = {uid: len(sender.fake.sent.get(uid, [])) for uid in users.values()}
    await run_reminder_job(sender)
    for (before, now_), uid in users.items():
        (again,) = await sender.fake.replies(uid, 1, since=counts[uid])
        assert_reminder(lang, again["text"], advice.stronger(spot_level(before, now_), "signs"))
