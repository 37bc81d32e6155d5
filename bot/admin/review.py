"""Maintainers' side of the data: review queue, verdicts, statistics, export and retention.

Shared by the Telegram admin commands (``bot.admin.handlers``) and the command line
(``python -m bot.admin``), so ``/stats`` and ``bot.admin stats`` print the same figures.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import hmac
import secrets
import shutil
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from bot.infra.storage import Base, InboxRow, Storage, Submission, now
from inference.labels import CLASSES, MALIGNANT

#: Verdict buttons; "skip" moves on without storing anything.
VERDICTS = ("agree", "benign", "suspicious", "malignant", "unusable")
REVIEW_CHOICES = (*VERDICTS, "skip")


class Verdict(Base):
    __tablename__ = "verdicts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"), index=True)
    reviewer: Mapped[str] = mapped_column(String(64))  # the reviewer's pseudonym, never a Telegram id
    verdict: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


def agrees(verdict: str, risk: str | None) -> bool | None:
    """Does a reviewer's verdict agree with the model's risk level? None when it cannot say."""
    if verdict == "agree":
        return True
    if verdict == "benign":
        return risk == "low"
    if verdict in ("suspicious", "malignant"):
        return risk in ("moderate", "high")
    return None  # unusable photo: not a judgement of the model


@dataclass
class Case:
    submission: Submission
    verdicts: list[Verdict]


class Review:
    def __init__(self, storage: Storage):
        self.storage = storage

    async def next_case(self, skip: set[int] = frozenset()) -> Case | None:
        """The oldest case nobody has judged yet (``skip``: ids this reviewer skipped)."""
        async with self.storage.sessions() as s:
            q = select(Submission).where(Submission.review_status == "unreviewed").order_by(Submission.created_at, Submission.id)
            if skip:
                q = q.where(Submission.id.not_in(skip))
            sub = (await s.scalars(q.limit(1))).first()
            return Case(sub, []) if sub else None

    async def case(self, sid: int) -> Case | None:
        async with self.storage.sessions() as s:
            sub = await s.get(Submission, sid)
            if sub is None:
                return None
            verdicts = list(await s.scalars(select(Verdict).where(Verdict.submission_id == sid).order_by(Verdict.created_at, Verdict.id)))
            return Case(sub, verdicts)

    async def add_verdict(self, sid: int, reviewer_telegram_id: int, verdict: str) -> int | None:
        if verdict not in VERDICTS:
            raise ValueError(verdict)
        async with self.storage.sessions.begin() as s:
            sub = await s.get(Submission, sid)
            if sub is None:
                return None
            v = Verdict(submission_id=sid, reviewer=self.storage.pseudonym(reviewer_telegram_id), verdict=verdict)
            s.add(v)
            sub.review_status = "reviewed"
            await s.flush()
            return v.id

    async def add_note(self, verdict_id: int, reviewer_telegram_id: int, note: str) -> bool:
        async with self.storage.sessions.begin() as s:
            v = await s.get(Verdict, verdict_id)
            if v is None or v.reviewer != self.storage.pseudonym(reviewer_telegram_id):
                return False
            v.note = note[:2000]
            return True

    async def stats(self, days: int) -> dict:
        since = now() - timedelta(days=days)
        async with self.storage.sessions() as s:
            subs = list(await s.scalars(select(Submission).where(Submission.created_at >= since)))
            ids = [x.id for x in subs]
            verdicts = list(await s.scalars(select(Verdict).where(Verdict.submission_id.in_(ids)))) if ids else []
        risk_of = {x.id: x.risk for x in subs}
        model_of = {x.id: x.model_version for x in subs}
        per_model: dict[str, list[bool]] = {}
        for v in verdicts:
            a = agrees(v.verdict, risk_of[v.submission_id])
            if a is not None:
                per_model.setdefault(model_of[v.submission_id], []).append(a)
        by_case = Counter(v.submission_id for v in verdicts)
        disputed = sum(1 for sid, n in by_case.items() if n > 1 and len({v.verdict for v in verdicts if v.submission_id == sid}) > 1)
        return {
            "days": days,
            "submissions": len(subs),
            "accepted": sum(x.accepted for x in subs),
            "rejected_by_reason": dict(Counter(r for x in subs if not x.accepted for r in x.reasons).most_common()),
            "risk": dict(Counter(x.risk for x in subs if x.accepted)),
            "languages": dict(Counter(x.language for x in subs)),
            "regions": dict(Counter(x.region or "—" for x in subs)),
            "reviewed_share": round(sum(x.review_status == "reviewed" for x in subs) / len(subs), 3) if subs else 0.0,
            "verdicts": len(verdicts),
            "disputed_cases": disputed,
            "agreement_by_model": {m: {"n": len(a), "agree": round(sum(a) / len(a), 3)} for m, a in per_model.items()},
        }

    async def purge(self, older_than_days: int) -> tuple[int, int]:
        """Retention: delete cases older than N days (verdicts go with them) and their files."""
        cutoff = now() - timedelta(days=older_than_days)
        async with self.storage.sessions.begin() as s:
            old = list(await s.scalars(select(Submission).where(Submission.created_at < cutoff)))
            files = {(x.user_pseudonym, x.photo_sha256) for x in old if x.photo_sha256}
            shas = {sha for _, sha in files}
            ids = [x.id for x in old]
            if ids:
                await s.execute(delete(Verdict).where(Verdict.submission_id.in_(ids)))
                await s.execute(delete(Submission).where(Submission.id.in_(ids)))
            rows = await s.execute(select(Submission.user_pseudonym, Submission.photo_sha256).where(Submission.photo_sha256.in_(shas))) if shas else []
            kept = {(owner, sha) for owner, sha in rows}  # the same photo in a newer case of the same user
            await s.execute(delete(InboxRow).where(InboxRow.received_at < cutoff))
        removed = await asyncio.to_thread(self.storage.photos.remove_all, files - kept)
        return len(ids), removed

    async def export(self, out: Path, since: datetime | None = None, reviewed_only: bool = False) -> dict[str, int]:
        """Photos + ``labels.csv`` that ``training.data.read_source`` reads as one more source.

        Columns: image, label (class or empty when the verdict does not determine one),
        modality, malignant (1/0/empty), group (per-export salted hash of the user, so a split
        keeps one person's photos together), verdict, model_risk, model_top, model_version,
        created_at, advice_days (what the user was told: "14", "30" days or "watch"; empty for
        cases from before it was kept), and the user's answers in PAD-UFES-20's columns (itch, grew, hurt, changed,
        bleed, elevation: True / False, empty when not asked — "raised" is asked only before the
        result), so ``training.answers``-style fusions can learn from the bot's own users.
        No Telegram id and no pseudonym leaves the database.
        """
        async with self.storage.sessions() as s:
            q = select(Submission).where(Submission.photo_sha256.is_not(None)).order_by(Submission.id)
            if since:
                q = q.where(Submission.created_at >= since)
            if reviewed_only:
                q = q.where(Submission.review_status == "reviewed")
            subs = list(await s.scalars(q))
            verdicts = list(await s.scalars(select(Verdict).where(Verdict.submission_id.in_([x.id for x in subs])).order_by(Verdict.created_at))) if subs else []
        latest = {v.submission_id: v.verdict for v in verdicts}
        # Copying photos and writing the CSV is blocking file I/O: keep it off the event loop.
        return await asyncio.to_thread(self._write_export, Path(out), subs, latest)

    def _write_export(self, out: Path, subs: list[Submission], latest: dict[int, str]) -> dict[str, int]:
        (out / "images").mkdir(parents=True, exist_ok=True)
        salt = secrets.token_bytes(16)
        counts = Counter()
        with open(out / "labels.csv", "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["image", "label", "modality", "malignant", "group", "verdict", "model_risk", "model_top", "model_version", "created_at", "advice_days", *ANSWER_COLUMNS])
            for sub in subs:
                src = self.storage.photos.find(sub.user_pseudonym, sub.photo_sha256)
                if not src.exists():
                    counts["missing_file"] += 1
                    continue
                name = f"images/{sub.photo_sha256}.jpg"
                shutil.copyfile(src, out / name)
                verdict = latest.get(sub.id, "")
                top = max(sub.probabilities, key=sub.probabilities.get) if sub.probabilities else ""
                label, malignant = label_from(verdict, top)
                group = hmac.new(salt, sub.user_pseudonym.encode(), hashlib.sha256).hexdigest()[:16]
                answers = sub.followup or {}
                asked = [str(answers[k]) if isinstance(answers.get(k), bool) else "" for k in ANSWER_COLUMNS.values()]
                w.writerow([name, label, "clinical", malignant, group, verdict, sub.risk or "", top, sub.model_version, sub.created_at.isoformat(), sub.advice_days or "", *asked])
                counts["labelled" if label else "unlabelled"] += 1
        return dict(counts)


#: The export's answer columns (PAD-UFES-20's names) → the bot's sign keys.
#: After PAD's six, the answers NICE NG12's checklist adds (bot.medical.advice.SIGN_ITEMS).
ANSWER_COLUMNS = {
    "itch": "itched",
    "grew": "grew",
    "hurt": "hurt",
    "changed": "changed",
    "bleed": "bled",
    "elevation": "elevated",
    "shape_colour": "shape_colour",
    "wider_7mm": "wide",
    "inflamed": "inflamed",
}


def label_from(verdict: str, model_top: str) -> tuple[str, str]:
    """(class, malignant flag) a verdict supports; empty where it would be a guess."""
    top_malignant = model_top in MALIGNANT
    if verdict == "agree" and model_top in CLASSES:
        return model_top, "1" if top_malignant else "0"
    if verdict == "benign":
        return (model_top if model_top in CLASSES and not top_malignant else ""), "0"
    if verdict == "malignant":
        return (model_top if top_malignant else ""), "1"
    return "", ""
