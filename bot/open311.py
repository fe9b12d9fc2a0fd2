"""The Open311 GeoReport v2 API over HTTP, under /open311/v2/ on the one web server (bot/web.py).

Only the HTTP side lives here: reading the fields, the key, the per-key rate limit, and turning
workflow errors into the standard's error list `[{"code": 400, "description": "…"}]` with the
same HTTP status. What a request may do is decided in workflows/open311.py and workflows/api_keys.py.
Each call is one transaction: an error leaves nothing written.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy.exc import OperationalError

from handlers.office import Office
from workflows import api_keys, open311
from workflows.api_models import ApiKey
from workflows.context import Ctx
from workflows.errors import DomainError, Invalid, NotAllowed, NotFound, WrongState
from workflows.i18n import T, normalize

from .web import WebServer

log = logging.getLogger(__name__)

PREFIX = "/open311/v2"
STATUS_OF = {Invalid: 400, NotAllowed: 403, NotFound: 404, WrongState: 409}


class Refused(Exception):
    """An HTTP-level refusal (too large, too many, unreadable) in the standard's error format."""

    def __init__(self, status: int, description: str, headers: dict | None = None) -> None:
        super().__init__(description)
        self.status, self.description, self.headers = status, description, headers or {}


def errors(status: int, description: str, headers: dict | None = None, **extra) -> web.Response:
    return web.json_response([{"code": status, "description": description, **extra}], status=status,
                             headers=headers, dumps=_dumps)


def _dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


class KeyLimiter:
    """Sliding one-minute window per key, on the office's clock (per process: several processes
    behind one proxy each allow the key's rate)."""

    def __init__(self, clock) -> None:
        self.clock = clock
        self._hits: dict[int, deque[datetime]] = defaultdict(deque)

    def check(self, key: ApiKey) -> None:
        now = self.clock.now()
        q = self._hits[key.id]
        while q and q[0] <= now - timedelta(minutes=1):
            q.popleft()
        if len(q) >= key.rate_per_minute:
            wait = max(1, int((q[0] + timedelta(minutes=1) - now).total_seconds()) + 1)
            raise Refused(429, f"rate limit of {key.rate_per_minute} requests a minute reached; retry in {wait} s",
                          {"Retry-After": str(wait)})
        q.append(now)


Action = Callable[[Ctx, ApiKey | None, dict[str, str], T], Awaitable[object]]


