"""``python -m tests.load_reminders [--due 10000]`` — a reminder backlog after an outage.

The bot (``python -m bot``, default settings: at most 10 reminders/s, a pass every 30 s) starts
with ``--due`` reminders already due, as after a week down. Meanwhile 50 users send 4 photos
each at 10 photos/s. Prints the time to drain the backlog, the photos' p50/p95 time to answer
during the drain and again with no backlog, and the bot's peak RSS. Not a test: numbers go to
the README ("Benchmarks").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tests.conftest import TOKEN
from tests.fake_telegram import FakeTelegram
from tests.load_bot import _peak_rss_mb, photos
from tests.test_spots import due_reminders, sends


async def photo_load(fake: FakeTelegram, uids: list[int], imgs: list[bytes], per_user: int, rate: float) -> np.ndarray:
    start = {uid: len(fake.sent[uid]) for uid in uids}
    pushed = {}
    t0 = time.monotonic()
    for i, (uid, k) in enumerate((uid, k) for k in range(per_user) for uid in uids):
        await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
        pushed[(uid, fake.send_photo(uid, imgs[(uid + k) % len(imgs)]))] = time.monotonic()
    for uid in uids:
        await fake.replies(uid, per_user, since=start[uid], timeout=600)
    answers = {(uid, m["reply_to"]): m["at"] for uid in uids for m in fake.sent[uid][start[uid] :] if m.get("reply_to")}
    return np.array([answers[k] - t for k, t in pushed.items()]) * 1000


async def run(due: int, rate: float) -> None:
    fake = FakeTelegram()
    await fake.start()
    tmp = Path(tempfile.mkdtemp(prefix="loadrem-"))
    data = tmp / "data"
    data.mkdir()
    spots = await due_reminders(f"sqlite+aiosqlite:///{data / 'bot.sqlite3'}", data / "photos", due, b"load-test", first_chat=10_000_000)
    await spots.storage.close()
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE_URL": fake.base_url,
        "TELEGRAM_FILE_BASE_URL": fake.base_file_url,
        "DATA_DIR": str(data),
        "PSEUDONYM_SECRET": "load-test",
        "RATE_LIMIT_PHOTOS": "100",
        "LOG_LEVEL": "WARNING",
        "HEALTH_PORT": "0",
    }
    env.pop("DATABASE_URL", None)
    t_start = time.monotonic()
    bot = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", env=env, cwd=tmp)
    try:
        while not any(c[0] == "getUpdates" for c in fake.calls):
            await asyncio.sleep(0.05)
        uids = list(range(1000, 1050))
        for uid in uids:
            fake.send_text(uid, "/start", "ru")
        for uid in uids:
            await fake.replies(uid, 2, timeout=120)
        imgs = photos(12)
        while sum(sends(fake).values()) < min(50, due):  # the drain has begun
            await asyncio.sleep(0.1)
        during = await photo_load(fake, uids, imgs, 4, rate)
        sent_then = sum(sends(fake).values())
        while len(sends(fake)) < due:
            await asyncio.sleep(0.5)
        drained = time.monotonic() - t_start
        total = sum(sends(fake).values())
        after = await photo_load(fake, uids, imgs, 4, rate)
        print(f"backlog: {due} reminders due at start-up, all delivered {drained:6.1f} s after start ({due / drained:4.1f}/s; sent twice: {total - due})")
        print(f"photos at {rate:.0f}/s during the drain ({sent_then} reminders out by then): p50 {np.percentile(during, 50):5.0f} ms  p95 {np.percentile(during, 95):5.0f} ms")
        print(f"photos at {rate:.0f}/s with no backlog:                       p50 {np.percentile(after, 50):5.0f} ms  p95 {np.percentile(after, 95):5.0f} ms")
        print(f"peak RSS of the bot process: {_peak_rss_mb(bot.pid):.0f} MB")
    finally:
        if bot.returncode is None:
            bot.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(bot.wait(), 60)
            except TimeoutError:
                bot.kill()
        await fake.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.load_reminders", description=__doc__)
    p.add_argument("--due", type=int, default=10_000)
    p.add_argument("--rate", type=float, default=10.0, help="photos per second while the backlog drains")
    args = p.parse_args(argv)
    asyncio.run(run(args.due, args.rate))
    return 0


if __name__ == "__main__":
    sys.exit(main())
