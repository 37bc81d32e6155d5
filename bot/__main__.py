"""``python -m bot`` runs the bot (long polling, or a webhook if WEBHOOK_URL is set);
``python -m bot migrate`` only applies the database migrations."""

from __future__ import annotations

import argparse
import logging
import sys

from pydantic import ValidationError


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
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    from bot.migrate import upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.db_url)
    if args.command == "migrate":
        print("database is up to date")
        return 0

    from bot.app import ALLOWED_UPDATES, build_application

    app = build_application(settings)
    if settings.webhook_url:
        app.run_webhook(
            listen=settings.webhook_listen,
            port=settings.webhook_port,
            webhook_url=settings.webhook_url,
            secret_token=settings.webhook_secret_token or None,
            allowed_updates=ALLOWED_UPDATES,
        )
    else:
        app.run_polling(allowed_updates=ALLOWED_UPDATES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
