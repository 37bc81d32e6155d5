"""A fake Telegram Bot API server for end-to-end tests.

The real PTB ``Application`` talks to it over HTTP (``base_url``/``base_file_url``): it hands
out updates through ``getUpdates``, serves files through ``getFile`` and the file URL, and
records every method the bot calls.  Tests play the user with ``send_text``, ``send_photo``,
``press`` and friends, then wait for the bot's replies.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict

import tornado.web

BOT = {"id": 777000, "is_bot": True, "first_name": "Screening", "username": "screening_test_bot", "can_join_groups": False, "can_read_all_group_messages": False, "supports_inline_queries": False}
RAW_STRING_PARAMS = {"text", "caption", "callback_query_id", "action", "url", "language_code", "parse_mode", "secret_token"}


class FakeTelegram:
    def __init__(self) -> None:
        self.updates: list[dict] = []
        self.update_id = 0
        self.message_id = 0
        self.file_seq = 0
        self.files: dict[str, bytes] = {}
        self.calls: list[tuple[str, dict]] = []
        self.sent: dict[int, list[dict]] = defaultdict(list)  # chat id → messages the bot sent
        self.edits: list[dict] = []
        self.server = None
        self.port = 0
        self.delivered: set[tuple[int, int]] = set()
        self.acked = 0  # highest update_id the bot has acknowledged (Telegram forgets those)
        self.valid_token: str | None = None  # set: any other token gets 401 Unauthorized
        # Webhook mode (after setWebhook): updates are POSTed as Telegram does — with the secret
        # header, up to max_connections at a time, retried with backoff until a 2xx.
        self.webhook: dict | None = None
        self.webhook_verify: object = True  # an SSL context trusting a test's self-signed certificate
        self.route = None  # optional: update → URL, to send an update to one replica directly
        self.posts: list[tuple[int, int | str]] = []  # (update_id, HTTP status or error) of every POST
        self._delivery: asyncio.Task | None = None
        self.blocked: set[int] = set()  # chats whose user blocked the bot: 403 Forbidden
        self.flood = 0  # the next this many sendMessage calls get 429 Too Many Requests

    # ------------------------------------------------------------ server

    async def start(self) -> None:
        app = tornado.web.Application(
            [
                (r"/bot([^/]+)/(\w+)", _Api, {"fake": self}),
                (r"/file/bot([^/]+)/(.+)", _File, {"fake": self}),
            ]
        )
        self.server = app.listen(0, "127.0.0.1")
        self.port = next(iter(self.server._sockets.values())).getsockname()[1]

    async def stop(self) -> None:
        self.webhook = None
        if self._delivery is not None:
            self._delivery.cancel()
            await asyncio.gather(self._delivery, return_exceptions=True)
        if self.server:
            self.server.stop()
            await self.server.close_all_connections()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    async def handle(self, method: str, params: dict) -> object:
        self.calls.append((method, params))
        if method == "getMe":
            return BOT
        if method == "getUpdates":
            offset = int(params.get("offset") or 0)
            self.acked = max(self.acked, offset - 1)
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
            for u in self.updates[:100]:  # (update_id, message_id) of what the bot has been given
                if "message" in u:
                    self.delivered.add((u["update_id"], u["message"]["message_id"]))
            deadline = time.monotonic() + min(float(params.get("timeout") or 0), 0.5)
            while not self.updates and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            return self.updates[:100]
        if method == "setWebhook":
            self.webhook = {"url": params["url"], "secret": params.get("secret_token"), "max_connections": int(params.get("max_connections") or 40)}
            if self._delivery is None:
                self._delivery = asyncio.create_task(self._deliver())
            return True
        if method in ("deleteWebhook", "setMyCommands", "answerCallbackQuery", "sendChatAction", "deleteMyCommands"):
            return True
        if method == "getFile":
            fid = params["file_id"]
            return {"file_id": fid, "file_unique_id": fid[::-1], "file_size": len(self.files[fid]), "file_path": f"photos/{fid}.jpg"}
        if method == "sendMessage" and int(params["chat_id"]) in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if method == "sendMessage" and self.flood > 0:
            self.flood -= 1
            raise ApiError(429, "Too Many Requests: retry after 5", {"retry_after": 5})
        if method == "sendMessage":
            chat_id = int(params["chat_id"])
            self.message_id += 1
            msg = {
                "message_id": self.message_id,
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"},
                "from": BOT,
                "text": params["text"],
            }
            markup = params.get("reply_markup") or {}
            reply_to = (params.get("reply_parameters") or {}).get("message_id") or params.get("reply_to_message_id")
            record = {**msg, "reply_to": reply_to, "at": time.monotonic()}
            self.sent[chat_id].append({**record, "reply_markup": markup} if markup else record)
            if "inline_keyboard" in markup:  # a Message only ever carries inline keyboards
                msg["reply_markup"] = markup
            return msg
        if method == "sendPhoto":
            chat_id = int(params["chat_id"])
            self.message_id += 1
            msg = {"message_id": self.message_id, "date": int(time.time()), "chat": {"id": chat_id, "type": "private"}, "from": BOT,
                   "photo": [{"file_id": f"sent{self.message_id}", "file_unique_id": f"u{self.message_id}", "width": 100, "height": 100}],
                   "caption": params.get("caption", "")}
            markup = params.get("reply_markup") or {}
            self.sent[chat_id].append({**msg, "text": params.get("caption", ""), "photo_bytes": params.get("_photo"), "reply_markup": markup, "at": time.monotonic()})
            if markup:
                msg["reply_markup"] = markup
            return msg
        if method in ("editMessageReplyMarkup", "editMessageText"):
            self.edits.append({"method": method, **params})
            return True
        raise KeyError(method)

    async def _deliver(self) -> None:
        import httpx

        busy: set[int] = set()
        tasks: set[asyncio.Task] = set()
        async with httpx.AsyncClient(verify=self.webhook_verify, timeout=15) as client:
            slots = asyncio.Semaphore(self.webhook["max_connections"])

            async def post(update: dict) -> None:
                delay = 0.05
                async with slots:
                    while self.webhook:
                        url = (self.route and self.route(update)) or self.webhook["url"]
                        headers = {"X-Telegram-Bot-Api-Secret-Token": self.webhook["secret"]} if self.webhook["secret"] else {}
                        try:
                            status: int | str = (await client.post(url, json=update, headers=headers)).status_code
                        except httpx.HTTPError as exc:
                            status = type(exc).__name__
                        self.posts.append((update["update_id"], status))
                        if isinstance(status, int) and 200 <= status < 300:
                            self.updates.remove(update)
                            self.acked = max(self.acked, update["update_id"])
                            if "message" in update:
                                self.delivered.add((update["update_id"], update["message"]["message_id"]))
                            break
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, 1.0)
                busy.discard(update["update_id"])

            while self.webhook:
                for update in list(self.updates):
                    if update["update_id"] not in busy:
                        busy.add(update["update_id"])
                        task = asyncio.create_task(post(update))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                await asyncio.sleep(0.01)

    # ------------------------------------------------------------ the user's side

    def _push(self, **update) -> None:
        self.update_id += 1
        self.updates.append({"update_id": self.update_id, **update})

    @staticmethod
    def user(uid: int, lang: str | None = "en") -> dict:
        u = {"id": uid, "is_bot": False, "first_name": f"User{uid}"}
        if lang:
            u["language_code"] = lang
        return u

    def _message(self, uid: int, lang: str | None, **content) -> dict:
        self.message_id += 1
        return {"message_id": self.message_id, "date": int(time.time()), "chat": {"id": uid, "type": "private"}, "from": self.user(uid, lang), **content}

    def send_text(self, uid: int, text: str, lang: str | None = "en", reply_to: dict | None = None) -> None:
        content = {"text": text}
        if reply_to is not None:
            content["reply_to_message"] = _as_message(reply_to)
        if text.startswith("/"):
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        self._push(message=self._message(uid, lang, **content))

    def add_file(self, data: bytes) -> str:
        self.file_seq += 1
        fid = f"file{self.file_seq:05d}"
        self.files[fid] = data
        return fid

    def send_photo(self, uid: int, data: bytes, lang: str | None = "en", media_group_id: str | None = None, reply_to: dict | None = None) -> int:
        """Returns the photo message's id (answers refer to it)."""
        fid = self.add_file(data)
        sizes = [
            {"file_id": fid + "s", "file_unique_id": fid + "s", "width": 90, "height": 90, "file_size": 1000},
            {"file_id": fid, "file_unique_id": fid[::-1], "width": 1280, "height": 960, "file_size": len(data)},
        ]
        self.files[fid + "s"] = b"thumbnail"
        extra = {"media_group_id": media_group_id} if media_group_id else {}
        if reply_to is not None:  # the user replies to one of the bot's messages
            extra["reply_to_message"] = _as_message(reply_to)
        message = self._message(uid, lang, photo=sizes, **extra)
        self._push(message=message)
        return message["message_id"]

    def send_document(self, uid: int, data: bytes, name: str, mime: str, lang: str | None = "en", file_size: int | None = None) -> None:
        fid = self.add_file(data)
        doc = {"file_id": fid, "file_unique_id": fid[::-1], "file_name": name, "mime_type": mime, "file_size": file_size or len(data)}
        self._push(message=self._message(uid, lang, document=doc))

    def send_sticker(self, uid: int, lang: str | None = "en") -> None:
        sticker = {"file_id": "stk", "file_unique_id": "stk1", "type": "regular", "width": 512, "height": 512, "is_animated": False, "is_video": False}
        self._push(message=self._message(uid, lang, sticker=sticker))

    def send_voice(self, uid: int, lang: str | None = "en") -> None:
        self._push(message=self._message(uid, lang, voice={"file_id": "v", "file_unique_id": "v1", "duration": 3}))

    def send_location(self, uid: int, lat: float, lon: float, lang: str | None = "en") -> None:
        self._push(message=self._message(uid, lang, location={"latitude": lat, "longitude": lon}))

    def press(self, uid: int, bot_message: dict, data: str, lang: str | None = "en") -> None:
        self.update_id += 1
        message = _as_message(bot_message, keep_markup=True)
        query = {"id": f"cb{self.update_id}", "from": self.user(uid, lang), "chat_instance": "ci", "data": data, "message": message}
        self.updates.append({"update_id": self.update_id, "callback_query": query})

    async def replies(self, chat_id: int, n: int, since: int = 0, timeout: float = 30.0) -> list[dict]:
        """Wait until the bot has sent ``since + n`` messages to the chat; return the new ones."""
        deadline = time.monotonic() + timeout
        while len(self.sent[chat_id]) < since + n:
            if time.monotonic() > deadline:
                got = [m["text"][:80] for m in self.sent[chat_id][since:]]
                raise AssertionError(f"expected {n} replies to {chat_id}, got {len(got)}: {got}")
            await asyncio.sleep(0.01)
        return self.sent[chat_id][since : since + n]

    async def quiet(self, chat_id: int, count: int, wait: float = 0.5) -> None:
        """Assert the bot sends nothing more to the chat for ``wait`` seconds."""
        await asyncio.sleep(wait)
        extra = [m["text"][:80] for m in self.sent[chat_id][count:]]
        assert not extra, f"unexpected extra replies: {extra}"


