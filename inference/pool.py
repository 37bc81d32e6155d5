"""Screening in worker processes: decoders run on attacker-controlled bytes, so contain them.

libjpeg, libpng, libwebp, libheif and libavif are C code. ``inference.decode`` bounds the cost of
every input it can reason about (header checks, reduced decodes), but a decoder bug can still
crash or balloon. So the bot screens in a small pool of worker processes:

* each worker loads the model once (``setup``) and runs under a memory limit (``RLIMIT_AS``:
  what the loaded worker maps plus ``memory_mb``), so a runaway decode fails in the worker with
  ``MemoryError`` instead of waking the host's OOM killer;
* a worker that dies (segfault, abort, OOM) is replaced; the photo it was working on is tried
  once more on a fresh worker, and if it kills that one too it gets the ``corrupt`` answer;
* memory goes back after a large image (``malloc_trim`` after each job), and a worker is
  recycled after ``max_tasks_per_child`` photos;
* a worker exits when the process that made the pool is gone, even after ``kill -9``: it would
  otherwise wait for ever on its task queue (it holds both ends of that pipe), and keep the
  forkserver alive with it — measured: two processes, about 150 MB, left behind per killed bot.

The caller gets exactly what :meth:`Screener.screen_with_image` gives, plus the photo re-encoded
without metadata when asked (so the pixels never cross the process boundary).
"""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing as mp
import os
import resource
import select
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from inference.decode import encode_jpeg
from inference.screener import ModelCard, Screener, ScreeningResult

#: Extra address space a worker may map beyond what it maps after loading the model. The largest
#: accepted input peaks at about 180 MB (README, benchmark); twice that leaves headroom.
DEFAULT_MEMORY_MB = 400

_screener: Screener | None = None


@dataclass(frozen=True)
class _Setup:
    model: tuple[bytes, ...]
    card: ModelCard
    memory_mb: int
    owner: int  # pid of the process that made the pool: the worker lives only as long as it


def _vm_size() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def _exit_with(owner: int) -> None:
    """Block until process ``owner`` has ended, then end this worker at once."""
    try:
        fd = os.pidfd_open(owner)
    except OSError:  # already gone (ProcessLookupError), or no pidfd on this kernel: poll
        while _alive(owner):
            time.sleep(1.0)
    else:
        select.select([fd], [], [])
    os._exit(0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    return True


def _init(setup: _Setup) -> None:
    """Worker start: watch the owner, load the model once, warm it up, then cap the address space."""
    global _screener
    threading.Thread(target=_exit_with, args=(setup.owner,), name="owner-watch", daemon=True).start()
    _screener = Screener(setup.card.classifier(setup.model), setup.card)
    _screener.screen(encode_jpeg(_warm_image()))
    _trim()
    limit = _vm_size() + setup.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _warm_image():
    import numpy as np

    return np.full((300, 300, 3), (190, 140, 120), np.uint8)


def _work(data: bytes, keep_jpeg: bool) -> tuple[ScreeningResult, bytes | None]:
    assert _screener is not None
    try:
        result, img = _screener.screen_with_image(data)
        jpeg = encode_jpeg(img.rgb) if keep_jpeg and img is not None else None
        return result, jpeg
    except MemoryError:
        return ScreeningResult(False, ["too_many_pixels"], model=_screener.version), None
    finally:
        if len(data) > 1_000_000:
            _trim()


class ScreeningPool:
    """``submit(data, keep_jpeg)`` from any thread or ``await screen(...)`` from the event loop."""

    def __init__(self, screener: Screener, workers: int = 1, memory_mb: int = DEFAULT_MEMORY_MB, max_tasks_per_child: int = 1000):
        self.version = screener.version
        self._setup = _Setup(screener.classifier.model_bytes, screener.card, memory_mb, os.getpid())
        self._workers = workers
        self._max_tasks = max_tasks_per_child
        self._lock = threading.Lock()
        self._ctx = mp.get_context("forkserver")
        self._ctx.set_forkserver_preload(["inference.pool"])
        self._executor = self._new()
        self.restarts = 0
        self.queued = 0  # photos waiting for or in a worker (the event loop's count)

    def _new(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self._workers, mp_context=self._ctx, initializer=_init, initargs=(self._setup,), max_tasks_per_child=self._max_tasks)

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is broken:
                self._executor = self._new()
                self.restarts += 1
        broken.shutdown(wait=False, cancel_futures=True)

    def _submit(self, data: bytes, keep_jpeg: bool) -> tuple[ProcessPoolExecutor, Future]:
        with self._lock:
            executor = self._executor
        try:
            return executor, executor.submit(_work, data, keep_jpeg)
        except BrokenProcessPool:
            self._replace(executor)
            with self._lock:
                executor = self._executor
            return executor, executor.submit(_work, data, keep_jpeg)

    def _corrupt(self, t0: float) -> tuple[ScreeningResult, None]:
        ms = round((time.perf_counter() - t0) * 1000, 2)
        return ScreeningResult(False, ["corrupt"], model=self.version, ms={"total": ms}), None

    def screen_blocking(self, data: bytes, keep_jpeg: bool = False) -> tuple[ScreeningResult, bytes | None]:
        """Screen in a worker; a photo whose worker dies twice gets ``corrupt``."""
        t0 = time.perf_counter()
        for _attempt in range(2):
            executor, fut = self._submit(data, keep_jpeg)
            try:
                return fut.result()
            except BrokenProcessPool:
                self._replace(executor)
        return self._corrupt(t0)

    async def screen(self, data: bytes, keep_jpeg: bool = False) -> tuple[ScreeningResult, bytes | None]:
        """The same from the event loop, without holding a thread while the worker runs."""
        t0 = time.perf_counter()
        self.queued += 1
        try:
            for _attempt in range(2):
                executor, fut = self._submit(data, keep_jpeg)
                try:
                    return await asyncio.wrap_future(fut)
                except BrokenProcessPool:
                    self._replace(executor)
            return self._corrupt(t0)
        finally:
            self.queued -= 1

    def warm_up(self) -> None:
        """Start the workers now (loading the model), not on the first user's photo."""
        futures = [self._submit(encode_jpeg(_warm_image()), False)[1] for _ in range(self._workers)]
        for fut in futures:
            fut.result()

    def close(self) -> None:
        with self._lock:
            self._executor.shutdown(wait=True)
