"""Alembic environment: async engine, URL from the caller or the bot's settings."""

import asyncio

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

import bot.admin.review  # noqa: F401  (registers the verdicts table)
import bot.questions.store  # noqa: F401  (registers the results waiting for answers)
import bot.spots.store  # noqa: F401  (registers spots, checks, reminders)
from bot.infra.storage import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from bot.config import Settings

    return Settings().db_url


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


async def _online() -> None:
    engine = create_async_engine(_url())
    async with engine.connect() as conn:
        await conn.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_online())
