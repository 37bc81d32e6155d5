"""Follow a spot over time (#13): reminders that arrive once, and a comparison with the last photo.

End to end over the fake Bot API in kk, ru and en (the clock is injected: no sleeping), the
comparison's advice rules, and the reminder queue's reliability: a process killed after claiming,
two processes on PostgreSQL, a user who blocked the bot, Telegram's flood limit.
"""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from bot.i18n import LANGUAGES, t
from bot.infra.storage import Storage, now
from bot.medical import advice
from bot.spots.reminders import Dispatcher
from bot.spots.store import CLAIMED, PENDING, SENT, UNDELIVERABLE, Reminder, Spot, SpotCheck, Spots, fernet_key

from .bot_process import BotProcess, bot_env
from .conftest import TOKEN, needs_shared
from .fake_telegram import FakeTelegram, buttons
from .proxy import NO_POSTGRES, POSTGRES, fresh_postgres
from .test_advice_flow import benign_top_photo, forced, wait_for
from .test_bot_e2e import start_user

pytestmark = needs_shared


async def follow_a_spot(h, uid: int, lang: str, consent: str, photo: bytes, period: str = "m3") -> tuple[dict, int]:
    """Photo → "remind me" → period (``m3``: 3 months) → the "reminder set" message; returns it
    and the count sent."""
    n = await start_user(h, uid, lang, consent)
    h.fake.send_photo(uid, photo, lang)
    (result,) = await h.fake.replies(uid, 1, since=n)
    remind = next(c for _, c in buttons(result) if c.startswith("rm:"))
    h.fake.press(uid, result, remind, lang)
    (when,) = await h.fake.replies(uid, 1, since=n + 1)
    assert t(lang, "spot.when").split("\n")[0].replace("<b>", "").replace("</b>", "") in when["text"]
    choice = next(c for _, c in buttons(when) if c.startswith("rt:") and c.split(":")[4] == period)
    h.fake.press(uid, when, choice, lang)
    (created,) = await h.fake.replies(uid, 1, since=n + 2)
    return created, n + 3


def later(h, days: float) -> None:
    """Move the bot's clock for spots and reminders."""
    h.app.bot_data.spots.clock = lambda: now() + timedelta(days=days)


async def run_reminder_job(h) -> None:
    (job,) = h.app.job_queue.get_jobs_by_name("reminders")
    await job.run(h.app)


