"""The Telegram bot: conversation, i18n, referral, consent, storage, maintainers' tools."""

import os

# python-telegram-bot 22.2+ warns on every ``RetryAfter.retry_after`` read unless the project
# opts in to the coming ``timedelta`` type; the bot's code handles both (bot.infra.runtime.seconds).
os.environ.setdefault("PTB_TIMEDELTA", "true")
