"""Settings and start-up: a missing or malformed token is one clear line and exit code 2."""

import os
import subprocess
import sys

import pytest

from bot.config import Settings

from .conftest import ROOT, TOKEN


def run_bot(tmp_path, *args, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_URL", "DATA_DIR", "PSEUDONYM_SECRET"))}
    clean.update(env)
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, cwd=tmp_path, env=clean, timeout=120, check=False)


@pytest.mark.parametrize("token, words", [(None, "is not set"), ("12345", "looks malformed"), ("abc:def", "looks malformed")])
def test_bad_token_is_one_clear_line_and_exit_2(tmp_path, token, words):
    env = {"PYTHONPATH": str(ROOT)}
    if token is not None:
        env["TELEGRAM_BOT_TOKEN"] = token
    proc = run_bot(tmp_path, **env)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "TELEGRAM_BOT_TOKEN" in lines[0] and words in lines[0], proc.stderr
    assert not (tmp_path / "data").exists()  # nothing was created before the check


def test_migrate_command_creates_the_sqlite_database(tmp_path):
    proc = run_bot(tmp_path, "migrate", PYTHONPATH=str(ROOT), DATA_DIR=str(tmp_path / "d"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "d" / "bot.sqlite3").stat().st_size > 0


def test_settings_from_env_file(tmp_path):
    env = tmp_path / ".env"
    env.write_text(f"TELEGRAM_BOT_TOKEN={TOKEN}\nADMIN_USER_IDS=11, 22\nDATA_DIR={tmp_path}/x\n")
    s = Settings(_env_file=env)
    assert s.token_problem() is None and s.admin_user_ids == [11, 22]
    assert s.db_url == f"sqlite+aiosqlite:///{tmp_path}/x/bot.sqlite3"
    assert s.telegram_api_base_url == "https://api.telegram.org/bot"


def test_pseudonym_secret_is_created_once_and_kept(tmp_path):
    s = Settings(_env_file=None, data_dir=tmp_path)
    first = s.secret()
    assert len(first) == 64 and s.secret() == first
    assert oct((tmp_path / "pseudonym.secret").stat().st_mode)[-3:] == "600"


def test_env_example_documents_every_setting():
    text = (ROOT / ".env.example").read_text()
    for name in Settings.model_fields:
        assert f"{name.upper()}=" in text, name


def test_env_example_copied_as_is_loads(tmp_path):
    env = tmp_path / ".env"
    env.write_text((ROOT / ".env.example").read_text().replace("TELEGRAM_BOT_TOKEN=\n", f"TELEGRAM_BOT_TOKEN={TOKEN}\n"))
    s = Settings(_env_file=env)
    assert s.token_problem() is None and s.model_path is None and s.admin_user_ids == [] and s.database_url == ""


def test_ci_runs_the_readme_test_command_verbatim():
    import re

    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.DOTALL)
    test_cmd = next(b for b in blocks if b.endswith("&& pytest"))
    run_cmd = next(b for b in blocks if b.endswith("python -m bot"))
    assert test_cmd in (ROOT / ".ci" / "run").read_text().splitlines()  # a line of its own, unchanged
    assert "pip install -e ." in run_cmd and "[test]" not in run_cmd  # serving needs no test extras


def test_a_new_secret_for_a_database_with_users_is_refused(tmp_path):
    """A lost or replaced pseudonym secret would orphan every user (/delete could not find
    them): the bot refuses to start and leaves no new secret behind."""
    import asyncio

    from bot.config import Settings
    from bot.infra.storage import Storage

    data = tmp_path / "data"
    clean = {"DATA_DIR": str(data)}
    assert run_bot(tmp_path, "migrate", **clean).returncode == 0
    settings = Settings(_env_file=None, data_dir=data)
    secret = settings.secret_path.read_bytes()

    async def add_user():
        storage = Storage(settings.db_url, settings.photos_dir, secret.strip())
        await storage.upsert_user(1, language="ru")
        await storage.close()

    asyncio.run(add_user())
    settings.secret_path.unlink()  # lost (not in the backup)
    proc = run_bot(tmp_path, "migrate", **clean)
    assert proc.returncode == 2 and "pseudonym secret is not the one this database" in proc.stderr and "Traceback" not in proc.stderr
    assert not settings.secret_path.exists()
    proc = run_bot(tmp_path, "migrate", **clean, PSEUDONYM_SECRET="some-other-secret")
    assert proc.returncode == 2 and "not the one" in proc.stderr
    settings.secret_path.write_bytes(secret)  # restored
    assert run_bot(tmp_path, "migrate", **clean).returncode == 0