async def rows(storage, model) -> list:
    async with storage.sessions() as s:
        return list(await s.scalars(select(model)))


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_follow_a_spot_from_result_to_reminder_to_comparison_to_delete(bot_factory, screener, lang):
    h = await bot_factory(forced(screener, "low"))
    photo = benign_top_photo(screener)
    uid = 4100
    created, n = await follow_a_spot(h, uid, lang, "yes", photo)
    date = re.search(r"\d", created["text"])
    assert date, "the reminder's date is told"

    h.fake.send_text(uid, "left shoulder", lang, reply_to=created)  # naming by replying
    (named,) = await h.fake.replies(uid, 1, since=n)
    assert named["text"] == t(lang, "spot.named", name="left shoulder")
    h.fake.send_text(uid, "/spots", lang)
    (listing,) = await h.fake.replies(uid, 1, since=n + 1)
    assert "left shoulder" in listing["text"] and t(lang, "risk.low") in listing["text"]
    (reminder_row,) = await rows(h.storage, Reminder)
    assert reminder_row.chat and str(uid) not in reminder_row.chat, "the chat id is stored encrypted"

    await run_reminder_job(h)  # not due yet
    await h.fake.quiet(uid, n + 2, wait=0.2)
    later(h, 95)
    await run_reminder_job(h)
    (reminder,) = await h.fake.replies(uid, 1, since=n + 2)
    assert "left shoulder" in reminder["text"] and "ABCDE" in reminder["text"]
    assert reminder["text"].split("\n")[0] == advice.advice_text(lang, "spot.reminder", name="left shoulder", date="", risk="").split("\n")[0]
    assert advice.intervals(lang)["within_signs"] in reminder["text"]  # a low spot's reminder names the signs interval
    (reminder_row,) = await rows(h.storage, Reminder)
    assert reminder_row.status == SENT and reminder_row.chat is None, "sent once, and the chat id erased"
    await run_reminder_job(h)
    await h.fake.quiet(uid, n + 3, wait=0.2)  # never twice

    h.fake.send_photo(uid, photo, lang, reply_to=reminder)  # the new photo, replying to the reminder
    result, comparison = await h.fake.replies(uid, 2, since=n + 3)
    assert comparison["text"].startswith(t(lang, "compare.header", date="X", before="Y", now="Z").split("X")[0])
    assert t(lang, "compare.same") in comparison["text"] and advice.next_step("low").text(lang) in comparison["text"]
    assert t(lang, "disclaimer") in comparison["text"]
    picture, moved = await h.fake.replies(uid, 2, since=n + 5)
    assert picture.get("photo_bytes", b"")[:2] == b"\xff\xd8", "a side-by-side picture (previous | now)"
    import io

    from PIL import Image

    side = Image.open(io.BytesIO(picture["photo_bytes"]))
    single = Image.open(io.BytesIO(photo))
    assert side.width > 2 * (side.height - 36) * single.width / single.height, "two photos side by side, with a label band"
    assert "left shoulder" in moved["text"], "the next reminder is set"
    assert len(await rows(h.storage, SpotCheck)) == 2

    h.fake.send_text(uid, "/delete", lang)
    (confirm,) = await h.fake.replies(uid, 1, since=n + 7)
    h.fake.press(uid, confirm, "delete:yes", lang)
    await h.fake.replies(uid, 1, since=n + 8)
    for model in (Spot, SpotCheck, Reminder):
        assert await rows(h.storage, model) == [], model.__name__
    assert not [p for p in h.storage.photos.root.rglob("*") if p.is_file()]


async def test_a_drop_never_weakens_the_earlier_advice_and_without_photo_consent_levels_only(bot_factory, screener):
    lang, uid = "ru", 4200
    high = await bot_factory(forced(screener, "high"))
    photo = benign_top_photo(screener)
    await follow_a_spot(high, uid, lang, "no", photo, period="w1")  # no photo consent: dates and levels only
    low = await bot_factory(forced(screener, "low"))  # the same database, a model that now says "low"
    low.fake.update_id = 10_000  # Telegram's update ids never repeat; the inbox would drop a repeat
    later(low, 40)
    await run_reminder_job(low)
    (reminder,) = await low.fake.replies(uid, 1)
    low.fake.send_photo(uid, photo, lang, reply_to=reminder)
    result, comparison, moved = await low.fake.replies(uid, 3, since=1)
    text = comparison["text"]
    assert t(lang, "compare.lower") in text
    assert advice.next_step("high").text(lang) in text, "the earlier (high) advice is restated"
    assert t(lang, "compare.levels_only") in text
    assert not [m for m in low.fake.sent[uid] if m.get("photo_bytes")], "no picture without photo consent"


async def test_a_rise_says_it_has_changed(bot_factory, screener):
    lang, uid = "kk", 4300
    low = await bot_factory(forced(screener, "low"))
    photo = benign_top_photo(screener)
    await follow_a_spot(low, uid, lang, "yes", photo)
    moderate = await bot_factory(forced(screener, "moderate"))
    moderate.fake.update_id = 10_000
    later(moderate, 100)
    await run_reminder_job(moderate)
    (reminder,) = await moderate.fake.replies(uid, 1)
    moderate.fake.send_photo(uid, photo, lang, reply_to=reminder)
    result, comparison = await moderate.fake.replies(uid, 2, since=1)
    assert t(lang, "compare.higher") in comparison["text"]
    assert advice.advice_text(lang, "followup.raised") in comparison["text"] and "103" in comparison["text"]


