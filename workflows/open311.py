"""Cases from other systems (Open311 GeoReport v2): the rules behind bot/open311.py.

A posted request becomes a case through the same `cases.report` a resident's chat report uses,
with the key's source (`hotline` for the 12345 platform) and a caller person who is reached by
phone: the grid's card shows the caller's masked number and the 回访 rating comes back through the
API. Every later step of the case is pushed to the key's webhook through the outbox (channel
`webhook`), in the same transaction as the step. No web library here: the HTTP layer maps the
errors raised (Invalid 400, NotAllowed 403, NotFound 404, WrongState 409) to the standard's format.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from . import cases, geo, tree
from .api_keys import RESERVED_SOURCES
from .api_models import ApiKey, ApiRequest
from .cards import ACTION_LABELS, RATING_LABELS, STATUS_LABELS
from .context import Ctx
from .errors import Invalid, NotAllowed, NotFound, WrongState
from .i18n import T
from .models import OPEN_STATUSES, Case, CaseEvent, Category, Node, Outbox, Person, Team
from .tree import GRID_LEVELS, locate

WEBHOOK_CHANNEL = "webhook"
NEAR_METRES = 300  # as for a chat report: a point just outside the street still finds its grid
MAX_RESULTS = 1000
PHONE_RE = re.compile(r"^\+?\d[\d\- ]{4,18}\d$")
RATING_WORDS = {"满意": "satisfied", "基本满意": "basic", "不满意": "unsatisfied"}
CALLER_NAME = "热线来电人"


class Duplicate(WrongState):
    """The caller's own id was posted before: the first request's case stands, nothing is added."""

    def __init__(self, request: ApiRequest) -> None:
        super().__init__("external_id {external_id} 已提交过，对应事件 {id}，未重复创建。",
                         external_id=request.external_id, id=str(request.case_id))
        # plain values: the rollback that follows expires the row
        self.service_request_id, self.token = str(request.case_id), request.token


@dataclass
class Submission:
    """The fields of POST requests.json (standard names; grid_code, external_id, crs are ours)."""

    service_code: str | None = None
    description: str | None = None
    lat: str | None = None
    long: str | None = None
    crs: str | None = None
    address_string: str | None = None
    grid_code: str | None = None
    media_url: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    email: str | None = None
    external_id: str | None = None

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> Submission:
        names = cls.__dataclass_fields__
        return cls(**{k: (str(v).strip() or None) for k, v in fields.items() if k in names and v is not None})


@dataclass
class Filters:
    """The filters of GET requests.json."""

    ids: list[int] | None = None
    service_code: list[str] = field(default_factory=list)
    start: datetime | None = None
    end: datetime | None = None
    status: str | None = None  # open | closed


# ---------------------------------------------------------------- services

async def services(ctx: Ctx) -> list[Category]:
    return list((await ctx.session.execute(select(Category).order_by(Category.sort, Category.id))).scalars())


async def service(ctx: Ctx, code: str) -> Category:
    cat = (await ctx.session.execute(select(Category).where(Category.code == code))).scalar_one_or_none()
    if cat is None:
        raise NotFound("没有代码为 {code} 的服务类别。", code=code[:64])
    return cat


# ---------------------------------------------------------------- intake

def _float(value: str | None, what: str) -> float:
    try:
        return float(value or "")
    except ValueError:
        raise Invalid("{what} 必须是数字。", what=what) from None


async def _grid_by_code(ctx: Ctx, code: str) -> Node:
    node = (await ctx.session.execute(select(Node).where(Node.code == code))).scalar_one_or_none()
    if node is None or node.level not in GRID_LEVELS:
        raise Invalid("grid_code {code} 不是本辖区的网格编码。", code=code[:64])
    return node


async def _grid_from_address(ctx: Ctx, address: str) -> Node:
    """Without a geocoder an address alone is placed only when one grid is named in it most
    specifically, by its name or its address keywords — the rule of a chat report's typed address."""
    named = await tree.grids_by_address(ctx, address, by_name=True)
    if len(named) != 1:
        raise Invalid("仅凭 address_string 无法确定网格，请同时提供 lat/long 或 grid_code。")
    return named[0]


