"""Start-up failures are one clear line and exit code 2; logs never carry the token or raw ids;
the data folder is private (#10). ``python -m bot`` runs as a real process."""

import asyncio
import json
import stat
import subprocess

import pytest

from .bot_process import BotProcess, bot_env
from .conftest import TOKEN, jpeg_bytes, needs_shared, skin_with_spot
from .fake_telegram import FakeTelegram
from .proxy import NO_POSTGRES, POSTGRES


def one_line(output: str) -> str:
    # (LiteRT's own "INFO: Created TensorFlow Lite XNNPACK delegate" lines come from native code)
    lines = [x for x in output.strip().splitlines() if x.strip() and " WARNING " not in x and " INFO " not in x and not x.startswith("INFO: ")]
    assert len(lines) == 1, output
    assert "Traceback" not in output and TOKEN not in output
    return lines[0]


async def run_bot(env, tmp_path, timeout=60.0) -> tuple[int, str]:
    bot = await BotProcess(env, tmp_path / "bot.log").start()
    rc = await bot.run_to_exit(timeout)
    return rc, bot.output()


async def test_a_rejected_token_is_one_line_and_exit_2(tmp_path):
    fake = FakeTelegram()
    fake.valid_token = "999:another-token"
    await fake.start()
    try:
        rc, out = await run_bot(bot_env(fake, tmp_path / "data"), tmp_path)
    finally:
        await fake.stop()
    assert rc == 2
    assert "Telegram Bot API" in one_line(out)


async def test_a_webhook_without_a_secret_token_is_refused(tmp_path):
    rc, out = await run_bot(bot_env(None, tmp_path / "data", WEBHOOK_URL="https://bot.example.org/tg", WEBHOOK_SECRET_TOKEN=""), tmp_path)
    assert rc == 2
    assert "WEBHOOK_SECRET_TOKEN" in one_line(out)


async def test_an_unreachable_bot_api_is_retried_then_one_line(tmp_path):
    rc, out = await run_bot(bot_env(None, tmp_path / "data", STARTUP_RETRIES="3"), tmp_path)
    assert rc == 2
    assert "after 3 tries" in one_line(out)
    assert out.count("retrying in") == 2  # backoff, bounded


async def test_a_host_that_does_not_exist_fails_at_once(tmp_path):
    """Waiting cannot fix a wrong host name: no retries, one line that says what to check."""
    env = bot_env(None, tmp_path / "data", TELEGRAM_API_BASE_URL="http://no-such-host.invalid/bot", STARTUP_RETRIES="5", STARTUP_RETRY_DELAY_S="5")
    rc, out = await run_bot(env, tmp_path, timeout=30)
    assert rc == 2
    line = one_line(out)
    assert line.startswith("Telegram Bot API: this host name does not exist") and "retrying" not in out


@pytest.mark.skipif(not POSTGRES, reason=NO_POSTGRES)
@pytest.mark.parametrize("problem", ["database", "user"])
async def test_a_database_or_user_that_does_not_exist_fails_at_once(tmp_path, problem):
    base = POSTGRES.rsplit("/", 1)[0]
    url = base + "/kzskin_no_such_database" if problem == "database" else base.replace("postgres@", "kzskin_no_such_user@") + "/test"
    rc, out = await run_bot(bot_env(None, tmp_path / "data", DATABASE_URL=url, STARTUP_RETRIES="5", STARTUP_RETRY_DELAY_S="5"), tmp_path, timeout=30)
    assert rc == 2
    line = one_line(out)
    assert ("the database does not exist" if problem == "database" else "the user was refused") in line and "retrying" not in out


async def test_one_try_reads_one_try(tmp_path):
    rc, out = await run_bot(bot_env(None, tmp_path / "data", STARTUP_RETRIES="1"), tmp_path)
    assert rc == 2 and "after 1 try:" in one_line(out)