async def test_withdrawing_consent_stops_reminders_and_spots_can_be_stopped(bot_factory, screener):
    h = await bot_factory(forced(screener, "low"))
    photo = benign_top_photo(screener)
    created, n = await follow_a_spot(h, 4400, "en", "yes", photo)
    h.fake.send_text(4400, "/consent", "en")
    (notice,) = await h.fake.replies(4400, 1, since=n)
    h.fake.press(4400, notice, "consent:no", "en")
    await h.fake.replies(4400, 1, since=n + 1)
    (row,) = await rows(h.storage, Reminder)
    assert row.status == "stopped" and row.chat is None
    later(h, 200)
    await run_reminder_job(h)
    await h.fake.quiet(4400, n + 2, wait=0.2)

    created, n = await follow_a_spot(h, 4401, "en", "no", photo)
    h.fake.send_text(4401, "<b>arm & 'leg'", "en", reply_to=created)  # a name that is not HTML
    await h.fake.replies(4401, 1, since=n)
    n += 1
    h.fake.send_text(4401, "/spots", "en")
    (listing,) = await h.fake.replies(4401, 1, since=n)
    assert "&lt;b&gt;arm &amp; &#x27;leg&#x27;" in listing["text"], "the user's words are escaped in an HTML message"
    stop = next(c for _, c in buttons(listing) if c.startswith("ss:"))
    h.fake.press(4401, listing, stop, "en")
    (stopped,) = await h.fake.replies(4401, 1, since=n + 1)
    assert stopped["text"].startswith("Stopped")
    assert {r.status for r in await rows(h.storage, Reminder)} == {"stopped"}


@pytest.mark.parametrize(
    ("before", "now_", "mal_before", "mal_now", "expected"),
    [
        ("low", "moderate", 0.20, 0.20, "compare.higher"),  # a higher level
        ("low", "low", 0.10, 0.30, "compare.higher"),  # malignancy up by more than the noise
        ("low", "low", 0.10, 0.15, "compare.same"),  # within the noise
        ("high", "low", 0.80, 0.10, "compare.lower"),  # a drop
    ],
)
def test_comparison_rules(before, now_, mal_before, mal_now, expected):
    preface, step = advice.after_comparison(before, now_, mal_before, mal_now, noise=0.17)
    assert preface == expected
    assert step.strength >= advice.next_step(before).strength or preface == "compare.same"
    if expected == "compare.lower":
        assert step == advice.next_step(before), "a drop restates the earlier advice"


# ---------------------------------------------------------------- the queue


async def due_reminders(url: str, photos, n: int, secret: bytes, first_chat: int = 50_000) -> Spots:
    """``n`` reminders due now, each for its own chat, written as the bot writes them."""
    from bot.infra.migrate import upgrade

    await asyncio.to_thread(upgrade, url)
    storage = Storage(url, photos, secret)
    spots = Spots(storage, fernet_key("", secret))
    async with storage.sessions.begin() as s:
        for i in range(n):
            spot = Spot(user_pseudonym=storage.pseudonym(first_chat + i))
            s.add(spot)
            await s.flush()
            s.add(SpotCheck(spot_id=spot.id, risk="low", malignancy=0.1))
            s.add(spots._reminder(spot.id, spot.user_pseudonym, first_chat + i, "en", now() - timedelta(minutes=1)))
    return spots


def sends(fake: FakeTelegram) -> dict[int, int]:
    """Reminders delivered, per chat (chats that got none are left out)."""
    counts = {chat: sum(1 for m in msgs if m["text"].startswith("🔔")) for chat, msgs in fake.sent.items()}
    return {chat: n for chat, n in counts.items() if n}


