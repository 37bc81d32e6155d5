"""The warning-sign questions before the result (#20), end to end over the fake Bot API in kk,
ru and en: toggles and "Done", "None of these", "Skip", no answer (timeout), albums, a press
after the timeout, forged buttons, /delete, and a bot killed with ``kill -9`` while a result
waits for its answers.

The rule kept on every branch (bot/advice.py, ``with_answers``): the result is never weaker
than the photo's own next step, and any ticked sign means "see a doctor within 2 weeks".
"""

import asyncio

import pytest

from bot.i18n import LANGUAGES, t, tn
from bot.medical import advice
from bot.medical.advice import advice_text, next_step
from bot.questions.handlers import SIGNS

from .conftest import needs_shared
from .fake_telegram import buttons
from .test_advice_flow import assert_reminder, benign_top_photo, forced, strongest_advice, wait_for
from .test_bot_e2e import lesion_jpeg, start_user
from .test_spots import later, run_reminder_job

pytestmark = needs_shared


def question_buttons(message: dict) -> list[str]:
    return [data for _, data in buttons(message) if data.startswith("qa:")]


def action(message: dict, act: str) -> str:
    return next(d for d in question_buttons(message) if d.split(":")[3] == act)


async def toggle(h, uid: int, screen: dict, index: int, lang: str) -> dict:
    """Tick sign ``index``; returns the screen with its edited keyboard."""
    edits = len(h.fake.edits)
    h.fake.press(uid, screen, action(screen, str(index)), lang)
    await wait_for(lambda: len(h.fake.edits) > edits)
    return {**screen, "reply_markup": h.fake.edits[-1]["reply_markup"]}


async def ask(h, uid: int, lang: str, photo: bytes, consent: str = "no") -> tuple[int, dict, int]:
    """A new user sends a photo; returns (messages so far, the question screen, the photo's id)."""
    n = await start_user(h, uid, lang, consent)
    photo_id = h.fake.send_photo(uid, photo, lang)
    (screen,) = await h.fake.replies(uid, 1, since=n)
    return n + 1, screen, photo_id


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_questions_come_first_and_a_ticked_sign_raises_the_result(bot_factory, screener, lang):
    h = await bot_factory(forced(screener, "low"), answers_wait_s=60)
    n, screen, photo_id = await ask(h, 700, lang, benign_top_photo(screener))
    # One screen, replying to the photo: no result yet, six toggles, "None", "Skip", "Done".
    assert screen["reply_to"] == photo_id
    assert not screen["text"].startswith(t(lang, "result.low").split("\n")[0])
    assert screen["text"] == t(lang, "ask.question", wait=tn(lang, "period.within_minutes", 1))
    labels = [label for label, _ in buttons(screen)]
    assert labels == ["☐ " + t(lang, f"followup.{s}") for s in SIGNS] + [t(lang, "ask.none"), t(lang, "ask.skip"), t(lang, "followup.done")]
    await h.fake.quiet(700, n)  # nothing else until the user answers

    screen = await toggle(h, 700, screen, SIGNS.index("grew"), lang)
    assert [label for label, _ in buttons(screen)][SIGNS.index("grew")] == "☑ " + t(lang, "followup.grew")
    assert t(lang, "ask.none") not in [label for label, _ in buttons(screen)]  # it would throw the tick away
    screen = await toggle(h, 700, screen, SIGNS.index("elevated"), lang)
    h.fake.press(700, screen, action(screen, "d"), lang)
    (result,) = await h.fake.replies(700, 1, since=n)
    text = result["text"]
    assert result["reply_to"] == photo_id
    assert text.startswith(t(lang, "result.low").split("\n")[0])  # the photo's own level is still said
    grew, raised = t(lang, "followup.grew"), t(lang, "followup.elevated")
    assert t(lang, "ask.noted", signs=grew[:1].lower() + grew[1:] + "; " + raised[:1].lower() + raised[1:]) in text
    # low photo + raised and grown (suggests nodular melanoma, NG12): "see a doctor within 2 weeks",
    # the full referral, never "keep watching"
    assert advice_text(lang, "followup.raised") in text and "103" in text
    assert advice_text(lang, "next.low") not in text
    assert t(lang, "disclaimer") in text
    callbacks = [d for _, d in buttons(result)]
    assert not any(d.startswith(("fu:", "qa:")) for d in callbacks)  # asked already: not again
    remind = next(d for d in callbacks if d.startswith("rm:"))
    assert remind.endswith(":s")  # "remind me" offers the signs intervals
    h.fake.press(700, result, remind, lang)
    (when,) = await h.fake.replies(700, 1, since=n + 1)
    offered = [d.split(":")[4] for _, d in buttons(when)]
    assert offered == [advice.period_code(p) for p in advice.REMINDERS["signs"]]
    # The spot keeps the sign: its reminder asks about the doctor, not "photograph it again"
    # (the photo alone was low).
    h.fake.press(700, when, next(d for _, d in buttons(when) if d.split(":")[4] == "w2"), lang)
    (created,) = await h.fake.replies(700, 1, since=n + 2)
    assert created["text"].startswith(t(lang, "spot.created_doctor", date="\x00").split("\x00")[0])
    later(h, 15)
    await run_reminder_job(h)
    (reminder,) = await h.fake.replies(700, 1, since=n + 3)
    assert_reminder(lang, reminder["text"], "signs")


