"""The per-user photo limit shared by replicas through the real Redis (127.0.0.1:6379)."""

from __future__ import annotations

import logging
import socket
import uuid

import pytest

from bot.infra.ratelimit import RateLimiter, RedisRateLimiter

from .proxy import free_port


def redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


needs_redis = pytest.mark.skipif(not redis_up(), reason="no Redis server at 127.0.0.1:6379 (.ci/run starts one)")


def pseudonym(uid: int) -> str:
    import hashlib

    return hashlib.sha256(b"test:%d" % uid).hexdigest()


@needs_redis
async def test_two_replicas_share_one_window():
    prefix = f"test:{uuid.uuid4().hex}:"  # a clean namespace on a shared server
    replicas = [RedisRateLimiter(3, 60, "redis://127.0.0.1:6379/0", pseudonym, prefix=prefix) for _ in range(2)]
    try:
        verdicts = [await replicas[i % 2].check(42) for i in range(7)]
        assert [allowed for allowed, _ in verdicts] == [True, True, True, False, False, False, False], "3 in total, not 3 per replica"
        assert [warn for _, warn in verdicts].count(True) == 1, "one warning per window, whichever replica gives it"
        assert await replicas[1].check(43) == (True, False), "other users are not affected"
        keys = {k.decode().removeprefix(prefix) async for k in replicas[0].redis.scan_iter(prefix + "*")}
        assert keys == {pseudonym(42)[:32], pseudonym(42)[:32] + ":warned", pseudonym(43)[:32]}, "keyed by pseudonym, never the Telegram id"
    finally:
        for r in replicas:
            await r.redis.delete(*[k async for k in r.redis.scan_iter(prefix + "*")] or ["none"])
            await r.close()


@needs_redis
async def test_window_slides():
    prefix = f"test:{uuid.uuid4().hex}:"
    limiter = RedisRateLimiter(1, 0.3, "redis://127.0.0.1:6379/0", pseudonym, prefix=prefix)
    try:
        assert (await limiter.check(1))[0] and not (await limiter.check(1))[0]
        import asyncio

        await asyncio.sleep(0.4)
        assert (await limiter.check(1))[0], "allowed again once the window has passed"
    finally:
        await limiter.close()


async def test_redis_down_falls_back_to_this_process(caplog):
    limiter = RedisRateLimiter(2, 60, f"redis://127.0.0.1:{free_port()}/0", pseudonym)  # nothing listens there
    with caplog.at_level(logging.WARNING):
        verdicts = [await limiter.check(5) for _ in range(4)]
    await limiter.close()
    assert verdicts == [(True, False), (True, False), (False, True), (False, False)], "still bounded, per process"
    assert sum("Redis unavailable" in r.message for r in caplog.records) == 1, "said once, not per photo"


def test_local_limiter_is_the_same_window():
    limiter = RateLimiter(limit=1, window_s=60)
    assert limiter.check_now(1) == (True, False) and limiter.check_now(1) == (False, True)
