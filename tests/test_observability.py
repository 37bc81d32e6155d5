"""/healthz, /readyz and /metrics, and that the metrics move (#12, part 2)."""

import asyncio
import logging
import socket
import sqlite3

import httpx

from .conftest import needs_shared
from .test_bot_e2e import accepted_photo, start_user

pytestmark = needs_shared


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metric(text: str, name: str) -> float:
    """The value of one sample line (``name`` includes its labels)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


async def test_health_readiness_and_metrics_that_move(bot_factory):
    port = free_port()
    h = await bot_factory(health_port=port)
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.get(base + "/healthz")).status_code == 200
        ready = await client.get(base + "/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {"model": True, "data_folder": True, "database": True}
        before = (await client.get(base + "/metrics")).text
        assert 'bot_model_info{version="' in before

        n = await start_user(h, 61, "en", "yes")
        _, photo = accepted_photo(h)
        h.fake.send_photo(61, photo, "en")
        h.fake.send_photo(61, b"not an image at all", "en")
        await h.fake.replies(61, 2, since=n)
        after = (await client.get(base + "/metrics")).text
        assert metric(after, "bot_photos_screened_total") == metric(before, "bot_photos_screened_total") + 2
        assert metric(after, 'bot_updates_total{type="message_photo"}') >= 2
        assert metric(after, 'bot_updates_total{type="callback_query"}') >= 1
        assert metric(after, 'bot_rejections_total{reason="unsupported_format"}') == 1
        assert sum(metric(after, f'bot_risk_total{{level="{lvl}"}}') for lvl in ("low", "moderate", "high")) == 1
        assert metric(after, "bot_screening_seconds_count") == 2
        assert "bot_screening_queue 0.0" in after

        # A locked database: not ready, and a photo's storage failure is counted.
        # Taken in a thread: the bot runs on this event loop, and a blocking wait here would stop the
        # very write it waits for (the done marks are committed every 50 ms) — "database is locked".
        lock = sqlite3.connect(h.settings.data_dir / "bot.sqlite3", isolation_level=None, check_same_thread=False, timeout=30)
        await asyncio.to_thread(lock.execute, "BEGIN EXCLUSIVE")
        try:
            ready = await client.get(base + "/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["database"] is False
            h.fake.send_photo(61, photo, "en")
            await h.fake.replies(61, 1, since=n + 2, timeout=20)
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        failures = (await client.get(base + "/metrics")).text
        assert sum(metric(failures, f'bot_storage_failures_total{{op="{op}"}}') for op in ("inbox", "submission", "read_user")) >= 1


async def test_retention_runs_daily_and_removes_old_cases(bot_factory, caplog):
    """The daily job applies RETENTION_DAYS: old cases (rows and photo files) go, recent ones stay."""
    from datetime import timedelta

    from sqlalchemy import select, update

    from bot.infra.storage import CONSENT_YES, Submission, now
    from inference.decode import encode_jpeg

    from .conftest import skin_with_spot
    from .test_storage import result_fields

    bot = await bot_factory(retention_days=30)
    (job,) = bot.app.job_queue.get_jobs_by_name("retention")
    assert job.job.trigger.interval == timedelta(days=1)
    storage = bot.storage
    await storage.upsert_user(5, language="en", consent=CONSENT_YES)
    old = await storage.add_submission(5, encode_jpeg(skin_with_spot(size=(240, 320), seed=1)), **result_fields())
    recent = await storage.add_submission(5, encode_jpeg(skin_with_spot(size=(240, 320), seed=2)), **result_fields())
    async with storage.sessions.begin() as s:
        await s.execute(update(Submission).where(Submission.id == old).values(created_at=now() - timedelta(days=31)))
    with caplog.at_level(logging.INFO, logger="bot.app"):
        await job.run(bot.app)
    async with storage.sessions() as s:
        assert list(await s.scalars(select(Submission.id))) == [recent]
    assert len([p for p in storage.photos.root.rglob("*.jpg")]) == 1
    assert any("retention: removed 1 cases and 1 photo files older than 30 days" in r.getMessage() for r in caplog.records)