@pytest.mark.parametrize("risk", ["low", "moderate", "high"])
@pytest.mark.parametrize("lang", LANGUAGES)
async def test_every_answer_keeps_at_least_the_photos_advice(bot_factory, screener, lang, risk):
    """risk level × every score band of the weighted 7-point checklist (urgent by score, urgent
    by "raised and grown", minor, "raised" alone) × none of these × skip (with and without a
    tick): never weaker than the photo's next step, and a tick is never thrown away."""
    h = await bot_factory(forced(screener, risk), answers_wait_s=60)
    photo = benign_top_photo(screener)
    required = next_step(risk).strength
    ticks = {
        "urgent": ("changed", "itched"),  # 2 + 1 = 3 points
        "nodular": ("elevated", "grew"),  # 2 points, but raised and grown
        "minor": ("itched", "hurt", "wide"),  # one sensation item + diameter = 2 points
        "raised": ("elevated",),  # a state, not a change: 0 points
        "none": (),
        "skip": (),
        "skip_ticked": ("bled", "changed", "inflamed"),  # 1 + 2 + 1: «Skip» counts them
    }
    for uid, (outcome, signs) in enumerate(ticks.items(), start=710):
        n, screen, _ = await ask(h, uid, lang, photo)
        for sign in signs:
            screen = await toggle(h, uid, screen, SIGNS.index(sign), lang)
        act = {"none": "n", "skip": "s", "skip_ticked": "s"}.get(outcome, "d")
        h.fake.press(uid, screen, action(screen, act), lang)
        (result,) = await h.fake.replies(uid, 1, since=n)
        await h.fake.quiet(uid, n + 1, wait=0.2)
        text = result["text"]
        assert text.startswith(t(lang, f"result.{risk}").split("\n")[0])
        assert strongest_advice(lang, text) >= required, f"{lang} {risk} {outcome}: weaker than the photo's advice"
        fu = [d for _, d in buttons(result) if d.startswith("fu:")]
        urgent = outcome in ("urgent", "nodular", "skip_ticked")
        if urgent and risk == "high":  # urgent, oncologist: the high wording stays
            assert t(lang, "ask.signs_high") in text and advice_text(lang, "next.high_signs") in text
            assert t(lang, "followup.signs_high") not in text  # no second "thank you, noted" after "You noted: …"
        elif urgent:
            assert advice_text(lang, "followup.raised") in text
        if outcome == "minor" and risk == "low":  # at least a dermatologist within a month, reassured
            assert t(lang, "ask.minor") in text and advice_text(lang, "next.moderate") in text
            assert advice_text(lang, "followup.raised") not in text
        elif outcome == "minor" and risk == "high":  # any named sign: "as soon as you can", never "usually harmless"
            assert t(lang, "ask.signs_high") in text and advice_text(lang, "next.high_signs") in text and t(lang, "ask.minor") not in text
        elif outcome == "minor":
            assert t(lang, "ask.minor_stands") in text and advice_text(lang, f"next.{risk}") in text
        if outcome == "raised":  # asked and said back, but alone it raises nothing
            raised = t(lang, "followup.elevated")
            assert t(lang, "ask.noted", signs=raised[:1].lower() + raised[1:]) in text
            assert advice_text(lang, f"next.{risk}") in text and advice_text(lang, "followup.raised") not in text
        if signs:
            assert t(lang, "ask.noted_none") not in text, f"{outcome}: a tick was thrown away"
        if outcome == "none":
            assert t(lang, "ask.noted_none") in text and advice_text(lang, f"next.{risk}") in text
        if outcome == "skip":  # nothing ticked: today's image-only result, with the follow-up questions under it
            assert t(lang, "ask.noted_none") not in text and t(lang, "followup.question") in text and fu
        else:
            assert not fu
    # bot_advice_total counts each photo once, at the deadline of the advice it was given
    from collections import Counter

    expected = Counter(advice.within_days(advice.answers_level(risk, {s: s in signs for s in SIGNS} if outcome != "skip" else None)) for outcome, signs in ticks.items())
    registry = h.app.bot_data.metrics.registry
    counted = {days: registry.get_sample_value("bot_advice_total", {"within_days": days}) or 0 for days in ("14", "30", "watch")}
    assert counted == {days: expected.get(days, 0) for days in counted}, (risk, counted)


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_no_answer_gives_the_photo_only_result_and_a_late_press_is_told(bot_factory, screener, lang):
    h = await bot_factory(forced(screener, "moderate"), answers_wait_s=1.0, answers_tick_s=0.2)
    n, screen, photo_id = await ask(h, 720, lang, benign_top_photo(screener))
    (result,) = await h.fake.replies(720, 1, since=n, timeout=15)
    text = result["text"]
    assert result["reply_to"] == photo_id
    assert text.startswith(t(lang, "ask.timeout"))
    assert advice_text(lang, "next.moderate") in text and t(lang, "followup.question") in text
    assert any(d.startswith("fu:") for _, d in buttons(result))  # today's questions, after the result
    # the screen's buttons were taken away; pressing an old one says the result is above
    assert any(e["method"] == "editMessageReplyMarkup" and int(e["message_id"]) == screen["message_id"] for e in h.fake.edits)
    h.fake.press(720, screen, action(screen, "d"), lang)
    (already,) = await h.fake.replies(720, 1, since=n + 1)
    assert already["text"] == t(lang, "ask.already")
    # a late «Done» with ticks says plainly that they were not counted, and where to tick them
    h.fake.press(720, screen, action(screen, "d").replace(":0:d:", ":4:d:"), lang)
    (already,) = await h.fake.replies(720, 1, since=n + 2)
    assert already["text"] == t(lang, "ask.already_ticks")
    await h.fake.quiet(720, n + 3)
    assert await h.app.bot_data.questions.count() == 0
    registry = h.app.bot_data.metrics.registry
    assert [registry.get_sample_value("bot_questions_total", {"outcome": o}) for o in ("asked", "timeout")] == [1.0, 1.0]


