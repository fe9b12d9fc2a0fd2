"""A local fake of the 公众号 (Official Account) platform: the server API gridbot calls (token,
message/custom/send, message/template/send, media/get, user/info, menu/create under /cgi-bin/) and
the callbacks WeChat makes to us — a follower's messages and events as XML, plain (signature) or in
safe mode (encrypted and signed with wechatpy's own crypto, msg_signature), and the URL check.

Like the real platform it refuses a custom message to a resident who unfollowed (43004) and a
template message with a client_msg_id it has seen (it answers ok without sending), and it can be
told to answer the next calls with an error (45009, 45047, 45015 …).
"""

from __future__ import annotations

import itertools
import time

import aiohttp
import xmltodict
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

from .wecom_api import FakeWeCom

APP_ID = "wxtestmp000001"
APP_SECRET = "mp-secret-for-tests"
MP_TOKEN = "mpcallbacktoken"
MP_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as 基本配置 generates
MP_ID = "gh_testmp00001"  # the account's original id (ToUserName)


def cdata(value) -> str:
    return f"<![CDATA[{value}]]>"


def sign(*parts: str) -> str:
    signer = WeChatSigner()
    signer.add_data(*parts)
    return signer.signature


class FakeOfficialAccount(FakeWeCom):
    def __init__(self, token: str = MP_TOKEN, aes_key: str | None = MP_AES_KEY) -> None:
        super().__init__()
        self.token = token
        self.crypto = WeChatCrypto(token, aes_key, APP_ID) if aes_key else None
        self.unionids: dict[str, str] = {}  # openid -> unionid (an account bound to an Open Platform)
        self.unfollowed: set[str] = set()
        self.client_msg_ids: set[str] = set()
        self.menus: list[dict] = []
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ what residents do

    def xml(self, openid: str, msgtype: str, body: str, *, msgid: int | None = None,
            create_time: int | None = None) -> str:
        """A message (with MsgId) or an event (without), as WeChat sends it."""
        mid = f"<MsgId>{msgid or 6_000_000 + next(self._ids)}</MsgId>" if msgtype != "event" else ""
        return (f"<xml><ToUserName>{cdata(MP_ID)}</ToUserName><FromUserName>{cdata(openid)}</FromUserName>"
                f"<CreateTime>{create_time or int(time.time()) + next(self._ids)}</CreateTime>"
                f"<MsgType>{cdata(msgtype)}</MsgType>{body}{mid}</xml>")

    def signed_query(self, *, encrypted: bool, plain: str) -> tuple[dict, str]:
        """The query string and body WeChat would POST for this message."""
        ts, nonce = str(int(time.time())), f"n{next(self._ids)}"
        query = {"signature": sign(self.token, ts, nonce), "timestamp": ts, "nonce": nonce}
        if not encrypted:
            return query, plain
        d = xmltodict.parse(self.crypto.encrypt_message(plain, nonce, ts))["xml"]
        body = f"<xml><ToUserName>{cdata(MP_ID)}</ToUserName><Encrypt>{cdata(d['Encrypt'])}</Encrypt></xml>"
        return {**query, "encrypt_type": "aes", "msg_signature": d["MsgSignature"]}, body

    async def push(self, url: str, plain: str, *, encrypted: bool | None = None,
                   query: dict | None = None) -> tuple[int, str]:
        """POST one callback to our server; returns (status, answer text)."""
        encrypted = self.crypto is not None if encrypted is None else encrypted
        params, body = self.signed_query(encrypted=encrypted, plain=plain)
        params.update(query or {})
        async with aiohttp.ClientSession() as http, http.post(url, params=params, data=body.encode()) as r:
            return r.status, await r.text()

    async def verify(self, url: str, *, signature: str | None = None) -> tuple[int, str]:
        """服务器配置 → 提交: the GET that checks our URL."""
        ts, nonce, echo = str(int(time.time())), f"n{next(self._ids)}", f"echo{next(self._ids)}"
        params = {"signature": signature or sign(self.token, ts, nonce), "timestamp": ts, "nonce": nonce,
                  "echostr": echo}
        async with aiohttp.ClientSession() as http, http.get(url, params=params) as r:
            return r.status, await r.text()

    # ------------------------------------------------------------------ the server API

    def _answer(self, path: str, query: dict, body: dict) -> dict:
        if path == "token":
            if query.get("appid") != APP_ID or query.get("secret") != APP_SECRET \
                    or query.get("grant_type") != "client_credential":
                return {"errcode": 40001, "errmsg": "invalid credential"}
            self.tokens_issued += 1
            token = f"MPTOKEN-{self.tokens_issued}"
            self.valid_tokens.add(token)
            return {"access_token": token, "expires_in": 7200}
        if path == "gettoken":
            return {"errcode": 40000, "errmsg": "not an Official Account path"}
        if query.get("access_token") not in self.valid_tokens:
            return {"errcode": 42001, "errmsg": "access_token expired"}
        if (failed := self._planned_failure(path)) is not None:
            return failed
        if path == "media/get":
            return {"errcode": 40007, "errmsg": "invalid media_id"}
        if path in ("message/custom/send", "message/template/send"):
            if body.get("touser") in self.unfollowed:
                return {"errcode": 43004, "errmsg": "require subscribe"}
            if path == "message/template/send":
                cid = body.get("client_msg_id")
                if cid and cid in self.client_msg_ids:
                    return {"errcode": 0, "errmsg": "ok", "msgid": 0, "duplicate": True}
                if cid:
                    self.client_msg_ids.add(cid)
                return {"errcode": 0, "errmsg": "ok", "msgid": 20_000_000 + next(self._ids)}
            return {"errcode": 0, "errmsg": "ok"}
        if path == "user/info":
            openid = query.get("openid", "")
            out = {"subscribe": 0 if openid in self.unfollowed else 1, "openid": openid, "language": "zh_CN"}
            if openid in self.unionids:
                out["unionid"] = self.unionids[openid]
            return out
        if path == "menu/create":
            self.menus.append(body)
            return {"errcode": 0, "errmsg": "ok"}
        return {"errcode": 40000, "errmsg": f"unknown path {path}"}

    # ------------------------------------------------------------------ what residents received

    def sent_to(self, openid: str) -> list:
        return [c for c in self.calls_of("message/custom/send", ok=True) if c.body.get("touser") == openid]

    def templates_to(self, openid: str) -> list:
        return [c for c in self.calls_of("message/template/send", ok=True)
                if c.body.get("touser") == openid and not c.result.get("duplicate")]

    def texts_to(self, openid: str) -> list[str]:
        out = []
        for c in self.sent_to(openid):
            if c.body["msgtype"] == "text":
                out.append(c.body["text"]["content"])
            elif c.body["msgtype"] == "msgmenu":
                out.append(c.body["msgmenu"].get("head_content", ""))
        return out
