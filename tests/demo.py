"""``python -m tests.demo`` — watch the real bot answer a conversation, without a Telegram token.

The bot runs as ``python -m bot`` (its own process, the shipped model, SQLite in a temporary
folder) against the fake Bot API server the tests use (``tests/fake_telegram.py``), with a
dummy token that only the fake accepts. A user says /start, answers the privacy question,
sends a photo, ticks a warning sign on the questions asked before the result, and asks for
``/spots``; every message the bot sends is
printed with its buttons. Nothing leaves the machine.

    python -m tests.demo                      # English, a PAD-UFES-20 photo from $SHARED_DIR
    python -m tests.demo --lang kk --photo mole.jpg
    python -m tests.demo --lang ru --markdown docs/transcripts/ru.md

Needs only the bot's own install (``pip install -e .``).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.fake_telegram import FakeTelegram, buttons

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456789:" + "D" * 35  # the fake's; Telegram would refuse it
USER = 4242


def default_photo() -> bytes:
    """A real phone photo of a lesion (PAD-UFES-20) if ``../shared`` is there, else a drawn spot."""
    shared = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared")) / "data" / "pad_ufes20" / "images"
    paths = sorted(shared.glob("*.jpg"))
    if paths:
        return paths[0].read_bytes()
    import numpy as np
    from PIL import Image, ImageDraw

    img = Image.fromarray(np.full((480, 640, 3), (196, 150, 128), np.uint8))
    ImageDraw.Draw(img).ellipse((270, 190, 370, 290), fill=(92, 56, 40))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def plain(text: str) -> str:
    """A message as a user reads it: HTML tags and entities gone."""
    import html

    return html.unescape(re.sub(r"<[^>]+>", "", text or ""))


class Transcript:
    exit_code: int | None = None  # the bot's, after SIGTERM (0: it stopped cleanly)
    seconds: float = 0.0  # from the bot's start to its exit

    def __init__(self, lang: str):
        self.lang, self.lines = lang, []

    def user(self, what: str) -> None:
        self.lines.append(("user", what))

    def bot(self, message: dict) -> None:
        body = plain(message.get("text") or message.get("caption") or "")
        if message.get("photo_bytes"):
            body = "[picture] " + body
        labels = [label for label, _ in buttons(message)]
        self.lines.append(("bot", body + ("\n" + " ".join(f"[{b}]" for b in labels) if labels else "")))

    def text(self) -> str:
        out = []
        for who, what in self.lines:
            prefix = "👤 " if who == "user" else "🤖 "
            out.append(prefix + what.replace("\n", "\n   "))
        return "\n\n".join(out)

    def markdown(self) -> str:
        out = [f"# A conversation with the bot ({self.lang})", "", "Rendered by `python -m tests.demo --lang " + self.lang + "` (the real bot against the fake Bot API).", ""]
        for who, what in self.lines:
            if who == "user":
                out += [f"**User:** {what}", ""]
            else:
                out += ["> " + line if line else ">" for line in what.split("\n")]
                out.append("")
        return "\n".join(out)


async def converse(lang: str, photo: bytes, consent: str = "no", timeout: float = 90.0) -> Transcript:
    fake = FakeTelegram()
    fake.valid_token = TOKEN
    await fake.start()
    script = Transcript(lang)
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_", "DATA_DIR", "LOG_", "HEALTH_"))}
        env.update(
            TELEGRAM_BOT_TOKEN=TOKEN,
            TELEGRAM_API_BASE_URL=fake.base_url,
            TELEGRAM_FILE_BASE_URL=fake.base_file_url,
            DATA_DIR=str(Path(tmp) / "data"),
            HEALTH_PORT="0",
            LOG_LEVEL="WARNING",
            OPERATOR_NAME="Demo operator",
        )
        log = open(Path(tmp) / "bot.log", "wb")
        started = time.monotonic()
        # An asyncio child: while it shuts down, this loop keeps serving the fake Bot API it talks to
        # (a blocking wait here starved its last requests, and it was SIGKILLed after 30 s).
        bot = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            n = 0

            async def said(k: int) -> list[dict]:
                nonlocal n
                got = await fake.replies(USER, k, since=n, timeout=timeout)
                n += k
                for m in got:
                    script.bot(m)
                return got

            script.user("/start")
            fake.send_text(USER, "/start", lang)
            _, notice = await said(2)
            script.user("[" + next(label for label, data in buttons(notice) if data == f"consent:{consent}") + "]")
            fake.press(USER, notice, f"consent:{consent}", lang)
            await said(1)
            script.user("[a photo of a spot]")
            fake.send_photo(USER, photo, lang)
            (screen,) = await said(1)
            questions = [(label, data) for label, data in buttons(screen) if data.startswith("qa:")]
            if questions:  # the warning-sign questions before the result: tick "it has bled", Done
                label, data = questions[2]
                done_label, done = next((lb, d) for lb, d in questions if d.split(":")[3] == "d")
                script.user(f"[{label.lstrip('☐ ')}] [{done_label}]")
                fake.press(USER, screen, done.replace(":0:d:", f":{1 << int(data.split(':')[3])}:d:"), lang)
                await said(1)
            script.user("/spots")
            fake.send_text(USER, "/spots", lang)
            await said(1)
        except AssertionError as exc:
            log.flush()
            tail = (Path(tmp) / "bot.log").read_text(errors="replace").splitlines()[-20:]
            raise SystemExit(f"the bot did not answer ({exc}); its log:\n" + "\n".join(tail)) from None
        finally:
            bot.terminate()  # SIGTERM: the bot finishes what it holds and exits
            try:
                script.exit_code = await asyncio.wait_for(bot.wait(), 30)
            except TimeoutError:
                bot.kill()
                script.exit_code = await bot.wait()
            script.seconds = time.monotonic() - started
            log.close()
            await fake.stop()
    return script


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lang", choices=("kk", "ru", "en"), default="en")
    ap.add_argument("--photo", type=Path, help="a photo of a skin spot (default: a PAD-UFES-20 photo, or a drawn spot)")
    ap.add_argument("--consent", choices=("yes", "no"), default="no")
    ap.add_argument("--markdown", type=Path, help="also write the transcript as Markdown here")
    args = ap.parse_args(argv)
    photo = args.photo.read_bytes() if args.photo else default_photo()
    script = asyncio.run(converse(args.lang, photo, args.consent))
    print(script.text())
    print(f"\n(the bot ran {script.seconds:.1f} s and exited with code {script.exit_code} after SIGTERM)", file=sys.stderr)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(script.markdown() + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