async def drain(dispatchers, bot) -> None:
    for _ in range(200):
        counts = await asyncio.gather(*(d.run_once(bot) for d in dispatchers))
        if not any(sum(c.values()) for c in counts):
            return
    raise AssertionError("the queue did not drain")


@pytest.mark.slow  # a killed process / a thousand reminders: the full run only
@pytest.mark.skipif(not POSTGRES, reason=NO_POSTGRES)
async def test_two_processes_send_1000_due_reminders_exactly_once(tmp_path):
    from telegram import Bot

    url, drop = await fresh_postgres()
    fake = FakeTelegram()
    await fake.start()
    first = await due_reminders(url, tmp_path, 1000, b"k")
    second = Spots(Storage(url, tmp_path, b"k"), fernet_key("", b"k"))  # another process: its own engine
    try:
        async with Bot(TOKEN, base_url=fake.base_url) as bot:
            await drain([Dispatcher(first, rate_per_s=2000, tick_s=0.05), Dispatcher(second, rate_per_s=2000, tick_s=0.05)], bot)
        counts = sends(fake)
        assert len(counts) == 1000 and set(counts.values()) == {1}, "every reminder sent, none twice"
        statuses = {r.status for r in await rows(first.storage, Reminder)}
        assert statuses == {SENT}
        owners = {r.claimed_by for r in await rows(first.storage, Reminder)}
        assert len(owners) == 2, "both processes took part"
    finally:
        await first.storage.close()
        await second.storage.close()
        await fake.stop()
        await drop()


async def test_blocked_users_are_not_retried_and_flood_limits_are(tmp_path):
    from telegram import Bot

    fake = FakeTelegram()
    await fake.start()
    spots = await due_reminders(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}", tmp_path, 3, b"k", first_chat=60_000)
    fake.blocked.add(60_000)
    fake.flood = 1
    spot_ids = [spot.id for spot in await rows(spots.storage, Spot)]
    assert await spots.rename(60_002, spot_ids[2], "<i>left arm")
    dispatcher = Dispatcher(spots, rate_per_s=1000, tick_s=1)
    try:
        async with Bot(TOKEN, base_url=fake.base_url) as bot:
            first = await dispatcher.run_once(bot)
            assert first == {"sent": 1, "undeliverable": 1, "retry": 1}
            assert await dispatcher.run_once(bot) == {"sent": 0, "undeliverable": 0, "retry": 0}, "the 429 waits, the 403 is done"
            spots.clock = lambda: now() + timedelta(seconds=10)
            assert await dispatcher.run_once(bot) == {"sent": 1, "undeliverable": 0, "retry": 0}
        (renamed,) = fake.sent[60_002]
        assert "«&lt;i&gt;left arm»" in renamed["text"] or "“&lt;i&gt;left arm”" in renamed["text"], renamed["text"][:80]
        by_chat = {spots._chat(r.chat) for r in await rows(spots.storage, Reminder)}
        statuses = sorted((r.status, r.attempts) for r in await rows(spots.storage, Reminder))
        assert statuses == [(SENT, 0), (SENT, 1), (UNDELIVERABLE, 0)]
        assert by_chat == {None}, "no chat id is kept once a reminder is done"
        assert sum(1 for c in fake.calls if c[0] == "sendMessage" and int(c[1]["chat_id"]) == 60_000) == 1
    finally:
        await spots.storage.close()
        await fake.stop()