async def test_an_album_gets_one_screen_per_photo_each_answered_on_its_own(bot_factory, screener):
    h = await bot_factory(forced(screener, "low"), answers_wait_s=60)
    n = await start_user(h, 730, "ru", "yes")
    photo = benign_top_photo(screener)
    ids = [h.fake.send_photo(730, photo, "ru", media_group_id="album1") for _ in range(3)]
    screens = await h.fake.replies(730, 3, since=n)
    assert sorted(s["reply_to"] for s in screens) == sorted(ids)
    by_photo = {s["reply_to"]: s for s in screens}
    # the second photo: a sign; the first: none; the third: skip
    second = await toggle(h, 730, by_photo[ids[1]], SIGNS.index("bled"), "ru")
    second = await toggle(h, 730, second, SIGNS.index("grew"), "ru")  # 1 + 2 points: within 2 weeks
    h.fake.press(730, second, action(second, "d"), "ru")
    h.fake.press(730, by_photo[ids[0]], action(by_photo[ids[0]], "n"), "ru")
    h.fake.press(730, by_photo[ids[2]], action(by_photo[ids[2]], "s"), "ru")
    results = {r["reply_to"]: r["text"] for r in await h.fake.replies(730, 3, since=n + 3)}
    assert advice_text("ru", "followup.raised") in results[ids[1]]
    assert t("ru", "ask.noted_none") in results[ids[0]] and advice_text("ru", "next.low") in results[ids[0]]
    assert t("ru", "followup.question") in results[ids[2]]
    await h.fake.quiet(730, n + 6)
    # a consenting user's answers are kept with their case (and only theirs)
    rows = await h.storage.history(730)
    kept = [r.followup for r in rows if r.followup]
    assert sorted(k["bled"] for k in kept) == [False, True] and all(set(k) == set(SIGNS) for k in kept)


