"""The `care:` and `point_rules:` sections of an import file, checked and written with the rest.

The importer hands over these top-level sections (importer.SECTIONS); errors go to the same list
with file and line, so a bad register row fails the whole import and nothing is written.

    care:
      - household: CY01-H01          # short code, the only name a group ever sees
        grid: CY-01
        building: 3幢
        door: 2单元101
        location: [30.290, 120.105]  # optional lat, lon (WGS-84): visits are checked against it
        people:
          - {code: CY01-H01-1, name: 王秀英, type: 独居老人, frequency: 每周, worker: CY01-W1,
             contact: 王强（儿子）, contact_phone: 13900000001, notes: 行动不便, first_due: 2026-11-23}
    point_rules:
      - {code: report_registered, name: 有效上报, points: 5, daily_cap: 15, monthly_cap: 100}
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from .care import CARE_TYPES, frequency_days
from .care_models import CareAccess, CareHousehold, CarePerson, PointRule
from .models import Assignment, Node, Person, Role
from .tree import GRID_LEVELS

SECTIONS = ("care", "point_rules")
HOUSEHOLD_KEYS = ("household", "grid", "building", "door", "location", "notes", "people")
PERSON_KEYS = ("code", "name", "type", "frequency", "worker", "contact", "contact_phone", "notes", "first_due",
               "active")
RULE_KEYS = ("code", "name", "points", "daily_cap", "monthly_cap", "active")


def _day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{value!r} is not a date YYYY-MM-DD") from None


def _location(value: Any) -> tuple[float, float]:
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)):
        raise ValueError("must be [latitude, longitude]")
    lat, lon = float(value[0]), float(value[1])
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError("latitude or longitude out of range")
    return lat, lon


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _cap(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{value!r} is not a whole number ≥ 0")
    return value


def parse(src: Any, section: str, items: Any, line: int) -> list[dict]:
    from .importer import _code, _int, _Item, _phone, _Seq, _text

    if items is None:
        return []
    if not isinstance(items, list):
        src.error(line, section, "must be a list")
        return []
    out: list[dict] = []
    for i, raw in enumerate(items):
        at = items.lines[i] if isinstance(items, _Seq) else line
        if not isinstance(raw, dict):
            src.error(at, f"{section}[{i}]", "must be a mapping")
            continue
        if section == "point_rules":
            it = _Item(src, raw, at, RULE_KEYS, f"{section}[{i}].")
            it.get("code", _code, required=True)
            it.get("name", _text(100), required=True)
            it.get("points", _int, required=True)
            it.get("daily_cap", _cap)
            it.get("monthly_cap", _cap)
            it.get("active", _bool)
            out.append(it.out)
            continue
        it = _Item(src, raw, at, HOUSEHOLD_KEYS, f"{section}[{i}].")
        it.get("household", _code, required=True)
        it.get("grid", _code, required=True)
        it.get("building", _text(100))
        it.get("door", _text(100))
        it.get("location", _location)
        it.get("notes", _text(1000))
        people = raw.get("people") or []
        it.out["people"] = []
        if not isinstance(people, list):
            it.err("people", "must be a list")
            people = []
        for j, praw in enumerate(people):
            pat = people.lines[j] if isinstance(people, _Seq) else it.at("people")
            if not isinstance(praw, dict):
                src.error(pat, f"{section}[{i}].people[{j}]", "must be a mapping")
                continue
            p = _Item(src, praw, pat, PERSON_KEYS, f"{section}[{i}].people[{j}].")
            p.get("code", _code, required=True)
            p.get("name", _text(100), required=True)
            kind = p.get("type", _text(40), required=True)
            if kind is not None and kind not in CARE_TYPES:
                p.err("type", f"unknown care type {kind!r} (one of: {', '.join(CARE_TYPES)})")
            p.get("worker", _code, required=True)
            p.get("contact", _text(100))
            p.get("contact_phone", _phone)
            p.get("notes", _text(1000))
            p.get("first_due", _day)
            p.get("active", _bool)
            try:
                p.out["frequency_days"] = frequency_days(praw.get("frequency"), kind or "")
            except ValueError as e:
                p.err("frequency", str(e))
            it.out["people"].append(p.out)
        out.append(it.out)
    return out


async def check(session: AsyncSession, src: Any, parsed: dict[str, list[dict]], extra: dict[str, list[dict]]) -> None:
    """Unknown grid or worker, a worker not on that grid, duplicate codes: errors, nothing written."""
    rows = extra.get("care", [])
    if not rows:
        return
    db_nodes = {code: level for code, level in (await session.execute(select(Node.code, Node.level)))}
    file_nodes = {r["code"]: r.get("level") for r in parsed.get("nodes", []) if r.get("code")}
    levels = {**db_nodes, **{k: v for k, v in file_nodes.items() if v}}
    db_people = {c for c in (await session.execute(select(Person.code))).scalars() if c}
    file_people = {r["code"]: r for r in parsed.get("people", []) if r.get("code")}
    db_roles = {(p, n) for p, n in await session.execute(
        select(Person.code, Node.code).join(Assignment, Assignment.person_id == Person.id)
        .join(Node, Node.id == Assignment.node_id).where(Assignment.role == Role.worker))}
    seen_h, seen_p = set(), set()
    for h in rows:
        grid = h.get("grid")
        if h.get("household") in seen_h:
            src.error(h["_line"], "household", f"duplicate household {h['household']!r}")
        seen_h.add(h.get("household"))
        if grid is not None:
            if grid not in levels:
                src.error(h["_lines"].get("grid", h["_line"]), "grid", f"unknown node {grid!r}")
                grid = None
            elif levels[grid] not in {str(g) for g in GRID_LEVELS}:
                src.error(h["_lines"].get("grid", h["_line"]), "grid", f"{grid!r} is not a grid")
                grid = None
        for p in h["people"]:
            line = p["_lines"].get("worker", p["_line"])
            if p.get("code") in seen_p:
                src.error(p["_line"], "code", f"duplicate care person code {p['code']!r}")
            seen_p.add(p.get("code"))
            worker = p.get("worker")
            if worker is None:
                continue
            if worker not in db_people and worker not in file_people:
                src.error(line, "worker", f"unknown person {worker!r}")
                continue
            if grid is None:
                continue
            in_file = file_people.get(worker, {}).get("roles")
            on_grid = ((worker, grid) in db_roles if in_file is None
                       else any(node == grid and role == Role.worker for node, role, *_ in in_file))
            if not on_grid:
                src.error(line, "worker", f"{worker!r} is not a worker of grid {grid!r}")


def _mark(report: Any, kind: str, state: str) -> None:
    counts = report.counts.setdefault(kind, {"created": 0, "updated": 0, "unchanged": 0})
    counts[state] += 1


def _assign(obj: Any, values: dict) -> bool:
    changed = False
    for k, v in values.items():
        if getattr(obj, k) != v:
            setattr(obj, k, v)
            changed = True
    return changed


async def write(session: AsyncSession, extra: dict[str, list[dict]], report: Any, now: datetime) -> None:
    rules = {r.code: r for r in (await session.execute(select(PointRule))).scalars()}
    for row in extra.get("point_rules", []):
        values = {k: row[k] for k in ("name", "points", "daily_cap", "monthly_cap") if k in row}
        values["active"] = row.get("active", True) is not False
        existing = rules.get(row["code"])
        if existing is None:
            session.add(PointRule(code=row["code"], **values))
            _mark(report, "point_rules", "created")
        else:
            _mark(report, "point_rules", "updated" if _assign(existing, values) else "unchanged")
    rows = extra.get("care", [])
    if not rows:
        await session.flush()
        return
    nodes = {n.code: n for n in (await session.execute(select(Node))).scalars()}
    people = {p.code: p.id for p in (await session.execute(select(Person))).scalars() if p.code}
    households = {h.code: h for h in (await session.execute(select(CareHousehold))).scalars()}
    persons = {p.code: p for p in (await session.execute(select(CarePerson))).scalars()}
    touched: list[CarePerson] = []
    for h in rows:
        node = nodes[h["grid"]]
        values = {"node_id": node.id, **{k: h[k] for k in ("building", "door", "notes") if k in h}}
        if "location" in h:
            values["latitude"], values["longitude"] = h["location"] or (None, None)
        obj = households.get(h["household"])
        if obj is None:
            obj = households[h["household"]] = CareHousehold(code=h["household"], **values)
            session.add(obj)
            _mark(report, "care_households", "created")
        else:
            _mark(report, "care_households", "updated" if _assign(obj, values) else "unchanged")
        await session.flush()
        first = now.astimezone(ZoneInfo(node.timezone or "Asia/Shanghai")).date()
        for p in h["people"]:
            pv = {"household_id": obj.id, "name": p["name"], "care_type": p["type"],
                  "frequency_days": p["frequency_days"], "worker_id": people[p["worker"]],
                  **{k: p[k] for k in ("contact_phone", "notes") if k in p}}
            if "contact" in p:
                pv["contact_name"] = p["contact"]
            if "active" in p:
                pv["active"] = p["active"]
            existing = persons.get(p["code"])
            if existing is None:
                existing = CarePerson(code=p["code"], next_due=p.get("first_due") or first,
                                      active=p.get("active", True), **{k: v for k, v in pv.items() if k != "active"})
                session.add(existing)
                _mark(report, "care_people", "created")
            else:  # first_due only starts a schedule: a re-import keeps the visits' dates
                _mark(report, "care_people", "updated" if _assign(existing, pv) else "unchanged")
            touched.append(existing)
    await session.flush()
    # an import reads and writes the register: the operator's pass is on the record too
    session.add_all([CareAccess(at=now, viewer_id=None, care_person_id=p.id, what="import") for p in touched])
    await session.flush()


def _clean(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None and v != []}


async def export(session: AsyncSession, now: datetime) -> dict[str, list[dict]]:
    """The register and the point rules in the import's own form; the export is on the access log."""
    rules = (await session.execute(select(PointRule).order_by(PointRule.id))).scalars().all()
    nodes = {n.id: n.code for n in (await session.execute(select(Node))).scalars()}
    codes = {p.id: p.code for p in (await session.execute(select(Person).where(Person.code.is_not(None)))).scalars()}
    people: dict[int, list[CarePerson]] = {}
    for p in (await session.execute(select(CarePerson).order_by(CarePerson.code))).scalars():
        people.setdefault(p.household_id, []).append(p)
    care = []
    for h in (await session.execute(select(CareHousehold).order_by(CareHousehold.code))).scalars():
        care.append(_clean({
            "household": h.code, "grid": nodes.get(h.node_id), "building": h.building, "door": h.door,
            "location": [h.latitude, h.longitude] if h.latitude is not None else None, "notes": h.notes,
            "people": [_clean({"code": p.code, "name": p.name, "type": p.care_type, "frequency": p.frequency_days,
                               "worker": codes.get(p.worker_id), "contact": p.contact_name,
                               "contact_phone": p.contact_phone, "notes": p.notes,
                               "active": None if p.active else False})
                       for p in people.get(h.id, [])]}))
    session.add_all([CareAccess(at=now, viewer_id=None, care_person_id=p.id, what="export")
                     for ps in people.values() for p in ps])
    return {k: v for k, v in {
        "care": care,
        "point_rules": [_clean({"code": r.code, "name": r.name, "points": r.points, "daily_cap": r.daily_cap,
                                "monthly_cap": r.monthly_cap, "active": None if r.active else False}) for r in rules],
    }.items() if v}
