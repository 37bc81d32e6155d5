"""Shared fixtures: real images from ../shared/data, images the tests make, the shipped model."""

from __future__ import annotations

import io
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared"))
DATA = SHARED / "data"

needs_shared = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data not found at {DATA} (set SHARED_DIR)")


def jpeg_bytes(rgb: np.ndarray, quality: int = 92, **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality, **save)
    return buf.getvalue()


def load_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def real_images(source: str, n: int) -> list[Path]:
    """The first ``n`` images of a shared source, sorted by name (deterministic)."""
    paths = sorted((DATA / source / "images").rglob("*.jpg"))
    if not paths:
        pytest.skip(f"no images in {DATA / source}")
    return paths[:n]


def skin_with_spot(size=(960, 1280), spot_radius=120, centre=None, seed=0) -> np.ndarray:
    """Skin-toned photo with texture and a brown spot: what a usable phone photo looks like."""
    h, w = size
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.float32)
    img[:] = (208, 164, 140)
    img += rng.normal(0, 7, (h, w, 1))
    img = cv2.GaussianBlur(img, (0, 0), 1.2)
    cy, cx = centre or (h // 2, w // 2)
    if spot_radius:
        mask = np.zeros((h, w), np.float32)
        cv2.ellipse(mask, (cx, cy), (spot_radius, int(spot_radius * 0.8)), 20, 0, 360, 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), 4)[..., None]
        img = img * (1 - mask) + np.array((95, 62, 48), np.float32) * mask
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def screener():
    from inference import Screener

    return Screener.load()


@pytest.fixture(scope="session")
def non_skin_photos() -> dict[str, np.ndarray]:
    """Everyday photos that ship with scikit-image (held out from training)."""
    from skimage import data

    return {
        "cat": data.chelsea(),
        "coffee": data.coffee(),
        "rocket": data.rocket(),
        "astronaut": data.astronaut(),
        "motorcycle": np.asarray(Image.open(Path(data.__file__).parent / "motorcycle_left.png").convert("RGB")),
        "document": cv2.cvtColor(data.page(), cv2.COLOR_GRAY2RGB),
        "microscopy slide": data.immunohistochemistry(),  # pinkish tissue: the old model took it for skin
        "retina": data.retina(),
        "cells under a microscope (greyscale)": cv2.cvtColor(data.cell(), cv2.COLOR_GRAY2RGB),  # the skin head accepts it
        "moon (greyscale)": cv2.cvtColor(data.moon(), cv2.COLOR_GRAY2RGB),  # the skin head accepts it
    }


TOKEN = "123456789:" + "A" * 35


def make_settings(tmp_path, fake, **over):
    from bot.config import Settings

    values = dict(
        telegram_bot_token=TOKEN,
        telegram_api_base_url=fake.base_url,
        telegram_file_base_url=fake.base_file_url,
        data_dir=tmp_path / "data",
        pseudonym_secret="test-secret",
        rate_limit_photos=50,
        operator_name="Test Operator",
        health_port=0,
        # Results at once, the follow-up questions under them: what "Skip" and an unanswered
        # question screen give. tests/test_questions.py turns the questions before the result on.
        answers_wait_s=0,
    )
    values.update(over)
    return Settings(_env_file=None, **values)


class BotHarness:
    """A running bot (real Application) wired to a fake Bot API server."""

    def __init__(self, fake, app, settings):
        self.fake, self.app, self.settings = fake, app, settings

    @property
    def storage(self):
        return self.app.bot_data.storage


@pytest.fixture
async def bot_factory(tmp_path, screener):
    """``await bot_factory(**settings)`` starts a bot; everything is stopped after the test."""
    import asyncio

    from bot.app import ALLOWED_UPDATES, build_application
    from bot.infra.intake import Intake
    from bot.infra.migrate import upgrade

    from .fake_telegram import FakeTelegram

    running = []

    async def start(screener_=None, **over):
        fake = FakeTelegram()
        await fake.start()
        settings = make_settings(tmp_path, fake, **over)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(upgrade, settings.db_url)
        app = build_application(settings, screener_ or screener)
        await app.initialize()
        await app.post_init(app)
        intake = Intake(app, ALLOWED_UPDATES, poll_timeout=1)  # the durable intake, as in production
        await intake.recover()
        await app.start()
        task = asyncio.create_task(intake.run())
        running.append((fake, app, intake, task))
        return BotHarness(fake, app, settings)

    yield start
    for fake, app, intake, task in running:
        intake.stop()
        await task
        await app.stop()
        await app.post_shutdown(app)
        await app.shutdown()
        await fake.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing (or timed-out) test shows the log tail of every bot process it started."""
    outcome = yield
    report = outcome.get_result()
    from .bot_process import STARTED

    if report.failed and report.when in ("setup", "call"):
        for i, bot in enumerate(dict.fromkeys(STARTED)):
            report.sections.append((f"bot process {i + 1}: last lines of {bot.log_path}", bot.tail()))
    if report.when == "teardown":
        STARTED.clear()


#: Modules the quick run (``pytest -m "not slow"``, README) leaves out: TensorFlow training and
#: its frozen features, the tests that start, kill or flood bot processes, and nginx. The quick run
#: also keeps one language (English) of the tests run in kk, ru and en. The full run (CI) has them all.
SLOW_MODULES = {"test_training_e2e", "test_frozen", "test_repeat_noise", "test_crash", "test_proxy", "test_startup", "test_hostile_inputs"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if item.module.__name__.rsplit(".", 1)[-1] in SLOW_MODULES or params.get("lang", "en") != "en":
            item.add_marker(pytest.mark.slow)
