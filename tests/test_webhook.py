"""Webhook mode serves the path of WEBHOOK_URL and checks the secret token (#12, part 1).

The bot runs as ``python -m bot`` in webhook mode; this test posts updates to it as Telegram
(or a reverse proxy that forwards the path unchanged) would.
"""

import asyncio
import json
import socket

import httpx

from .bot_process import BotProcess, bot_env
from .conftest import needs_shared
from .fake_telegram import FakeTelegram

pytestmark = needs_shared


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_webhook_serves_the_url_path_and_checks_the_secret(tmp_path):
    fake = FakeTelegram()
    await fake.start()
    port = free_port()
    env = bot_env(fake, tmp_path / "data", WEBHOOK_URL="https://bot.example.org/tg", WEBHOOK_LISTEN="127.0.0.1",
                  WEBHOOK_PORT=str(port), WEBHOOK_SECRET_TOKEN="s3cret-hook")
    bot = await BotProcess(env, tmp_path / "bot.log").start()
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            for _ in range(300):
                try:
                    await client.get(f"http://127.0.0.1:{port}/")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            fake.send_text(7001, "/start", "kk")
            update = fake.updates.pop()  # delivered by POST instead of getUpdates
            body = json.dumps(update)
            headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": "s3cret-hook"}
            root = await client.post(f"http://127.0.0.1:{port}/", content=body, headers=headers)
            wrong = await client.post(f"http://127.0.0.1:{port}/tg", content=body, headers={**headers, "X-Telegram-Bot-Api-Secret-Token": "nope"})
            ok = await client.post(f"http://127.0.0.1:{port}/tg", content=body, headers=headers)
        assert root.status_code == 404, "only the path of WEBHOOK_URL is served"
        assert wrong.status_code == 403
        assert ok.status_code == 200
        (welcome, notice) = await fake.replies(7001, 2, timeout=30)
        assert "consent:yes" in json.dumps(notice.get("reply_markup"))
        hooks = [c[1] for c in fake.calls if c[0] == "setWebhook"]
        assert hooks and hooks[0]["url"] == "https://bot.example.org/tg"
        assert await bot.stop() == 0
    finally:
        if bot.proc.returncode is None:
            await bot.kill()
        await fake.stop()


def test_the_compose_nginx_config_is_the_tested_one():
    """compose.yaml's nginx config is deploy/nginx/kz-skin-bot.conf (which tests/test_proxy.py
    runs) with the markers filled in, not a hand-edited copy that drifts."""
    from .conftest import ROOT
    from .proxy import render_site

    rendered = render_site(
        UPSTREAMS='server bot:8443 max_fails=1 fail_timeout=2s;  # compose resolves "bot" to every replica at start',
        LISTEN="443", SERVER_NAME="_", CERT="/etc/nginx/tls/cert.pem", KEY="/etc/nginx/tls/key.pem", PATH="/tg",
    )
    compose = (ROOT / "deploy" / "nginx" / "compose.conf").read_text()
    body = lambda text: text[text.index("upstream "):]  # noqa: E731 - the header comments differ
    assert body(compose) == body(rendered)
    assert "deploy/nginx/compose.conf" in (ROOT / "compose.yaml").read_text()
