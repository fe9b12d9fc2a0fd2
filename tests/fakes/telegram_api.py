"""A fake Telegram Bot API server on 127.0.0.1, for running the real PTB code over HTTP.

It keeps the messages it "sent" per chat, queues updates for getUpdates (long poll with
offset semantics, like the real server), records every call, and can be told to answer the
next N calls of a method with an error such as 429 + retry_after.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_ID = 7000000001
BOT_USERNAME = "gridbot_test_bot"
JSON_FIELDS = {"reply_markup", "media", "commands", "scope", "allowed_updates", "entities",
               "link_preview_options", "reply_parameters"}


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)
    status: int = 200
    result: Any = None

    @property
    def chat_id(self) -> str:
        return str(self.params.get("chat_id", ""))

    def buttons(self) -> list[tuple[str, str]]:
        """(label, callback_data) of the inline keyboard sent with this call."""
        markup = self.params.get("reply_markup") or {}
        return [(b["text"], b.get("callback_data", "")) for row in markup.get("inline_keyboard", []) for b in row]


@dataclass
class Person:
    id: int
    first_name: str
    language_code: str | None = "zh-hans"

    def as_user(self) -> dict:
        out = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.language_code:
            out["language_code"] = self.language_code
        return out


class FakeTelegram:
    def __init__(self, token: str = "123456:TEST-TOKEN") -> None:
        self.blocked: set[str] = set()  # chats whose person blocked the bot
        self.token = token
        self.calls: list[Call] = []
        self.updates: list[dict] = []  # not yet confirmed by a getUpdates offset
        self.messages: dict[tuple[str, int], dict] = {}  # (chat id, message id) → message
        self.webhook: dict | None = None
        self._update_ids = itertools.count(1000)
        self._message_ids: dict[str, itertools.count] = {}
        self._queries = itertools.count(1)
        self._failures: dict[str, list[tuple[int, dict]]] = {}
        self._new_update = asyncio.Event()
        self._poller: object | None = None  # the getUpdates call now waiting
        self.conflicts = 0  # getUpdates calls ended by another poller (409)
        self._runner: web.AppRunner | None = None
        self._closing = False
        self.port = 0
        self.files: dict[str, bytes] = {}  # file_id -> bytes: what people sent and bots uploaded
        self.uploads: list[tuple[str, bytes]] = []  # (file_id, bytes) uploaded by the bot
        self._file_ids = itertools.count(1)
        # load controls: seconds a send takes before it is answered (a send in flight), and
        # every n-th send answered 429 (0 = never), as the real server does under load
        self.send_delay = 0.0
        self.rate_limit_every = 0
        self._sends = 0
        # unreachable: every call is taken and never answered (a dead upstream, a black-holing proxy)
        self.hang = False
        self._hung = asyncio.Event()

    # ------------------------------------------------------------------ server

    async def start(self) -> FakeTelegram:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._dispatch)
        app.router.add_get("/file/bot{token}/{path:.*}", self._download)
        self._runner = web.AppRunner(app, shutdown_timeout=2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self._closing = True  # ends open long polls at once
        self._new_update.set()
        self._hung.set()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    # ------------------------------------------------------------------ test controls

    def unhang(self) -> None:
        """Answering again; the calls left hanging get a 503 (their clients gave up long ago)."""
        self.hang = False
        self._hung.set()
        self._hung = asyncio.Event()

    def add_file(self, data: bytes) -> str:
        """A file a person sent; its file_id is what the update carries."""
        file_id = f"F{next(self._file_ids):04d}-{self.token.split(':')[0]}"
        self.files[file_id] = data
        return file_id

    def fail_next(self, method: str, times: int = 1, *, status: int = 429, retry_after: int | None = 1,
                  description: str | None = None) -> None:
        """Answer the next `times` calls of `method` with an error."""
        body: dict = {"ok": False, "error_code": status,
                      "description": description or f"Too Many Requests: retry after {retry_after}"}
        if status == 429 and retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
        self._failures.setdefault(method, []).extend([(status, body)] * times)

    def calls_of(self, *methods: str, chat: object | None = None) -> list[Call]:
        return [c for c in self.calls if c.method in methods and (chat is None or c.chat_id == str(chat))]

    def sent_to(self, chat: object) -> list[Call]:
        return self.calls_of("sendMessage", chat=chat)

    def last_text(self, chat: object) -> str:
        sent = self.sent_to(chat)
        return sent[-1].params["text"] if sent else ""

    def message(self, chat: object, message_id: int) -> dict:
        return self.messages[(str(chat), int(message_id))]

    # ------------------------------------------------------------------ updates people cause

    def push(self, update: dict) -> int:
        """Queue an update; returns its update_id. An update_id already given is kept (repeats)."""
        update.setdefault("update_id", next(self._update_ids))
        self.updates.append(update)
        self._new_update.set()
        return update["update_id"]

    @staticmethod
    def chat(chat_id: int, title: str | None = None, person: Person | None = None) -> dict:
        if chat_id < 0:
            return {"id": chat_id, "type": "supergroup", "title": title or "工作群"}
        return {"id": chat_id, "type": "private", "first_name": person.first_name if person else "x"}

    def message_update(self, person: Person, *, group: int | None = None, title: str | None = None,
                       kind: str = "message", **content: Any) -> dict:
        """An update for a message from `person`, in their private chat or in `group`."""
        chat = self.chat(group, title) if group else self.chat(person.id, person=person)
        msg = {"message_id": self._next_message_id(str(chat["id"])), "date": int(time.time()),
               "chat": chat, "from": person.as_user(), **content}
        if kind == "edited":
            msg["edit_date"] = int(time.time())
            return {"edited_message": msg}
        return {"message": msg}

    def say(self, person: Person, text: str | None = None, *, group: int | None = None, **content: Any) -> int:
        if text is not None:
            content["text"] = text
        return self.push(self.message_update(person, group=group, **content))

    def press(self, person: Person, chat: object, message_id: int, data: str) -> tuple[int, str]:
        """A callback query from a button on a message; returns (update_id, query id)."""
        msg = dict(self.messages.get((str(chat), int(message_id))) or {
            "message_id": int(message_id), "date": int(time.time()), "chat": self.chat(int(chat))})
        query_id = str(next(self._queries))
        update_id = self.push({"callback_query": {"id": query_id, "from": person.as_user(), "message": msg,
                                                  "chat_instance": "ci", "data": data}})
        return update_id, query_id

    def bot_status(self, group: int, by: Person, old: str, new: str, title: str = "工作群") -> int:
        bot = {"id": BOT_ID, "is_bot": True, "first_name": "Gridbot", "username": BOT_USERNAME}
        return self.push({"my_chat_member": {
            "chat": self.chat(group, title), "from": by.as_user(), "date": int(time.time()),
            "old_chat_member": {"status": old, "user": bot}, "new_chat_member": {"status": new, "user": bot,
                                                                               **({"until_date": 0} if new == "kicked" else {})},
        }})

    # ------------------------------------------------------------------ the Bot API

    async def _dispatch(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _answer(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        method = request.match_info["method"]
        call = Call(method, await _params(request, self._uploaded))
        self.calls.append(call)
        if self.hang:
            call.status = 0
            await self._hung.wait()  # released by stop()
            return _answer(503, {"ok": False, "error_code": 503, "description": "unreachable"})
        if method.startswith("send"):
            self._sends += 1
            if self.send_delay:
                await asyncio.sleep(self.send_delay)
            if self.rate_limit_every and self._sends % self.rate_limit_every == 0:
                call.status = 429
                return _answer(429, {"ok": False, "error_code": 429, "parameters": {"retry_after": 1},
                                     "description": "Too Many Requests: retry after 1"})
        if self._failures.get(method):
            call.status, body = self._failures[method].pop(0)
            return _answer(call.status, body)
        if method.startswith("send") and not call.chat_id.lstrip("-").isdigit():
            call.status = 400  # as the real server answers an id that is no chat
            return _answer(400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"})
        if method.startswith("send") and call.chat_id in self.blocked:
            call.status = 403
            return _answer(403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"})
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            call.status = 404
            return _answer(404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"})
        result = await handler(call.params)
        if isinstance(result, web.Response):
            call.status = result.status
            return result
        call.result = result
        return _answer(200, {"ok": True, "result": result})

    async def _api_getMe(self, p: dict) -> dict:
        return {"id": BOT_ID, "is_bot": True, "first_name": "Gridbot", "username": BOT_USERNAME,
                "can_join_groups": True, "can_read_all_group_messages": True, "supports_inline_queries": False}

    async def _api_getUpdates(self, p: dict) -> list[dict] | web.Response:
        # as on the real server, a second poller ends the first one's waiting call with 409
        me = object()
        if self._poller is not None:
            self._new_update.set()
        self._poller = me
        offset = int(p.get("offset") or 0)
        if offset:  # everything below the offset is confirmed and forgotten, as on the real server
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        deadline = time.monotonic() + float(p.get("timeout") or 0)
        while not self.updates and not self._closing and time.monotonic() < deadline:
            self._new_update.clear()
            try:
                await asyncio.wait_for(self._new_update.wait(), deadline - time.monotonic())
            except TimeoutError:
                break
            if self._poller is not me:
                self.conflicts += 1
                return _answer(409, {"ok": False, "error_code": 409, "description":
                                     "Conflict: terminated by other getUpdates request; make sure that only "
                                     "one bot instance is running"})
        if self._poller is me:
            self._poller = None
        return self.updates[: int(p.get("limit") or 100)]

    async def _api_deleteWebhook(self, p: dict) -> bool:
        self.webhook = None
        return True

    async def _api_setWebhook(self, p: dict) -> bool:
        self.webhook = p
        return True

    async def _api_getWebhookInfo(self, p: dict) -> dict:
        return {"url": (self.webhook or {}).get("url", ""), "has_custom_certificate": False,
                "pending_update_count": 0}

    async def _api_setMyCommands(self, p: dict) -> bool:
        return True

    async def _api_answerCallbackQuery(self, p: dict) -> bool:
        return True

    async def _api_getFile(self, p: dict) -> dict | web.Response:
        if self.files and p["file_id"] not in self.files:
            return _bad("Bad Request: wrong file identifier/HTTP URL specified")
        size = len(self.files.get(p["file_id"], b"x" * 1000))
        return {"file_id": p["file_id"], "file_unique_id": f"u-{p['file_id']}", "file_size": size,
                "file_path": f"files/{p['file_id']}"}

    def _uploaded(self, data: bytes) -> str:
        file_id = self.add_file(data)
        self.uploads.append((file_id, data))
        return file_id

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        file_id = request.match_info["path"].rsplit("/", 1)[-1]
        if file_id not in self.files:
            return web.Response(status=404)
        return web.Response(body=self.files[file_id])

    def _next_message_id(self, chat: str) -> int:
        return next(self._message_ids.setdefault(chat, itertools.count(1)))

    def _store(self, p: dict, **content: Any) -> dict:
        chat = str(p["chat_id"])
        chat_obj = self.chat(int(chat))
        msg = {"message_id": self._next_message_id(chat), "date": int(time.time()), "chat": chat_obj,
               "from": {"id": BOT_ID, "is_bot": True, "first_name": "Gridbot"}, **content}
        if p.get("reply_markup"):
            msg["reply_markup"] = p["reply_markup"]
        self.messages[(chat, msg["message_id"])] = msg
        return msg

    async def _api_sendMessage(self, p: dict) -> dict | web.Response:
        if not p.get("text"):
            return _bad("Bad Request: message text is empty")
        if len(p["text"]) > 4096:
            return _bad("Bad Request: message is too long")
        return self._store(p, text=p["text"])

    async def _api_sendPhoto(self, p: dict) -> dict:
        return self._store(p, photo=[{"file_id": p["photo"], "file_unique_id": "u", "width": 1, "height": 1}])

    async def _api_sendVideo(self, p: dict) -> dict:
        return self._store(p, video={"file_id": p["video"], "file_unique_id": "u", "width": 1, "height": 1,
                                     "duration": 1})

    async def _api_sendVoice(self, p: dict) -> dict | web.Response:
        # Telegram plays a voice note only as OGG/Opus: a known file that is not is refused here
        # (the real server would show it as a file), so a test sees what was sent as voice
        data = self.files.get(p["voice"])
        if data is not None and not (data.startswith(b"OggS") and b"OpusHead" in data[:128]):
            return _bad("Bad Request: voice must be OGG/Opus (this fake checks the OggS and OpusHead magic)")
        return self._store(p, voice={"file_id": p["voice"], "file_unique_id": "u", "duration": 1})

    async def _api_sendDocument(self, p: dict) -> dict:
        return self._store(p, document={"file_id": p["document"], "file_unique_id": "u"})

    async def _api_sendMediaGroup(self, p: dict) -> list[dict] | web.Response:
        media = p.get("media") or []
        if not 2 <= len(media) <= 10:
            return _bad("Bad Request: wrong number of media in the album")
        out = []
        for m in media:
            field_name = "photo" if m["type"] == "photo" else "video"
            value = [{"file_id": m["media"], "file_unique_id": "u", "width": 1, "height": 1}] \
                if field_name == "photo" else {"file_id": m["media"], "file_unique_id": "u", "width": 1,
                                              "height": 1, "duration": 1}
            out.append(self._store({"chat_id": p["chat_id"]}, **{field_name: value}))
        return out

    def _edited(self, p: dict) -> dict | web.Response:
        msg = self.messages.get((str(p.get("chat_id")), int(p.get("message_id") or 0)))
        if msg is None:
            return _bad("Bad Request: message to edit not found")
        return msg

    async def _api_editMessageText(self, p: dict) -> dict | web.Response:
        msg = self._edited(p)
        if isinstance(msg, web.Response):
            return msg
        markup = p.get("reply_markup") or {"inline_keyboard": []}
        if msg.get("text") == p.get("text") and (msg.get("reply_markup") or {"inline_keyboard": []}) == markup:
            return _bad("Bad Request: message is not modified: specified new message content and reply "
                        "markup are exactly the same as a current content and reply markup of the message")
        msg["text"], msg["reply_markup"], msg["edit_date"] = p["text"], markup, int(time.time())
        return msg

    async def _api_editMessageReplyMarkup(self, p: dict) -> dict | web.Response:
        msg = self._edited(p)
        if isinstance(msg, web.Response):
            return msg
        msg["reply_markup"] = p.get("reply_markup") or {"inline_keyboard": []}
        return msg


async def _params(request: web.Request, upload=None) -> dict[str, Any]:
    """PTB posts form fields whose complex values are JSON strings; some clients post JSON.
    An uploaded file becomes a new file_id (through `upload`), as the real server answers."""
    if request.content_type == "application/json":
        return await request.json()
    raw = dict(request.query)
    files: dict[str, str] = {}
    if request.can_read_body:
        for k, v in (await request.post()).items():
            if isinstance(v, str):
                raw[k] = v
            elif upload is not None:
                files[k] = upload(v.file.read())
    out = {k: json.loads(v) if k in JSON_FIELDS else v for k, v in raw.items()}
    for k, file_id in files.items():
        out.setdefault(k, file_id)  # photo=<file>; album parts are named in "media" as attach://k
    for m in out.get("media") or [] if isinstance(out.get("media"), list) else []:
        if isinstance(m, dict) and str(m.get("media", "")).startswith("attach://"):
            m["media"] = files.get(m["media"][len("attach://"):], m["media"])
    return out


def _answer(status: int, body: dict) -> web.Response:
    return web.json_response(body, status=status)


def _bad(description: str) -> web.Response:
    return _answer(400, {"ok": False, "error_code": 400, "description": description})
