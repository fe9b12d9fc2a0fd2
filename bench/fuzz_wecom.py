"""Fuzz the WeChat Work channels (run through `python -m bench.fuzz --channel wecom`).

The self-built app: signed, encrypted callbacks POSTed to the real callback server, a seeded mix
of well-formed messages (text, commands, button presses with forged keys, locations, photos,
menu events) and malformed ones — a field replaced by an element with children, a character
reference to NUL or to a lone surrogate, a raw NUL, a control character, 20,000 characters, a word
where a number belongs, a field removed or given twice, a message type or event nobody knows.
微信客服: the same idea on `kf/sync_msg` pages (a field replaced by a number, a list, an object,
a lone surrogate, NUL; removed; a message that is no object). Reported:
- tracebacks: log records carrying an exception;
- refused: signed callbacks not answered 200 (WeChat Work would send them again);
- unanswered: residents who sent a well-formed private message and got nothing back;
- state changes: staff accounts, nodes, assignments or group bindings that changed (the fuzz
  plays residents: none of these may change).
The suite runs it at a small size (tests/test_wecom_edge.py).
"""

from __future__ import annotations

import copy
import logging
import random
import time
from dataclasses import dataclass, field

from sqlalchemy import func, select

from .fuzz import ODD, TEXTS

RESIDENTS = [f"res{i:02d}" for i in range(30)]
MALFORMED_VALUES = ["<a>1</a><b>2</b>", "a&#0;b", "<![CDATA[a\x00b]]>", "a&#xD800;b",
                    "<![CDATA[\x01\x02]]>", "<![CDATA[" + "长" * 20_000 + "]]>", "abc", "12x", "", "-1",
                    "99999999999999999999999999", "<![CDATA[\u202e]]>"]


@dataclass
class WeComReport:
    channel: str
    updates: int = 0
    malformed: int = 0
    tracebacks: int = 0
    refused: int = 0
    unanswered: int = 0
    state_changes: int = 0
    seconds: float = 0.0
    samples: list[str] = field(default_factory=list)

    def bad(self) -> int:
        return self.tracebacks + self.refused + self.unanswered + self.state_changes

    def line(self) -> str:
        return (f"{self.channel:10} updates={self.updates} malformed={self.malformed} tracebacks={self.tracebacks} "
                f"refused={self.refused} unanswered={self.unanswered} state_changes={self.state_changes} "
                f"in {self.seconds:.1f} s")


def _cdata(v: str) -> str:
    return f"<![CDATA[{v}]]>"


def app_fields(rng: random.Random, user: str, ts: int, msg_id: int) -> list[tuple[str, str]]:
    """A well-formed app callback as (field, XML content) pairs."""
    head = [("ToUserName", _cdata("wwcorp0000001")), ("FromUserName", _cdata(user)), ("CreateTime", str(ts))]
    roll = rng.random()
    if roll < 0.55:
        body = [("MsgType", _cdata("text")), ("Content", _cdata(rng.choice(TEXTS) or "…"))]
    elif roll < 0.7:
        key = rng.choice(["forged", "x" * 64, "/report", "/start", "r:1:abc"])
        body = [("MsgType", _cdata("event")), ("Event", _cdata(rng.choice(["click", "template_card_event"]))),
                ("EventKey", _cdata(key))]
    elif roll < 0.8:
        body = [("MsgType", _cdata("location")), ("Location_X", f"{rng.uniform(18, 53):.6f}"),
                ("Location_Y", f"{rng.uniform(73, 135):.6f}"), ("Scale", "15"), ("Label", _cdata("某街道"))]
    elif roll < 0.9:
        body = [("MsgType", _cdata("image")), ("PicUrl", _cdata("http://x/p.jpg")),
                ("MediaId", _cdata(f"MEDIA-{rng.randint(1, 999)}"))]
    else:
        body = [("MsgType", _cdata("event")), ("Event", _cdata(rng.choice(["enter_agent", "view", "location"]))),
                ("EventKey", _cdata(""))]
    mid = [("MsgId", str(msg_id))] if body[0][1] != _cdata("event") else []
    return head + body + mid + [("AgentID", "1000002")]


def mutate_fields(rng: random.Random, fields: list[tuple[str, str]]) -> list[tuple[str, str]]:
    out = list(fields)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(out))
        roll = rng.random()
        if roll < 0.15:
            out.pop(i)
        elif roll < 0.25:
            out.insert(i, out[i])  # given twice
        elif roll < 0.35 and out[i][0] == "MsgType":
            out[i] = ("MsgType", _cdata(rng.choice(["hologram", "EVENT", "miniprogram_notice"])))
        elif roll < 0.4 and out[i][0] == "Event":
            out[i] = ("Event", _cdata("quantum_event"))
        else:
            out[i] = (out[i][0], rng.choice(MALFORMED_VALUES))
        if not out:
            break
    return out


def to_xml(fields: list[tuple[str, str]]) -> str:
    return "<xml>" + "".join(f"<{k}>{v}</{k}>" for k, v in fields) + "</xml>"


async def _state(sm) -> tuple:
    from workflows.models import Account, Assignment, GroupBinding, Node
    from workflows.models import Person as DbPerson

    async with sm() as s:
        staff = (await s.execute(select(Account.channel, Account.external_id, Account.person_id)
                                 .join(DbPerson, DbPerson.id == Account.person_id)
                                 .where(DbPerson.code.is_not(None)).order_by(Account.id))).all()
        rest = [(await s.execute(select(func.count()).select_from(m))).scalar_one() for m in (Node, Assignment)]
        bindings = (await s.execute(select(GroupBinding.chat_id, GroupBinding.node_id, GroupBinding.status))).all()
    return tuple(staff), tuple(rest), tuple(sorted(map(tuple, bindings)))


