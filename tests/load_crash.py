"""``python -m tests.load_crash [--kills 10] [--burst 42]`` — how often a photo's result is sent
twice across ``kill -9`` during bursts (at-least-once: never zero, rarely twice).

The bot runs as ``python -m bot`` against the fake Bot API; each round sends a burst of photos
from four users, SIGKILLs the bot once the first answers are out, and restarts it. At the end
every photo must have been answered; the script prints how many got their result more than once.
Not a test (the count depends on timing): numbers go to the closing note and docs/bot.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections import Counter
from pathlib import Path

from tests.bot_process import BotProcess, bot_env
from tests.fake_telegram import FakeTelegram
from tests.test_crash import USERS, answered, photos, start_users, wait_until


async def run(kills: int, burst: int) -> tuple[int, int, int]:
    fake = FakeTelegram()
    await fake.start()
    pics = photos()
    with tempfile.TemporaryDirectory() as tmp:
        env = bot_env(fake, Path(tmp) / "data")
        log = Path(tmp) / "bot.log"
        bot = await BotProcess(env, log).start()
        try:
            await start_users(fake)
            sent: list[int] = []
            for kill in range(kills):
                before = len(answered(fake))
                sent += [fake.send_photo(USERS[i % len(USERS)], pics[i % len(pics)], "ru") for i in range(burst)]
                await wait_until(lambda: len(answered(fake)) >= before + 3 + burst // 10, 60, "the first answers of the burst")
                await bot.kill()
                bot = await BotProcess(env, log).start()
            await wait_until(lambda: set(sent) <= answered(fake), 120, "every photo answered")
            await asyncio.sleep(1.0)
            replies = Counter(m["reply_to"] for msgs in fake.sent.values() for m in msgs if m.get("reply_to") in set(sent))
            return len(sent), sum(1 for n in replies.values() if n > 1), kills
        finally:
            if bot.proc.returncode is None:
                await bot.stop()
            await fake.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.load_crash", description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--burst", type=int, default=42)
    args = p.parse_args(argv)
    photos_sent, twice, kills = asyncio.run(run(args.kills, args.burst))
    print(f"{kills} kills, {photos_sent} photos: every one answered; {twice} answered twice ({twice / photos_sent:.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
