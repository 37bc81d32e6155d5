"""Users, consent and logged submissions (SQLAlchemy 2 async) plus the photo files.

Privacy rules enforced here, not in the handlers:
  * users are keyed by a pseudonym (HMAC-SHA256 of the Telegram id with a secret);
  * without consent only language, region and the consent answer are stored;
  * photos are stored re-encoded (no EXIF/GPS), written atomically, in one folder per user
    (named by the pseudonym), so ``delete_user`` removes that folder whatever a crash left in it;
  * ``sweep`` (at start-up) removes ``.tmp-`` leftovers and files no row refers to.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    delete,
    event,
    func,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bot.infra.photos import PhotoStore

#: Version of the privacy notice; bump it when the text's substance changes.
NOTICE_VERSION = 3  # 2: reminders keep an encrypted chat id, what stays after "No", stop and /delete, backups; 3: a followed spot keeps whether a warning sign was ticked
CONSENT_UNKNOWN, CONSENT_YES, CONSENT_NO = "unknown", "yes", "no"


#: A ``.tmp-`` photo another replica may still be writing (it takes milliseconds) is left this long.
TMP_GRACE_S = 120.0


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
    advice_days: Mapped[str | None] = mapped_column(String(8))  # "14", "30", "watch": what the user was told (bot.medical.advice.within_days)
    update_id: Mapped[int | None] = mapped_column(BigInteger, index=True, unique=True)  # one case per Telegram update
    review_status: Mapped[str] = mapped_column(String(16), default="unreviewed")
    note: Mapped[str | None] = mapped_column(Text)


class InboxRow(Base):
    """An update Telegram handed over (``bot.infra.intake``), claimed by the process that answers it.

    Until the answer it holds only what answering needs (names are removed); once answered
    (``done_at``) the payload is dropped and the row stays a day, so the same update delivered
    again — to this or another replica — is recognised and not answered twice. ``claimed_at`` is
    refreshed by its owner while it runs; a row whose owner stopped refreshing is taken over.
    ``/delete`` and retention remove a user's rows too."""

    __tablename__ = "inbox"
    __table_args__ = (Index("ix_inbox_pending", "done_at", "claimed_at"),)
    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    user_pseudonym: Mapped[str | None] = mapped_column(String(64), index=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    payload: Mapped[dict | None] = mapped_column(JSON)
    owner: Mapped[str | None] = mapped_column(String(32))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Meta(Base):
    """Facts about this installation, e.g. the fingerprint of the pseudonym secret."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


def secret_fingerprint(secret: bytes) -> str:
    """What the database (and a backup's manifest) keeps to recognise its pseudonym secret."""
    return hmac.new(secret, b"kz-skin-screening secret fingerprint", hashlib.sha256).hexdigest()


class SecretMismatch(Exception):
    """The pseudonym secret does not belong to this database: starting would orphan every user."""


@dataclass(frozen=True)
class Deleted:
    submissions: int
    photos: int


def _sqlite_pragmas(conn, _record) -> None:
    """Per connection: SQLite ignores ON DELETE CASCADE unless asked. WAL with synchronous=NORMAL:
    a commit survives a killed process (the inbox's promise) without an fsync per commit — two
    commits per update (inbox in, inbox out) made fsync the bot's largest CPU cost under a
    burst — and readers are not blocked by a writer."""
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")


class Storage:
    def __init__(self, url: str, photos_dir: Path, secret: bytes):
        # SQLite's busy timeout (1.5 s) stays under the 2 s a reply waits, so a call given up on
        # behind a lock also ends soon.
        sqlite_ = url.startswith("sqlite")
        connect_args = {"timeout": 1.5} if sqlite_ else {}
        # A pre-ping finds a server connection that dropped; a SQLite file has none to drop, and
        # the ping was an extra round trip through aiosqlite's thread on every transaction.
        self.engine: AsyncEngine = create_async_engine(url, pool_pre_ping=not sqlite_, connect_args=connect_args)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.photos = PhotoStore(photos_dir)
        self._secret = secret
        #: Other processes may write the same database (replicas): nothing about a user is cached.
        self.shared = self.engine.dialect.name != "sqlite"

    def pseudonym(self, telegram_id: int) -> str:
        return hmac.new(self._secret, str(telegram_id).encode(), hashlib.sha256).hexdigest()

    async def close(self) -> None:
        await self.engine.dispose()

    async def check_secret(self, created_now: bool) -> int:
        """Refuse a secret that is not the one this database's users were keyed with.

        A lost or replaced secret makes every stored user unreachable: ``/delete`` could no
        longer find their data. The database keeps an HMAC fingerprint of its secret; a database
        from before the fingerprint, with users, accepts only a secret that already existed.
        Returns the number of users."""
        fingerprint = secret_fingerprint(self._secret)
        async with self.sessions.begin() as s:
            users = int(await s.scalar(select(func.count(User.pseudonym))) or 0)
            if await s.get(Meta, "secret_fingerprint") is None:
                if users and created_now:
                    raise SecretMismatch(f"the database already has {users} users, but the pseudonym secret was just created")
                # Replicas starting together on a new database: the first fingerprint wins and
                # every process compares its own with it below.
                await s.execute(self._insert(Meta).values(key="secret_fingerprint", value=fingerprint).on_conflict_do_nothing(index_elements=["key"]))
            stored = await s.scalar(select(Meta.value).where(Meta.key == "secret_fingerprint"))
            if not hmac.compare_digest(stored, fingerprint):
                raise SecretMismatch(f"the pseudonym secret is not the one this database's {users} users were keyed with")
        return users

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

    async def add_submission(self, telegram_id: int, jpeg: bytes | None, update_id: int | None = None, **fields: object) -> int | None:
        """Log a screening, only for a consenting user; returns the submission id or None.

        ``update_id``: the Telegram update it answers. An update answered twice (a replica killed
        after answering, its update taken over by another) is logged once."""
        created = None
        try:
            async with self.sessions.begin() as s:
                user = await s.get(User, self.pseudonym(telegram_id))
                if user is None or user.consent != CONSENT_YES:
                    return None
                if update_id is not None and (done := await s.scalar(select(Submission.id).where(Submission.update_id == update_id))):
                    return done
                # file write + fsync off the event loop; the row is only committed after the file exists
                sha, created = await asyncio.to_thread(self.photos.put, user.pseudonym, jpeg) if jpeg else (None, False)
                sub = Submission(user_pseudonym=user.pseudonym, photo_sha256=sha, language=user.language, region=user.region, update_id=update_id, **fields)
                s.add(sub)
                await s.flush()
                return sub.id
        except IntegrityError:
            if update_id is not None:
                async with self.sessions() as s:  # another process logged this update meanwhile (its row may use the same file)
                    if done := await s.scalar(select(Submission.id).where(Submission.update_id == update_id)):
                        return done
            if created:
                await asyncio.to_thread(self.photos.remove, self.pseudonym(telegram_id), sha)
            raise
        except BaseException:
            if created:  # a photo no row refers to: remove it now rather than at the next sweep
                await asyncio.to_thread(self.photos.remove, self.pseudonym(telegram_id), sha)
            raise

    async def set_followup(self, telegram_id: int, submission_id: int, answers: dict[str, bool]) -> bool:
        return await self._update_own(telegram_id, submission_id, followup=answers)

    async def _update_own(self, telegram_id: int, submission_id: int, **values) -> bool:
        """Set fields of one of this user's cases; False if it is not theirs (a forged id)."""
        async with self.sessions.begin() as s:
            sub = await s.get(Submission, submission_id)
            if sub is None or sub.user_pseudonym != self.pseudonym(telegram_id):
                return False
            for key, value in values.items():
                setattr(sub, key, value)
            return True

    async def set_advice(self, telegram_id: int, submission_id: int, advice_days: str) -> bool:
        """What the user was told for this case (a later, stronger answer overwrites it)."""
        return await self._update_own(telegram_id, submission_id, advice_days=advice_days)

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
        """Erase the user's rows, then the user's photo folder (files a crash left there too)."""
        pseudo = self.pseudonym(telegram_id)
        async with self.sessions.begin() as s:
            shas = set(await s.scalars(select(Submission.photo_sha256).where(Submission.user_pseudonym == pseudo)))
            shas.discard(None)
            n = (await s.execute(delete(Submission).where(Submission.user_pseudonym == pseudo))).rowcount
            await s.execute(delete(User).where(User.pseudonym == pseudo))
            await s.execute(delete(InboxRow).where(InboxRow.user_pseudonym == pseudo))
            # photos in the old shared layout that another user's row still refers to stay
            still_used = set(await s.scalars(select(Submission.photo_sha256).where(Submission.photo_sha256.in_(shas)))) if shas else set()
        removed = await asyncio.to_thread(self._remove_user_files, pseudo, shas - still_used)
        return Deleted(submissions=n, photos=removed)

    def _remove_user_files(self, pseudo: str, legacy: set[str]) -> int:
        removed = self.photos.remove_owner(pseudo)
        for sha in legacy:
            try:
                self.photos.legacy_path(sha).unlink()
                removed += 1
            except FileNotFoundError:
                pass
        return removed

    async def sweep(self, grace_s: float = 3600.0, started_at: float | None = None) -> dict[str, int]:
        """Start-up clean-up of what a crash can leave: ``.tmp-`` files and unreferenced photos.

        ``started_at`` (this process's start, ``time.time()``): with a database of its own
        (SQLite) no other process writes photos, so a ``.tmp-`` file from before it is a write
        that a killed process never finished — removed now, not an hour later. With a shared
        database other replicas may be writing: then only after ``TMP_GRACE_S``."""
        async with self.sessions() as s:
            rows = await s.execute(select(Submission.user_pseudonym, Submission.photo_sha256).where(Submission.photo_sha256.is_not(None)))
            referenced = {(owner, sha) for owner, sha in rows}
        tmp_before = None if started_at is None else (min(started_at, time.time() - TMP_GRACE_S) if self.shared else started_at)
        return await asyncio.to_thread(self.photos.sweep, referenced, grace_s, tmp_before)

    # ------------------------------------------------------------ durable intake

    async def claim_rows(self, model, where, order_by, limit: int, values: dict, returning: tuple) -> list:
        """One conditional UPDATE that claims up to ``limit`` rows matching ``where`` (with
        ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two replicas never claim the same row) and
        returns ``returning`` of the claimed ones: the reminders' and waiting results' queues."""
        pick = select(model.id).where(where).order_by(order_by).limit(limit)
        if self.engine.dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        async with self.sessions.begin() as s:
            return list(await s.execute(update(model).where(model.id.in_(pick.scalar_subquery()), where).values(**values).returning(*returning)))

    def _insert(self, table):
        return (postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert)(table)

    async def inbox_add(self, rows: list[tuple[int, int | None, dict]], owner: str) -> set[int]:
        """(update_id, telegram user id, payload) rows, committed before the updates are
        acknowledged. Returns the ids that were new: only those are for ``owner`` to answer; an
        update already in the inbox (delivered again, here or to another replica) is not."""
        new: set[int] = set()
        at = now()
        async with self.sessions.begin() as s:
            for update_id, user_id, payload in rows:
                pseudo = None if user_id is None else self.pseudonym(user_id)
                stmt = self._insert(InboxRow).values(update_id=update_id, user_pseudonym=pseudo, received_at=at, payload=payload, owner=owner, claimed_at=at)
                if (await s.execute(stmt.on_conflict_do_nothing(index_elements=["update_id"]))).rowcount:
                    new.add(update_id)
        return new

    async def inbox_done(self, update_ids: int | list[int]) -> None:
        """Answered: the payload goes, the id stays (``INBOX_KEEP_DONE``) to recognise a repeat."""
        ids = [update_ids] if isinstance(update_ids, int) else update_ids
        async with self.sessions.begin() as s:
            await s.execute(update(InboxRow).where(InboxRow.update_id.in_(ids)).values(done_at=now(), payload=null()))  # SQL NULL, not JSON null

    async def inbox_claim(self, owner: str, stale_s: float) -> list[InboxRow]:
        """Take over unanswered updates whose owner has not refreshed them for ``stale_s``
        (0: all of them, for a single process starting after a crash). One conditional UPDATE:
        two processes never claim the same row (PostgreSQL re-checks the condition after the
        row lock; SQLite has one writer)."""
        at = now()
        async with self.sessions.begin() as s:
            rows = await s.execute(
                update(InboxRow)
                .where(InboxRow.done_at.is_(None), or_(InboxRow.claimed_at.is_(None), InboxRow.claimed_at <= at - timedelta(seconds=stale_s)))
                .values(owner=owner, claimed_at=at)
                .returning(InboxRow.update_id, InboxRow.payload)
            )
            return sorted((InboxRow(update_id=u, payload=p) for u, p in rows), key=lambda r: r.update_id)

    async def inbox_heartbeat(self, owner: str) -> int:
        """``owner`` is alive: its unanswered rows are not taken over."""
        async with self.sessions.begin() as s:
            return (await s.execute(update(InboxRow).where(InboxRow.owner == owner, InboxRow.done_at.is_(None)).values(claimed_at=now()))).rowcount

    async def inbox_purge(self, keep_s: float) -> int:
        """Forget answered updates older than ``keep_s`` (Telegram does not deliver them again)."""
        async with self.sessions.begin() as s:
            return (await s.execute(delete(InboxRow).where(InboxRow.done_at < now() - timedelta(seconds=keep_s)))).rowcount

    async def count_submissions(self) -> int:
        async with self.sessions() as s:
            return int(await s.scalar(select(func.count(Submission.id))) or 0)