class Open311Api:
    def __init__(self, office: Office, on_commit: Callable[[], None] | None = None) -> None:
        self.office = office
        self.on_commit = on_commit or office.on_commit
        self.limiter = KeyLimiter(office.clock)

    def routes(self, server: WebServer) -> None:
        add = server.add
        tag = "open311"
        add("GET", f"{PREFIX}/services.json", self.h(self._services, keyed=False),
            summary="Service list: the office's case categories", tag=tag)
        add("GET", PREFIX + "/services/{code}.json", self.h(self._service, keyed=False),
            summary="Service definition of one category", tag=tag)
        add("POST", f"{PREFIX}/requests.json", self.h(self._post, status=201),
            summary="Create a service request (becomes a case in its grid)", tag=tag,
            doc={"responses": {"201": {"description": "created"}, "400": {"description": "bad field"},
                               "403": {"description": "bad key"}, "409": {"description": "external_id replayed"},
                               "413": {"description": "body over 1 MB"}, "429": {"description": "rate limit"}}})
        add("GET", f"{PREFIX}/requests.json", self.h(self._list), summary="Service requests, filtered", tag=tag)
        add("GET", PREFIX + "/requests/{id}.json", self.h(self._one), summary="One service request", tag=tag)
        add("GET", PREFIX + "/tokens/{token}.json", self.h(self._token),
            summary="The service request id of a token", tag=tag)
        add("POST", PREFIX + "/requests/{id}/rating.json", self.h(self._rate),
            summary="Extension: the caller's rating from the hotline's follow-up call", tag=tag)
        add("POST", PREFIX + "/requests/{id}/supplement.json", self.h(self._supplement),
            summary="Extension: the caller's answer when the office asks for more", tag=tag)

    # ------------------------------------------------------------ plumbing

    def h(self, action: Action, *, keyed: bool = True, status: int = 200):
        async def handler(request: web.Request) -> web.Response:
            t = T(normalize(request.query.get("locale") or self.office.language))
            try:
                fields = await _fields(request)
                async with self.office.sessionmaker() as session, session.begin():
                    ctx = self.office.ctx(session)
                    key = None
                    if keyed:
                        key = await api_keys.authenticate(
                            ctx, fields.get("api_key") or request.headers.get("X-Api-Key"))
                        self.limiter.check(key)
                    body = await action(ctx, key, fields, t)
            except Refused as e:
                return errors(e.status, e.description, e.headers)
            except open311.Duplicate as e:
                return errors(409, e.render(t), service_request_id=e.service_request_id, token=e.token)
            except DomainError as e:
                code = next((c for cls, c in STATUS_OF.items() if isinstance(e, cls)), 400)
                return errors(code, e.render(t))
            except OperationalError as e:  # SQLite's write lock held past busy_timeout: say "later", not "broken"
                if "locked" not in str(e):
                    log.exception("open311 %s %s failed", request.method, request.path)
                    return errors(500, "internal error; nothing was changed")
                log.warning("open311 %s %s: database busy", request.method, request.path)
                return errors(503, "database busy; nothing was changed, retry shortly", {"Retry-After": "2"})
            except Exception:  # no traceback reaches the caller; the log has it
                log.exception("open311 %s %s failed", request.method, request.path)
                return errors(500, "internal error; nothing was changed")
            if self.on_commit:
                self.on_commit()  # wake the delivery worker: the card and webhooks are due
            return web.json_response(body, status=status, dumps=_dumps)

        return handler

    # ------------------------------------------------------------ actions

    async def _services(self, ctx: Ctx, key, fields: dict, t: T) -> list[dict]:
        return [_service(c, t) for c in await open311.services(ctx)]

    async def _service(self, ctx: Ctx, key, fields: dict, t: T) -> dict:
        cat = await open311.service(ctx, fields["code"])
        return {"service_code": cat.code, "attributes": []}

    async def _post(self, ctx: Ctx, key: ApiKey, fields: dict, t: T) -> list[dict]:
        case, req = await open311.submit(ctx, key, open311.Submission.from_fields(fields))
        return [{"service_request_id": str(case.id), "token": req.token, "service_notice": None,
                 "account_id": None, "case_number": case.number}]

    async def _list(self, ctx: Ctx, key: ApiKey, fields: dict, t: T) -> list[dict]:
        f = open311.Filters()
        if fields.get("service_request_id"):  # the standard: ids given, every other filter is ignored
            f.ids = [_int_id(i) for i in fields["service_request_id"].split(",") if i.strip()]
        else:
            f.service_code = [c for c in (fields.get("service_code") or "").split(",") if c]
            f.start = _when(fields.get("start_date"), "start_date", ctx.timezone)
            f.end = _when(fields.get("end_date"), "end_date", ctx.timezone)
            f.status = fields.get("status") or None
        return await open311.records(ctx, await open311.find(ctx, key, f), t)

    async def _one(self, ctx: Ctx, key: ApiKey, fields: dict, t: T) -> list[dict]:
        return await open311.records(ctx, [await open311.one(ctx, key, _int_id(fields["id"]))], t)

    async def _token(self, ctx: Ctx, key: ApiKey, fields: dict, t: T) -> list[dict]:
        req = await open311.by_token(ctx, key, fields["token"])
        return [{"service_request_id": str(req.case_id), "token": req.token}]

    async def _rate(self, ctx: Ctx, key: ApiKey, fields: dict, t: T) -> list[dict]:
        case_id = _int_id(fields["id"])
        await open311.rate(ctx, key, case_id, fields.get("rating"), fields.get("comment"))
        return await open311.records(ctx, [await open311.one(ctx, key, case_id)], t)


    async def _supplement(self, ctx: Ctx, key: ApiKey, fields: dict, t: T) -> list[dict]:
        case_id = _int_id(fields["id"])
        await open311.supplement(ctx, key, case_id, fields.get("description"), fields.get("media_url"))
        return await open311.records(ctx, [await open311.one(ctx, key, case_id)], t)


def _service(cat, t: T) -> dict:
    return {"service_code": cat.code, "service_name": cat.name, "description": cat.name_en or cat.name,
            "metadata": False, "type": "realtime", "keywords": "", "group": cat.split,
            # extensions
            "service_name_en": cat.name_en, "time_limit_hours": cat.time_limit_hours}


def _int_id(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise NotFound("找不到编号为 {id} 的服务请求。", id=value[:40]) from None


def _when(value: str | None, what: str, tz: str) -> datetime | None:
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise Invalid("{what} 必须是 ISO 8601 时间，例如 2026-11-23T09:00:00+08:00。", what=what) from None
    return at if at.tzinfo else at.replace(tzinfo=ZoneInfo(tz))


async def _fields(request: web.Request) -> dict[str, str]:
    """Query, path and body fields in one dict (form, multipart or JSON bodies)."""
    fields: dict[str, str] = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        try:
            if request.content_type == "application/json":
                data = await request.json()
                if not isinstance(data, dict):
                    raise Refused(400, "the JSON body must be an object of fields")
                fields.update({k: v if isinstance(v, str) else json.dumps(v) if isinstance(v, (list, dict))
                               else str(v) for k, v in data.items() if v is not None})
            else:
                form = await request.post()
                fields.update({k: v for k, v in form.items() if isinstance(v, str)})
        except web.HTTPRequestEntityTooLarge:
            raise Refused(413, "request body over 1 MB; nothing was written") from None
        except (ValueError, UnicodeDecodeError):
            raise Refused(400, "the body could not be read as a form or JSON") from None
    fields.update(request.match_info)
    return fields
