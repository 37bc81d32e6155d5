"""Backup and restore of everything that makes users reachable: database, photos, secret.

One ``.tar.gz`` with a ``manifest.json`` (what is inside, with SHA-256 of every member):

* SQLite: the database through SQLite's online backup API (consistent while the bot runs);
* PostgreSQL: ``pg_dump --format=custom`` of the database (consistent while the bot runs), which
  ``restore`` loads with ``pg_restore`` into an empty database (a non-empty one only with
  ``--force``); the PostgreSQL client tools must be installed (Debian: ``postgresql-client``);
* ``photos/``: every photo file;
* ``pseudonym.secret``: without it no stored user can be found again (``/delete`` included).
  A secret given through ``PSEUDONYM_SECRET`` is not written into the archive; the manifest
  records its fingerprint so a restore can check that the right one is set.

``restore`` refuses to replace a database that already has users unless ``--force``, checks every
member against the manifest, checks the secret against the database's fingerprint, and after
loading the database checks that it holds as many users as the manifest says.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import zlib
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from bot.config import Settings
from bot.infra.storage import secret_fingerprint

FORMAT = 1
PG_DUMP = "database.pgdump"


class BackupError(Exception):
    """One line for the operator."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_sqlite(settings: Settings) -> bool:
    return settings.db_url.startswith("sqlite")


def _pg(settings: Settings) -> tuple[list[str], dict[str, str]]:
    """libpq connection options for the PostgreSQL tools, and an environment with the password
    (never on the command line, where ``ps`` would show it)."""
    url = make_url(settings.db_url)
    args = ["--host", url.host or "127.0.0.1", "--port", str(url.port or 5432), "--dbname", url.database or ""]
    if url.username:
        args += ["--username", url.username]
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    if url.password:
        env["PGPASSWORD"] = url.password
    return args, env