async def place(ctx: Ctx, sub: Submission) -> tuple[Node, float | None, float | None]:
    """The grid of a request: its grid_code, else its point, else a grid named in its address."""
    lat = lon = None
    if sub.lat is not None or sub.long is not None:
        lat, lon = _float(sub.lat, "lat"), _float(sub.long, "long")
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise Invalid("lat 必须在 ±90 之间，long 必须在 ±180 之间。")
        try:
            lat, lon = geo.to_wgs84(lat, lon, sub.crs or "wgs84")
        except geo.UnknownCRS:
            raise Invalid("crs 只能是 wgs84、gcj02 或 bd09。") from None
    if sub.grid_code:
        return await _grid_by_code(ctx, sub.grid_code), lat, lon
    if lat is not None:
        grid = await locate(ctx, lat, lon, near_metres=NEAR_METRES)
        if grid is None:
            raise Invalid("位置 {lat:.6f},{lon:.6f} 不在本辖区任何网格内。", lat=lat, lon=lon)
        return grid, lat, lon
    if sub.address_string:
        return await _grid_from_address(ctx, sub.address_string), None, None
    raise Invalid("请提供 lat/long、address_string 或 grid_code 之一。")


def _check_url(url: str | None) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 2000:
        raise Invalid("media_url 必须是 http:// 或 https:// 开头的网址（2000 字符以内）。")
    return url


async def _caller(ctx: Ctx, sub: Submission, phone: str | None) -> Person:
    """The person behind a hotline call: one per phone number, so their cases and ratings join up."""
    parts = [p for p in (sub.last_name, sub.first_name) if p]
    # 王 + 大妈 → 王大妈; Western names keep a space, given name first
    cjk = any(0x4E00 <= ord(ch) <= 0x9FFF for p in parts for ch in p)
    name = ("".join(parts) if cjk else " ".join(reversed(parts)))[:100] or CALLER_NAME
    if phone:
        known = (await ctx.session.execute(
            select(Person).where(Person.phone == phone, Person.code.is_(None)).order_by(Person.id).limit(1)
        )).scalar_one_or_none()
        if known is not None:
            return known
    person = Person(name=name, phone=phone, created_at=ctx.now())
    ctx.session.add(person)
    await ctx.session.flush()
    return person


async def _existing(ctx: Ctx, key: ApiKey, external_id: str) -> ApiRequest | None:
    return (await ctx.session.execute(
        select(ApiRequest).where(ApiRequest.key_id == key.id, ApiRequest.external_id == external_id)
    )).scalar_one_or_none()


async def submit(ctx: Ctx, key: ApiKey, sub: Submission) -> tuple[Case, ApiRequest]:
    """POST requests.json: every check first, then one case; a replayed external_id adds nothing."""
    if not sub.service_code:
        raise Invalid("缺少 service_code。")
    try:
        category = await service(ctx, sub.service_code)
    except NotFound:
        raise Invalid("service_code {code} 不存在，可用的类别见 services.json。", code=sub.service_code[:64]) from None
    description = cases.clean_text(sub.description, "问题描述")
    if sub.external_id is not None:
        if len(sub.external_id) > 100:
            raise Invalid("external_id 不能超过 100 个字符。")
        if (seen := await _existing(ctx, key, sub.external_id)) is not None:
            raise Duplicate(seen)
    grid, lat, lon = await place(ctx, sub)
    address = cases.clean_text(sub.address_string, "地址", required=False, limit=300) or None
    phone = re.sub(r"[\s\-]", "", sub.phone) if sub.phone else None
    if sub.phone and not PHONE_RE.match(sub.phone):
        raise Invalid("phone 不是有效的电话号码。")
    if sub.email and (len(sub.email) > 200 or "@" not in sub.email):
        raise Invalid("email 不是有效的邮箱地址。")
    media_url = _check_url(sub.media_url)
    caller = await _caller(ctx, sub, phone)
    attachments = [{"kind": "photo", "ref": media_url, "channel": "open311", "url": media_url}] if media_url else []
    case = await cases.report(ctx, reporter_id=caller.id, category_id=category.id, description=description,
                              grid_id=grid.id, attachments=attachments, latitude=lat, longitude=lon,
                              address=address, contact_phone=phone, source=key.source)
    req = ApiRequest(key_id=key.id, case_id=case.id, token=secrets.token_urlsafe(16), external_id=sub.external_id,
                     media_url=media_url, created_at=ctx.now())
    try:
        async with ctx.session.begin_nested():
            ctx.session.add(req)
    except IntegrityError:  # the same external_id posted at the same moment: the other one won
        raise WrongState("external_id {external_id} 正在提交中，请勿重复提交。", external_id=sub.external_id) from None
    return case, req


