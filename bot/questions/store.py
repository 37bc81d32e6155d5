"""Questions before the result (#20): a usable photo's result waits until the user has said
which warning signs the spot shows, skipped, or let ``ANSWERS_WAIT_S`` pass.

While it waits, the result is a row in ``waiting_answers`` — not in memory — so any replica can
answer the "Done" press (webhook replicas share the database) and a process killed with
``kill -9`` loses nothing: the next pass of the overdue job of any process answers it from the
photo alone, late. The row keeps only what answering needs (the image result, the chat and
message to reply to, encrypted like reminders' chat ids) and is deleted once answered;
``/delete`` removes it too.

Sending follows the reminders' pattern: **claim** (one conditional UPDATE: unclaimed, or
claimed by a process that stopped longer than the lease ago), **send**, **delete**. A process
killed between sending and deleting answers that photo twice (at-least-once, never zero).

What the answers change is decided in ``bot/advice.py`` (:func:`bot.medical.advice.with_answers`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import BigInteger, DateTime, Integer, String, Text, delete, func, select, update
from sqlalchemy.orm import Mapped, mapped_column

from bot.infra.storage import Base, Storage, now
from inference import ScreeningResult

log = logging.getLogger(__name__)


class WaitingAnswers(Base):
    __tablename__ = "waiting_answers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_pseudonym: Mapped[str] = mapped_column(String(64), index=True)
    update_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    sealed: Mapped[str] = mapped_column(Text)  # Fernet token: chat, user, message and the image result
    language: Mapped[str] = mapped_column(String(2))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    owner: Mapped[str | None] = mapped_column(String(32))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class Waiting:
    """A claimed result, ready to answer."""

    id: int
    user_id: int
    chat_id: int
    message_id: int  # the photo: the result replies to it
    screen_id: int | None  # the question screen (its buttons are removed when answered)
    language: str
    result: ScreeningResult  # what the result message needs of it: risk, malignancy, top class
    sid: int  # the logged case (0: none)
    stored: bool  # False: the answer says nothing was kept


class Questions:
    """The ``waiting_answers`` queue on the bot's database."""

    def __init__(self, storage: Storage, key: bytes, clock=now):
        self.storage = storage
        self.fernet = Fernet(key)
        self.clock = clock

    async def add(self, user_id: int, chat_id: int, message_id: int, language: str, result: ScreeningResult, sid: int, stored: bool, update_id: int | None, wait_s: float) -> int:
        box = {"chat": chat_id, "user": user_id, "message": message_id, "screen": None, "sid": sid, "stored": stored,
               "risk": result.risk, "malignancy": result.malignancy, "top": result.top_class}  # fmt: skip
        row = WaitingAnswers(
            user_pseudonym=self.storage.pseudonym(user_id), update_id=update_id, sealed=self._seal(box), language=language, due_at=self.clock() + timedelta(seconds=wait_s)
        )
        async with self.storage.sessions.begin() as s:
            s.add(row)
            await s.flush()
            return row.id

    async def set_screen(self, wid: int, screen_id: int) -> None:
        """Remember the question screen, so that a late answer can take its buttons away."""
        async with self.storage.sessions.begin() as s:
            row = await s.get(WaitingAnswers, wid)
            if row is not None:
                box = self._open(row.sealed)
                if box is not None:
                    row.sealed = self._seal({**box, "screen": screen_id})

    async def claim(self, wid: int, user_id: int, owner: str, lease_s: float) -> Waiting | None:
        """This user's waiting result ``wid`` for ``owner``, unless it was answered (or is being
        answered by a live process)."""
        found = await self._claim((WaitingAnswers.id == wid) & (WaitingAnswers.user_pseudonym == self.storage.pseudonym(user_id)), owner, lease_s, 1)
        return found[0] if found else None

    async def overdue(self, owner: str, lease_s: float, limit: int = 50) -> list[Waiting]:
        """Results nobody answered within the wait: claimed for ``owner`` (the job sends them)."""
        return await self._claim(WaitingAnswers.due_at <= self.clock(), owner, lease_s, limit)

    async def _claim(self, where, owner: str, lease_s: float, limit: int) -> list[Waiting]:
        at = self.clock()
        free = WaitingAnswers.owner.is_(None) | (WaitingAnswers.claimed_at <= at - timedelta(seconds=lease_s))
        rows = await self.storage.claim_rows(
            WaitingAnswers, where & free, WaitingAnswers.id, limit, {"owner": owner, "claimed_at": at}, (WaitingAnswers.id, WaitingAnswers.sealed, WaitingAnswers.language)
        )
        out = []
        for wid, sealed, language in sorted(rows):
            box = self._open(sealed)
            if box is None:  # the key changed: nothing can be sent; forget it
                await self.done(wid)
                continue
            result = ScreeningResult(True, [], risk=box["risk"], malignancy=float(box["malignancy"]), top_class=box["top"])
            out.append(Waiting(wid, box["user"], box["chat"], box["message"], box["screen"], language, result, box["sid"], box["stored"]))
        return out

    async def release(self, wid: int, owner: str) -> None:
        """Sending failed (network): the next overdue pass tries again."""
        async with self.storage.sessions.begin() as s:
            await s.execute(update(WaitingAnswers).where(WaitingAnswers.id == wid, WaitingAnswers.owner == owner).values(owner=None, claimed_at=None))

    async def done(self, wid: int) -> None:
        async with self.storage.sessions.begin() as s:
            await s.execute(delete(WaitingAnswers).where(WaitingAnswers.id == wid))

    async def forget_update(self, update_id: int) -> int:
        """An update answered again after a restart is answered at once: its waiting row (if the
        crash came after it was written) must not answer it a second time."""
        async with self.storage.sessions.begin() as s:
            return (await s.execute(delete(WaitingAnswers).where(WaitingAnswers.update_id == update_id))).rowcount

    async def delete_user(self, user_id: int) -> int:
        async with self.storage.sessions.begin() as s:
            return (await s.execute(delete(WaitingAnswers).where(WaitingAnswers.user_pseudonym == self.storage.pseudonym(user_id)))).rowcount

    async def count(self) -> int:
        async with self.storage.sessions() as s:
            return await s.scalar(select(func.count()).select_from(WaitingAnswers))

    def _seal(self, box: dict) -> str:
        return self.fernet.encrypt(json.dumps(box).encode()).decode()

    def _open(self, token: str) -> dict | None:
        try:
            return json.loads(self.fernet.decrypt(token.encode()))
        except (InvalidToken, ValueError):
            log.error("a waiting result does not decrypt: REMINDER_KEY (or the pseudonym secret) changed")
            return None