def _run_pg(tool: str, args: list[str], env: dict[str, str]) -> None:
    if shutil.which(tool) is None:
        raise BackupError(f"{tool} not found: install the PostgreSQL client tools (Debian: apt-get install postgresql-client) to back up or restore a PostgreSQL database")
    done = subprocess.run([tool, *args], env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        raise BackupError(f"{tool} failed: {lines[-1] if lines else f'exit {done.returncode}'}")


def _pg_query(settings: Settings, sql: str):
    """One value from the deployment's PostgreSQL database (asyncpg, as the bot connects)."""
    url = make_url(settings.db_url)

    async def one():
        conn = await asyncpg.connect(host=url.host, port=url.port or 5432, user=url.username, password=url.password, database=url.database, timeout=10)
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    try:
        return asyncio.run(one())
    except (OSError, asyncpg.PostgresError) as exc:
        raise BackupError(f"cannot reach the database {settings.db_url_redacted} ({type(exc).__name__}: {exc})") from None


def _count_users(settings: Settings, sqlite_file: Path | None = None) -> int:
    if sqlite_file is not None:
        with sqlite3.connect(sqlite_file) as con:
            has = con.execute("SELECT name FROM sqlite_master WHERE name='users'").fetchone()
            return con.execute("SELECT count(*) FROM users").fetchone()[0] if has else 0
    if not _pg_query(settings, "SELECT to_regclass('public.users') IS NOT NULL"):
        return 0
    return int(_pg_query(settings, "SELECT count(*) FROM users"))


def backup(settings: Settings, out: Path) -> str:
    data = settings.data_dir
    db = data / "bot.sqlite3"
    if _is_sqlite(settings) and not db.exists():
        raise BackupError(f"no database at {db}: nothing to back up (DATA_DIR={data})")
    try:
        secret, _ = settings.load_secret(create=False)
    except FileNotFoundError as exc:
        raise BackupError(f"{exc}: a backup without the secret could never find a user again") from None
    members: dict[str, Path] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if _is_sqlite(settings):
            snapshot = Path(tmp) / "bot.sqlite3"
            src, dst = sqlite3.connect(db), sqlite3.connect(snapshot)
            with dst:
                src.backup(dst)  # online: consistent even while the bot writes
            src.close()
            dst.close()
            members["bot.sqlite3"] = snapshot
            users = _count_users(settings, snapshot)
        else:
            dump = Path(tmp) / PG_DUMP
            args, env = _pg(settings)
            _run_pg("pg_dump", ["--format=custom", "--no-owner", "--no-privileges", "--file", str(dump), *args], env)
            members[PG_DUMP] = dump
            users = _count_users(settings)
        if settings.secret_path.exists() and not settings.pseudonym_secret.get_secret_value():
            members["pseudonym.secret"] = settings.secret_path
        for path in sorted(settings.photos_dir.rglob("*.jpg")) if settings.photos_dir.is_dir() else []:
            members["photos/" + path.relative_to(settings.photos_dir).as_posix()] = path
        manifest = {
            "format": FORMAT,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "database": "sqlite (in the archive)" if _is_sqlite(settings) else f"postgresql ({PG_DUMP}, pg_dump custom format) from {settings.db_url_redacted}",
            "users": users,
            "secret_fingerprint": secret_fingerprint(secret),
            "secret_in_archive": "pseudonym.secret" in members,
            "files": {name: _sha256(path) for name, path in members.items()},
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the secret
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            blob = json.dumps(manifest, indent=1).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
            for name, path in members.items():
                tar.add(path, arcname=name)
        os.replace(partial, out)
    photos = sum(n.startswith("photos/") for n in members)
    removed = prune(out.parent, settings.backup_retention_days, keep=out)
    return (
        f"backup written to {out}: the database ({'SQLite' if _is_sqlite(settings) else 'PostgreSQL, pg_dump'}, {users} users), {photos} photos, secret {'included' if manifest['secret_in_archive'] else 'NOT included (from the environment)'}; "
        f"{removed} archives older than {settings.backup_retention_days} days removed beside it (BACKUP_RETENTION_DAYS: users are told erased data leaves backups within that time)"
    )


def _is_backup(path: Path) -> bool:
    try:
        with tarfile.open(path, "r:gz") as tar:
            member = tar.extractfile("manifest.json")
            return member is not None and json.loads(member.read()).get("format") == FORMAT
    except (tarfile.TarError, EOFError, OSError, zlib.error, KeyError, ValueError, AttributeError):
        return False


def prune(folder: Path, days: int, keep: Path) -> int:
    """Remove this bot's archives in ``folder`` older than ``days`` (never ``keep``, never a file
    that is not one of its archives): the privacy notice promises that erased data leaves the
    backups within BACKUP_RETENTION_DAYS. Copies kept elsewhere are the operator's to rotate
    (docs/operations.md)."""
    cutoff = datetime.now(UTC).timestamp() - days * 86400
    removed = 0
    for path in folder.glob("*.tar.gz"):
        if path != keep and path.stat().st_mtime < cutoff and _is_backup(path):
            path.unlink()
            removed += 1
    return removed


def _read_archive(archive: Path, into: Path) -> dict:
    """Unpack and check an archive; every way it can be wrong is one BackupError line."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(into, filter="data")  # no absolute paths, no "..", no devices
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise BackupError(f"{archive}: not a readable backup archive ({type(exc).__name__}: {exc})") from None
    try:
        manifest = json.loads((into / "manifest.json").read_text())
    except FileNotFoundError:
        raise BackupError(f"{archive}: no manifest.json — not an archive made by 'python -m bot.admin backup'") from None
    except (ValueError, OSError) as exc:
        raise BackupError(f"{archive}: manifest.json is damaged ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{archive}: unknown backup format {manifest.get('format') if isinstance(manifest, dict) else manifest!r}")
    files, fingerprint = manifest.get("files"), manifest.get("secret_fingerprint")
    if not isinstance(files, dict) or not isinstance(fingerprint, str) or not isinstance(manifest.get("secret_in_archive"), bool):
        raise BackupError(f"{archive}: manifest.json lacks its file list or secret fingerprint")
    for name, digest in files.items():
        path = into / name
        if not path.is_file() or _sha256(path) != digest:
            raise BackupError(f"{archive}: {name} is missing or damaged (checksum)")
    return manifest


def restore(settings: Settings, archive: Path, force: bool = False) -> str:
    data = settings.data_dir
    db = data / "bot.sqlite3"
    if not archive.is_file():
        raise BackupError(f"no archive at {archive}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = _read_archive(archive, root)
        has_sqlite = "bot.sqlite3" in manifest["files"]
        has_pg = PG_DUMP in manifest["files"]
        if has_sqlite and not _is_sqlite(settings):
            raise BackupError(
                f"{archive} holds a SQLite database, but DATABASE_URL is {settings.db_url_redacted}: nothing was restored. "
                "Unset DATABASE_URL to restore into DATA_DIR's SQLite file (then move the data to PostgreSQL if you need to)"
            )
        if not has_sqlite and _is_sqlite(settings):
            raise BackupError(
                f"{archive} is from a PostgreSQL deployment: nothing was restored. "
                "Set DATABASE_URL to an empty PostgreSQL database and run restore again (it loads the database, the photos and the secret)"
            )
        if manifest["secret_in_archive"]:
            secret = (root / "pseudonym.secret").read_text().strip().encode()
        elif settings.pseudonym_secret.get_secret_value():
            secret = settings.pseudonym_secret.get_secret_value().encode()
        else:
            raise BackupError("the archive has no secret and PSEUDONYM_SECRET is not set: set it to the one this backup was made with")
        if secret_fingerprint(secret) != manifest["secret_fingerprint"]:
            raise BackupError("PSEUDONYM_SECRET is not the secret this backup was made with")
        if has_sqlite and db.exists() and not force:
            if users := _count_users(settings, db):
                raise BackupError(f"{db} already has {users} users: restore with --force to replace it")
        if has_pg and not force:
            tables = int(_pg_query(settings, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"))
            if tables:
                users = _count_users(settings)
                raise BackupError(f"{settings.db_url_redacted} is not empty ({tables} tables, {users} users): restore into an empty database, or with --force to replace it")
        if has_pg:  # before any file is written: a refused or broken load leaves the folder as it was
            args, env = _pg(settings)
            clean = ["--clean", "--if-exists"] if force else []
            _run_pg("pg_restore", ["--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction", *clean, *args, str(root / PG_DUMP)], env)
        try:
            data.mkdir(mode=0o700, parents=True, exist_ok=True)  # a fresh machine: the folder may not exist yet
            if has_sqlite:
                shutil.copyfile(root / "bot.sqlite3", db)
                db.chmod(0o600)
            if manifest["secret_in_archive"]:
                settings.secret_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                settings.secret_path.write_bytes((root / "pseudonym.secret").read_bytes())
                settings.secret_path.chmod(0o600)
            if settings.photos_dir.exists():
                shutil.rmtree(settings.photos_dir)
            photos = [n for n in manifest["files"] if n.startswith("photos/")]
            for name in photos:
                dest = settings.photos_dir / name.removeprefix("photos/")
                dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                shutil.copyfile(root / name, dest)
                dest.chmod(0o600)
            # mkdir(parents=True) makes the folders in between with the default mode: set 0700
            # on every folder, as the bot creates them (only its own user reads users' photos).
            for folder in [data, *(p for p in data.rglob("*") if p.is_dir())]:
                folder.chmod(0o700)
        except OSError as exc:
            raise BackupError(f"cannot write into {data} ({exc.strerror or exc}): check DATA_DIR and its permissions") from None
        if (has_sqlite or has_pg) and isinstance(manifest.get("users"), int):
            found = _count_users(settings, db if has_sqlite else None)
            if found != manifest["users"]:
                raise BackupError(f"the restored database holds {found} users, the manifest says {manifest['users']}: check it before starting the bot")
    return f"restored {len(photos)} photos{', the database' if has_sqlite or has_pg else ''} and {'the secret' if manifest['secret_in_archive'] else 'no secret (PSEUDONYM_SECRET checked)'} into {data}"
