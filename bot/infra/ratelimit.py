"""The per-user photo limit: in this process, or shared by all replicas through Redis.

A user who sends more than ``RATE_LIMIT_PHOTOS`` photos in ``RATE_LIMIT_WINDOW_S`` gets one
warning per window and no screening. With several replicas behind a proxy each would otherwise
allow the limit once per replica, so with ``REDIS_URL`` set the window lives in Redis (one
sorted set per user, keyed by the pseudonym, never the Telegram id). If Redis does not answer
within half a second the process's own window is used: a flood is still bounded, per replica.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable

log = logging.getLogger(__name__)


class RateLimiter:
    """Sliding window per user, in this process; tells the caller when to warn (once per window)."""

    def __init__(self, limit: int, window_s: float):
        self.limit, self.window = limit, window_s
        self.hits: dict[int, deque[float]] = defaultdict(deque)
        self.warned: dict[int, float] = {}

    async def check(self, user_id: int) -> tuple[bool, bool]:
        """(allowed, should_warn)."""
        return self.check_now(user_id)

    def check_now(self, user_id: int) -> tuple[bool, bool]:
        now = time.monotonic()
        if len(self.hits) > 10_000:  # forget users idle for a whole window: memory stays bounded
            for uid in [u for u, q in self.hits.items() if not q or now - q[-1] > self.window]:
                del self.hits[uid]
                self.warned.pop(uid, None)
        q = self.hits[user_id]
        while q and now - q[0] > self.window:
            q.popleft()
        if len(q) < self.limit:
            q.append(now)
            return True, False
        warn = now - self.warned.get(user_id, -1e9) > self.window
        if warn:
            self.warned[user_id] = now
        return False, warn

    async def close(self) -> None:
        pass


# KEYS: the user's hits (sorted set), the user's "warned" flag. ARGV: limit, window (ms), a
# unique member. Redis's own clock, so replicas with skewed clocks agree. Returns 1 allowed,
# 2 refused (warn now), 0 refused (already warned in this window).
_WINDOW = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, now - tonumber(ARGV[2]))
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[2]) then return 2 end
return 0
"""


class RedisRateLimiter(RateLimiter):
    """The same window, shared through Redis by every replica."""

    def __init__(self, limit: int, window_s: float, url: str, pseudonym: Callable[[int], str], prefix: str = "kzskin:rate:"):
        super().__init__(limit, window_s)
        import redis.asyncio as redis

        self.redis = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.script = self.redis.register_script(_WINDOW)
        self.pseudonym, self.prefix = pseudonym, prefix
        self.seq = 0
        self.down = False

    async def check(self, user_id: int) -> tuple[bool, bool]:
        key = self.prefix + self.pseudonym(user_id)[:32]
        self.seq += 1
        try:
            verdict = await self.script(keys=[key, key + ":warned"], args=[self.limit, int(self.window * 1000), f"{time.time_ns()}:{id(self)}:{self.seq}"])
        except Exception as exc:  # noqa: BLE001 - Redis down or slow: bounded per process instead
            if not self.down:
                log.warning("Redis unavailable for the photo limit (%s): each replica limits on its own until it is back", type(exc).__name__)
                self.down = True
            return self.check_now(user_id)
        if self.down:
            log.info("Redis is back: the photo limit is shared again")
            self.down = False
        return verdict == 1, verdict == 2

    async def close(self) -> None:
        await self.redis.aclose()