@pytest.mark.slow  # a killed process / a thousand reminders: the full run only
async def test_killed_after_claiming_then_sent_after_restart(tmp_path):
    """A process claimed reminders and died before sending (here: claimed by a process that
    never sends); then the bot is SIGKILLed in the middle of a backlog. Every reminder arrives,
    and at most the one in flight at the kill arrives twice (sent, not yet marked)."""
    fake = FakeTelegram()
    await fake.start()
    data = tmp_path / "data"
    data.mkdir()
    env = bot_env(fake, data, REMINDER_TICK_S="0.5", REMINDER_LEASE_S="2", REMINDER_RATE_PER_S="10")
    secret = env["PSEUDONYM_SECRET"].encode()
    spots = await due_reminders(f"sqlite+aiosqlite:///{data / 'bot.sqlite3'}", data / "photos", 40, secret, first_chat=70_000)
    dead = await spots.claim("d" * 32, limit=5, lease_s=2)
    assert len(dead) == 5 and {r.status for r in await rows(spots.storage, Reminder)} == {PENDING, CLAIMED}
    await spots.storage.close()
    bot = await BotProcess(env, tmp_path / "bot.log").start()
    try:
        await wait_for(lambda: sum(sends(fake).values()) >= 12, timeout=60)
        await bot.kill()
        bot = await BotProcess(env, tmp_path / "bot.log").start()
        await wait_for(lambda: len(sends(fake)) == 40, timeout=90)
        assert await bot.stop() == 0
    finally:
        if bot.proc.returncode is None:
            await bot.kill()
        await fake.stop()
    counts = sends(fake)
    twice = [chat for chat, n in counts.items() if n > 1]
    assert len(twice) <= 1 and max(counts.values()) <= 2, f"at most the reminder in flight at the kill is sent twice: {twice}"
    assert all(counts.get(r.chat_id) for r in dead), "the dead process's claims were taken over and sent"
    assert "Traceback" not in bot.output()


async def test_a_claim_whose_process_died_is_sent_once_after_the_lease(tmp_path):
    from telegram import Bot

    fake = FakeTelegram()
    await fake.start()
    spots = await due_reminders(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}", tmp_path, 4, b"k", first_chat=80_000)
    dead = await spots.claim("d" * 32, limit=4, lease_s=60)  # claimed, then the process died before sending
    dispatcher = Dispatcher(spots, rate_per_s=1000, tick_s=1, lease_s=60)
    try:
        async with Bot(TOKEN, base_url=fake.base_url) as bot:
            assert await dispatcher.run_once(bot) == {"sent": 0, "undeliverable": 0, "retry": 0}, "not while the claim is fresh"
            spots.clock = lambda: now() + timedelta(seconds=61)
            assert await dispatcher.run_once(bot) == {"sent": 4, "undeliverable": 0, "retry": 0}
            assert await dispatcher.run_once(bot) == {"sent": 0, "undeliverable": 0, "retry": 0}
        assert sends(fake) == {r.chat_id: 1 for r in dead}
    finally:
        await spots.storage.close()
        await fake.stop()


async def test_any_photo_can_be_attached_to_a_followed_spot_from_its_buttons(bot_factory, screener):
    h = await bot_factory(forced(screener, "low"))
    photo = benign_top_photo(screener)
    created, n = await follow_a_spot(h, 4500, "ru", "yes", photo)
    h.fake.send_photo(4500, photo, "ru")  # not a reply: the user picks the spot
    (result,) = await h.fake.replies(4500, 1, since=n)
    assert result["text"].endswith(t("ru", "compare.pick"))
    pick = next(c for label, c in buttons(result) if c.startswith("sp:") and label.startswith("📍"))
    h.fake.press(4500, result, pick, "ru")
    comparison, picture, moved = await h.fake.replies(4500, 3, since=n + 1)
    assert comparison["text"].startswith(t("ru", "compare.header", date="X", before="Y", now="Z").split("X")[0])
    assert picture.get("photo_bytes"), "both photos kept (consent): the side-by-side picture"
    assert len(await rows(h.storage, SpotCheck)) == 2


