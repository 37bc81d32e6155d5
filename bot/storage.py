"""Users, consent and logged submissions (SQLAlchemy 2 async) plus the photo files.

Privacy rules enforced here, not in the handlers:
  * users are keyed by a pseudonym (HMAC-SHA256 of the Telegram id with a secret);
  * without consent only language, region and the consent answer are stored;
  * photos are stored re-encoded (no EXIF/GPS), by content hash, written atomically;
  * ``delete_user`` removes the rows and every file no other submission still refers to.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, delete, event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Version of the privacy notice; bump it when the text's substance changes.
NOTICE_VERSION = 1
CONSENT_UNKNOWN, CONSENT_YES, CONSENT_NO = "unknown", "yes", "no"


def now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    pseudonym: Mapped[str] = mapped_column(String(64), primary_key=True)
    language: Mapped[str] = mapped_column(String(2))
    region: Mapped[str | None] = mapped_column(String(32))
    consent: Mapped[str] = mapped_column(String(8), default=CONSENT_UNKNOWN)
    consent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    consent_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class Submission(Base):
    __tablename__ = "submissions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_pseudonym: Mapped[str] = mapped_column(ForeignKey("users.pseudonym", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now, index=True)
    photo_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    accepted: Mapped[bool] = mapped_column(Boolean)
    reasons: Mapped[list] = mapped_column(JSON, default=list)
    quality: Mapped[dict] = mapped_column(JSON, default=dict)
    probabilities: Mapped[dict | None] = mapped_column(JSON)
    risk: Mapped[str | None] = mapped_column(String(10))
    malignancy: Mapped[float | None] = mapped_column(Float)
    model_version: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(2))
    region: Mapped[str | None] = mapped_column(String(32))
    followup: Mapped[dict | None] = mapped_column(JSON)
    review_status: Mapped[str] = mapped_column(String(16), default="unreviewed")
    note: Mapped[str | None] = mapped_column(Text)


@dataclass(frozen=True)
class Deleted:
    submissions: int
    photos: int


class PhotoStore:
    """Files under ``root/ab/abcdef….jpg``, named by the SHA-256 of their bytes."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, sha: str) -> Path:
        return self.root / sha[:2] / f"{sha}.jpg"

    def put(self, jpeg: bytes) -> tuple[str, bool]:
        """Store the bytes; returns (sha, created) — created is False when the file existed."""
        sha = hashlib.sha256(jpeg).hexdigest()
        dest = self.path(sha)
        if dest.exists():
            return sha, False
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(jpeg)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, dest)  # atomic: a reader sees the whole file or none
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sha, True

    def remove_all(self, shas: set[str]) -> int:
        """Unlink several files (called through a thread: unlinks are blocking I/O)."""
        return sum(self.remove(sha) for sha in shas)

    def remove(self, sha: str) -> bool:
        try:
            self.path(sha).unlink()
            return True
        except FileNotFoundError:
            return False


class Storage:
    def __init__(self, url: str, photos_dir: Path, secret: bytes):
        self.engine: AsyncEngine = create_async_engine(url, pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":
            # SQLite ignores ON DELETE CASCADE unless asked, per connection.
            event.listen(self.engine.sync_engine, "connect", lambda conn, _: conn.execute("PRAGMA foreign_keys=ON"))
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.photos = PhotoStore(photos_dir)
        self._secret = secret

    def pseudonym(self, telegram_id: int) -> str:
        return hmac.new(self._secret, str(telegram_id).encode(), hashlib.sha256).hexdigest()

    async def close(self) -> None:
        await self.engine.dispose()

    async def get_user(self, telegram_id: int) -> User | None:
        async with self.sessions() as s:
            return await s.get(User, self.pseudonym(telegram_id))

    async def upsert_user(self, telegram_id: int, **fields: object) -> User:
        """Create or update a user; only language, region and consent fields are accepted."""
        allowed = {"language", "region", "consent"}
        if set(fields) - allowed:
            raise ValueError(f"not stored about users: {set(fields) - allowed}")
        async with self.sessions.begin() as s:
            user = await s.get(User, self.pseudonym(telegram_id))
            if user is None:
                user = User(pseudonym=self.pseudonym(telegram_id), language=str(fields.get("language", "en")), consent=CONSENT_UNKNOWN)
                s.add(user)
            for key, value in fields.items():
                setattr(user, key, value)
            if "consent" in fields:
                user.consent_at, user.consent_version = now(), NOTICE_VERSION
        return user

    async def add_submission(self, telegram_id: int, jpeg: bytes | None, **fields: object) -> int | None:
        """Log a screening, only for a consenting user; returns the submission id or None."""
        created = None
        try:
            async with self.sessions.begin() as s:
                user = await s.get(User, self.pseudonym(telegram_id))
                if user is None or user.consent != CONSENT_YES:
                    return None
                # file write + fsync off the event loop; the row is only committed after the file exists
                sha, created = await asyncio.to_thread(self.photos.put, jpeg) if jpeg else (None, False)
                sub = Submission(user_pseudonym=user.pseudonym, photo_sha256=sha, language=user.language, region=user.region, **fields)
                s.add(sub)
                await s.flush()
                return sub.id
        except BaseException:
            if created:  # a photo no row refers to could never be found by /delete
                await asyncio.to_thread(self.photos.remove, sha)
            raise

    async def set_followup(self, telegram_id: int, submission_id: int, answers: dict[str, bool]) -> bool:
        async with self.sessions.begin() as s:
            sub = await s.get(Submission, submission_id)
            if sub is None or sub.user_pseudonym != self.pseudonym(telegram_id):
                return False
            sub.followup = answers
            return True

    async def history(self, telegram_id: int, limit: int = 20) -> list[Submission]:
        async with self.sessions() as s:
            rows = await s.scalars(
                select(Submission)
                .where(Submission.user_pseudonym == self.pseudonym(telegram_id))
                .order_by(Submission.created_at.desc(), Submission.id.desc())
                .limit(limit)
            )
            return list(rows)

    async def delete_user(self, telegram_id: int) -> Deleted:
        """Erase the user's rows, then every photo file no other submission refers to."""
        pseudo = self.pseudonym(telegram_id)
        async with self.sessions.begin() as s:
            shas = set(await s.scalars(select(Submission.photo_sha256).where(Submission.user_pseudonym == pseudo)))
            shas.discard(None)
            n = (await s.execute(delete(Submission).where(Submission.user_pseudonym == pseudo))).rowcount
            await s.execute(delete(User).where(User.pseudonym == pseudo))
            still_used = set(await s.scalars(select(Submission.photo_sha256).where(Submission.photo_sha256.in_(shas)))) if shas else set()
        removed = await asyncio.to_thread(self.photos.remove_all, shas - still_used)
        return Deleted(submissions=n, photos=removed)

    async def count_submissions(self) -> int:
        async with self.sessions() as s:
            return int(await s.scalar(select(func.count(Submission.id))) or 0)
