"""The README's demo (``python -m tests.demo``) works: the real bot, no token, a whole conversation."""

import pytest

from bot.i18n import t

from .conftest import needs_shared
from .demo import converse, default_photo


@pytest.mark.slow  # a bot process: the full run only
@needs_shared
async def test_the_demo_prints_a_whole_conversation():
    script = await converse("kk", default_photo())
    text = script.text()
    assert text.count("👤") == 5 and text.count("🤖") >= 6, text[:500]
    assert t("kk", "welcome", tips="").split("\n")[0] in text
    assert "диагноз емес" in text.lower(), "the result says it is not a diagnosis"
    assert t("kk", "ask.noted", signs="қанады") in text, "the result names the sign ticked before it"
    assert t("kk", "spots.empty") in text
    assert script.exit_code == 0, "the bot stops on SIGTERM by itself (it used to be SIGKILLed after 30 s)"
