"""Health, readiness and Prometheus metrics on a small local HTTP port, in both modes.

    GET /healthz   200 while the process runs its event loop
    GET /readyz    200 when the database takes a write, the model workers are up and the data
                   folder is writable; 503 with the failing checks otherwise
    GET /metrics   Prometheus text format

``HEALTH_PORT`` (default 9090, 0 = off) on ``HEALTH_LISTEN`` (default 127.0.0.1): keep it
behind the firewall; it says nothing about users, only counts.
"""

from __future__ import annotations

import json
import logging
import time

import tornado.web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import text

from bot.infra.runtime import listen as bind_with_retry
from bot.infra.runtime import within

log = logging.getLogger(__name__)


class Metrics:
    """One registry per application (the tests run many applications in one process)."""

    def __init__(self, model_version: str, queue_depth) -> None:
        self.registry = r = CollectorRegistry()
        self.updates = Counter("bot_updates_total", "Updates received, by type", ["type"], registry=r)
        self.photos = Counter("bot_photos_screened_total", "Photos and image files screened", registry=r)
        self.rejections = Counter("bot_rejections_total", "Photos not accepted, by reason code", ["reason"], registry=r)
        self.risk = Counter("bot_risk_total", "Accepted photos, by risk level", ["level"], registry=r)
        self.latency = Histogram("bot_screening_seconds", "Time to screen one photo (download excluded)", buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10), registry=r)
        self.storage_failures = Counter("bot_storage_failures_total", "Database or file-store operations that failed or timed out", ["op"], registry=r)
        self.telegram_errors = Counter("bot_telegram_errors_total", "Errors from the Telegram Bot API", ["kind"], registry=r)
        self.questions = Counter("bot_questions_total", "Warning-sign questions before a result, by outcome (asked, signs, none, skip, timeout)", ["outcome"], registry=r)
        self.advice = Counter("bot_advice_total", "Final advice given for a photo, by its deadline in days (14, 30) or watch; once when the result is sent, once more when a later answer raises it", ["within_days"], registry=r)
        self.swept = Counter("bot_swept_files_total", "Photo-store files removed at start-up: tmp (a write a killed process never finished), unreferenced (a photo outside every table)", ["kind"], registry=r)
        self.duplicates = Counter("bot_duplicate_updates_total", "Updates delivered again (or to another replica) and not answered twice", registry=r)
        self.queue = Gauge("bot_screening_queue", "Photos waiting for or in a screening worker", registry=r)
        self.queue.set_function(queue_depth)
        Info("bot_model", "The screening model being served", registry=r).info({"version": model_version})

    def screened(self, result, seconds: float) -> None:
        self.photos.inc()
        self.latency.observe(seconds)
        for reason in result.reasons:
            self.rejections.labels(reason).inc()
        if result.accepted and result.risk:
            self.risk.labels(result.risk).inc()


def update_type(update) -> str:
    for kind in ("callback_query", "message", "edited_message", "my_chat_member"):
        if getattr(update, kind, None) is not None:
            if kind == "message":
                msg = update.message
                for content in ("photo", "document", "text", "location", "sticker", "voice", "video"):
                    if getattr(msg, content, None):
                        return f"message_{content}"
                return "message_other"
            return kind
    return "other"


class _Health(tornado.web.RequestHandler):
    def initialize(self, app) -> None:
        self.app = app

    def get(self) -> None:
        self.write({"status": "alive"})


class _Ready(tornado.web.RequestHandler):
    def initialize(self, app) -> None:
        self.app = app

    async def get(self) -> None:
        bd = self.app.bot_data
        checks = {"model": bd.pool_ready, "data_folder": bd.storage_ok}
        t0 = time.monotonic()
        try:

            async def ping() -> None:
                # A small write, not SELECT 1: a database that can be read but not written (a
                # locked SQLite file in WAL mode, a read-only replica) cannot keep anything.
                async with bd.storage.engine.begin() as conn:
                    await conn.execute(text("DELETE FROM meta WHERE key = 'ready_probe'"))
                    await conn.execute(text("INSERT INTO meta (key, value) VALUES ('ready_probe', :v)"), {"v": str(int(time.time()))})

            await within(ping(), 2.0)
            checks["database"] = True
        except Exception as exc:  # noqa: BLE001
            checks["database"] = False
            log.warning("readiness: database check failed (%s)", type(exc).__name__)
        ok = all(checks.values())
        self.set_status(200 if ok else 503)
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps({"ready": ok, "checks": checks, "ms": round((time.monotonic() - t0) * 1000, 1)}))


class _Metrics(tornado.web.RequestHandler):
    def initialize(self, app) -> None:
        self.app = app

    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.write(generate_latest(self.app.bot_data.metrics.registry))


async def start_server(app, listen: str, port: int, wait_s: float = 0.0):
    """The health/metrics server on the running event loop; returns it (``stop()`` to close).
    A port still held is retried for ``wait_s`` (``bot.infra.runtime.listen``)."""

    web = tornado.web.Application([(r"/healthz", _Health, {"app": app}), (r"/readyz", _Ready, {"app": app}), (r"/metrics", _Metrics, {"app": app})])
    server = await bind_with_retry(web, port, listen, "HEALTH_PORT", wait_s)
    log.info("health and metrics on http://%s:%d/{healthz,readyz,metrics}", listen, port)
    return server
