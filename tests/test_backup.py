"""Backup and restore (#21): round trips on SQLite and PostgreSQL deployments into a fresh
folder, archives that do not match the deployment, and broken archives — each one clear line
and exit 2, never a traceback, and nothing half-restored."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import tarfile

import pytest

from bot.admin.cli import main
from bot.config import Settings
from bot.infra.migrate import upgrade
from bot.infra.storage import CONSENT_YES, Storage

from .conftest import jpeg_bytes, skin_with_spot
from .proxy import NO_POSTGRES, POSTGRES, fresh_postgres
from .test_review import _install, _seed

PROBS = {"mel": 0.05, "bcc": 0.05, "akiec": 0.02, "nv": 0.8, "bkl": 0.04, "other": 0.02, "inflammatory": 0.02}


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("PSEUDONYM_SECRET", raising=False)
    return monkeypatch


@pytest.fixture
def sqlite_archive(tmp_path, env, capsys):
    _install(tmp_path)
    asyncio.run(_seed(tmp_path))
    archive = tmp_path / "backups" / "sqlite.tar.gz"
    assert main(["backup", "--out", str(archive)]) == 0
    capsys.readouterr()
    return archive


async def _user_and_photo(url: str, settings: Settings, uid: int) -> tuple[int, bytes | None]:
    storage = Storage(url, settings.photos_dir, settings.secret())
    try:
        history = await storage.history(uid)
        sub = history[0] if history else None
        photo = storage.photos.find(storage.pseudonym(uid), sub.photo_sha256).read_bytes() if sub and sub.photo_sha256 else None
        return len(history), photo
    finally:
        await storage.close()


@pytest.mark.skipif(not POSTGRES, reason=NO_POSTGRES)
def test_a_postgres_backup_holds_the_database_and_restores_it_into_an_empty_one(tmp_path, env, capsys):
    """The archive holds a pg_dump of the database, the photos and the secret; a new machine with
    an empty database gets every user back. A database that is not empty is refused (one line)
    unless --force, and the folders are 0700 as the bot makes them."""
    url, drop = asyncio.run(fresh_postgres())
    url2, drop2 = asyncio.run(fresh_postgres())
    try:
        env.setenv("DATABASE_URL", url)
        upgrade(url)
        settings = Settings(_env_file=None, data_dir=tmp_path / "data", database_url=url)
        settings.load_secret()
        jpeg = jpeg_bytes(skin_with_spot(size=(300, 400), seed=5))

        async def seed():
            storage = Storage(url, settings.photos_dir, settings.secret())
            await storage.upsert_user(333, language="ru", consent=CONSENT_YES)
            await storage.upsert_user(334, language="kk", consent=CONSENT_YES)
            await storage.add_submission(333, jpeg, accepted=True, reasons=[], quality={}, probabilities=PROBS, risk="low", malignancy=0.1, model_version="m1")
            await storage.close()

        asyncio.run(seed())
        before = asyncio.run(_user_and_photo(url, settings, 333))
        archive = tmp_path / "pg.tar.gz"
        assert main(["backup", "--out", str(archive)]) == 0
        out = capsys.readouterr().out
        assert "PostgreSQL, pg_dump, 2 users" in out and "1 photos" in out
        with tarfile.open(archive) as tar:
            assert "database.pgdump" in tar.getnames()

        # a new machine: a new, empty database and no data folder
        shutil.rmtree(tmp_path / "data")
        env.setenv("DATABASE_URL", url2)
        assert main(["restore", str(archive)]) == 0, capsys.readouterr().err
        assert "restored 1 photos, the database and the secret" in capsys.readouterr().out
        settings2 = Settings(_env_file=None, data_dir=tmp_path / "data", database_url=url2)
        assert asyncio.run(_user_and_photo(url2, settings2, 333)) == before and before[0] == 1 and before[1]
        for folder in [tmp_path / "data", *(p for p in (tmp_path / "data").rglob("*") if p.is_dir())]:
            assert folder.stat().st_mode & 0o777 == 0o700, folder

        # the same archive again: the database is no longer empty
        assert main(["restore", str(archive)]) == 2
        line = one_error_line(capsys)
        assert "not empty" in line and "--force" in line
        assert main(["restore", str(archive), "--force"]) == 0, capsys.readouterr().err
        assert asyncio.run(_user_and_photo(url2, settings2, 334))[0] == 0 and asyncio.run(_user_and_photo(url2, settings2, 333)) == before
    finally:
        asyncio.run(drop())
        asyncio.run(drop2())


def test_a_backup_without_pg_dump_says_what_to_install(tmp_path, env, capsys, monkeypatch):
    env.setenv("DATABASE_URL", "postgresql+asyncpg://bot:secret@127.0.0.1:5432/bot")
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")
    settings.data_dir.mkdir(parents=True)
    settings.load_secret()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no PostgreSQL client tools
    assert main(["backup", "--out", str(tmp_path / "b.tar.gz")]) == 2
    line = one_error_line(capsys)
    assert "pg_dump not found" in line and "postgresql-client" in line and "secret@" not in line
    assert not (tmp_path / "b.tar.gz").exists()


def test_a_sqlite_archive_with_a_postgres_database_url_restores_nothing(tmp_path, env, sqlite_archive, capsys):
    shutil.rmtree(tmp_path / "data")
    env.setenv("DATABASE_URL", "postgresql+asyncpg://bot:secret@127.0.0.1:5432/bot")
    assert main(["restore", str(sqlite_archive)]) == 2
    line = one_error_line(capsys)
    assert "SQLite" in line and "nothing was restored" in line and "secret@" not in line
    assert not (tmp_path / "data").exists(), "nothing half-restored"


def test_a_postgres_archive_into_a_sqlite_deployment_restores_nothing(tmp_path, env, capsys):
    manifest = {"format": 1, "created": "x", "database": "postgresql: NOT in the archive", "secret_fingerprint": "f", "secret_in_archive": False, "files": {}}
    archive = _archive(tmp_path, {"manifest.json": json.dumps(manifest).encode()})
    assert main(["restore", str(archive)]) == 2
    assert "PostgreSQL deployment" in one_error_line(capsys)


def _archive(tmp_path, members: dict[str, bytes], name: str = "bad.tar.gz"):
    path = tmp_path / name
    with tarfile.open(path, "w:gz") as tar:
        for member, blob in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


@pytest.mark.parametrize("kind", ["not_gzip", "truncated", "no_manifest", "bad_json", "bad_checksum", "escapes", "missing_file", "no_archive"])
def test_a_broken_archive_is_one_line_and_exit_2(tmp_path, env, sqlite_archive, capsys, kind):
    raw = sqlite_archive.read_bytes()
    target = tmp_path / f"{kind}.tar.gz"
    if kind == "not_gzip":
        target.write_bytes(b"this is not an archive" * 50)
    elif kind == "truncated":
        target.write_bytes(raw[: len(raw) // 2])
    elif kind == "no_manifest":
        target = _archive(tmp_path, {"bot.sqlite3": b"x"}, target.name)
    elif kind == "bad_json":
        target = _archive(tmp_path, {"manifest.json": b"{not json"}, target.name)
    elif kind == "escapes":
        target = _archive(tmp_path, {"manifest.json": b"{}", "../../evil": b"x"}, target.name)
    elif kind in ("bad_checksum", "missing_file"):
        with tarfile.open(sqlite_archive, "r:gz") as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
        if kind == "bad_checksum":
            members["bot.sqlite3"] = members["bot.sqlite3"][:-10] + b"0" * 10
        else:
            del members["pseudonym.secret"]
        target = _archive(tmp_path, members, target.name)
    elif kind == "no_archive":
        target = tmp_path / "nowhere.tar.gz"
    db_before = (tmp_path / "data" / "bot.sqlite3").read_bytes()
    assert main(["restore", str(target), "--force"]) == 2
    line = one_error_line(capsys)
    assert str(target.name) in line or "no archive" in line, line
    assert (tmp_path / "data" / "bot.sqlite3").read_bytes() == db_before, "the database is untouched"
    assert not (tmp_path / "evil").exists() and not (tmp_path.parent / "evil").exists()


def test_backups_older_than_the_promised_retention_are_removed(tmp_path, env, sqlite_archive, capsys):
    """Users are told erased data leaves the backups within BACKUP_RETENTION_DAYS."""
    import os
    import time

    folder = sqlite_archive.parent
    old = folder / "old.tar.gz"
    shutil.copyfile(sqlite_archive, old)
    unrelated = folder / "someone-elses.tar.gz"
    unrelated.write_bytes(b"not ours")
    recent = folder / "recent.tar.gz"
    shutil.copyfile(sqlite_archive, recent)
    stale = time.time() - 31 * 86400
    for path in (old, unrelated):
        os.utime(path, (stale, stale))
    env.setenv("BACKUP_RETENTION_DAYS", "30")
    assert main(["backup", "--out", str(folder / "new.tar.gz")]) == 0
    assert "1 archives older than 30 days removed" in capsys.readouterr().out
    assert not old.exists() and unrelated.exists() and recent.exists() and (folder / "new.tar.gz").exists()