async def test_forged_and_foreign_buttons_are_refused(bot_factory, screener):
    h = await bot_factory(forced(screener, "high"), answers_wait_s=60)
    n, screen, _ = await ask(h, 740, "en", benign_top_photo(screener))
    done = action(screen, "d")
    wid, tag = done.split(":")[1], done.split(":")[4]
    h.fake.press(741, screen, done, "en")  # another user presses this user's button
    h.fake.press(740, screen, f"qa:{int(wid) + 1}:0:d:{tag}", "en")  # someone else's waiting result
    h.fake.press(740, screen, f"qa:{wid}:{1 << len(SIGNS)}:d:{tag}", "en")  # an impossible mask
    await asyncio.sleep(0.5)
    assert not h.fake.sent[741] and len(h.fake.sent[740]) == n
    assert await h.app.bot_data.questions.count() == 1
    h.fake.press(740, screen, done, "en")
    (result,) = await h.fake.replies(740, 1, since=n)
    assert advice_text("en", "next.high") in result["text"]


async def test_delete_removes_a_waiting_result(bot_factory, screener):
    h = await bot_factory(forced(screener, "moderate"), answers_wait_s=60)
    n, screen, _ = await ask(h, 750, "kk", benign_top_photo(screener))
    assert await h.app.bot_data.questions.count() == 1
    h.fake.send_text(750, "/delete", "kk")
    (confirm,) = await h.fake.replies(750, 1, since=n)
    h.fake.press(750, confirm, "delete:yes", "kk")
    await h.fake.replies(750, 1, since=n + 1)
    assert await h.app.bot_data.questions.count() == 0


async def test_the_questions_off_answer_at_once(bot_factory, screener):
    h = await bot_factory(forced(screener, "low"), answers_wait_s=0)
    n = await start_user(h, 760, "en", "no")
    h.fake.send_photo(760, lesion_jpeg(0), "en")
    (result,) = await h.fake.replies(760, 1, since=n)
    assert not question_buttons(result) and any(d.startswith("fu:") for _, d in buttons(result))
    assert t("en", "privacy.questions", wait_max="x").split("(")[0] not in await privacy_text(h, 760, n + 1)


async def privacy_text(h, uid: int, since: int) -> str:
    h.fake.send_text(uid, "/privacy", "en")
    (reply,) = await h.fake.replies(uid, 1, since=since)
    return reply["text"]


async def test_privacy_says_what_waits_and_for_how_long(bot_factory, screener):
    h = await bot_factory(answers_wait_s=120)
    n = await start_user(h, 770, "en", None)
    text = await privacy_text(h, 770, n)
    assert t("en", "privacy.questions", wait_max=tn("en", "period.up_to_minutes", 3)) in text  # 120 s + the 30 s claim lease


def test_with_answers_grades_by_the_weighted_checklist_and_never_lowers():
    """NICE NG12's weighted 7-point checklist: every combination of the signs asked, against the
    score computed by hand from the published points."""
    import itertools

    points = {"size": 2, "shape_colour": 2, "diameter": 1, "inflammation": 1, "oozing": 1, "sensation": 1}
    assert advice.CHECKLIST_POINTS == points and advice.URGENT_SCORE == 3
    for risk in ("low", "moderate", "high"):
        own = next_step(risk)
        assert advice.with_answers(risk, None) == (None, own)
        assert advice.with_answers(risk, dict.fromkeys(SIGNS, False)) == (None, own)
        for ticked in itertools.chain.from_iterable(itertools.combinations(SIGNS, k) for k in range(1, 4)):
            answers = {s: s in ticked for s in SIGNS}
            score = sum(points[i] for i in {advice.SIGN_ITEMS[s] for s in ticked} - {None})
            urgent = score >= 3 or {"elevated", "grew"} <= set(ticked)
            preface, step = advice.with_answers(risk, answers)
            assert step.strength >= own.strength, (risk, ticked)
            if urgent:
                assert step.key == ("next.high_signs" if risk == "high" else "followup.raised"), (risk, ticked)
                assert preface == ("ask.signs_high" if risk == "high" else None)
            elif score:
                assert step.key == {"low": "next.moderate", "moderate": "next.moderate", "high": "next.high_signs"}[risk], (risk, ticked)
                assert preface == {"low": "ask.minor", "moderate": "ask.minor_stands", "high": "ask.signs_high"}[risk]
            else:
                assert (preface, step) == (None, own), (risk, ticked)


