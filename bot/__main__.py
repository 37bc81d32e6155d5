"""``python -m bot`` runs the bot (long polling, or a webhook if WEBHOOK_URL is set);
``python -m bot migrate`` only applies the database migrations."""

from __future__ import annotations

import argparse
import asyncio
import sys

from pydantic import ValidationError

from bot.infra.runtime import StartupError, data_dir_problem, retry, secure_data_dir, setup_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Skin-lesion screening Telegram bot (not a diagnosis).")
    parser.add_argument("command", nargs="?", choices=["run", "migrate"], default="run")
    args = parser.parse_args(argv)

    from bot.config import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"invalid settings: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']} (see .env.example)", file=sys.stderr)
        return 2
    problem = settings.token_problem()
    if problem and args.command == "run":
        print(problem, file=sys.stderr)
        return 2
    if settings.webhook_url and not settings.webhook_secret_token and args.command == "run":
        print("WEBHOOK_SECRET_TOKEN is not set: without it anyone who finds WEBHOOK_URL can post fake updates. Set a long random value (docs/operations.md).", file=sys.stderr)
        return 2
    token = settings.telegram_bot_token.get_secret_value()
    setup_logging(settings.log_level, token, settings.log_format)
    try:
        return run(args.command, settings)
    except StartupError as exc:
        print(str(exc).replace(token, "[redacted]") if token else str(exc), file=sys.stderr)
        return 2


def run(command: str, settings) -> int:
    from bot.infra.migrate import upgrade

    folder = settings.data_dir.resolve()
    problem = data_dir_problem(folder)
    if problem:
        raise StartupError(problem)
    secure_data_dir(folder)
    retry("database " + settings.db_url_redacted, lambda: upgrade(settings.db_url), settings.startup_retries, settings.startup_retry_delay_s)
    secure_data_dir(folder)  # a database file the migration just created: 0600
    check_secret(settings)
    if command == "migrate":
        print(f"database {settings.db_url_redacted} is up to date; data folder {folder}")
        return 0
    from telegram.error import InvalidToken

    retry("Telegram Bot API", lambda: asyncio.run(_get_me(settings)), settings.startup_retries, settings.startup_retry_delay_s, fatal=(InvalidToken,))

    from bot.app import ALLOWED_UPDATES, build_application

    app = build_application(settings)
    if settings.webhook_url:
        from bot.infra.webhook import serve_webhook

        asyncio.run(serve_webhook(app, settings, ALLOWED_UPDATES))
    else:
        from bot.infra.intake import Intake, serve

        asyncio.run(serve(app, Intake(app, ALLOWED_UPDATES)))
    return 0


def check_secret(settings) -> int:
    """The pseudonym secret belongs to this database, or the bot does not start (never silently
    regenerated: a new secret would orphan every stored user). Returns the number of users."""
    from bot.infra.storage import SecretMismatch, Storage

    secret, created = settings.load_secret()

    async def check() -> int:
        storage = Storage(settings.db_url, settings.photos_dir, secret)
        try:
            return await storage.check_secret(created)
        finally:
            await storage.close()

    try:
        return retry("database " + settings.db_url_redacted, lambda: asyncio.run(check()), 1, 0, fatal=(SecretMismatch,))
    except StartupError as exc:
        if created:  # do not leave the wrong secret behind
            settings.secret_path.unlink(missing_ok=True)
        raise StartupError(f"{exc}. Restore {settings.secret_path} (or PSEUDONYM_SECRET) from your backup; see docs/operations.md") from None


async def _get_me(settings) -> None:
    """The token is accepted and the Bot API reachable (InvalidToken: rejected, never retried)."""
    from telegram import Bot

    bot = Bot(settings.telegram_bot_token.get_secret_value(), base_url=settings.telegram_api_base_url, base_file_url=settings.telegram_file_base_url)
    async with bot:
        await bot.get_me()


if __name__ == "__main__":
    sys.exit(main())