def test_the_side_by_side_labels_are_drawn_in_cyrillic_and_kazakh():
    """Pillow's default font drew ru/kk labels as boxes (#21): the shipped DejaVu Sans has every
    letter of the labels, so each one draws differently from a missing glyph."""
    from PIL import ImageFont

    from bot.spots.picture import LABEL_FONT

    font = ImageFont.truetype(str(LABEL_FONT), 20)
    missing = font.getmask("\uffff").getbbox()  # a character no font has: the "box"
    for ch in "абвгдеёжзийклмнопрстуфхцчшщъыьэюяәғқңөұүһі" + "ӘҒҚҢӨҰҮҺІ":
        assert font.getmask(ch).getbbox() != missing or ch in "ъь", ch
    for lang in LANGUAGES:
        label = t(lang, "compare.label", date="6 дек.", risk=t(lang, "risk.high"))
        assert t(lang, "risk.high") in label and label != t(lang, "risk.high")


async def test_a_high_spots_reminder_can_only_move_to_before_its_deadline(bot_factory, screener):
    """/spots offers a high spot 1 or 2 weeks only; "in 6 months" — forged, or from a list sent
    before reminders followed the level — never moves it past the deadline."""
    h = await bot_factory(forced(screener, "high"))
    photo = benign_top_photo(screener)
    created, n = await follow_a_spot(h, 4600, "en", "no", photo, period="w1")
    h.fake.send_text(4600, "/spots", "en")
    (listing,) = await h.fake.replies(4600, 1, since=n)
    moves = [c for _, c in buttons(listing) if c.startswith("sm:")]
    assert [c.split(":")[2] for c in moves] == ["w1", "w2"]
    (before,) = [r for r in await rows(h.storage, Reminder) if r.status == PENDING]
    spot_id = moves[0].split(":")[1]
    for forged in (f"sm:{spot_id}:m6", f"sm:{spot_id}:6"):
        h.fake.press(4600, listing, forged, "en")
    refused, relisted = await h.fake.replies(4600, 2, since=n + 1)
    assert refused["text"] == t("en", "spots.not_found")
    assert relisted["text"].startswith("<b>Spots you follow") and [c for _, c in buttons(relisted) if c.startswith("sm:")] == moves
    (after,) = [r for r in await rows(h.storage, Reminder) if r.status == PENDING]
    assert after.id == before.id and after.due_at == before.due_at, "the reminder did not move"
    h.fake.press(4600, listing, moves[1], "en")
    (moved,) = await h.fake.replies(4600, 1, since=n + 3)
    assert moved["text"].startswith("Next reminder")


async def test_a_reminder_set_after_the_deadline_before_this_rule_is_brought_forward(tmp_path):
    """A high spot reminded "in 6 months" (allowed before #21) comes at its 2-week deadline."""
    from bot.infra.migrate import upgrade

    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}"
    await asyncio.to_thread(upgrade, url)
    storage = Storage(url, tmp_path, b"k")
    spots = Spots(storage, fernet_key("", b"k"))
    high, _ = await spots.create(1, 1, "en", "high", 0.8, None, (6, "m"))  # the old choice
    low, _ = await spots.create(2, 2, "en", "low", 0.1, None, (6, "m"))  # fine for a low spot
    assert await spots.bring_forward(0.1) == 1
    due = {r.spot_id: r.due_at.replace(tzinfo=None) for r in await rows(storage, Reminder)}
    created = {s.id: s.created_at.replace(tzinfo=None) for s in await rows(storage, Spot)}
    assert due[high.id] == created[high.id] + timedelta(weeks=advice.HIGH_WITHIN_WEEKS)
    assert due[low.id] > created[low.id] + timedelta(days=150)
    await storage.close()


