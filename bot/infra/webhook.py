"""Webhook mode: Telegram (through a TLS reverse proxy such as nginx) POSTs updates here.

Unlike PTB's own webhook server, an update is written to the durable inbox (``bot.infra.intake``)
*before* the 200 that tells Telegram it was received, so ``kill -9`` loses nothing; and the
same update POSTed twice, to this or another replica, is answered once. Several processes may
serve the same ``WEBHOOK_URL`` behind one proxy, sharing PostgreSQL (docs/operations.md).

    POST <path of WEBHOOK_URL>   the update; 403 without the right secret token, 400 if it is
                                 not an update, 200 once it is stored (or, with the database
                                 down, queued: it is still answered, without the crash guarantee)
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from urllib.parse import urlsplit

import tornado.web
from telegram import Update
from telegram.ext import Application

from bot.infra.intake import Inbox, running
from bot.infra.runtime import listen

log = logging.getLogger(__name__)

#: Telegram's updates are a few kilobytes; anything bigger is not one.
MAX_BODY = 1 << 20


class _Updates(tornado.web.RequestHandler):
    def initialize(self, app: Application, inbox: Inbox, secret: str) -> None:
        self.app, self.inbox, self.secret = app, inbox, secret

    async def post(self) -> None:
        given = self.request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if self.secret and not hmac.compare_digest(given.encode(), self.secret.encode()):
            log.warning("webhook: a POST with a wrong or missing secret token was refused")
            raise tornado.web.HTTPError(403)
        try:
            update = Update.de_json(json.loads(self.request.body), self.app.bot)
        except Exception:  # noqa: BLE001 - whatever it is, it is not an update
            update = None
        if update is None:
            raise tornado.web.HTTPError(400)
        await self.inbox.accept([update])
        self.set_status(200)

    def write_error(self, status_code: int, **kwargs) -> None:
        self.finish({"ok": False, "status": status_code})  # never a traceback


def path_of(webhook_url: str) -> str:
    """The path served: the one in ``WEBHOOK_URL`` (a proxy forwards ``/tg`` unchanged)."""
    return "/" + urlsplit(webhook_url).path.strip("/")


async def serve_webhook(app: Application, settings, allowed_updates: list[str]) -> None:
    """Until SIGINT/SIGTERM: serve the webhook path, register it with Telegram, keep this
    process's claims fresh and take over a stopped replica's unanswered updates."""
    stopping = asyncio.Event()
    inbox = Inbox(app, lease_s=settings.inbox_lease_s)
    async with running(app, stopping.set):
        await inbox.take_over(settings.inbox_lease_s)  # a killed predecessor's updates, once stale
        web = tornado.web.Application([(path_of(settings.webhook_url), _Updates, {"app": app, "inbox": inbox, "secret": settings.webhook_secret_token})])
        server = await listen(web, settings.webhook_port, settings.webhook_listen, "WEBHOOK_PORT", settings.bind_wait_s, max_body_size=MAX_BODY, xheaders=True)
        keeper = asyncio.create_task(inbox.keep())
        try:
            await app.bot.set_webhook(
                settings.webhook_url,
                secret_token=settings.webhook_secret_token or None,
                allowed_updates=allowed_updates,
                max_connections=settings.webhook_max_connections,
            )
            log.info("webhook: serving %s on %s:%d (replica %s)", path_of(settings.webhook_url), settings.webhook_listen, settings.webhook_port, inbox.owner[:8])
            await stopping.wait()
        finally:
            server.stop()  # no new updates; those accepted are answered before the process exits
            keeper.cancel()
