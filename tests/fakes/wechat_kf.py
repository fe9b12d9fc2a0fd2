"""The 微信客服 part of the fake WeChat Work server: residents' messages queued for `kf/sync_msg`
(paged by cursor, checked against the callback's token) and `kf/send_msg`, which refuses a
repeated msgid (95016) as the real server does."""

from __future__ import annotations

import itertools

from .wecom_api import FakeWeCom

OPEN_KFID = "wkTESTKF0001"
KF_SECRET = "kf-secret-for-tests"


class FakeWeChatKf(FakeWeCom):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[dict] = []
        self.tokens: set[str] = set()
        self.page_size = 2
        self._kf_ids = itertools.count(1)
        self.sent_msgids: set[str] = set()
        self.unionids: dict[str, str] = {}  # external_userid -> unionid (the corp bound to an Open Platform)

    def resident_writes(self, userid: str, msgtype: str, body: dict, msgid: str | None = None) -> str:
        """Queue a resident's message; returns the callback token WeChat would put in the event."""
        self.messages.append({"msgid": msgid or f"kfm{next(self._kf_ids)}", "open_kfid": OPEN_KFID,
                              "external_userid": userid, "send_time": 0, "origin": 3, "msgtype": msgtype,
                              msgtype: body})
        token = f"ENC{next(self._kf_ids)}"
        self.tokens.add(token)
        return token

    def _answer(self, path: str, query: dict, body: dict) -> dict:
        if path == "gettoken" and query.get("corpsecret") == KF_SECRET:
            query = {**query, "corpsecret": "app-secret-for-tests"}
        if path == "kf/customer/batchget" and query.get("access_token") in self.valid_tokens:
            return {"errcode": 0, "errmsg": "ok", "customer_list": [
                {"external_userid": u, "nickname": f"微信用户{u[-2:]}", "avatar": "", "gender": 0,
                 **({"unionid": self.unionids[u]} if u in self.unionids else {})}
                for u in body.get("external_userid_list") or []], "invalid_external_userid": []}
        if path in ("kf/sync_msg", "kf/send_msg") and query.get("access_token") in self.valid_tokens:
            for n, (fpath, code, msg, _after) in enumerate(self._fail):
                if fpath == path:
                    del self._fail[n]
                    return {"errcode": code, "errmsg": msg}
            if path == "kf/sync_msg":
                if body.get("token") not in self.tokens:
                    return {"errcode": 95007, "errmsg": "invalid msg token"}
                start = int(body.get("cursor") or 0)
                page = self.messages[start:start + self.page_size]
                nxt = start + len(page)
                return {"errcode": 0, "errmsg": "ok", "next_cursor": str(nxt),
                        "has_more": 1 if nxt < len(self.messages) else 0, "msg_list": page}
            if body.get("msgid") in self.sent_msgids:
                return {"errcode": 95016, "errmsg": "msgid duplicated"}
            self.sent_msgids.add(body.get("msgid"))
            return {"errcode": 0, "errmsg": "ok", "msgid": body.get("msgid")}
        return super()._answer(path, query, body)

    def sent_to(self, userid: str) -> list:
        return [c for c in self.calls_of("kf/send_msg", ok=True) if c.body.get("touser") == userid]