def test_sign_masks_of_every_length_are_read():
    """A mask over 2 digits (the 7th sign and on) is a valid toggle: before, «Done» with such a
    mask was refused without a word."""
    from bot.core.buttons import valid_toggle

    full = (1 << len(SIGNS)) - 1
    assert len(str(full)) == 3
    assert valid_toggle(str(full), "d", len(SIGNS), ("d",)) and valid_toggle("0", str(len(SIGNS) - 1), len(SIGNS), ())
    assert not valid_toggle(str(full + 1), "d", len(SIGNS), ("d",)) and not valid_toggle("0", str(len(SIGNS)), len(SIGNS), ())


def test_questions_store_claims_once(tmp_path):
    """Two processes pressing / timing out the same waiting result: only one claims it; a
    claim whose process died is taken over after the lease."""
    from bot.infra.migrate import upgrade
    from bot.infra.storage import Storage
    from bot.questions.store import Questions
    from bot.spots.store import fernet_key
    from inference import ScreeningResult

    async def run():
        url = f"sqlite+aiosqlite:///{tmp_path / 'q.db'}"
        await asyncio.to_thread(upgrade, url)
        storage = Storage(url, tmp_path / "photos", b"s" * 32)
        from datetime import UTC, datetime, timedelta

        at = [datetime(2026, 12, 6, tzinfo=UTC)]
        q = Questions(storage, fernet_key("", b"s" * 32), clock=lambda: at[0])
        wid = await q.add(1, 1, 10, "en", ScreeningResult(True, [], risk="moderate", malignancy=0.2, top_class="nv"), 0, True, 99, wait_s=60)
        assert await q.overdue("a", 30) == []  # not due yet
        at[0] += timedelta(seconds=50)
        first = await q.claim(wid, 1, "a", 30)
        assert first is not None and first.result.risk == "moderate" and first.message_id == 10
        assert await q.claim(wid, 1, "b", 30) is None  # a second press, another replica
        assert await q.claim(wid, 2, "b", 30) is None  # another user
        at[0] += timedelta(seconds=11)
        assert await q.overdue("b", 30) == []  # due, but "a" claimed it 11 s ago and is sending
        at[0] += timedelta(seconds=31)
        (taken,) = await q.overdue("b", 30)  # "a" died: taken over
        assert taken.id == wid
        await q.done(wid)
        assert await q.count() == 0
        wid2 = await q.add(1, 1, 11, "en", ScreeningResult(True, [], risk="low", malignancy=0.01, top_class="nv"), 0, True, 100, wait_s=60)
        assert await q.forget_update(100) == 1 and await q.claim(wid2, 1, "a", 30) is None
        await storage.close()

    asyncio.run(run())


async def test_a_press_answered_by_another_replica(bot_factory, screener):
    """Two bots on one database (replicas behind a webhook): the screen comes from one, the
    press reaches the other, which answers from the shared row; the first sends nothing more."""
    first = await bot_factory(forced(screener, "moderate"), answers_wait_s=60)
    second = await bot_factory(forced(screener, "moderate"), answers_wait_s=60)  # same data folder: same database and secret
    n, screen, photo_id = await ask(first, 780, "kk", benign_top_photo(screener))
    screen = await toggle(first, 780, screen, SIGNS.index("hurt"), "kk")
    screen = await toggle(first, 780, screen, SIGNS.index("grew"), "kk")  # 1 + 2 points: within 2 weeks
    second.fake.update_id = 10_000  # one Telegram numbers the updates of both replicas (the inbox dedups by id)
    second.fake.press(780, screen, action(screen, "d"), "kk")
    (result,) = await second.fake.replies(780, 1)
    assert result["reply_to"] == photo_id and advice_text("kk", "followup.raised") in result["text"]
    await first.fake.quiet(780, n)
    assert await first.app.bot_data.questions.count() == 0


