"""A local fake of the WeChat Work (企业微信) server API, enough for gridbot's channel.

It serves gettoken, message/send, message/update_template_card, appchat/create|update|send and
media/get|upload under /cgi-bin/, checks the access token, records every call, and can be told to
expire the token, to expire media (as WeChat Work does after 3 days) or to answer the next calls
with an error code (45009, 81013 …).
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field

from aiohttp import web

from ..pg import free_port

CORP_ID = "wwcorp0000001"
SECRET = "app-secret-for-tests"


@dataclass
class Call:
    path: str
    query: dict
    body: dict
    result: dict
    at: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        return self.result.get("errcode", 0) == 0

    @property
    def msgtype(self) -> str | None:
        return self.body.get("msgtype")

    def content(self) -> str:
        t = self.msgtype
        if t in ("text", "markdown"):
            return self.body[t]["content"]
        if t == "template_card":
            card = self.body["template_card"]
            return card["main_title"]["title"] + "\n" + card.get("sub_title_text", "")
        return ""

    def buttons(self) -> list[tuple[str, str]]:
        if self.msgtype != "template_card":
            return []
        return [(b["text"], b["key"]) for b in self.body["template_card"].get("button_list", [])]


class FakeWeCom:
    def __init__(self, users: set[str] | None = None) -> None:
        self.users = users  # None: every userid exists
        self.calls: list[Call] = []
        self.tokens_issued = 0
        self.valid_tokens: set[str] = set()
        self.chats: dict[str, dict] = {}  # chatid -> {name, owner, userlist}
        self._fail: list[list] = []  # [path, errcode, errmsg, calls to let through first]
        self._msgids = itertools.count(1)
        self.media: dict[str, tuple[bytes, str]] = {}  # media_id -> (bytes, content type), valid ones
        self.uploads: list[tuple[str, str, bytes]] = []  # (type, media_id, bytes) as uploaded
        self.expired: set[str] = set()  # media_ids past their 3 days
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cgi-bin/"

    # ------------------------------------------------------------------ control

    def fail_next(self, path: str, errcode: int, errmsg: str = "error", times: int = 1, after: int = 0) -> None:
        """The next `times` calls of path answer errcode, after `after` calls have succeeded."""
        for n in range(times):
            self._fail.append([path, errcode, errmsg, after if n == 0 else 0])

    def _planned_failure(self, path: str) -> dict | None:
        """The errcode answer fail_next planned for this call of path, if any."""
        for n, (fpath, code, msg, after) in enumerate(self._fail):
            if fpath == path:
                if after > 0:
                    self._fail[n][3] -= 1
                    return None
                del self._fail[n]
                return {"errcode": code, "errmsg": msg}
        return None

    def add_media(self, data: bytes, content_type: str = "image/jpeg") -> str:
        """A file a member sent; its media_id is what the callback carries."""
        media_id = f"MEDIA{next(self._msgids)}"
        self.media[media_id] = (data, content_type)
        return media_id

    def expire_media(self) -> None:
        """Every media_id handed out so far is now unknown (40007), as after 3 days."""
        self.expired |= set(self.media)
        self.media.clear()

    def sent_media(self, media_id: str) -> bytes:
        return self.media[media_id][0]

    def expire_tokens(self) -> None:
        """Every token handed out so far is now rejected with 42001."""
        self.valid_tokens.clear()

    def calls_of(self, path: str, *, ok: bool | None = None) -> list[Call]:
        return [c for c in self.calls if c.path == path and (ok is None or c.ok == ok)]

    def sent_to_user(self, userid: str) -> list[Call]:
        return [c for c in self.calls_of("message/send", ok=True) if userid in c.body.get("touser", "").split("|")]

    def sent_to_chat(self, chatid: str) -> list[Call]:
        return [c for c in self.calls_of("appchat/send", ok=True) if c.body.get("chatid") == chatid]

    def last_to_user(self, userid: str) -> Call:
        sent = self.sent_to_user(userid)
        assert sent, f"nothing sent to {userid}"
        return sent[-1]

    # ------------------------------------------------------------------ server

    async def start(self) -> FakeWeCom:
        app = web.Application()
        app.router.add_route("*", "/cgi-bin/{path:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        query = dict(request.query)
        if path == "media/upload" and query.get("access_token") in self.valid_tokens:
            form = await request.post()
            part = form.get("media")
            voice = part is not None and query.get("type") == "voice"
            data = part.file.read() if part is not None else b""
            if part is None:
                result = {"errcode": 41005, "errmsg": "media data missing"}
            elif voice and not data.startswith(b"#!AMR"):
                # WeChat Work takes voice only as AMR (≤ 2 MB, ≤ 60 s)
                result = {"errcode": 40005, "errmsg": "invalid file type: voice must be AMR"}
            elif voice and len(data) > 2 * 1024 * 1024:
                result = {"errcode": 40006, "errmsg": "invalid file size: voice over 2 MB"}
            else:
                media_id = self.add_media(data, part.content_type or "application/octet-stream")
                self.uploads.append((query.get("type", ""), media_id, self.media[media_id][0]))
                result = {"errcode": 0, "errmsg": "ok", "type": query.get("type"), "media_id": media_id,
                          "created_at": str(int(time.time()))}
            self.calls.append(Call(path, query, {}, result))
            return web.json_response(result)
        raw = await request.read()
        try:
            body = json.loads(raw.decode("utf-8")) if raw else {}
        except ValueError:
            body = {}
        if path == "media/get" and query.get("access_token") in self.valid_tokens \
                and query.get("media_id") in self.media and not any(f[0] == path for f in self._fail):
            data, ctype = self.media[query["media_id"]]
            self.calls.append(Call(path, query, {}, {"errcode": 0}))
            return web.Response(body=data, content_type=ctype)
        result = self._answer(path, query, body)
        self.calls.append(Call(path, query, body, result))
        return web.json_response(result)

    def _answer(self, path: str, query: dict, body: dict) -> dict:
        if path == "gettoken":
            if query.get("corpid") != CORP_ID or query.get("corpsecret") != SECRET:
                return {"errcode": 40001, "errmsg": "invalid credential"}
            self.tokens_issued += 1
            token = f"TOKEN-{self.tokens_issued}"
            self.valid_tokens.add(token)
            return {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200}
        if query.get("access_token") not in self.valid_tokens:
            return {"errcode": 42001, "errmsg": "access_token expired"}
        if (failed := self._planned_failure(path)) is not None:
            return failed
        if path == "media/get":
            return {"errcode": 40007, "errmsg": "invalid media_id"}
        if path in ("message/send", "appchat/send"):
            t = body.get("msgtype")
            if t in ("image", "voice", "video", "file") and body.get(t, {}).get("media_id") in self.expired:
                return {"errcode": 40007, "errmsg": "invalid media_id"}
        if path == "message/send":
            users = body.get("touser", "").split("|")
            bad = [u for u in users if self.users is not None and u not in self.users]
            if bad and len(bad) == len(users):
                return {"errcode": 81013, "errmsg": "user & party & tag all invalid"}
            out = {"errcode": 0, "errmsg": "ok", "invaliduser": "|".join(bad), "msgid": f"msg{next(self._msgids)}"}
            if body.get("msgtype") == "template_card":
                out["response_code"] = f"rc{next(self._msgids)}"
            return out
        if path == "message/update_template_card":
            return {"errcode": 0, "errmsg": "ok", "invaliduser": []}
        if path == "appchat/create":
            users = body.get("userlist") or []
            if len(users) < 2:
                return {"errcode": 86216, "errmsg": "chat member count less than 2"}
            chatid = body.get("chatid") or f"wr{next(self._msgids)}"
            if chatid in self.chats:
                return {"errcode": 86215, "errmsg": "chatid already exists"}
            self.chats[chatid] = {"name": body.get("name"), "owner": body.get("owner"), "userlist": list(users)}
            return {"errcode": 0, "errmsg": "ok", "chatid": chatid}
        if path == "appchat/update":
            chat = self.chats.get(body.get("chatid"))
            if chat is None:
                return {"errcode": 86003, "errmsg": "chat not found"}
            for u in body.get("add_user_list") or []:
                if u not in chat["userlist"]:
                    chat["userlist"].append(u)
            chat["userlist"] = [u for u in chat["userlist"] if u not in (body.get("del_user_list") or [])]
            return {"errcode": 0, "errmsg": "ok"}
        if path == "appchat/get":
            chat = self.chats.get(query.get("chatid"))
            if chat is None:
                return {"errcode": 86003, "errmsg": "chat not found"}
            return {"errcode": 0, "errmsg": "ok", "chat_info": {"chatid": query["chatid"], **chat}}
        if path == "appchat/send":
            if body.get("chatid") not in self.chats:
                return {"errcode": 86003, "errmsg": "chat not found"}
            return {"errcode": 0, "errmsg": "ok"}
        return {"errcode": 40000, "errmsg": f"unknown path {path}"}
