"""Follow a spot over time: spots, their checks, and reminders that are sent exactly once (#13).

A reminder needs the chat id, which the pseudonymised store never keeps otherwise. It is kept
only for a user who asked for a reminder, encrypted with Fernet (``cryptography``) under
``REMINDER_KEY`` (or a key derived from the pseudonym secret), and erased when the reminder is
sent, stopped, undeliverable, or the user withdraws consent or deletes their data.

Sending, in transactions:

1. **claim**: due ``pending`` rows (and ``claimed`` rows whose claimer stopped for longer than
   the lease) become ``claimed`` by this process — one conditional UPDATE, with
   ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two processes never claim the same row;
2. **send**, paced under Telegram's limits and leaving room for photo answers;
3. **mark** ``sent`` (the chat id is erased), or ``undeliverable`` (403: the user blocked the
   bot; never retried), or back to ``pending`` with a later ``next_try_at`` (429, network).

A process killed after claiming and before sending leaves a ``claimed`` row: it is taken over
after the lease and sent once. A process killed between sending and marking sends that one
reminder again (at-least-once at that single point; tests/test_spots.py measures it).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import (
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
    false,
    select,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column

from bot.infra.storage import Base, Storage, Submission, now
from bot.medical.advice import add_period, follow

log = logging.getLogger(__name__)

PENDING, CLAIMED, SENT, UNDELIVERABLE, STOPPED = "pending", "claimed", "sent", "undeliverable", "stopped"
# Reminder intervals per level and the deadlines they come before: bot/advice.py (REMINDERS).
#: Give up on a reminder after this many failed tries (network, 429), spread over about a day.
MAX_ATTEMPTS = 8


class Spot(Base):
    __tablename__ = "spots"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_pseudonym: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    prompt_message_id: Mapped[int | None] = mapped_column(BigInteger)  # "reply with a name" (any replica can read it)


class SpotCheck(Base):
    """One screening of a spot: the level and malignancy always; the photo only through the
    consenting user's logged case (``submission_id``)."""

    __tablename__ = "spot_checks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    spot_id: Mapped[int] = mapped_column(ForeignKey("spots.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    risk: Mapped[str] = mapped_column(String(10))
    malignancy: Mapped[float] = mapped_column(Float)
    submission_id: Mapped[int | None] = mapped_column(Integer)
    # A warning sign was ticked for this photo (before its result, or after it): the spot's
    # advice is at least "see a doctor within the signs interval" from this check on.
    signs: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Reminder(Base):
    __tablename__ = "reminders"
    __table_args__ = (Index("ix_reminders_queue", "status", "next_try_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    spot_id: Mapped[int] = mapped_column(ForeignKey("spots.id", ondelete="CASCADE"), index=True)
    user_pseudonym: Mapped[str] = mapped_column(String(64), index=True)
    chat: Mapped[str | None] = mapped_column(Text)  # Fernet token of the chat id; erased once done
    language: Mapped[str] = mapped_column(String(2))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    next_try_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    claimed_by: Mapped[str | None] = mapped_column(String(32))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    message_id: Mapped[int | None] = mapped_column(BigInteger)


def last_check(spot_id: int):
    """The query for a spot's most recent check."""
    return select(SpotCheck).where(SpotCheck.spot_id == spot_id).order_by(SpotCheck.created_at.desc(), SpotCheck.id.desc()).limit(1)


def fernet_key(setting: str, pseudonym_secret: bytes) -> bytes:
    """``REMINDER_KEY`` (a Fernet key) if set, else one derived from the pseudonym secret."""
    if setting:
        return setting.encode()
    return base64.urlsafe_b64encode(hashlib.sha256(b"reminders:" + pseudonym_secret).digest())


@dataclass
class Due:
    """A claimed reminder, ready to send."""

    id: int
    chat_id: int | None
    language: str
    spot_id: int
    spot_name: str | None
    last_at: datetime | None
    last_risk: str | None
    attempts: int
    history: list[tuple[datetime, str, float]]  # the spot's checks, oldest first (advice.follow)


class Spots:
    """Spots, checks and the reminder queue on the bot's database."""

    def __init__(self, storage: Storage, key: bytes, clock=now):
        self.storage = storage
        self.fernet = Fernet(key)
        self.clock = clock  # injected by tests to move time forward

    # ------------------------------------------------------------ spots

    async def create(self, telegram_id: int, chat_id: int, language: str, risk: str, malignancy: float, submission_id: int | None, period: tuple[int, str], signs: bool = False) -> tuple[Spot, Reminder]:
        """A new spot with its first check and a reminder after ``period`` (``advice.REMINDERS``);
        ``signs``: a warning sign was ticked for that photo."""
        pseudo = self.storage.pseudonym(telegram_id)
        at = self.clock()
        async with self.storage.sessions.begin() as s:
            spot = Spot(user_pseudonym=pseudo, created_at=at)
            s.add(spot)
            await s.flush()
            s.add(SpotCheck(spot_id=spot.id, created_at=at, risk=risk, malignancy=malignancy, submission_id=submission_id or None, signs=signs))
            reminder = self._reminder(spot.id, pseudo, chat_id, language, add_period(at, period))
            s.add(reminder)
        return spot, reminder

    def _reminder(self, spot_id: int, pseudo: str, chat_id: int, language: str, due: datetime) -> Reminder:
        return Reminder(
            spot_id=spot_id, user_pseudonym=pseudo, chat=self.fernet.encrypt(str(chat_id).encode()).decode(), language=language, due_at=due, next_try_at=due, status=PENDING, attempts=0
        )

    async def list(self, telegram_id: int) -> list[tuple[Spot, SpotCheck | None, Reminder | None]]:
        """The user's spots that are not stopped, with their last check and pending reminder."""
        pseudo = self.storage.pseudonym(telegram_id)
        async with self.storage.sessions() as s:
            spots = list(await s.scalars(select(Spot).where(Spot.user_pseudonym == pseudo, Spot.stopped_at.is_(None)).order_by(Spot.id)))
            out = []
            for spot in spots:
                check = await s.scalar(last_check(spot.id))
                reminder = await s.scalar(select(Reminder).where(Reminder.spot_id == spot.id, Reminder.status.in_((PENDING, CLAIMED))).order_by(Reminder.due_at).limit(1))
                out.append((spot, check, reminder))
            return out

    async def _own(self, s, telegram_id: int, spot_id: int) -> Spot | None:
        """The spot if it is this user's and still followed (every change checks this)."""
        spot = await s.get(Spot, spot_id)
        return spot if spot is not None and spot.user_pseudonym == self.storage.pseudonym(telegram_id) and spot.stopped_at is None else None

    @staticmethod
    async def _stop_pending(s, *where) -> int:
        """Pending (or claimed) reminders matching ``where`` stop, and their chat ids go."""
        return (await s.execute(update(Reminder).where(*where, Reminder.status.in_((PENDING, CLAIMED))).values(status=STOPPED, chat=None))).rowcount

    async def get(self, telegram_id: int, spot_id: int) -> Spot | None:
        async with self.storage.sessions() as s:
            return await self._own(s, telegram_id, spot_id)

    async def set_prompt(self, spot_id: int, message_id: int) -> None:
        async with self.storage.sessions.begin() as s:
            await s.execute(update(Spot).where(Spot.id == spot_id).values(prompt_message_id=message_id))

    async def spot_of_prompt(self, telegram_id: int, message_id: int) -> int | None:
        async with self.storage.sessions() as s:
            return await s.scalar(select(Spot.id).where(Spot.user_pseudonym == self.storage.pseudonym(telegram_id), Spot.prompt_message_id == message_id, Spot.stopped_at.is_(None)))

    async def rename(self, telegram_id: int, spot_id: int, name: str) -> bool:
        async with self.storage.sessions.begin() as s:
            spot = await self._own(s, telegram_id, spot_id)
            if spot is None:
                return False
            spot.name = name.strip()[:64] or None
            return True

    async def stop(self, telegram_id: int, spot_id: int) -> Spot | None:
        """Stop following a spot: its pending reminder goes, with the chat id. Returns the spot
        (None if it is not this user's, or already stopped)."""
        async with self.storage.sessions.begin() as s:
            spot = await self._own(s, telegram_id, spot_id)
            if spot is not None:
                spot.stopped_at = self.clock()
                await self._stop_pending(s, Reminder.spot_id == spot_id)
            return spot

    async def reschedule(self, telegram_id: int, chat_id: int, language: str, spot_id: int, period: tuple[int, str], not_after: datetime | None = None) -> tuple[Spot, Reminder] | None:
        """Replace the spot's pending reminder with one after ``period``, but never after
        ``not_after`` (a doctor deadline still ahead): (spot, new reminder)."""
        async with self.storage.sessions.begin() as s:
            spot = await self._own(s, telegram_id, spot_id)
            if spot is None:
                return None
            await self._stop_pending(s, Reminder.spot_id == spot_id)
            due = add_period(self.clock(), period)
            if not_after is not None and self.clock() < not_after < due:
                due = not_after
            reminder = self._reminder(spot_id, spot.user_pseudonym, chat_id, language, due)
            s.add(reminder)
        return spot, reminder

    async def history(self, spot_id: int, session=None) -> list[tuple[datetime, str, float, bool]]:
        """The spot's checks, oldest first, as ``advice.follow`` reads them."""
        return (await self.histories([spot_id], session)).get(spot_id, [])

    async def histories(self, spot_ids: list[int], session=None) -> dict[int, list[tuple[datetime, str, float, bool]]]:
        """Several spots' checks in one query: spot id → its checks, oldest first."""
        if session is None:
            async with self.storage.sessions() as s:
                return await self.histories(spot_ids, s)
        out: dict[int, list[tuple[datetime, str, float, bool]]] = {}
        if not spot_ids:
            return out
        query = (
            select(SpotCheck.spot_id, SpotCheck.created_at, SpotCheck.risk, SpotCheck.malignancy, SpotCheck.signs)
            .where(SpotCheck.spot_id.in_(spot_ids))
            .order_by(SpotCheck.spot_id, SpotCheck.created_at, SpotCheck.id)
        )
        for spot_id, at, risk, mal, signs in await session.execute(query):
            # SQLite hands back naive datetimes (stored UTC); deadlines are compared with aware ones.
            out.setdefault(spot_id, []).append((at if at.tzinfo else at.replace(tzinfo=UTC), risk, mal, bool(signs)))
        return out

    async def add_check(self, spot_id: int, risk: str, malignancy: float, submission_id: int | None, signs: bool = False) -> SpotCheck | None:
        """The new check, after returning the previous one (None for the first)."""
        async with self.storage.sessions.begin() as s:
            previous = await s.scalar(last_check(spot_id))
            s.add(SpotCheck(spot_id=spot_id, created_at=self.clock(), risk=risk, malignancy=malignancy, submission_id=submission_id or None, signs=signs))
            return previous

    async def signs_at(self, telegram_id: int, spot_id: int, within: tuple[int, str]) -> bool:
        """A warning sign was ticked after the spot's latest check (its comparison's questions):
        mark that check, so the spot's advice and deadline follow from now on, and bring its
        pending reminder to no later than ``within`` from now (``advice.RECOMMENDED["signs"]``)."""
        at = self.clock()
        async with self.storage.sessions.begin() as s:
            if await self._own(s, telegram_id, spot_id) is None:
                return False
            check = await s.scalar(last_check(spot_id))
            if check is None:
                return False
            check.signs = True
            latest = add_period(at, within)
            for reminder in await s.scalars(select(Reminder).where(Reminder.spot_id == spot_id, Reminder.status == PENDING)):
                due = reminder.due_at if reminder.due_at.tzinfo else reminder.due_at.replace(tzinfo=UTC)
                if due > latest:
                    reminder.due_at = reminder.next_try_at = latest
            return True

    async def photo_of(self, telegram_id: int, submission_id: int | None) -> bytes | None:
        """The stored photo of a logged case (a check's ``submission_id``; consenting users
        only), or None."""
        if not submission_id:
            return None
        async with self.storage.sessions() as s:
            sub = await s.get(Submission, submission_id)
        if sub is None or not sub.photo_sha256 or sub.user_pseudonym != self.storage.pseudonym(telegram_id):
            return None
        try:
            return await asyncio.to_thread(self.storage.photos.find(sub.user_pseudonym, sub.photo_sha256).read_bytes)
        except OSError:
            return None

    async def spot_of_message(self, telegram_id: int, message_id: int) -> int | None:
        """The spot whose reminder was this message (a photo sent as a reply attaches to it)."""
        async with self.storage.sessions() as s:
            return await s.scalar(
                select(Reminder.spot_id)
                .join(Spot, Spot.id == Reminder.spot_id)
                .where(Reminder.user_pseudonym == self.storage.pseudonym(telegram_id), Reminder.message_id == message_id, Spot.stopped_at.is_(None))
            )

    async def stop_user(self, telegram_id: int) -> int:
        """Consent withdrawn: every pending reminder stops and its chat id is erased."""
        async with self.storage.sessions.begin() as s:
            return await self._stop_pending(s, Reminder.user_pseudonym == self.storage.pseudonym(telegram_id))

    async def delete_user(self, telegram_id: int) -> int:
        """``/delete``: spots, checks and reminders. Returns how many spots."""
        pseudo = self.storage.pseudonym(telegram_id)
        async with self.storage.sessions.begin() as s:
            ids = list(await s.scalars(select(Spot.id).where(Spot.user_pseudonym == pseudo)))
            await s.execute(delete(Reminder).where(Reminder.user_pseudonym == pseudo))
            if ids:
                await s.execute(delete(SpotCheck).where(SpotCheck.spot_id.in_(ids)))
            await s.execute(delete(Spot).where(Spot.user_pseudonym == pseudo))
        return len(ids)

    # ------------------------------------------------------------ the queue

    async def bring_forward(self, noise: float) -> int:
        """Pending reminders due after their spot's doctor deadline come at the deadline (now,
        if it has passed). Reminders made before the intervals followed the level (a high spot
        reminded in 6 months) would otherwise arrive after the visit should have happened.
        Returns how many moved."""
        at = self.clock()
        moved = 0
        async with self.storage.sessions.begin() as s:
            pending = list(await s.scalars(select(Reminder).where(Reminder.status == PENDING, Reminder.due_at > at)))
            histories = await self.histories(sorted({r.spot_id for r in pending}), s)
            for reminder in pending:
                history = histories.get(reminder.spot_id)
                deadline = follow(history, noise).deadline if history else None
                due = reminder.due_at if reminder.due_at.tzinfo else reminder.due_at.replace(tzinfo=UTC)
                if deadline is not None and due > deadline:
                    reminder.due_at = reminder.next_try_at = max(at, deadline)
                    moved += 1
        return moved

    async def claim(self, owner: str, limit: int, lease_s: float) -> list[Due]:
        """Claim up to ``limit`` due reminders for ``owner`` (see the module docstring)."""
        at = self.clock()
        due = (Reminder.status == PENDING) & (Reminder.next_try_at <= at)
        stale = (Reminder.status == CLAIMED) & (Reminder.claimed_at <= at - timedelta(seconds=lease_s))
        rows = await self.storage.claim_rows(
            Reminder, due | stale, Reminder.next_try_at, limit, {"status": CLAIMED, "claimed_by": owner, "claimed_at": at},
            (Reminder.id, Reminder.chat, Reminder.language, Reminder.spot_id, Reminder.attempts),
        )  # fmt: skip
        out = []  # what the message needs, read after the claim commits (SQLite's write lock is free again)
        async with self.storage.sessions() as s:
            histories = await self.histories(sorted({row[3] for row in rows}), s)
            for rid, chat, language, spot_id, attempts in rows:
                spot = await s.get(Spot, spot_id)
                history = histories.get(spot_id, [])
                last = history[-1] if history else (None, None, None)
                out.append(Due(rid, self._chat(chat), language, spot_id, spot.name if spot else None, last[0], last[1], attempts, history))
        return sorted(out, key=lambda d: d.id)

    def _chat(self, token: str | None) -> int | None:
        if not token:
            return None
        try:
            return int(self.fernet.decrypt(token.encode()))
        except (InvalidToken, ValueError):
            log.error("a reminder's chat id does not decrypt: REMINDER_KEY (or the pseudonym secret) changed")
            return None

    async def sent(self, rid: int, owner: str, message_id: int) -> bool:
        """Mark sent (only by its claimer); the chat id is erased."""
        async with self.storage.sessions.begin() as s:
            result = await s.execute(
                update(Reminder).where(Reminder.id == rid, Reminder.claimed_by == owner, Reminder.status == CLAIMED).values(status=SENT, sent_at=self.clock(), chat=None, message_id=message_id)
            )
            return bool(result.rowcount)

    async def undeliverable(self, rid: int, owner: str, **values: object) -> None:
        """Never tried again (blocked, refused, too many tries); the chat id goes."""
        await self._mark(rid, owner, status=UNDELIVERABLE, chat=None, **values)

    async def retry_later(self, rid: int, owner: str, attempts: int, delay_s: float) -> None:
        """Back to pending after ``delay_s``; undeliverable after ``MAX_ATTEMPTS`` tries."""
        if attempts + 1 >= MAX_ATTEMPTS:
            await self.undeliverable(rid, owner, attempts=attempts + 1)
        else:
            await self._mark(rid, owner, status=PENDING, claimed_by=None, attempts=attempts + 1, next_try_at=self.clock() + timedelta(seconds=delay_s))

    async def _mark(self, rid: int, owner: str, **values: object) -> None:
        """Change a reminder this process claimed (never one another process took over)."""
        async with self.storage.sessions.begin() as s:
            await s.execute(update(Reminder).where(Reminder.id == rid, Reminder.claimed_by == owner).values(**values))
