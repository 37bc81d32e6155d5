"""Maintainers' command line.

    python -m bot.admin export --out DIR [--since YYYY-MM-DD] [--reviewed-only]
    python -m bot.admin stats
    python -m bot.admin purge --older-than DAYS
    python -m bot.admin backup --out FILE.tar.gz
    python -m bot.admin restore FILE.tar.gz [--force]

Uses the bot's settings (DATABASE_URL / DATA_DIR), applies pending migrations first.
``export`` writes photos and a labels.csv that ``python -m training train --data DIR`` reads as
one more source (see ``bot.admin.review.Review.export`` for the columns); it never contains Telegram
ids or pseudonyms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from bot.admin import backup
from bot.admin.handlers import stats_text
from bot.admin.review import Review
from bot.config import Settings
from bot.infra.migrate import upgrade
from bot.infra.storage import SecretMismatch, Storage


def _date(value: str) -> datetime:
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD (e.g. 2026-12-01), got {value!r}") from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bot.admin", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export", help="photos + labels.csv for training")
    e.add_argument("--out", required=True)
    e.add_argument("--since", type=_date, help="only cases from this day on, YYYY-MM-DD")
    e.add_argument("--reviewed-only", action="store_true")
    s = sub.add_parser("stats", help="the figures of /stats")
    s.add_argument("--json", action="store_true")
    g = sub.add_parser("purge", help="retention: delete cases (rows and files) older than DAYS")
    g.add_argument("--older-than", type=int, required=True, metavar="DAYS")
    b = sub.add_parser("backup", help="database (SQLite online backup), photos and the secret in one archive with a manifest")
    b.add_argument("--out", required=True, type=Path)
    r = sub.add_parser("restore", help="restore an archive made by backup into DATA_DIR (checked against its manifest)")
    r.add_argument("archive", type=Path)
    r.add_argument("--force", action="store_true", help="replace a database that already has users")
    args = p.parse_args(argv)
    if getattr(args, "older_than", 1) < 0:
        p.error("--older-than must be ≥ 0")
    if args.command == "export" and Path(args.out).exists() and (not Path(args.out).is_dir() or any(Path(args.out).iterdir())):
        # Old images beside a new labels.csv would look like cases of this export.
        print(f"{args.out} is not an empty folder: export into a new one (an export is never mixed with an older one)", file=sys.stderr)
        return 2
    if args.command in ("backup", "restore"):
        settings = Settings()
        try:
            if args.command == "backup":
                print(backup.backup(settings, args.out))
            else:
                print(backup.restore(settings, args.archive, force=args.force))
        except backup.BackupError as exc:
            print(str(exc), file=sys.stderr)
            return 2
        return 0
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    settings = Settings()
    sqlite_file = settings.data_dir / "bot.sqlite3"
    if not settings.database_url and not sqlite_file.exists():
        # Run from the wrong folder, this used to create an empty database and a new secret.
        print(f"no database at {sqlite_file} (DATA_DIR={settings.data_dir}): run it where the bot runs, or set DATA_DIR / DATABASE_URL", file=sys.stderr)
        return 2
    print(f"using database {settings.db_url_redacted} and data folder {settings.data_dir}", file=sys.stderr)
    await asyncio.to_thread(upgrade, settings.db_url)
    try:
        secret, _ = settings.load_secret(create=False)
    except FileNotFoundError as exc:
        print(f"{exc}: the admin tools never create one (set PSEUDONYM_SECRET or run in the bot's data folder)", file=sys.stderr)
        return 2
    storage = Storage(settings.db_url, settings.photos_dir, secret)
    try:
        await storage.check_secret(created_now=False)
    except SecretMismatch as exc:
        await storage.close()
        print(f"{exc}: refusing to run", file=sys.stderr)
        return 2
    review = Review(storage)
    try:
        if args.command == "export":
            counts = await review.export(args.out, since=args.since, reviewed_only=args.reviewed_only)
            print(f"exported to {args.out}: {counts}")
        elif args.command == "stats":
            figures = [await review.stats(days) for days in (7, 30)]
            if args.json:
                print(json.dumps(figures, indent=2, ensure_ascii=False))
            else:
                print("\n\n".join(stats_text("en", f).replace("<b>", "").replace("</b>", "") for f in figures))
        elif args.command == "purge":
            rows, files = await review.purge(args.older_than)
            print(f"purged {rows} cases and {files} photo files older than {args.older_than} days")
    finally:
        await storage.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
