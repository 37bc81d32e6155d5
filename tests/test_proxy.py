"""The production path (#12): webhook mode behind nginx with TLS, on PostgreSQL, and two replicas.

The fake Bot API delivers updates as Telegram does in webhook mode: POSTs with the secret header,
up to ``max_connections`` at a time, retried until a 2xx. They go through Debian's nginx running
``deploy/nginx/kz-skin-bot.conf`` with a self-signed certificate, to ``python -m bot`` processes.
"""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest
from sqlalchemy import select

from bot.infra.storage import CONSENT_YES, Storage, Submission

from .bot_process import BotProcess, bot_env
from .conftest import needs_shared
from .fake_telegram import FakeTelegram
from .proxy import NGINX, NO_POSTGRES, POSTGRES, Nginx, free_port, fresh_postgres
from .test_crash import answered, photos, wait_until

pytestmark = [
    needs_shared,
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed here (.ci/run installs Debian's nginx-light with apt-get)"),
    pytest.mark.skipif(not POSTGRES, reason=NO_POSTGRES),
]

SECRET = "hook-secret-7"
PSEUDONYM_SECRET = "crash-test-secret"  # what bot_env gives the bot


def replica_env(fake, tmp_path, db_url: str, nginx: Nginx, port: int, **extra: str) -> dict[str, str]:
    return bot_env(
        fake,
        tmp_path / "data",  # shared by the replicas: the photo folder and nothing else (the database is PostgreSQL)
        DATABASE_URL=db_url,
        WEBHOOK_URL=nginx.url,
        WEBHOOK_LISTEN="127.0.0.1",
        WEBHOOK_PORT=str(port),
        WEBHOOK_SECRET_TOKEN=SECRET,
        INBOX_LEASE_S="2",
        HEALTH_PORT="0",
        **extra,
    )


async def listening(port: int, bot: BotProcess, timeout: float = 90) -> None:
    async def up() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return True
        except OSError:
            return False

    for _ in range(int(timeout * 10)):
        if await up():
            return
        assert bot.proc.returncode is None, bot.output()[-3000:]
        await asyncio.sleep(0.1)
    raise AssertionError("the bot did not listen: " + bot.output()[-3000:])


async def submissions(db_url: str) -> list[tuple[str, int]]:
    s = Storage(db_url, __import__("pathlib").Path("/nonexistent"), PSEUDONYM_SECRET.encode())
    try:
        async with s.sessions() as session:
            return [(p, u) for p, u in await session.execute(select(Submission.user_pseudonym, Submission.update_id))]
    finally:
        await s.close()


async def consent(db_url: str, users: list[int]) -> Storage:
    from bot.infra.migrate import upgrade

    await asyncio.to_thread(upgrade, db_url)
    s = Storage(db_url, __import__("pathlib").Path("/nonexistent"), PSEUDONYM_SECRET.encode())
    for uid in users:
        await s.upsert_user(uid, language="en", consent=CONSENT_YES)
    return s


async def test_webhook_through_nginx_with_tls_on_postgres(tmp_path):
    """A command, a button, a photo; a wrong secret is refused; the bot is killed while updates
    keep coming, and after its restart every photo is answered and logged once."""
    db_url, drop = await fresh_postgres()
    fake = FakeTelegram()
    await fake.start()
    port = free_port()
    nginx = await Nginx(tmp_path / "nginx", [port]).start()
    fake.webhook_verify = nginx.trust()
    env = replica_env(fake, tmp_path, db_url, nginx, port)
    pics = photos()
    bot = await BotProcess(env, tmp_path / "bot.log").start()
    try:
        await listening(port, bot)
        await wait_until(lambda: fake.webhook is not None, 30, "setWebhook")
        assert fake.webhook["url"] == nginx.url and fake.webhook["secret"] == SECRET

        fake.send_text(9001, "/start", "kk")  # a command
        welcome, notice = await fake.replies(9001, 2)
        fake.press(9001, notice, "consent:yes", "kk")  # a button
        (saved,) = await fake.replies(9001, 1, since=2)
        photo = fake.send_photo(9001, pics[0], "kk")  # a photo
        await wait_until(lambda: photo in answered(fake), 60, "the first photo's answer")

        async with httpx.AsyncClient(verify=nginx.trust(), timeout=10) as client:
            update = {"update_id": 10**6, "message": {"message_id": 1, "date": 0, "chat": {"id": 9001, "type": "private"}, "text": "hi"}}
            wrong = await client.post(nginx.url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "guess"})
            missing = await client.post(nginx.url, json=update)
            elsewhere = await client.post(nginx.url.replace("/tg", "/"), json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
        assert (wrong.status_code, missing.status_code, elsewhere.status_code) == (403, 403, 404)
        assert "Traceback" not in wrong.text

        # Photos keep coming while the bot is killed and restarted.
        sent = [fake.send_photo(9001 + i % 3, pics[i % len(pics)], "ru") for i in range(8)]
        await wait_until(lambda: len(answered(fake) & set(sent)) >= 2, 60, "the first answers of the burst")
        await bot.kill()
        sent += [fake.send_photo(9001 + i % 3, pics[i % len(pics)], "ru") for i in range(8)]
        await asyncio.sleep(1.0)  # Telegram retries against a proxy with no bot behind it
        bot = await BotProcess(env, tmp_path / "bot.log").start()
        await wait_until(lambda: set(sent) <= answered(fake), 120, "every photo answered after the restart")
        refused = [status for _, status in fake.posts if status != 200]
        assert refused, "some POSTs reached nginx while the bot was down (and were retried)"

        rows = await submissions(db_url)
        user_photos = 1 + sum(1 for i in range(16) if i % 3 == 0)  # 9001 consented; 9002 and 9003 did not
        assert len(rows) == user_photos, "each photo of the consenting user is logged exactly once"
        assert len({u for _, u in rows}) == len(rows)
        log = nginx.access_log()
        assert '"POST /tg HTTP/1.1" 200' in log and '"POST /tg HTTP/1.1" 403' in log
        assert await bot.stop() == 0
        assert "Traceback" not in bot.output()
    finally:
        if bot.proc.returncode is None:
            await bot.kill()
        await nginx.stop()
        await fake.stop()
        await drop()


async def test_two_replicas_one_killed_every_photo_answered_and_logged_once(tmp_path):
    """200 photos from 50 users through nginx's upstream of two replicas sharing PostgreSQL and
    Redis; one replica gets SIGKILL mid-run. Every photo is answered, no submission is duplicated,
    and PostgreSQL holds exactly the consenting users' photos. Before that, a user's consent
    given through one replica and withdrawn through the other is respected by both."""
    db_url, drop = await fresh_postgres()
    users = list(range(9100, 9150))
    consenting = set(users[::2])
    store = await consent(db_url, sorted(consenting))
    await store.close()
    fake = FakeTelegram()
    await fake.start()
    ports = [free_port(), free_port()]
    nginx = await Nginx(tmp_path / "nginx", ports).start()
    fake.webhook_verify = nginx.trust()
    direct: dict[int, str] = {}  # update_id → one replica's URL, bypassing nginx
    fake.route = lambda u: direct.get(u["update_id"])
    replicas = [
        BotProcess(replica_env(fake, tmp_path, db_url, nginx, p, REDIS_URL="redis://127.0.0.1:6379/0"), tmp_path / f"replica{i}.log")
        for i, p in enumerate(ports)
    ]
    pics = photos()
    try:
        for r in replicas:
            await r.start()
        for r, p in zip(replicas, ports, strict=True):
            await listening(p, r)
        a, b = (f"http://127.0.0.1:{p}/tg" for p in ports)

        # State read from the shared database, not a replica's memory.
        fake.send_text(9199, "/start", "en")
        direct[fake.update_id] = a
        welcome, notice = await fake.replies(9199, 2)
        fake.press(9199, notice, "consent:yes")
        direct[fake.update_id] = a
        await fake.replies(9199, 1, since=2)
        first = fake.send_photo(9199, pics[0])
        direct[fake.update_id] = b
        await wait_until(lambda: first in answered(fake), 60, "the photo sent to the other replica")
        seen = len(fake.sent[9199])
        fake.press(9199, notice, "lang:ru")
        direct[fake.update_id] = b
        fake.press(9199, notice, "consent:no")
        direct[fake.update_id] = b
        await fake.replies(9199, 2, since=seen)  # "язык…", "больше ничего не будет сохраняться"
        second = fake.send_photo(9199, pics[1])
        direct[fake.update_id] = a  # replica A saw English and consent earlier: it must read the new state now
        await wait_until(lambda: second in answered(fake), 60, "the photo after the changes")
        reply = next(m["text"] for m in fake.sent[9199] if m.get("reply_to") == second)
        assert re.search("[а-яА-ЯёЁ]{4}", reply), f"answered in the language chosen through the other replica: {reply[:80]}"
        mine = Storage(db_url, tmp_path / "none", PSEUDONYM_SECRET.encode()).pseudonym(9199)
        assert [p for p, _ in await submissions(db_url)].count(mine) == 1, "kept with consent (replica B), not after it was withdrawn (replica A)"

        # The flood: through nginx, one replica killed half-way.
        sent: dict[int, int] = {}  # photo message id → user
        for k in range(2):
            for uid in users:
                sent[fake.send_photo(uid, pics[(uid + k) % len(pics)])] = uid
        await wait_until(lambda: len(answered(fake) & set(sent)) >= 40, 120, "40 photos answered")
        await replicas[0].kill()
        for k in range(2, 4):
            for uid in users:
                sent[fake.send_photo(uid, pics[(uid + k) % len(pics)])] = uid
        await wait_until(lambda: set(sent) <= answered(fake), 240, "every photo answered by the surviving replica")
        assert len(sent) == 200
        # "Answered" is not yet "logged": a photo the killed replica answered but did not store is
        # taken over when its lease (INBOX_LEASE_S=2) runs out and stored then, possibly after the
        # last answer (seen once: 99 of 100 rows at the first look). Lost rows still fail below.
        deadline = time.monotonic() + 30
        while len(rows := [(p, u) for p, u in await submissions(db_url) if p != mine]) < 100 and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        expected = {Storage(db_url, tmp_path / "none", PSEUDONYM_SECRET.encode()).pseudonym(u) for u in consenting}
        assert len(rows) == 4 * len(consenting) == 100, "exactly the consenting users' photos"
        assert {p for p, _ in rows} == expected
        assert len({u for _, u in rows}) == len(rows), "no update logged twice"
        twice = sum(1 for mid in sent if sum(1 for m in fake.sent[sent[mid]] if m.get("reply_to") == mid) > 1)
        print(f"photos answered twice (the killed replica answered, but had not marked them done): {twice}")
        assert await replicas[1].stop() == 0
        for r in replicas:
            assert "Traceback" not in r.output()
    finally:
        for r in replicas:
            if r.proc is not None and r.proc.returncode is None:
                await r.kill()
        await nginx.stop()
        await fake.stop()
        await drop()