class _Catch(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and not (record.name == "aiohttp.server"
                                    and isinstance(record.exc_info[1], ConnectionResetError)):
            self.records.append(record)


async def fuzz_app(sm, n: int, seed: int, settle_every: int = 25) -> WeComReport:
    """The self-built app's callback over `sm` (a migrated, empty database)."""
    from tests.fakes.wecom_api import FakeWeCom
    from tests.test_wecom import WeGrid

    rng = random.Random(seed)
    report = WeComReport("wecom")
    api = await FakeWeCom().start()
    g = await WeGrid(sm, api).build_tree()
    catch = _Catch()
    logging.getLogger().addHandler(catch)
    answered_wanted: set[str] = set()
    t0 = time.perf_counter()
    try:
        await g.start()
        await g.create_group()
        before = await _state(sm)
        ts = int(time.time())
        for k in range(n):
            user = rng.choice(RESIDENTS)
            fields = app_fields(rng, user, ts + k, 9_000_000 + k)
            if rng.random() < 0.4:
                fields = mutate_fields(rng, fields)
                report.malformed += 1
            elif fields[3][1] == _cdata("text"):
                answered_wanted.add(user)
            status = await g.post(to_xml(fields))
            report.updates += 1
            report.refused += status != 200
            if k % settle_every == settle_every - 1:
                await g.runtime.idle()
                await g.delivery.drain()
        await g.runtime.idle()
        await g.delivery.drain()
        report.seconds = time.perf_counter() - t0
        report.state_changes = sum(a != b for a, b in zip(before, await _state(sm), strict=True))
    finally:
        await g.stop()
        await api.stop()
        logging.getLogger().removeHandler(catch)
    report.unanswered = len([u for u in answered_wanted if not api.sent_to_user(u)])
    report.tracebacks = len(catch.records)
    report.samples = [f"{r.name}: {r.getMessage()[:200]}" for r in catch.records[:5]]
    return report


def kf_message(rng: random.Random, user: str, msgid: str) -> dict:
    roll = rng.random()
    base = {"msgid": msgid, "open_kfid": "wkTESTKF0001", "external_userid": user, "send_time": int(time.time()),
            "origin": 3}
    if roll < 0.6:
        return base | {"msgtype": "text", "text": {"content": rng.choice(TEXTS) or "…"}}
    if roll < 0.7:
        return base | {"msgtype": "text", "text": {"content": "选项", "menu_id": rng.choice(["forged", "x" * 64])}}
    if roll < 0.8:
        return base | {"msgtype": "location", "location": {"latitude": rng.uniform(18, 53),
                                                           "longitude": rng.uniform(73, 135), "name": "某处"}}
    if roll < 0.9:
        return base | {"msgtype": "image", "image": {"media_id": f"KFMEDIA-{rng.randint(1, 99)}"}}
    return base | {"origin": 4, "msgtype": "event", "event": {"event_type": "enter_session"}}


def _paths(value, prefix=()):
    if isinstance(value, dict):
        for k, v in value.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))


def mutate_kf(rng: random.Random, msg: dict):
    if rng.random() < 0.05:
        return rng.choice(ODD)  # a list entry that is no message at all
    out = copy.deepcopy(msg)
    for _ in range(rng.randint(1, 3)):
        paths = list(_paths(out))
        if not paths:
            break
        path = rng.choice(paths)
        parent = out
        for step in path[:-1]:
            parent = parent[step]
        if rng.random() < 0.2:
            parent.pop(path[-1], None)
        elif rng.random() < 0.1 and path[-1] == "msgtype":
            parent["msgtype"] = "hologram"
        else:
            parent[path[-1]] = copy.deepcopy(rng.choice(ODD + ["x" * 20_000]))
    return out


async def fuzz_kf(sm, n: int, seed: int, per_page: int = 20) -> WeComReport:
    """微信客服: `n` messages on sync_msg pages of `per_page`, one callback per page."""
    from tests.fakes.wechat_kf import FakeWeChatKf
    from tests.test_wechat_kf import Kf
    from tests.test_wecom import WeGrid

    rng = random.Random(seed)
    report = WeComReport("wechat_kf")
    api = await FakeWeChatKf().start()
    api.page_size = per_page
    await WeGrid(sm, api).build_tree()  # the same office: staff whose state must not change
    kf = Kf(sm, api)
    catch = _Catch()
    logging.getLogger().addHandler(catch)
    answered_wanted: set[str] = set()
    t0 = time.perf_counter()
    try:
        await kf.start()
        before = await _state(sm)
        k = 0
        while k < n:
            for _ in range(min(per_page, n - k)):
                user = "wm" + rng.choice(RESIDENTS)
                msg = kf_message(rng, user, f"kffuzz{k}")
                if rng.random() < 0.4:
                    msg = mutate_kf(rng, msg)
                    report.malformed += 1
                elif msg["msgtype"] == "text" and "menu_id" not in msg["text"]:
                    answered_wanted.add(user)
                api.messages.append(msg)
                k += 1
                report.updates += 1
            token = f"FUZZ{k}"
            api.tokens.add(token)
            status = await kf.post(kf.event(token))
            report.refused += status != 200
            await kf.settle()
        report.seconds = time.perf_counter() - t0
        report.state_changes = sum(a != b for a, b in zip(before, await _state(sm), strict=True))
    finally:
        await kf.stop()
        await api.stop()
        logging.getLogger().removeHandler(catch)
    report.unanswered = len([u for u in answered_wanted if not api.sent_to(u)])
    report.tracebacks = len(catch.records)
    report.samples = [f"{r.name}: {r.getMessage()[:200]}" for r in catch.records[:5]]
    return report
