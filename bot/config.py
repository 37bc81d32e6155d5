"""Settings from the environment or a ``.env`` file; every one is documented in ``.env.example``."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

TOKEN_RE = re.compile(r"^\d{3,}:[A-Za-z0-9_-]{30,}$")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    telegram_bot_token: SecretStr = SecretStr("")
    telegram_api_base_url: str = "https://api.telegram.org/bot"
    telegram_file_base_url: str = "https://api.telegram.org/file/bot"
    data_dir: Path = Path("./data")  # resolved to an absolute path once, at load
    database_url: str = ""  # empty: SQLite under data_dir
    admin_user_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    pseudonym_secret: SecretStr = SecretStr("")  # empty: generated once into data_dir/pseudonym.secret

    operator_name: str = ""  # empty: "the maintainers of this open-source bot", in each language
    operator_name_kk: str = ""  # the operator's name in Kazakh / Russian, if it differs
    operator_name_ru: str = ""
    operator_contact: str = ""
    retention_days: int = 365
    backup_retention_days: int = 30  # told to users; `python -m bot.admin backup` removes older archives beside the new one

    webhook_url: str = ""  # set to use a webhook instead of long polling
    webhook_listen: str = "0.0.0.0"
    webhook_port: int = 8443
    webhook_secret_token: str = ""
    webhook_max_connections: int = 40  # Telegram's parallel POSTs to the webhook
    inbox_lease_s: float = 30.0  # a replica's unanswered updates are taken over this long after it stops
    reminder_rate_per_s: float = 10.0  # reminders sent per second at most (Telegram allows ~30 messages/s in all)
    reminder_tick_s: float = 30.0  # how often due reminders are looked for
    reminder_lease_s: float = 300.0  # a claimed reminder not sent within this long is taken over
    reminder_key: SecretStr = SecretStr("")  # Fernet key for reminders' chat ids (empty: derived from the pseudonym secret)
    answers_wait_s: float = 120.0  # the warning-sign questions before a result wait this long, then the photo alone answers (0: no questions)
    answers_tick_s: float = 5.0  # how often results whose questions went unanswered are looked for
    redis_url: str = ""  # e.g. redis://127.0.0.1:6379/0: the per-user photo limit shared by all replicas

    model_path: Path | None = None  # default: the model shipped in inference/model
    screening_workers: int = 1  # worker processes; measured best on 2 cores: one + the event loop (README)
    screening_memory_mb: int = 400  # address space a worker may map beyond the loaded model
    concurrent_updates: int = 64  # photos waiting for their user's turn hold a slot, so keep it high
    connection_pool_size: int = 64
    telegram_messages_per_s: float = 30.0  # Telegram's broadcast limit for a bot; raise only if Telegram raised yours (paid broadcasts)
    rate_limit_photos: int = 8  # photos per user …
    rate_limit_window_s: float = 60.0  # … per this many seconds
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"  # json: one object per line, with the update id
    health_listen: str = "127.0.0.1"  # /healthz, /readyz and /metrics …
    health_port: int = 9090  # … on this port (0: off)
    bind_wait_s: float = 15.0  # a health or webhook port still held (a process just killed -9) is retried this long
    startup_retries: int = 5  # Bot API and database at start-up: tries, with exponential backoff …
    startup_retry_delay_s: float = 2.0  # … starting at this delay

    @field_validator("admin_user_ids", mode="before")
    @classmethod
    def _split_ids(cls, v: object) -> object:
        if isinstance(v, str):
            return [int(x) for x in re.split(r"[,\s]+", v.strip()) if x]
        if isinstance(v, int):
            return [v]
        return v

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    @field_validator("model_path", mode="before")
    @classmethod
    def _empty_is_default(cls, v: object) -> object:
        return None if v == "" else v

    def token_problem(self) -> str | None:
        """One clear line if the token cannot work, else None."""
        token = self.telegram_bot_token.get_secret_value().strip()
        if not token:
            return "TELEGRAM_BOT_TOKEN is not set: get one from @BotFather and put it in .env (see .env.example) or the environment."
        if not TOKEN_RE.match(token):
            return "TELEGRAM_BOT_TOKEN looks malformed: it should look like 123456789:AA... (digits, a colon, then 30+ letters, digits, - or _)."
        return None

    def operator_name_for(self, lang: str) -> str:
        """The operator's name in ``lang`` ("" → the catalogue's localized default)."""
        return {"kk": self.operator_name_kk, "ru": self.operator_name_ru}.get(lang, "") or self.operator_name

    @property
    def db_url(self) -> str:
        """The async driver's URL: ``postgresql://`` and ``sqlite://`` are mapped to asyncpg/aiosqlite."""
        url = self.database_url or f"sqlite+aiosqlite:///{(self.data_dir / 'bot.sqlite3').resolve()}"
        for plain, driver in (("postgresql://", "postgresql+asyncpg://"), ("postgres://", "postgresql+asyncpg://"), ("sqlite://", "sqlite+aiosqlite://")):
            if url.startswith(plain):
                return driver + url[len(plain) :]
        return url

    @property
    def webhook_url_redacted(self) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(self.webhook_url)
        return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}{parts.path}"

    @property
    def db_url_redacted(self) -> str:
        """For logs and messages: the URL without its password."""
        from sqlalchemy.engine import make_url

        return make_url(self.db_url).render_as_string(hide_password=True)

    @property
    def photos_dir(self) -> Path:
        return self.data_dir / "photos"

    @property
    def secret_path(self) -> Path:
        return self.data_dir / "pseudonym.secret"

    def load_secret(self, create: bool = True) -> tuple[bytes, bool]:
        """(the pseudonym key, whether it was created just now): from the setting, else the file
        in data_dir, created once. ``Storage.check_secret`` refuses a new one for a database
        that already has users."""
        if self.pseudonym_secret.get_secret_value():
            return self.pseudonym_secret.get_secret_value().encode(), False
        path = self.secret_path
        created = False
        if not path.exists():
            if not create:
                raise FileNotFoundError(f"no pseudonym secret at {path.resolve()}")
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
            created = True
        return path.read_text().strip().encode(), created

    def secret(self) -> bytes:
        return self.load_secret()[0]
