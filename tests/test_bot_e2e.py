"""The real Application against the fake Bot API server: each flow, in all three languages."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from bot.i18n import LANGUAGES, t, tn
from bot.infra.storage import NOTICE_VERSION, Submission, User
from bot.medical.advice import advice_text

from .conftest import jpeg_bytes, needs_shared, real_images, skin_with_spot
from .fake_telegram import buttons

pytestmark = needs_shared


def lesion_jpeg(i: int = 0, gps: bool = False) -> bytes:
    """A real smartphone lesion photo, optionally carrying an EXIF GPS block."""
    img = Image.open(real_images("pad_ufes20", 12)[i]).convert("RGB")
    buf = io.BytesIO()
    exif = Image.Exif()
    if gps:
        exif[0x8825] = {1: "N", 2: (43.0, 14.0, 0.0), 3: "E", 4: (76.0, 53.0, 0.0)}
    img.save(buf, "JPEG", quality=95, exif=exif)
    return buf.getvalue()


def accepted_photo(harness, start: int = 0) -> tuple[int, bytes]:
    """Index and bytes of a PAD photo the shipped model accepts (found once, not hard-coded)."""
    screener = harness.app.bot_data.screener
    for i in range(start, 12):
        data = lesion_jpeg(i)
        if screener.screen(data).accepted:
            return i, data
    pytest.fail("none of the first 12 PAD-UFES-20 photos is accepted by the shipped model")


async def start_user(h, uid: int, lang: str | None, consent: str | None) -> int:
    """/start, optionally answer the consent question; returns messages sent so far."""
    h.fake.send_text(uid, "/start", lang)
    welcome, notice = await h.fake.replies(uid, 2)
    if consent is None:
        return 2
    h.fake.press(uid, notice, f"consent:{consent}", lang)
    await h.fake.replies(uid, 1, since=2)
    return 3


@pytest.mark.parametrize("lang", ["kk", "ru", "en", "de"])
async def test_start_speaks_the_users_language_and_asks_consent(bot_factory, lang):
    h = await bot_factory()
    h.fake.send_text(1, "/start", lang)
    welcome, notice = await h.fake.replies(1, 2)
    expect = lang if lang in LANGUAGES else "en"
    assert welcome["text"].startswith(t(expect, "welcome", tips="").split("\n")[0])
    assert [b[1] for b in buttons(welcome)] == ["lang:kk", "lang:ru", "lang:en"]
    assert "Test Operator" in notice["text"]
    assert [b[1] for b in buttons(notice)] == ["consent:yes", "consent:no"]
    menus = {c[1].get("language_code") for c in h.fake.calls if c[0] == "setMyCommands"}
    assert menus == {"kk", "ru", None}


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_consenting_user_gets_an_answer_and_the_case_is_logged_without_exif(bot_factory, lang):
    h = await bot_factory()
    n = await start_user(h, 10, lang, "yes")
    i, _ = accepted_photo(h)
    h.fake.send_photo(10, lesion_jpeg(i, gps=True), lang)
    (answer,) = await h.fake.replies(10, 1, since=n)
    question = answer
    text = answer["text"]
    assert any(text.startswith(t(lang, f"result.{r}").split("\n")[0]) for r in ("low", "moderate", "high")), text
    assert t(lang, "disclaimer") in text and t(lang, "referral.path") in text
    assert text.endswith(t(lang, "followup.question")) and len(buttons(question)) == 7  # 5 signs, done, remind me
    assert buttons(question)[-1][1].startswith("rm:")
    assert any(c[0] == "sendChatAction" for c in h.fake.calls)

    async with h.storage.sessions() as s:
        subs = list(await s.scalars(select(Submission)))
        assert len(subs) == 1 and subs[0].accepted and subs[0].language == lang
        user = await s.get(User, subs[0].user_pseudonym)
        assert user.consent == "yes" and user.consent_version == NOTICE_VERSION == 3
        assert user.pseudonym == h.storage.pseudonym(10) and len(user.pseudonym) == 64  # keyed hash
        assert "telegram" not in {c.name for c in User.__table__.columns}
    stored = h.storage.photos.path(subs[0].user_pseudonym, subs[0].photo_sha256)
    assert stored.parent.name == subs[0].user_pseudonym  # one folder per user
    img = Image.open(stored)
    assert not img.getexif() and "exif" not in img.info

    # follow-up: tick "it bled", then Done → stored, and the advice is at least "see a doctor"
    h.fake.press(10, question, [b for b in buttons(question) if b[1].split(":")[4] == "2"][0][1], lang)
    await _wait_edits(h, 1)
    done = [b for b in buttons(question) if b[1].split(":")[4] == "d"][0][1].replace(":0:d:", ":4:d:")
    h.fake.press(10, question, done, lang)
    (advice,) = await h.fake.replies(10, 1, since=n + 1)
    if subs[0].risk == "high":  # a sign after a high result keeps "urgent" and "oncologist"
        assert advice["text"].startswith(t(lang, "followup.signs_high")) and advice_text(lang, "next.high_signs") in advice["text"]
    else:
        assert advice["text"].startswith(advice_text(lang, "followup.raised"))
    async with h.storage.sessions() as s:
        sub = (await s.scalars(select(Submission))).one()
        assert sub.followup == {"changed": False, "grew": False, "bled": True, "itched": False, "hurt": False}


async def _wait_edits(h, n):
    import asyncio

    for _ in range(500):
        if len(h.fake.edits) >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no keyboard edit")


@pytest.mark.parametrize("consent", ["no", None])
async def test_without_consent_nothing_is_stored(bot_factory, consent):
    h = await bot_factory()
    n = await start_user(h, 20, "ru", consent)
    _, data = accepted_photo(h)
    h.fake.send_photo(20, data, "ru")
    (answer,) = await h.fake.replies(20, 1, since=n)
    assert t("ru", "disclaimer") in answer["text"]
    async with h.storage.sessions() as s:
        assert await s.scalar(select(func.count(Submission.id))) == 0
        user = (await s.scalars(select(User))).one()  # only language and consent state
        assert user.language == "ru" and user.region is None
    photos = h.settings.photos_dir
    assert not photos.exists() or not any(p.is_file() for p in photos.rglob("*"))


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_bad_inputs_get_guidance_not_silence(bot_factory, lang, non_skin_photos):
    h = await bot_factory()
    uid = 30
    n = await start_user(h, uid, lang, "no")
    h.fake.send_sticker(uid, lang)
    h.fake.send_voice(uid, lang)
    h.fake.send_text(uid, "hello?", lang)
    replies = await h.fake.replies(uid, 3, since=n)
    assert [r["text"] for r in replies] == [t(lang, "unsupported")] * 3
    n += 3

    h.fake.send_document(uid, b"%PDF-1.4 not a photo", "scan.pdf", "application/pdf", lang)
    (r,) = await h.fake.replies(uid, 1, since=n)
    assert r["text"] == t(lang, "file.not_image")
    n += 1
    h.fake.send_document(uid, b"x" * 100, "huge.jpg", "image/jpeg", lang, file_size=25 * 1024 * 1024)
    (r,) = await h.fake.replies(uid, 1, since=n)
    assert r["text"] == t(lang, "file.too_big")
    n += 1
    good = jpeg_bytes(skin_with_spot())
    h.fake.send_document(uid, good[: len(good) // 2], "cut.jpg", "image/jpeg", lang)
    (r,) = await h.fake.replies(uid, 1, since=n)
    assert t(lang, "reason.corrupt") in r["text"] and t(lang, "reject.outro") in r["text"]
    n += 1
    h.fake.send_photo(uid, jpeg_bytes(non_skin_photos["cat"]), lang)
    (r,) = await h.fake.replies(uid, 1, since=n)
    assert r["text"].startswith(t(lang, "reject.intro")) and "Traceback" not in r["text"]
    n += 1
    h.fake.send_photo(uid, jpeg_bytes((skin_with_spot() * 0.1).astype(np.uint8)), lang)
    (r,) = await h.fake.replies(uid, 1, since=n)
    assert t(lang, "reason.too_dark") in r["text"]
    await h.fake.quiet(uid, n + 1)


async def test_image_sent_as_a_file_is_screened(bot_factory):
    h = await bot_factory()
    n = await start_user(h, 35, "en", "no")
    _, data = accepted_photo(h)
    h.fake.send_document(35, data, "IMG_0001.JPG", "image/jpeg")
    (answer,) = await h.fake.replies(35, 1, since=n)
    question = answer
    assert t("en", "disclaimer") in answer["text"] and buttons(question)


async def test_album_every_photo_is_answered(bot_factory):
    h = await bot_factory()
    n = await start_user(h, 40, "kk", "no")
    _, data = accepted_photo(h)
    for _ in range(3):
        h.fake.send_photo(40, data, "kk", media_group_id="album1")
    replies = await h.fake.replies(40, 3, since=n)
    assert sum(t("kk", "disclaimer") in r["text"] for r in replies) == 3


async def test_flood_is_rate_limited_politely(bot_factory):
    h = await bot_factory(rate_limit_photos=3, rate_limit_window_s=60)
    n = await start_user(h, 50, "ru", "no")
    data = jpeg_bytes((skin_with_spot() * 0.1).astype(np.uint8))  # quick to answer: too dark
    for _ in range(10):
        h.fake.send_photo(50, data, "ru")
    replies = await h.fake.replies(50, 4, since=n)
    texts = [r["text"] for r in replies]
    assert texts.count(t("ru", "rate_limited")) == 1 and sum(t("ru", "reason.too_dark") in x for x in texts) == 3
    await h.fake.quiet(50, n + 4)


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_delete_erases_rows_and_files(bot_factory, lang):
    h = await bot_factory()
    n = await start_user(h, 60, lang, "yes")
    i, data = accepted_photo(h)
    h.fake.send_photo(60, data, lang)
    h.fake.send_photo(60, jpeg_bytes((skin_with_spot() * 0.1).astype(np.uint8)), lang)
    await h.fake.replies(60, 2, since=n)
    n += 2
    files = [p for p in h.settings.photos_dir.rglob("*.jpg")]
    assert len(files) == 2

    h.fake.send_text(60, "/history", lang)
    (hist,) = await h.fake.replies(60, 1, since=n)
    assert hist["text"].startswith(t(lang, "history.header")) and len(hist["text"].splitlines()) == 3
    n += 1

    h.fake.send_text(60, "/delete", lang)
    (confirm,) = await h.fake.replies(60, 1, since=n)
    assert confirm["text"] == t(lang, "delete.confirm")
    h.fake.press(60, confirm, "delete:yes", lang)
    (done,) = await h.fake.replies(60, 1, since=n + 1)
    backups = tn(lang, "period.up_to_days", h.settings.backup_retention_days)
    assert done["text"] == t(lang, "delete.done", photos=tn(lang, "count.photos", 2), results=tn(lang, "count.results", 2), spots=tn(lang, "count.spots", 0), backups=backups)
    assert not any(Path(f).exists() for f in files)
    async with h.storage.sessions() as s:
        assert await s.scalar(select(func.count(Submission.id))) == 0
        assert await s.scalar(select(func.count()).select_from(User)) == 0


async def test_withdrawing_consent_offers_deletion(bot_factory):
    h = await bot_factory()
    n = await start_user(h, 65, "kk", "yes")
    h.fake.send_text(65, "/consent", "kk")
    (notice,) = await h.fake.replies(65, 1, since=n)
    h.fake.press(65, notice, "consent:no", "kk")
    (r,) = await h.fake.replies(65, 1, since=n + 1)
    assert r["text"] == t("kk", "consent.withdrawn") and "/delete" in r["text"]


@pytest.mark.parametrize("lang", LANGUAGES)
async def test_region_by_button_and_by_location(bot_factory, lang):
    h = await bot_factory()
    n = await start_user(h, 70, lang, "no")
    h.fake.send_text(70, "/region", lang)
    prompt, _ = await h.fake.replies(70, 2, since=n)
    assert len(buttons(prompt)) == 20
    h.fake.press(70, prompt, "region:karaganda", lang)
    (r,) = await h.fake.replies(70, 1, since=n + 2)
    directory = h.app.bot_data.directory
    assert directory.get("karaganda").name(lang) in r["text"] and "103" in r["text"]
    labels = [b[0] for b in buttons(prompt)]
    assert labels == sorted(labels, key=str.casefold), "region buttons are sorted by the localised name"
    assert all(len(label) <= 24 for label in labels), labels  # fit two per row on a phone

    # A shared location is only a suggestion: nothing is saved until the user confirms it.
    h.fake.send_location(70, 51.2, 51.4, lang)  # near Oral
    (ask,) = await h.fake.replies(70, 1, since=n + 3)
    assert directory.get("west_kazakhstan").city(lang) in ask["text"]
    assert [b[1] for b in buttons(ask)] == ["region:west_kazakhstan", "region:list"]
    async with h.storage.sessions() as s:
        assert (await s.scalars(select(User))).one().region == "karaganda"
    h.fake.press(70, ask, "region:list", lang)
    (again,) = await h.fake.replies(70, 1, since=n + 4)
    assert len(buttons(again)) == 20
    h.fake.press(70, ask, "region:west_kazakhstan", lang)
    (r,) = await h.fake.replies(70, 1, since=n + 5)
    # West Kazakhstan has no verified centre: the polyclinic path only, no invented centre.
    assert t(lang, "referral.no_centre", region=directory.get("west_kazakhstan").name(lang)) in r["text"]
    async with h.storage.sessions() as s:
        assert (await s.scalars(select(User))).one().region == "west_kazakhstan"


async def test_language_switch_changes_later_answers(bot_factory):
    h = await bot_factory()
    n = await start_user(h, 80, "en", "no")
    h.fake.send_text(80, "/language", "en")
    (menu,) = await h.fake.replies(80, 1, since=n)
    h.fake.press(80, menu, "lang:kk", "en")
    (r,) = await h.fake.replies(80, 1, since=n + 1)
    assert r["text"].startswith(t("kk", "language_set"))
    h.fake.send_text(80, "/help", "en")
    (r,) = await h.fake.replies(80, 1, since=n + 2)
    assert r["text"].startswith(t("kk", "help")[:40])
    # The chat's own command menu follows /language, not the Telegram app's language.
    import json

    scoped = [c[1] for c in h.fake.calls if c[0] == "setMyCommands" and c[1].get("scope")]
    assert len(scoped) == 1
    scope, commands = (json.loads(v) if isinstance(v, str) else v for v in (scoped[0]["scope"], scoped[0]["commands"]))
    assert scope == {"type": "chat", "chat_id": 80}
    assert commands[0] == {"command": "start", "description": t("kk", "cmd.start")}


async def test_forged_follow_up_buttons_are_refused_cheaply(bot_factory):
    """A button is signed for its user and result: a forged mask, a lowered risk or another
    user's submission id does nothing (and costs nothing: no ``1 << 4000000000``)."""
    import time

    h = await bot_factory()
    n = await start_user(h, 85, "en", "yes")
    _, data = accepted_photo(h)
    h.fake.send_photo(85, data, "en")
    (answer,) = await h.fake.replies(85, 1, since=n)
    done = next(b[1] for b in buttons(answer) if ":d:" in b[1])
    remind = next(b[1] for b in buttons(answer) if b[1].startswith("rm:"))
    _, sid, risk, mask, action, tag = done.split(":")
    lower = {"h": "m", "m": "l", "l": "m"}[risk]
    _, _, _, mal, rtag = remind.split(":")
    forged = [
        "fu:0:l:0:4000000000",
        f"fu:{sid}:{risk}:0:4000000000:{tag}",
        f"fu:{sid}:{risk}:99999999999999:d:{tag}",
        f"fu:{sid}:{lower}:0:d:{tag}",  # a lower risk level
        f"fu:{int(sid) + 1}:{risk}:0:d:{tag}",  # another submission
        f"fu:{sid}:{risk}:0:d:{'0' * 8}",
        "fu:::::",
        "fu:" + "9" * 60,
        f"rm:{sid}:{lower}:{mal}:{rtag}",  # a reminder for a lower level than the result
        f"rt:{sid}:{risk}:0:3:{rtag}",  # … or a lower malignancy
        f"rt:{sid}:{risk}:{mal}:99:{rtag}",  # an interval nobody offered
        f"sp:1:{sid}:{risk}:{mal}:{rtag}",  # "this is spot 1" with another button's tag
        "rm:" + "9" * 60,
    ]
    edits = len(h.fake.edits)
    t0 = time.perf_counter()
    for data_ in forged:
        h.fake.press(85, answer, data_, "en")
    h.fake.press(86, answer, done, "en")  # a valid button, pressed by someone else
    await h.fake.quiet(85, n + 1, wait=1.0)
    await h.fake.quiet(86, 0, wait=0.1)
    assert time.perf_counter() - t0 < 3.0
    assert len(h.fake.edits) == edits  # no keyboard was touched
    h.fake.press(85, answer, done, "en")  # the real one still works
    (advice,) = await h.fake.replies(85, 1, since=n + 1)
    assert t("en", "disclaimer") not in advice["text"] and "doctor" in advice["text"]


