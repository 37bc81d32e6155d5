"""Degrade, don't fail: a locked database or a full disk never costs a user the screening (#10)."""

import asyncio
import sqlite3
import subprocess
import time

import pytest

from bot.i18n import t

from .conftest import needs_shared
from .test_bot_e2e import accepted_photo, start_user

pytestmark = needs_shared


async def test_a_database_that_is_down_still_gets_the_screening_quickly(bot_factory):
    """The bot's database goes away (here: its engine now points at a PostgreSQL port where
    nothing listens, through the real driver). New and known users still get their screening."""
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    h = await bot_factory()
    _, photo = accepted_photo(h)
    n = await start_user(h, 4141, "ru", "yes")
    down = create_async_engine("postgresql+asyncpg://postgres@127.0.0.1:9/gone")
    h.storage.engine, h.storage.sessions = down, async_sessionmaker(down, expire_on_commit=False)
    t0 = time.monotonic()
    h.fake.send_photo(4242, photo, "kk")  # a new user: their state cannot be read
    h.fake.send_photo(4141, photo, "ru")  # a consenting user: nothing can be kept
    (new,) = await h.fake.replies(4242, 1, timeout=30)
    (known,) = await h.fake.replies(4141, 1, since=n, timeout=30)
    elapsed = time.monotonic() - t0
    assert t("kk", "disclaimer") in new["text"], "the screening is answered, in the user's Telegram language"
    assert t("kk", "storage.not_saved") in new["text"]
    assert t("ru", "disclaimer") in known["text"] and t("ru", "storage.not_saved") in known["text"]
    assert elapsed < 10, f"the answers waited {elapsed:.1f} s for the database"
    await h.fake.quiet(4242, 1, wait=0.5)  # and no consent question it could not save


def _mount_tmpfs(path, size: str, readonly: bool = False) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if readonly else "")
    return subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, check=False).returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs as the data folder (needs root to mount, which CI and this machine have)."""
    mnt = tmp_path / "small"
    if not _mount_tmpfs(mnt, "3m"):
        pytest.skip("cannot mount a tmpfs here (not root): the disk-full test needs a real full file system")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


async def test_a_full_disk_never_promises_storage_that_does_not_work(bot_factory, small_disk):
    h = await bot_factory(data_dir=small_disk)
    h.app.bot_data.storage_checker.cancel()
    # Fill the disk: the periodic check notices (here: run it once by hand).
    with open(small_disk / "filler", "wb") as fh:
        try:
            fh.write(b"\0" * 8 * 2**20)
        except OSError:
            pass
    from bot.infra.runtime import data_dir_problem

    problem = data_dir_problem(small_disk)
    assert problem and ("free" in problem or "not writable" in problem)
    h.app.bot_data.storage_ok = problem is None
    n = await start_user(h, 88, "ru", None)
    h.fake.press(88, h.fake.sent[88][1], "consent:yes", "ru")
    (confirm,) = await h.fake.replies(88, 1, since=n)
    # The database sits on the same full disk: either it could not save the answer at all, or it
    # did and the photos cannot be kept. Never "your photos will be kept".
    assert confirm["text"] in (t("ru", "storage.down"), t("ru", "consent.saved_yes_unavailable"))
    _, photo = accepted_photo(h)
    h.fake.send_photo(88, photo, "ru")
    (answer,) = await h.fake.replies(88, 1, since=n + 1)
    assert t("ru", "disclaimer") in answer["text"]
    if confirm["text"] == t("ru", "consent.saved_yes_unavailable"):
        assert t("ru", "storage.not_saved") in answer["text"]
    assert not list((small_disk / "photos").rglob("*.jpg"))


async def test_a_write_locked_database_answers_a_consenting_user_and_says_nothing_was_kept(bot_factory):
    h = await bot_factory()
    n = await start_user(h, 4343, "ru", "yes")
    _, photo = accepted_photo(h)
    # A long write by another process: reads go on, writes wait. Taken in a thread, so that the
    # bot's own write in flight on this event loop can finish first instead of deadlocking the wait.
    lock = sqlite3.connect(h.settings.data_dir / "bot.sqlite3", timeout=30, isolation_level=None, check_same_thread=False)
    await asyncio.to_thread(lock.execute, "BEGIN EXCLUSIVE")
    try:
        t0 = time.monotonic()
        h.fake.send_photo(4343, photo, "ru")
        (answer,) = await h.fake.replies(4343, 1, since=n, timeout=20)
        assert time.monotonic() - t0 < 10
        assert t("ru", "disclaimer") in answer["text"] and t("ru", "storage.not_saved") in answer["text"]
    finally:
        lock.execute("ROLLBACK")
        lock.close()
