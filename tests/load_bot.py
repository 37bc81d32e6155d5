"""``python -m tests.load_bot`` — load benchmark of the real bot through the fake Bot API server.

(a) paced: 50 users send 4 photos each at 20 photos/s — every photo answered, p95 ≤ 1 s;
(b) burst: the same 200 photos at once — all answered at ≥ 30 photos/s;
(c) fairness: one account sends 8 of the heaviest hostile files (``inference.hostile``) as
    documents while the other users send photos at 10/s — their p95 must stay under 2 s.
Prints throughput, p50/p95 time to answer and the peak RSS of the bot process, which runs as
``python -m bot`` (settings from the environment: SCREENING_WORKERS, CONCURRENT_UPDATES, …).  Real PAD-UFES-20 photos at 1280x960, as Telegram compresses them.
Not a test: numbers go to the README.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import DATA, TOKEN
from tests.fake_telegram import FakeTelegram


def photos(n: int) -> list[bytes]:
    paths = sorted((DATA / "pad_ufes20" / "images").glob("*.jpg"))[:n]
    if not paths:
        sys.exit(f"no photos in {DATA}/pad_ufes20 (set SHARED_DIR)")
    out = []
    for p in paths:
        buf = io.BytesIO()
        Image.open(p).convert("RGB").resize((1280, 960), Image.BICUBIC).save(buf, "JPEG", quality=87)
        out.append(buf.getvalue())
    return out


def _peak_rss_mb(pid: int) -> float:
    """VmHWM: the peak resident set of the bot process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run(users: int, per_user: int, rate: float, consent_share: float = 0.5) -> None:
    """The bot runs as ``python -m bot`` in its own process, exactly as deployed, against the
    fake Bot API server in this process; this process plays the 50 users."""
    fake = FakeTelegram()
    await fake.start()
    tmp = Path(tempfile.mkdtemp(prefix="loadbot-"))
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE_URL": fake.base_url,
        "TELEGRAM_FILE_BASE_URL": fake.base_file_url,
        "DATA_DIR": str(tmp / "data"),
        "PSEUDONYM_SECRET": "load-test",
        "RATE_LIMIT_PHOTOS": "100",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("DATABASE_URL", None)
    bot = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", env=env, cwd=tmp)
    try:
        deadline = time.monotonic() + 120
        while not any(c[0] == "getUpdates" for c in fake.calls):
            if bot.returncode is not None or time.monotonic() > deadline:
                raise SystemExit("the bot did not start")
            await asyncio.sleep(0.05)
        uids = list(range(1000, 1000 + users))
        for i, uid in enumerate(uids):  # a share consents, so storage is part of the load
            fake.send_text(uid, "/start", ("kk", "ru", "en")[i % 3])
        for uid in uids:
            welcome, notice = await fake.replies(uid, 2, timeout=60)
            fake.press(uid, notice, "consent:yes" if (uid - 1000) < consent_share * users else "consent:no")
        for uid in uids:
            await fake.replies(uid, 1, since=2, timeout=60)
        imgs = photos(12)
        jobs = [(uid, imgs[(uid + k) % len(imgs)]) for k in range(per_user) for uid in uids]

        async def scenario(name: str, interval: float) -> None:
            start_counts = {uid: len(fake.sent[uid]) for uid in uids}
            pushed: dict[tuple[int, int], float] = {}
            t0 = time.monotonic()
            for i, (uid, data) in enumerate(jobs):
                if interval:
                    await asyncio.sleep(max(0.0, t0 + i * interval - time.monotonic()))
                mid = fake.send_photo(uid, data)
                pushed[(uid, mid)] = time.monotonic()
            for uid in uids:
                await fake.replies(uid, per_user, since=start_counts[uid], timeout=300)
            answers = {(uid, m["reply_to"]): m["at"] for uid in uids for m in fake.sent[uid][start_counts[uid]:]}
            lat = np.array([answers[k] - t for k, t in pushed.items()]) * 1000
            span = max(answers.values()) - t0
            print(
                f"{name:7s} {len(jobs)} photos answered {len(answers)}/{len(jobs)} in {span:5.2f} s"
                f" → {len(jobs) / span:5.1f} photos/s; time to answer p50 {np.percentile(lat, 50):6.0f} ms"
                f"  p95 {np.percentile(lat, 95):6.0f} ms  max {lat.max():6.0f} ms",
                flush=True,
            )

        await scenario("paced", 1.0 / rate)
        await asyncio.sleep(1.0)
        await scenario("burst", 0.0)
        await asyncio.sleep(1.0)
        await fairness(fake, uids[1:], uids[0], imgs)
        stored = len(list((tmp / "data" / "photos").rglob("*.jpg")))
        print(f"stored photo files ({consent_share:.0%} of users consented): {stored}")
        print(f"peak RSS of the bot process: {_peak_rss_mb(bot.pid):.0f} MB   (target ≤ 250)")
    finally:
        if bot.returncode is None:
            bot.send_signal(signal.SIGINT)  # graceful: in-flight work finishes
            try:
                await asyncio.wait_for(bot.wait(), 30)
            except TimeoutError:
                bot.kill()
        print(f"bot exited with code {bot.returncode} after SIGINT")
        await fake.stop()


async def fairness(fake: FakeTelegram, others: list[int], attacker: int, imgs: list[bytes]) -> None:
    from inference.hostile import corpus

    heavy = sorted(corpus().items(), key=lambda kv: -len(kv[1]))
    heavy = [kv for kv in heavy if "declaring" not in kv[0] and len(kv[1]) < 20 * 2**20][:8]
    start = {uid: len(fake.sent[uid]) for uid in [*others, attacker]}
    for name, blob in heavy:
        fake.send_document(attacker, blob, name.replace(" ", "_") + ".png", "image/png")
    pushed = {}
    t0 = time.monotonic()
    for i, uid in enumerate(others * 2):
        await asyncio.sleep(max(0.0, t0 + i / 10.0 - time.monotonic()))
        pushed[(uid, fake.send_photo(uid, imgs[i % len(imgs)]))] = time.monotonic()
    for uid in others:
        await fake.replies(uid, 2, since=start[uid], timeout=300)
    await fake.replies(attacker, len(heavy), since=start[attacker], timeout=300)
    answers = {(uid, m["reply_to"]): m["at"] for uid in others for m in fake.sent[uid][start[uid]:]}
    lat = np.array([answers[k] - t for k, t in pushed.items()]) * 1000
    hostile_done = max(m["at"] for m in fake.sent[attacker][start[attacker]:]) - t0
    print(f"fairness: one user sends {len(heavy)} hostile files (all answered after {hostile_done:4.1f} s) while {len(others)} users send"
          f" {len(pushed)} photos at 10/s: their p50 {np.percentile(lat, 50):5.0f} ms  p95 {np.percentile(lat, 95):5.0f} ms  max {lat.max():5.0f} ms  (target p95 < 2000)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.load_bot", description=__doc__)
    p.add_argument("--users", type=int, default=50)
    p.add_argument("--per-user", type=int, default=4)
    p.add_argument("--rate", type=float, default=20.0, help="photos per second in the paced scenario")
    p.add_argument("--consent-share", type=float, default=0.5, help="share of users who consent (their photos are stored)")
    args = p.parse_args(argv)
    asyncio.run(run(args.users, args.per_user, args.rate, args.consent_share))
    return 0


if __name__ == "__main__":
    sys.exit(main())
