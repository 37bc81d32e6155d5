"""``kill -9`` during bursts of photos: every photo Telegram handed over is answered (issue #10).

The bot runs as a real process (``python -m bot``) against the fake Bot API, which records what
the bot acknowledged. After each SIGKILL the bot is restarted; every acknowledged photo must get
its answer (a reply to that photo), the store must hold no orphan or ``.tmp`` file, and SQLite
must pass its integrity check.
"""

import asyncio
import sqlite3
import time

from bot.i18n import t

from .bot_process import BotProcess, bot_env
from .conftest import jpeg_bytes, needs_shared, real_images
from .fake_telegram import FakeTelegram

pytestmark = needs_shared

USERS = (501, 502, 503, 504)  # 501 and 502 consent: their photos are written to the store
BURST = 40
KILLS = 3


def photos() -> list[bytes]:
    from PIL import Image

    out = []
    for path in real_images("pad_ufes20", 8):
        img = Image.open(path).convert("RGB")
        out.append(jpeg_bytes(__import__("numpy").asarray(img)))
    return out


async def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def start_users(fake: FakeTelegram) -> None:
    """/start for every user; the first two consent (their photos are written to the store)."""
    for uid in USERS:
        fake.send_text(uid, "/start", "ru")
    await wait_until(lambda: all(len(fake.sent[u]) >= 2 for u in USERS), 60, "the welcome messages")
    for uid in USERS[:2]:
        fake.press(uid, fake.sent[uid][1], "consent:yes", "ru")
    await wait_until(lambda: all(len(fake.sent[u]) >= 3 for u in USERS[:2]), 30, "the consent answers")


def answered(fake: FakeTelegram) -> set[int]:
    """Message ids of user photos that got a reply."""
    return {m["reply_to"] for msgs in fake.sent.values() for m in msgs if m.get("reply_to")}


async def test_kill_9_during_bursts_loses_no_photo(tmp_path):
    fake = FakeTelegram()
    await fake.start()
    env = bot_env(fake, tmp_path / "data")
    log = tmp_path / "bot.log"
    pics = photos()
    bot = await BotProcess(env, log).start()
    try:
        await start_users(fake)

        sent: list[int] = []
        for kill in range(KILLS):
            before = len(answered(fake))
            sent += [fake.send_photo(USERS[i % len(USERS)], pics[i % len(pics)], "ru") for i in range(BURST)]
            await wait_until(lambda: len(answered(fake)) >= before + 3 + 4 * kill, 60, "the first answers of the burst")
            await bot.kill()
            acked = {m for m in sent if m in photo_ids_acked(fake)}
            bot = await BotProcess(env, log).start()
            await wait_until(lambda: acked <= answered(fake), 90, f"every acknowledged photo answered after kill {kill + 1}")
        await wait_until(lambda: set(sent) <= answered(fake), 90, "every photo answered")
        texts = [m["text"] for msgs in fake.sent.values() for m in msgs]
        assert any(x.startswith(t("ru", "late")) for x in texts), "a photo answered after a restart says it is late"

        # /delete after the crashes removes everything of the consenting users.
        db = tmp_path / "data" / "bot.sqlite3"
        for uid in USERS[:2]:
            n = len(fake.sent[uid])
            fake.send_text(uid, "/delete", "ru")
            await wait_until(lambda uid=uid, n=n: len(fake.sent[uid]) > n, 30, "the delete question")
            fake.press(uid, fake.sent[uid][n], "delete:yes", "ru")
            await wait_until(lambda uid=uid, n=n: len(fake.sent[uid]) > n + 1, 30, "the delete answer")
        assert await bot.stop() == 0
    finally:
        if bot.proc.returncode is None:
            await bot.kill()
        await fake.stop()
    photos_dir = tmp_path / "data" / "photos"
    assert not [p for p in photos_dir.rglob("*") if p.is_file()], "no photo or .tmp file is left after /delete"
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("SELECT count(*) FROM inbox WHERE done_at IS NULL").fetchone()[0] == 0, "everything answered"
        assert con.execute("SELECT count(*) FROM inbox WHERE payload IS NOT NULL").fetchone()[0] == 0, "answered updates keep no content"
        assert con.execute("SELECT count(*) FROM submissions").fetchone()[0] == 0
    output = log.read_text()
    assert "Traceback" not in output


def photo_ids_acked(fake: FakeTelegram) -> set[int]:
    """Photo message ids whose updates the bot acknowledged (Telegram would not resend them)."""
    return {mid for uid, mid in fake.delivered if uid <= fake.acked}


async def test_kill_9_while_results_wait_for_their_questions(tmp_path):
    """Photos whose question screens are out when the bot is killed still get their result (from
    the photo alone, saying nobody answered) after the restart, once each; a press on an old
    screen afterwards is told the result is above."""
    fake = FakeTelegram()
    await fake.start()
    env = bot_env(fake, tmp_path / "data", ANSWERS_WAIT_S="3", ANSWERS_TICK_S="0.5")
    log = tmp_path / "bot.log"
    users, pics = (511, 512, 513), photos()
    bot = await BotProcess(env, log).start()
    try:
        for uid in users:
            fake.send_text(uid, "/start", "ru")
        await wait_until(lambda: all(len(fake.sent[u]) >= 2 for u in users), 60, "the welcome messages")
        photo_of = {uid: fake.send_photo(uid, pics[i], "ru") for i, uid in enumerate(users)}

        def screens() -> dict[int, dict]:
            return {u: m for u in users for m in fake.sent[u] if m.get("reply_to") == photo_of[u] and "qa:" in str(m.get("reply_markup"))}

        await wait_until(lambda: len(screens()) == len(users), 60, "the question screens")
        await asyncio.sleep(1.0)  # the photos' inbox rows marked done: only the waiting rows hold them
        await bot.kill()
        assert not any(m["text"].startswith(t("ru", "ask.timeout")) for u in users for m in fake.sent[u])
        bot = await BotProcess(env, log).start()

        def results(uid: int) -> list[dict]:  # (a screen has no disclaimer)
            return [m for m in fake.sent[uid] if m.get("reply_to") == photo_of[uid] and t("ru", "disclaimer") in m["text"]]

        await wait_until(lambda: all(results(u) for u in users), 60, "every waiting result sent after the restart")
        assert all(results(u)[0]["text"].startswith(t("ru", "ask.timeout")) for u in users)
        screen = screens()[users[0]]
        n = len(fake.sent[users[0]])
        done = next(b["callback_data"] for row in screen["reply_markup"]["inline_keyboard"] for b in row if b["callback_data"].split(":")[3] == "d")
        fake.press(users[0], screen, done, "ru")
        await wait_until(lambda: len(fake.sent[users[0]]) > n, 30, "the answer to an old press")
        assert fake.sent[users[0]][n]["text"] == t("ru", "ask.already")
        await asyncio.sleep(1.5)  # three more passes of the overdue job: nothing is sent twice
        assert all(len(results(u)) == 1 for u in users)
    finally:
        await bot.stop()
        await fake.stop()