async def test_a_later_low_photo_reschedules_no_later_than_the_doctor_deadline(tmp_path):
    """High on day 0 (see a doctor by day 14); a low photo of the spot on day 9 would set the
    high level's recommended week (day 16): the reminder comes on day 14 instead."""
    from bot.infra.migrate import upgrade

    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}"
    await asyncio.to_thread(upgrade, url)
    storage = Storage(url, tmp_path, b"k")
    spots = Spots(storage, fernet_key("", b"k"))
    t0 = now()
    spots.clock = lambda: t0
    spot, _ = await spots.create(1, 1, "en", "high", 0.8, None, (1, "w"))
    spots.clock = lambda: t0 + timedelta(days=9)
    await spots.add_check(spot.id, "low", 0.02, None)
    state = advice.follow(await spots.history(spot.id), 0.1)
    assert state.level == "high" and state.deadline == t0 + timedelta(weeks=advice.HIGH_WITHIN_WEEKS)
    _, reminder = await spots.reschedule(1, 1, "en", spot.id, advice.RECOMMENDED[state.level], not_after=state.deadline)
    assert reminder.due_at == state.deadline
    # once the deadline has passed, the next reminder ("go now") keeps its own interval
    spots.clock = lambda: t0 + timedelta(days=20)
    _, reminder = await spots.reschedule(1, 1, "en", spot.id, (1, "w"), not_after=state.deadline)
    assert reminder.due_at == t0 + timedelta(days=27)
    await storage.close()


async def test_ticking_a_sign_keeps_the_remind_me_and_spot_buttons(bot_factory, screener):
    """Toggling a warning sign redraws the questions; "remind me" and the spot buttons stay."""
    import json

    h = await bot_factory(forced(screener, "low"))
    photo = benign_top_photo(screener)
    created, n = await follow_a_spot(h, 4700, "en", "no", photo)
    h.fake.send_photo(4700, photo, "en")
    (result,) = await h.fake.replies(4700, 1, since=n)
    before = [c for _, c in buttons(result)]
    assert any(c.startswith("rm:") for c in before) and any(c.startswith("sp:") for c in before)
    edits = len(h.fake.edits)
    h.fake.press(4700, result, next(c for c in before if c.startswith("fu:") and c.split(":")[4] == "2"), "en")
    await wait_for(lambda: len(h.fake.edits) > edits)
    markup = h.fake.edits[-1]["reply_markup"]
    markup = json.loads(markup) if isinstance(markup, str) else markup
    after = [b.get("callback_data", "") for row in markup["inline_keyboard"] for b in row]
    assert [c for c in after if not c.startswith("fu:")] == [c for c in before if not c.startswith("fu:")]
    assert any(c.startswith("fu:") and ":4:" in c for c in after), "the ticked sign is shown"
    # "remind me" after ticking a sign offers the signs interval (2 weeks), not 3 months
    edited = {**result, "reply_markup": markup}
    h.fake.press(4700, edited, next(c for c in after if c.startswith("rm:")), "en")
    (when,) = await h.fake.replies(4700, 1, since=n + 1)
    offered = [c.split(":")[4] for _, c in buttons(when)]
    assert offered == ["w1", "w2"], offered
    h.fake.press(4700, when, next(c for _, c in buttons(when) if c.split(":")[4] == "w2"), "en")
    (created2,) = await h.fake.replies(4700, 1, since=n + 2)
    assert created2["text"].startswith("Done: I will remind you")


async def test_a_name_that_overtakes_the_prompts_write_still_names_the_spot(bot_factory, screener):
    """The prompt goes out first and its message id is stored next; a reply that arrives before
    that write (a fast user, a slow database) waits for it instead of "I only understand photos"
    (seen once in CI, where the fake user replies within milliseconds)."""
    h = await bot_factory(forced(screener, "low"))
    created, n = await follow_a_spot(h, 4190, "ru", "yes", benign_top_photo(screener))
    (spot,) = await rows(h.storage, Spot)
    async with h.storage.sessions.begin() as s:  # as if the write had not landed yet
        await s.execute(update(Spot).values(prompt_message_id=None))
    h.fake.send_text(4190, "левое плечо", "ru", reply_to=created)
    await asyncio.sleep(0.5)
    await h.app.bot_data.spots.set_prompt(spot.id, created["message_id"])  # …and now it lands
    (named,) = await h.fake.replies(4190, 1, since=n)
    assert named["text"] == t("ru", "spot.named", name="левое плечо")
