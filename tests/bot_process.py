"""``python -m bot`` as a real process against the fake Bot API: for crash, start-up and log tests."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from .conftest import ROOT, TOKEN


def bot_env(fake, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_", "DATA_DIR", "LOG_"))}
    env.update(
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_BASE_URL=fake.base_url if fake else "http://127.0.0.1:9/bot",
        TELEGRAM_FILE_BASE_URL=fake.base_file_url if fake else "http://127.0.0.1:9/file/bot",
        DATA_DIR=str(data_dir),
        PSEUDONYM_SECRET="crash-test-secret",
        RATE_LIMIT_PHOTOS="10000",
        STARTUP_RETRIES="2",
        STARTUP_RETRY_DELAY_S="0.2",
        PYTHONUNBUFFERED="1",
        # No fixed port: 9090 (Prometheus's default, or a second test run) may be taken. A test
        # that needs the health server names its own free port.
        HEALTH_PORT="0",
        ANSWERS_WAIT_S="0",  # results at once (as after "Skip"); tests that need the questions set it
    )
    env.update(extra)
    return env


#: Bot processes started by the current test: a failing test shows their log tails (conftest).
STARTED: list[BotProcess] = []


class BotProcess:
    def __init__(self, env: dict[str, str], log: Path):
        self.env, self.log_path = env, log
        self.proc: asyncio.subprocess.Process | None = None
        STARTED.append(self)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def start(self) -> BotProcess:
        self.log = open(self.log_path, "ab")
        self.proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", cwd=ROOT, env=self.env, stdout=self.log, stderr=asyncio.subprocess.STDOUT)
        return self

    async def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        self.log.close()

    async def stop(self, timeout: float = 30.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(self.proc.wait(), timeout)
        self.log.close()
        return rc

    async def run_to_exit(self, timeout: float = 60.0) -> int:
        rc = await asyncio.wait_for(self.proc.wait(), timeout)
        self.log.close()
        return rc

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")
