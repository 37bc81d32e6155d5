"""``python -m tests.load_bot`` — load benchmark of the real bot through the fake Bot API server.

(a) paced: 50 users send 4 photos each at 20 photos/s — every photo answered, p95 ≤ 1 s;
(b) burst: the same 200 photos at once — all answered at ≥ 30 photos/s.
Prints throughput, p50/p95 time to answer and the peak RSS of the process (the bot plus the
fake server, which is small).  Real PAD-UFES-20 photos at 1280x960, as Telegram compresses them.
Not a test: numbers go to the README.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import DATA, make_settings
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


async def run(users: int, per_user: int, rate: float) -> None:
    from bot.app import build_application
    from bot.migrate import upgrade

    fake = FakeTelegram()
    await fake.start()
    tmp = Path(tempfile.mkdtemp(prefix="loadbot-"))
    settings = make_settings(tmp, fake, rate_limit_photos=100)
    settings.data_dir.mkdir(parents=True)
    await asyncio.to_thread(upgrade, settings.db_url)
    app = build_application(settings)
    await app.initialize()
    await app.start()
    await app.updater.start_polling(poll_interval=0.0, timeout=1)
    try:
        uids = list(range(1000, 1000 + users))
        for i, uid in enumerate(uids):  # half consent, so storage is part of the load
            fake.send_text(uid, "/start", ("kk", "ru", "en")[i % 3])
        for uid in uids:
            welcome, notice = await fake.replies(uid, 2, timeout=60)
            fake.press(uid, notice, "consent:yes" if uid % 2 else "consent:no")
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
        stored = await app.bot_data["storage"].count_submissions()
        print(f"logged submissions (consenting half): {stored}")
        print(f"peak RSS (bot + fake server, one process): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
        s = settings
        print(f"settings: screening_workers={s.screening_workers} concurrent_updates={s.concurrent_updates} connection_pool_size={s.connection_pool_size}")
    finally:
        await app.updater.stop()
        await app.stop()
        await app.post_shutdown(app)
        await app.shutdown()
        await fake.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.load_bot", description=__doc__)
    p.add_argument("--users", type=int, default=50)
    p.add_argument("--per-user", type=int, default=4)
    p.add_argument("--rate", type=float, default=20.0, help="photos per second in the paced scenario")
    args = p.parse_args(argv)
    asyncio.run(run(args.users, args.per_user, args.rate))
    return 0


if __name__ == "__main__":
    sys.exit(main())
