"""Reminders of followed spots: the job that claims due reminders and sends them, paced, and
their text (a low spot asks for a new photo; a spot sent to a doctor restates the deadline).

Pacing (settings REMINDER_RATE_PER_S, REMINDER_TICK_S, REMINDER_LEASE_S): at most 10
reminders/s — Telegram allows about 30 messages/s in all, and photo answers must not wait
behind a backlog (README, "Benchmarks": 10,000 due after an outage); each pass of the job
sends at most rate × tick; a claimed reminder not sent within the lease is taken over.
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
import uuid

from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter

from bot.core.context import Context
from bot.core.db import storage_failed
from bot.i18n import local_date, t
from bot.infra.runtime import seconds
from bot.medical import advice
from bot.spots.store import Due

log = logging.getLogger(__name__)


def deadline_text(lang: str, state: advice.SpotAdvice, today) -> str:
    """The deadline counted from the first result that gave this advice, or "it has passed: go now"."""
    first, deadline = local_date(state.since, lang), local_date(state.deadline, lang)
    return t(lang, "compare.deadline" if state.deadline >= today else "compare.overdue", first=first, deadline=deadline)


def noise_of(screener) -> float:
    """The model's measured repeat-photo noise in malignancy (model card ``repeat_noise``)."""
    noise = screener.card.raw.get("repeat_noise") or {}
    # Unmeasured: any rise counts as a change (beyond the 0.001 the buttons round malignancy to).
    return max(float(noise.get("malignancy_rise_p95", 0.0)), 0.001)




class Dispatcher:
    """Claims due reminders and sends them, paced; one per process (``owner``)."""

    def __init__(self, spots, rate_per_s: float = 10.0, tick_s: float = 30.0, lease_s: float = 300.0, noise: float = 0.001):
        self.spots, self.rate, self.tick, self.lease = spots, rate_per_s, tick_s, lease_s
        self.noise = noise  # the model's repeat-photo noise: what counts as "higher than last time"
        self.checked_deadlines = False  # bring_forward runs once per process, at the first pass
        self.owner = uuid.uuid4().hex

    async def run_once(self, bot) -> dict[str, int]:
        """One pass: at most rate × 0.8 tick reminders, paced at ``rate``, so a pass ends
        before the next one is due. Returns counts by outcome."""
        counts = {"sent": 0, "undeliverable": 0, "retry": 0}
        if not self.checked_deadlines:
            if moved := await self.spots.bring_forward(self.noise):
                log.warning("%d reminders were due after their spot's doctor deadline: moved to the deadline", moved)
            self.checked_deadlines = True
        t0 = time.monotonic()
        for i, due in enumerate(await self.spots.claim(self.owner, max(1, int(self.rate * self.tick * 0.8)), self.lease)):
            await asyncio.sleep(max(0.0, t0 + i / self.rate - time.monotonic()))
            counts[await self.send(bot, due)] += 1
        if any(counts.values()):
            log.info("reminders: %s", counts)
        return counts

    async def send(self, bot, due: Due) -> str:
        if due.chat_id is None:
            await self.spots.undeliverable(due.id, self.owner)
            return "undeliverable"
        lang = due.language
        name = html.escape(due.spot_name or t(lang, "spot.unnamed", date=local_date(due.last_at, lang) if due.last_at else "—"))  # the user's words in an HTML message
        text = reminder_text(lang, name, due, self.noise, self.spots.clock())
        try:
            message = await bot.send_message(due.chat_id, text, parse_mode=ParseMode.HTML)
        except Forbidden:  # the user blocked the bot: never retried
            await self.spots.undeliverable(due.id, self.owner)
            return "undeliverable"
        except BadRequest as exc:  # chat not found, or a message Telegram refuses: retrying will not help
            log.error("reminder %d refused by Telegram (%s)", due.id, exc.message)
            await self.spots.undeliverable(due.id, self.owner)
            return "undeliverable"
        except RetryAfter as exc:
            await self.spots.retry_later(due.id, self.owner, due.attempts, seconds(exc.retry_after))
            return "retry"
        except NetworkError:
            await self.spots.retry_later(due.id, self.owner, due.attempts, min(60.0 * 2**due.attempts, 6 * 3600.0))
            return "retry"
        await self.spots.sent(due.id, self.owner, message.message_id)
        return "sent"


def reminder_text(lang: str, name: str, due: Due, noise: float, today) -> str:
    """A low spot's reminder asks for a new photo; a spot that was sent to a doctor gets its
    own reminder: the deadline (counted from the first result that gave it), "if you have not
    seen a doctor yet, go now", and the polyclinic path."""
    last = local_date(due.last_at, lang) if due.last_at else "—"
    risk = t(lang, f"risk.{due.last_risk or 'low'}")
    state = advice.follow(due.history, noise) if due.history else None
    if state is None or state.deadline is None:
        return advice.advice_text(lang, "spot.reminder", name=name, date=last, risk=risk)
    return "\n".join(
        [
            t(lang, "spot.reminder_doctor", name=name, date=last, risk=risk),
            state.advice.text(lang),
            deadline_text(lang, state, today),
            "",
            t(lang, "referral.path"),
            "",
            t(lang, "spot.reminder_doctor_photo"),
        ]
    )


async def send_reminders(context: Context) -> None:
    """The JobQueue job: due reminders go out; a database that is down is tried at the next tick."""
    try:
        await context.bot_data.dispatcher.run_once(context.bot)
    except Exception as exc:  # noqa: BLE001
        log.warning("reminder pass failed (%s); trying again at the next tick", type(exc).__name__)
        storage_failed(context, "reminders")
