"""No input can cost more than its bound, and nothing but a reason code comes out (issue #10).

The bounds asserted here are generous guards against the failures we saw (7–13 s and 3.2 GB for
an 83-byte PNG, an escaping ``_ArrayMemoryError``, AVIF's ``RuntimeError``); the targets (1 s of
CPU, 300 MB) are measured and printed by ``python -m inference.benchmark --hostile``.
"""

import asyncio
import ctypes
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from inference.decode import ERROR_CODES
from inference.hostile import corpus, mutations, seeds
from inference.pool import ScreeningPool
from inference.quality import REASON_CODES

from .conftest import ROOT, jpeg_bytes, skin_with_spot

KNOWN = set(ERROR_CODES) | set(REASON_CODES)
PEAK_MB = 300
CPU_GUARD_S = 3.0  # the target is 1 s (benchmark); 3 s leaves room for a busy CI machine


def _rss_mb() -> tuple[float, float]:
    status = open("/proc/self/status").read()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024
    return rss, hwm


@pytest.fixture(scope="module")
def hostile():
    return corpus()


def test_every_hostile_file_gets_a_reason_within_its_bounds(screener, hostile):
    assert len(hostile) >= 15
    for name, data in hostile.items():
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as fh:  # reset the peak (VmHWM) to the current RSS
            fh.write("5")
        rss0, _ = _rss_mb()
        cpu0 = time.process_time()
        result = screener.screen(data)
        cpu = time.process_time() - cpu0
        peak = _rss_mb()[1] - rss0
        assert set(result.reasons) <= KNOWN, (name, result.reasons)
        assert cpu < CPU_GUARD_S, f"{name}: {cpu:.2f} s of CPU"
        assert peak < PEAK_MB, f"{name}: peak +{peak:.0f} MB"
    # The ones the issue reported, with the answer they must get:
    for name in ("png 1000x1 (83 bytes)", "png 100000x1", "png 4x100000 strip", "jpeg declaring 65000x1", "jpeg 60000x4 with EXIF rotation"):
        assert screener.screen(hostile[name]).reasons == ["bad_shape"], name


def test_fuzzed_files_never_raise(screener):
    """600 seeded mutations of valid JPEG, PNG, WebP, HEIC and AVIF files."""
    formats = set(seeds())
    assert {"JPEG", "PNG", "WEBP"} <= formats
    seen = 0
    for name, data in mutations(seed=20261128, per_format=120):
        result = screener.screen(data)  # must not raise
        assert set(result.reasons) <= KNOWN, (name, result.reasons)
        seen += 1
    assert seen == 120 * len(formats)


def test_cli_gives_every_file_its_own_record(tmp_path, hostile):
    paths = []
    for i, name in enumerate(["png 4x100000 strip", "jpeg 60000x4 with EXIF rotation", "png declaring 30000x30000, no data"]):
        p = tmp_path / f"{i}.bin"
        p.write_bytes(hostile[name])
        paths.append(p)
    good = tmp_path / "good.jpg"
    good.write_bytes(jpeg_bytes(skin_with_spot()))
    proc = subprocess.run([sys.executable, "-m", "inference", "--json", *map(str, paths), str(good)], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 4 and "Traceback" not in proc.stderr


@pytest.fixture
def pool(screener):
    p = ScreeningPool(screener, workers=1)
    p.warm_up()
    yield p
    p.close()


def test_a_worker_that_dies_is_replaced_and_the_photo_still_answered(pool):
    photo = jpeg_bytes(skin_with_spot())

    async def scenario():
        task = asyncio.create_task(pool.screen(photo, keep_jpeg=True))
        await asyncio.sleep(0.01)
        for pid in list(pool._executor._processes):
            os.kill(pid, signal.SIGKILL)
        first = await task
        second = await pool.screen(photo)
        return first, second

    (first, jpeg), (second, _) = asyncio.run(scenario())
    assert pool.restarts == 1
    assert set(first.reasons) <= KNOWN and first.model and second.model
    assert first.accepted == second.accepted  # the retried photo got its real answer


OWNER = """
import os, sys
from inference import Screener
from inference.pool import ScreeningPool
pool = ScreeningPool(Screener.load())
pool.warm_up()
print(*pool._executor._processes, flush=True)
sys.stdin.read()
"""


def test_workers_do_not_outlive_a_killed_bot():
    """``kill -9`` of the bot must not leave its screening worker (and the forkserver that waits
    for it) behind: measured before the fix, every killed bot left two processes, ~150 MB."""
    owner = subprocess.Popen([sys.executable, "-c", OWNER], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        workers = [int(pid) for pid in owner.stdout.readline().split()]
        assert workers and all(_running(pid) for pid in workers)
        owner.kill()
        owner.wait(10)
        deadline = time.monotonic() + 20
        while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_running(pid) for pid in workers), f"workers {workers} outlived their bot"
    finally:
        owner.kill()


def _running(pid: int) -> bool:
    """Alive and not a zombie (an exited worker stays a zombie until someone reaps it)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False

def test_a_runaway_decode_fails_inside_the_memory_limit(screener, hostile):
    """A worker allowed only 40 MB beyond the model cannot decode a 4800² RGBA PNG: the photo gets
    a reason, the bot's process is untouched, and the next photo is answered."""
    small = ScreeningPool(screener, workers=1, memory_mb=40)
    try:
        small.warm_up()
        result, _ = small.screen_blocking(hostile["png 4800x4800 RGBA"])
        assert result.reasons and set(result.reasons) <= {"too_many_pixels", "corrupt"}
        ok, _ = small.screen_blocking(jpeg_bytes(skin_with_spot()))
        assert set(ok.reasons) <= KNOWN and "too_many_pixels" not in ok.reasons
    finally:
        small.close()