class ApiError(Exception):
    def __init__(self, code: int, description: str, parameters: dict | None = None):
        super().__init__(description)
        self.code, self.description, self.parameters = code, description, parameters


def _as_message(bot_message: dict, keep_markup: bool = False) -> dict:
    """A message the bot sent, as Telegram embeds it in a reply (or, with its keyboard, in a
    button press), without the fake's own test-only fields."""
    msg = {k: v for k, v in bot_message.items() if k not in ("photo_bytes", "at", "reply_to")}
    if "photo" in msg:
        msg.pop("text", None)
    if not (keep_markup and msg.get("reply_markup")):
        msg.pop("reply_markup", None)
    return msg


def buttons(message: dict) -> list[tuple[str, str]]:
    """(text, callback_data) of every inline button of a bot message."""
    markup = message.get("reply_markup") or {}
    return [(b["text"], b.get("callback_data", "")) for row in markup.get("inline_keyboard", []) for b in row]


class _Api(tornado.web.RequestHandler):
    def initialize(self, fake: FakeTelegram) -> None:
        self.fake = fake

    async def post(self, token: str, method: str) -> None:
        params = {}
        for key, values in self.request.body_arguments.items():
            raw = values[0].decode()
            if key in RAW_STRING_PARAMS:
                params[key] = raw
            else:
                try:
                    params[key] = json.loads(raw)
                except ValueError:
                    params[key] = raw
        for key, files in self.request.files.items():  # multipart uploads (sendPhoto)
            params["_photo" if key in ("photo", "attach") or params.get("photo") == f"attach://{key}" else key] = files[0]["body"]
        if self.request.headers.get("Content-Type", "").startswith("application/json") and self.request.body:
            params.update(json.loads(self.request.body))
        if self.fake.valid_token is not None and token != self.fake.valid_token:
            self.set_status(401)
            self.write({"ok": False, "error_code": 401, "description": "Unauthorized"})
            return
        try:
            result = await self.fake.handle(method, params)
        except ApiError as exc:
            self.set_status(exc.code)
            self.write({"ok": False, "error_code": exc.code, "description": exc.description, **({"parameters": exc.parameters} if exc.parameters else {})})
            return
        except KeyError as exc:
            self.set_status(400)
            self.write({"ok": False, "error_code": 400, "description": f"Bad Request: {exc}"})
            return
        self.write(json.dumps({"ok": True, "result": result}))
        self.set_header("Content-Type", "application/json")

    get = post


class _File(tornado.web.RequestHandler):
    def initialize(self, fake: FakeTelegram) -> None:
        self.fake = fake

    def get(self, token: str, path: str) -> None:
        fid = path.rsplit("/", 1)[-1].removesuffix(".jpg")
        if fid not in self.fake.files:
            self.set_status(404)
            return
        self.write(self.fake.files[fid])
