"""The 公众号 (Official Account) server API on wechatpy's official-account client, pointed at a
configurable base URL (a local fake in tests), with the same asyncio wrapper, token refresh and
error mapping as the WeChat Work API (wecom_api.WeComAPI)."""

from __future__ import annotations

import threading

from wechatpy import WeChatClient

from .wecom_api import TIMEOUT, WeComAPI

DEFAULT_BASE = "https://api.weixin.qq.com/cgi-bin/"


class GridOfficialAccountClient(WeChatClient):
    """wechatpy's official-account client on any base URL, with a safe token refresh."""

    def __init__(self, app_id: str, secret: str, base_url: str | None = None) -> None:
        super().__init__(app_id, secret, timeout=TIMEOUT, auto_retry=False)
        self.API_BASE_URL = base_url or DEFAULT_BASE
        self._token_lock = threading.Lock()

    @property
    def corp_id(self) -> str:  # the name WeComAPI's users read the owning account's id by
        return self.appid

    def fetch_access_token(self):  # the parent hard-codes api.weixin.qq.com
        with self._token_lock:
            return self._fetch_access_token(url=f"{self.API_BASE_URL}token", params={
                "grant_type": "client_credential", "appid": self.appid, "secret": self.secret})

    def forget_token(self, rejected: str | None) -> None:
        with self._token_lock:
            if rejected is None or self.session.get(self.access_token_key) == rejected:
                self.session.delete(self.access_token_key)
                self.expires_at = None


class OfficialAccountAPI(WeComAPI):
    """The calls gridbot makes to the 公众号: custom and template sends, media/get, user/info, menu."""

    def __init__(self, app_id: str, secret: str, base_url: str | None = None) -> None:
        self.client = GridOfficialAccountClient(app_id, secret, base_url)
        self.agent_id = 0

    async def user_info(self, openid: str) -> dict:
        """user/info: `subscribe`, and `unionid` when the account is bound to an Open Platform."""
        return await self.call("get", "user/info", params={"openid": openid, "lang": "zh_CN"})
