"""The WeChat Work server API on wechatpy's synchronous client, called from asyncio in a thread.

The access token is fetched once and cached until it expires (wechatpy's memory session); a
call the server rejects for its token (40001/40014/42001) fetches a new one and is tried once
more. Error codes become the delivery errors Delivery understands.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import requests
from wechatpy.enterprise import WeChatClient
from wechatpy.exceptions import WeChatClientException

from .base import PermanentError, RetryLater, TransientError

log = logging.getLogger(__name__)

DEFAULT_BASE = "https://qyapi.weixin.qq.com/cgi-bin/"
TOKEN_ERRORS = {40001, 40014, 42001}
RATE_ERRORS = {45009, 45033, 45047}  # api freq out of limit, too many concurrent calls, send quota
BUSY = {-1}  # 系统繁忙
TIMEOUT = 10


class WeComError(Exception):
    def __init__(self, errcode: int | None, errmsg: str) -> None:
        super().__init__(f"{errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


class GridWeChatClient(WeChatClient):
    """wechatpy's client, pointed at any base URL (a fake in tests) and with a safe token refresh."""

    def __init__(self, corp_id: str, secret: str, base_url: str | None = None) -> None:
        super().__init__(corp_id, secret, timeout=TIMEOUT, auto_retry=False)
        self.API_BASE_URL = base_url or DEFAULT_BASE
        self._token_lock = threading.Lock()

    def fetch_access_token(self):  # the parent hard-codes qyapi.weixin.qq.com
        with self._token_lock:
            return self._fetch_access_token(url=f"{self.API_BASE_URL}gettoken",
                                            params={"corpid": self.corp_id, "corpsecret": self.secret})

    def forget_token(self, rejected: str | None) -> None:
        """The server rejected this token: make the next call fetch a fresh one (once, across threads)."""
        with self._token_lock:
            if rejected is None or self.session.get(self.access_token_key) == rejected:
                self.session.delete(self.access_token_key)
                self.expires_at = None


class WeComAPI:
    """The few calls gridbot makes, each one async and mapped to delivery errors."""

    def __init__(self, corp_id: str, secret: str, agent_id: str | int | None, base_url: str | None = None) -> None:
        self.client = GridWeChatClient(corp_id, secret, base_url)
        self.agent_id = int(agent_id) if agent_id not in (None, "") else 0

    # ---------------------------------------------------------------- plumbing

    def _call_sync(self, method: str, endpoint: str, **kw: Any) -> dict:
        base_params = dict(kw.pop("params", None) or {})
        for attempt in (1, 2):
            token = None
            try:
                token = self.client.access_token
                params = {**base_params, "access_token": token}
                result = self.client._request(method, endpoint, params=params, **kw)
            except WeChatClientException as e:
                code = e.errcode
                if code in TOKEN_ERRORS and attempt == 1:
                    log.info("wecom token rejected (%s); fetching a new one", code)
                    self.client.forget_token(token)
                    continue
                raise WeComError(code, str(e.errmsg)) from e
            return result if isinstance(result, dict) else {"raw": result}
        raise AssertionError("unreachable")

    async def call(self, method: str, endpoint: str, **kw: Any) -> dict:
        try:
            return await asyncio.to_thread(self._call_sync, method, endpoint, **kw)
        except requests.RequestException as e:
            raise TransientError(f"wecom {endpoint}: {e}") from e

    async def post(self, endpoint: str, data: dict) -> dict:
        return await self.call("post", endpoint, data=data)

    # ---------------------------------------------------------------- for delivery

    async def deliver(self, endpoint: str, data: dict) -> dict:
        """A send: errors become RetryLater / TransientError / PermanentError."""
        try:
            result = await self.post(endpoint, data)
        except WeComError as e:
            raise delivery_error(e) from e
        invalid = result.get("invaliduser")
        if invalid:
            raise PermanentError(f"wecom {endpoint}: invalid user {invalid}")
        return result

    async def send_to_user(self, userid: str, msg: dict, *, dedupe: bool = False) -> dict:
        body = {"touser": userid, "agentid": self.agent_id, **msg}
        if dedupe:  # a resend that may have arrived already: the platform drops a repeat
            body |= {"enable_duplicate_check": 1, "duplicate_check_interval": DUPLICATE_CHECK_SECONDS}
        return await self.deliver("message/send", body)

    async def send_to_chat(self, chatid: str, msg: dict) -> dict:
        return await self.deliver("appchat/send", {"chatid": chatid, "safe": 0, **msg})

    # ---------------------------------------------------------------- media

    async def download(self, media_id: str) -> tuple[bytes, str | None, str | None]:
        """media/get: the bytes, their type and file name. An unknown or expired media_id
        (kept 3 days) is a PermanentError."""
        try:
            result = await self.call("get", "media/get", params={"media_id": media_id})
        except WeComError as e:
            raise delivery_error(e) from e
        res = result.get("raw")
        if res is None or not hasattr(res, "content"):
            raise PermanentError(f"wecom media/get {media_id}: no file in the answer")
        mime = (res.headers.get("Content-Type") or "").split(";")[0].strip() or None
        disposition = res.headers.get("Content-Disposition") or ""
        name = disposition.split("filename=", 1)[1].strip('"; ') if "filename=" in disposition else None
        return res.content, mime, name

    async def upload(self, media_type: str, data: bytes, name: str, mime: str | None) -> str:
        """media/upload (image|voice|video|file): the temporary media_id, valid for 3 days."""
        try:
            result = await self.call("post", "media/upload", params={"type": media_type},
                                     files={"media": (name, data, mime or "application/octet-stream")})
        except WeComError as e:
            raise delivery_error(e) from e
        if not result.get("media_id"):
            raise PermanentError(f"wecom media/upload: no media_id in {result}")
        return result["media_id"]


DUPLICATE_CHECK_SECONDS = 1800  # the platform's default; the outbox lease (2 min) is well inside


def delivery_error(e: WeComError) -> Exception:
    code = e.errcode
    if code in RATE_ERRORS:
        return RetryLater(60, f"wecom rate limit {e}")
    if code in BUSY or code is None or code in TOKEN_ERRORS:
        return TransientError(f"wecom {e}")
    return PermanentError(f"wecom {e}")