async def test_an_unreachable_database_is_one_line_with_the_password_hidden(tmp_path):
    env = bot_env(None, tmp_path / "data", DATABASE_URL="postgresql://bot:s3cret-pass@127.0.0.1:9/nothing")
    rc, out = await run_bot(env, tmp_path)
    assert rc == 2
    line = one_line(out)
    assert line.startswith("database postgresql+asyncpg://bot:***@127.0.0.1:9/nothing") and "s3cret-pass" not in out


async def test_a_read_only_data_folder_is_one_line(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(folder)], capture_output=True, check=False).returncode:
        pytest.skip("cannot mount a read-only tmpfs here (not root); as root, chmod does not make a folder read-only")
    try:
        rc, out = await run_bot(bot_env(None, folder), tmp_path)
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
    assert rc == 2
    assert "not writable" in one_line(out)


@needs_shared
@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_debug_log_has_no_token_no_raw_ids_and_the_folder_is_private(tmp_path, fmt):
    fake = FakeTelegram()
    await fake.start()
    uid = 987654321
    bot = await BotProcess(bot_env(fake, tmp_path / "data", LOG_LEVEL="DEBUG", LOG_FORMAT=fmt), tmp_path / "bot.log").start()
    try:
        fake.send_text(uid, "/start", "ru")
        fake.send_photo(uid, jpeg_bytes(skin_with_spot()), "ru")
        for _ in range(600):
            if len(fake.sent[uid]) >= 3:
                break
            await asyncio.sleep(0.1)
        assert len(fake.sent[uid]) >= 3
        assert await bot.stop() == 0
    finally:
        if bot.proc.returncode is None:
            await bot.kill()
        await fake.stop()
    out = bot.output()
    if fmt == "text":
        assert " DEBUG " in out  # it really ran at DEBUG
    else:  # one object per line (native libraries' own stderr lines aside), with the update id
        records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert len(records) >= 5 and not [line for line in out.splitlines() if " DEBUG " in line or " INFO bot" in line]
        assert {"DEBUG", "INFO"} <= {r["level"] for r in records}
        assert any(r.get("update_id") for r in records if r["logger"].startswith("bot")), "photo log lines carry the update id"
    assert TOKEN not in out and TOKEN.split(":")[1] not in out
    assert str(uid) not in out and f"User{uid}" not in out
    data = tmp_path / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("bot.sqlite3", "pseudonym.secret"):
        path = data / name
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    assert (data / "bot.sqlite3").exists()


async def fake_and_a_taken_port():
    """A running fake Bot API and a listening socket holding a free port."""
    import socket

    fake = FakeTelegram()
    await fake.start()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    return fake, taken


async def test_a_health_port_in_use_is_one_line(tmp_path):
    fake, taken = await fake_and_a_taken_port()
    try:
        rc, out = await run_bot(bot_env(fake, tmp_path / "data", HEALTH_PORT=str(taken.getsockname()[1]), BIND_WAIT_S="0.5"), tmp_path)
    finally:
        taken.close()
        await fake.stop()
    assert rc == 2
    assert "HEALTH_PORT" in one_line(out)


async def test_a_health_port_held_for_a_moment_is_retried(tmp_path):
    """After kill -9 the port can be held briefly: the restarted bot waits for it (bounded)."""
    import urllib.request

    fake, taken = await fake_and_a_taken_port()
    port = taken.getsockname()[1]
    bot = await BotProcess(bot_env(fake, tmp_path / "data", HEALTH_PORT=str(port), BIND_WAIT_S="30"), tmp_path / "bot.log").start()
    try:
        for _ in range(600):  # the bot found the port taken and keeps trying
            if "is in use; trying again" in bot.output() or bot.proc.returncode is not None:
                break
            await asyncio.sleep(0.1)
        assert bot.proc.returncode is None and "is in use; trying again" in bot.output(), bot.output()
        await asyncio.sleep(0.5)
        taken.close()  # released: the bot binds it on its next try
        for _ in range(200):
            try:
                body = await asyncio.to_thread(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read())
                break
            except OSError:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("the health server never came up")
        assert body
    finally:
        taken.close()
        await bot.stop()
        await fake.stop()