async def test_a_followed_spot_after_the_questions_is_compared_without_asking_again(bot_factory, screener):
    """Answers given before the result go with "this is spot X": the comparison advises at the
    spot's level raised by the sign, and does not ask the questions a second time."""
    h = await bot_factory(forced(screener, "low"), answers_wait_s=60)
    photo = benign_top_photo(screener)
    n, screen, _ = await ask(h, 790, "en", photo)
    h.fake.press(790, screen, action(screen, "n"), "en")
    (result,) = await h.fake.replies(790, 1, since=n)
    h.fake.press(790, result, next(d for _, d in buttons(result) if d.startswith("rm:")), "en")
    (when,) = await h.fake.replies(790, 1, since=n + 1)
    h.fake.press(790, when, next(d for _, d in buttons(when) if d.split(":")[4] == "m3"), "en")
    await h.fake.replies(790, 1, since=n + 2)  # the spot is followed, low, in 3 months

    later(h, 30)
    n = len(h.fake.sent[790])
    h.fake.send_photo(790, photo, "en")
    (screen,) = await h.fake.replies(790, 1, since=n)
    screen = await toggle(h, 790, screen, SIGNS.index("changed"), "en")
    h.fake.press(790, screen, action(screen, "d"), "en")
    (result,) = await h.fake.replies(790, 1, since=n + 1)
    spot_button = next(d for _, d in buttons(result) if d.startswith("sp:"))
    assert spot_button.endswith(":s")
    h.fake.press(790, result, spot_button, "en")
    comparison, moved = await h.fake.replies(790, 2, since=n + 2)
    assert t("en", "compare.header", date="\x00", before="\x00", now="\x00").split("\x00")[0] in comparison["text"]
    assert advice_text("en", "followup.raised") in comparison["text"], "the sign raised the spot to 'see a doctor'"
    assert t("en", "followup.question") not in comparison["text"] and not buttons(comparison), "not asked twice"
    assert t("en", "spots.moved", name="\x00", date="\x00").split("\x00")[0] in moved["text"]


async def test_a_photo_answered_again_after_a_restart_is_answered_at_once_and_once(bot_factory, screener):
    """The crash came after the photo's waiting row was written but before the update was marked
    done: the update comes back (late) and is answered at once; its old row must not answer it
    a second time."""
    from inference import ScreeningResult

    h = await bot_factory(forced(screener, "moderate"), answers_wait_s=60, answers_tick_s=0.2)
    n = await start_user(h, 795, "ru", "no")
    update_id = h.fake.update_id + 1  # the photo's update, as the killed process saw it
    await h.app.bot_data.questions.add(795, 795, 1, "ru", ScreeningResult(True, [], risk="moderate", malignancy=0.2, top_class="nv"), 0, True, update_id, wait_s=1.0)
    h.app.bot_data.late_updates.add(update_id)
    h.fake.send_photo(795, benign_top_photo(screener), "ru")
    (result,) = await h.fake.replies(795, 1, since=n)
    assert result["text"].startswith(t("ru", "late")) and any(d.startswith("fu:") for _, d in buttons(result))
    await h.fake.quiet(795, n + 1, wait=1.5)  # the old row fell due meanwhile: it was forgotten, not sent
    assert await h.app.bot_data.questions.count() == 0


async def test_a_database_outage_is_logged_once_not_every_pass(caplog):
    from types import SimpleNamespace

    from bot.questions.handlers import answer_overdue

    caplog.set_level("INFO", logger="bot.questions.handlers")
    down = [True]

    async def overdue(owner, lease):
        if down[0]:
            raise ConnectionError("database is down")
        return []

    settings = SimpleNamespace(inbox_lease_s=30.0, answers_tick_s=5.0)
    context = SimpleNamespace(bot_data=SimpleNamespace(questions=SimpleNamespace(overdue=overdue), process_id="p", settings=settings, questions_down=False))
    for _ in range(4):
        await answer_overdue(context)
    down[0] = False
    await answer_overdue(context)
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.questions.handlers"]
    assert lines == ["could not look for unanswered questions (ConnectionError); trying every 5 s", "unanswered questions are looked for again"]