async def test_storage_failure_still_answers(bot_factory, caplog):
    h = await bot_factory()
    n = await start_user(h, 90, "ru", "yes")

    async def broken(*a, **kw):
        raise RuntimeError("database is down")

    h.storage.add_submission = broken
    _, data = accepted_photo(h)
    h.fake.send_photo(90, data, "ru")
    (answer,) = await h.fake.replies(90, 1, since=n)
    assert t("ru", "disclaimer") in answer["text"]
    assert "could not store a submission" in caplog.text


async def test_a_crash_gets_a_polite_localized_answer(bot_factory):
    h = await bot_factory()
    n = await start_user(h, 95, "kk", "no")

    async def explode(*a, **kw):
        raise RuntimeError("boom")

    real = h.app.bot_data.pool
    h.app.bot_data.pool = type("Broken", (), {"screen": explode})()
    h.fake.send_photo(95, jpeg_bytes(skin_with_spot()), "kk")
    (r,) = await h.fake.replies(95, 1, since=n)
    assert r["text"] == t("kk", "error") and "boom" not in r["text"]
    h.app.bot_data.pool = real


async def test_a_photo_without_start_is_answered_then_consent_is_asked_once(bot_factory):
    h = await bot_factory()
    data = jpeg_bytes((skin_with_spot() * 0.1).astype(np.uint8))
    h.fake.send_photo(99, data, "kk")
    answer, notice = await h.fake.replies(99, 2)
    assert t("kk", "reason.too_dark") in answer["text"]
    assert [b[1] for b in buttons(notice)] == ["consent:yes", "consent:no"]
    h.fake.send_photo(99, data, "kk")
    (again,) = await h.fake.replies(99, 1, since=2)
    assert t("kk", "reason.too_dark") in again["text"]
    await h.fake.quiet(99, 3)
    async with h.storage.sessions() as s:
        assert await s.scalar(select(func.count(Submission.id))) == 0


def test_rate_limiter_forgets_idle_users():
    from bot.infra.ratelimit import RateLimiter

    limiter = RateLimiter(limit=2, window_s=0.0)
    for uid in range(10_050):
        assert limiter.check_now(uid) == (True, False)
    assert len(limiter.hits) < 10_050
    limiter = RateLimiter(limit=1, window_s=60)
    assert limiter.check_now(1) == (True, False) and limiter.check_now(1) == (False, True) and limiter.check_now(1) == (False, False)


async def test_whoami_tells_users_their_own_id_only(bot_factory):
    h = await bot_factory()
    h.fake.send_text(4711, "/whoami", "ru")
    (r,) = await h.fake.replies(4711, 1)
    assert r["text"] == t("ru", "whoami", id=4711)
    menus = [c[1] for c in h.fake.calls if c[0] == "setMyCommands"]
    assert all("whoami" not in str(m["commands"]) for m in menus)  # not advertised