# ---------------------------------------------------------------- reading

def _visible(key: ApiKey):
    return None if key.read_all else (ApiRequest.key_id == key.id)


async def find(ctx: Ctx, key: ApiKey, f: Filters) -> list[tuple[Case, ApiRequest | None]]:
    stmt = select(Case, ApiRequest).outerjoin(ApiRequest, ApiRequest.case_id == Case.id)
    if (own := _visible(key)) is not None:
        stmt = stmt.where(own)
    if f.ids:
        stmt = stmt.where(Case.id.in_(f.ids))
    if f.service_code:
        stmt = stmt.join(Category, Category.id == Case.category_id).where(Category.code.in_(f.service_code))
    if f.start:
        stmt = stmt.where(Case.created_at >= f.start)
    if f.end:
        stmt = stmt.where(Case.created_at <= f.end)
    if f.status == "open":
        stmt = stmt.where(Case.status.in_(list(OPEN_STATUSES)))
    elif f.status == "closed":
        stmt = stmt.where(Case.status.not_in(list(OPEN_STATUSES)))
    elif f.status:
        raise Invalid("status 只能是 open 或 closed。")
    stmt = stmt.order_by(Case.created_at.desc(), Case.id.desc()).limit(MAX_RESULTS)
    return [(c, r) for c, r in (await ctx.session.execute(stmt)).all()]


async def one(ctx: Ctx, key: ApiKey, case_id: int) -> tuple[Case, ApiRequest | None]:
    found = await find(ctx, key, Filters(ids=[case_id]))
    if not found:  # another key's case looks exactly like a missing one
        raise NotFound("找不到编号为 {id} 的服务请求。", id=str(case_id))
    return found[0]


async def by_token(ctx: Ctx, key: ApiKey, token: str) -> ApiRequest:
    stmt = select(ApiRequest).where(ApiRequest.token == token)
    if (own := _visible(key)) is not None:
        stmt = stmt.where(own)
    req = (await ctx.session.execute(stmt)).scalar_one_or_none()
    if req is None:
        raise NotFound("找不到该 token。")
    return req


# ---------------------------------------------------------------- 回访: the caller's rating

async def rate(ctx: Ctx, key: ApiKey, case_id: int, rating: str | None, comment: str | None) -> Case:
    """The hotline's follow-up call (回访) reports the caller's rating, on the caller's behalf."""
    rating = RATING_WORDS.get(rating or "", rating)
    case = await _own_case(ctx, key, case_id)
    return await cases.rate(ctx, case.reporter_id, case_id, rating or "", comment)


async def _own_case(ctx: Ctx, key: ApiKey, case_id: int) -> Case:
    """A case this key created (a read-all key reads others' but acts only on its own)."""
    req = (await ctx.session.execute(
        select(ApiRequest).where(ApiRequest.case_id == case_id, ApiRequest.key_id == key.id))).scalar_one_or_none()
    if req is None:
        raise NotFound("找不到编号为 {id} 的服务请求。", id=str(case_id))
    case = await cases.get_case(ctx, case_id)
    if case.reporter_id is None:
        raise NotAllowed("该事件没有来电人。")
    return case


async def supplement(ctx: Ctx, key: ApiKey, case_id: int, text: str | None, media_url: str | None) -> Case:
    """The answer to the leader's 要求补充, from the caller through the hotline."""
    media_url = _check_url(media_url)
    case = await _own_case(ctx, key, case_id)
    attachments = [{"kind": "photo", "ref": media_url, "channel": "open311", "url": media_url}] if media_url else []
    return await cases.supplement(ctx, case.reporter_id, case_id, text or "", attachments)


# ---------------------------------------------------------------- the standard's record

def _iso(ctx: Ctx, at: datetime | None) -> str | None:
    return at.astimezone(ZoneInfo(ctx.timezone)).isoformat(timespec="seconds") if at else None


async def records(ctx: Ctx, rows: list[tuple[Case, ApiRequest | None]], t: T) -> list[dict]:
    """Service requests in the standard's fields, with the documented extensions."""
    if not rows:
        return []
    ids = [c.id for c, _ in rows]
    events: dict[int, list[CaseEvent]] = {i: [] for i in ids}
    for ev in (await ctx.session.execute(
            select(CaseEvent).where(CaseEvent.case_id.in_(ids)).order_by(CaseEvent.at, CaseEvent.id))).scalars():
        events[ev.case_id].append(ev)
    cats = {c.id: c for c in await services(ctx)}
    node_ids = {c.grid_id for c, _ in rows} | {c.level_node_id for c, _ in rows}
    nodes = {n.id: n for n in (await ctx.session.execute(select(Node).where(Node.id.in_(node_ids)))).scalars()}
    team_ids = {c.team_id for c, _ in rows if c.team_id}
    teams = {m.id: m for m in (await ctx.session.execute(select(Team).where(Team.id.in_(team_ids)))).scalars()} \
        if team_ids else {}
    return [_record(ctx, t, c, r, events[c.id], cats[c.category_id], nodes, teams) for c, r in rows]


def _record(ctx: Ctx, t: T, case: Case, req: ApiRequest | None, evs: list[CaseEvent], cat: Category,
            nodes: dict[int, Node], teams: dict[int, Team]) -> dict:
    # the office's notes: what staff wrote at each step (the reporter's own words are theirs)
    staff_notes = [e for e in evs if e.note and (e.actor_id is None or e.actor_id != case.reporter_id)]
    holder = nodes[case.level_node_id].name
    if case.team_id and case.team_id in teams:
        holder = f"{holder} / {teams[case.team_id].name}"
    return {
        "service_request_id": str(case.id),
        "status": "open" if case.status in OPEN_STATUSES else "closed",
        "status_notes": staff_notes[-1].note if staff_notes else None,
        "service_name": cat.name,
        "service_code": cat.code,
        "description": case.description,
        "agency_responsible": holder,
        "service_notice": None,
        "requested_datetime": _iso(ctx, case.created_at),
        "updated_datetime": _iso(ctx, evs[-1].at if evs else case.created_at),
        "expected_datetime": _iso(ctx, case.deadline_at),
        "address": case.address,
        "address_id": None,
        "zipcode": None,
        "lat": case.latitude,
        "long": case.longitude,
        "media_url": req.media_url if req else None,
        "token": req.token if req else None,
        # extensions (docs/open311.md)
        "case_number": case.number,
        "status_zh": STATUS_LABELS.get(case.status, case.status),
        "status_label": t(STATUS_LABELS.get(case.status, case.status)),
        "gridbot_status": case.status,
        "grid_code": nodes[case.grid_id].code,
        "grid_name": nodes[case.grid_id].name,
        "external_id": req.external_id if req else None,
        "source": case.source,
        "rating": case.rating,
        "rating_comment": case.rating_comment,
        "notes": [{"datetime": _iso(ctx, e.at), "action": e.action,
                   "action_label": t(ACTION_LABELS.get(e.action, e.action)), "note": e.note,
                   **({"rating": e.data["rating"], "rating_label": t(RATING_LABELS[e.data["rating"]])}
                      if e.data.get("rating") in RATING_LABELS else {})}
                  for e in evs],
    }


# ---------------------------------------------------------------- pushing each step to the webhook

async def on_case_event(ctx: Ctx, case: Case, ev: CaseEvent) -> None:
    """Called by cases._event for every step: a case posted through a key with a webhook gets one
    outbox row per step, in the step's transaction, keyed so it is written once."""
    if case.source in RESERVED_SOURCES:  # chat and patrol cases: no query at all
        return
    found = (await ctx.session.execute(
        select(ApiRequest, ApiKey).join(ApiKey, ApiKey.id == ApiRequest.key_id).where(ApiRequest.case_id == case.id)
    )).first()
    if found is None:
        return
    req, key = found
    if not key.webhook_url or key.revoked_at is not None:
        return
    dedupe = f"open311:{case.id}:{case.version}"
    if (await ctx.session.execute(select(Outbox.id).where(Outbox.dedupe_key == dedupe))).first():
        return
    t = T(ctx.language)
    [record] = await records(ctx, [(case, req)], t)
    body = {"event": ev.action, "event_datetime": _iso(ctx, ev.at), "sequence": case.version,
            "service_request": record}
    ctx.session.add(Outbox(created_at=ctx.now(), channel=WEBHOOK_CHANNEL, chat_id=f"key:{key.id}", is_group=False,
                           payload={"url": key.webhook_url, "key_id": key.id, "event": ev.action,
                                    "body": json.dumps(body, ensure_ascii=False, sort_keys=True)},
                           dedupe_key=dedupe, status="pending", attempts=0, not_before=ctx.now()))
