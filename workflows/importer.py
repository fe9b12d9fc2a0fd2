"""Import and export of the office's reference data: tree, people, teams, categories.

A file is checked as a whole before anything is written; any error raises ImportFailed listing
every problem as FILE:LINE: field 'x': what is wrong. Rows are matched by code, so importing the
same file again changes nothing. A key left out of an item leaves that column alone; `null`
clears it. The caller owns the transaction: this module flushes but never commits.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from shapely.geometry import shape
from shapely.validation import explain_validity
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from . import geo
from .models import (
    Account,
    Assignment,
    Category,
    Department,
    Level,
    Node,
    Person,
    Role,
    Split,
    Team,
    TeamGrid,
    TeamMember,
    Urgency,
)

DEMO_FILE = Path(__file__).parent / "data" / "demo.yaml"
KINDS = ("departments", "nodes", "people", "teams", "categories")
KEYS = {
    "departments": ("code", "name"),
    "nodes": ("code", "name", "level", "parent", "case_prefix", "timezone", "notice", "boundary", "crs",
              "patrol_times", "checklist", "address_keywords"),
    "people": ("code", "name", "phone", "language", "partner", "roles", "accounts", "preferred_channel"),
    "teams": ("code", "name", "department", "lead", "members", "grids"),
    "categories": ("code", "name", "name_en", "time_limit_hours", "default_team", "split", "urgency", "sort",
                   "referral", "referral_en"),
}


class ImportFailed(Exception):
    """The file has errors; nothing was written."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass
class ImportReport:
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> created/updated/unchanged

    def total(self, what: str) -> int:
        return sum(c.get(what, 0) for c in self.counts.values())

    @property
    def created(self) -> int:
        return self.total("created")

    @property
    def updated(self) -> int:
        return self.total("updated")

    @property
    def unchanged(self) -> int:
        return self.total("unchanged")

    def __str__(self) -> str:
        lines = [f"{kind}: {c['created']} created, {c['updated']} updated, {c['unchanged']} unchanged"
                 for kind, c in self.counts.items()]
        return "\n".join(lines) or "nothing to import"


# ---------------------------------------------------------------- reading YAML with line numbers

class _Map(dict):
    """A mapping that remembers its own line and each key's line."""

    line = 0
    lines: dict[Any, int]


class _Seq(list):
    line = 0
    lines: list[int]


class _Loader(yaml.SafeLoader):
    # YAML 1.1 reads an unquoted 15:00 as the number 900 (base 60) and 0571 as octal;
    # only plain decimal numbers are numbers here.
    yaml_implicit_resolvers = {
        k: [(tag, rx) for tag, rx in v if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
        for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[int, Any]] = []


_Loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"),
                              list("-+0123456789"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"),
                              list("-+.0123456789"))


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    out = _Map()
    out.line, out.lines = node.start_mark.line + 1, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(None, None, "a key must be plain text", key_node.start_mark)
        line = key_node.start_mark.line + 1
        if key in out:
            loader.duplicates.append((line, key))
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = line
    return out


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> _Seq:
    out = _Seq(loader.construct_object(child, deep=True) for child in node.value)
    out.line, out.lines = node.start_mark.line + 1, [child.start_mark.line + 1 for child in node.value]
    return out


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def _plain(value: Any) -> Any:
    """Plain dicts and lists for the JSON columns."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# ---------------------------------------------------------------- checking values

class _Source:
    def __init__(self, name: str) -> None:
        self.name = name
        self.crs = "wgs84"  # the file's datum (top-level `crs`); a node may name its own
        self.found: list[tuple[int, str]] = []
        self.extra: dict[str, list[dict]] = {}  # care_import.SECTIONS, parsed by that module

    def error(self, line: int, name: str, message: str) -> None:
        self.found.append((line, f"{self.name}:{line}: field '{name}': {message}"))

    @property
    def errors(self) -> list[str]:
        return [text for _, text in sorted(self.found, key=lambda e: e[0])]


Conv = Callable[[Any], Any]


def _text(max_len: int, multiline: bool = False) -> Conv:
    def conv(value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValueError("must be text")
        value = str(value)
        if len(value) > max_len:
            raise ValueError(f"longer than {max_len} characters")
        # NUL, other control characters and lone surrogates: invisible in a list, refused by
        # PostgreSQL (NUL) or by any UTF-8 encoder (surrogates)
        allowed = "\n\t\r" if multiline else ""
        for ch in value:
            if unicodedata.category(ch) in ("Cc", "Cs") and ch not in allowed:
                raise ValueError(f"contains the control character U+{ord(ch):04X}")
        return value
    return conv


def _code(value: Any) -> str:
    value = _text(64)(value).strip()
    if not value or re.search(r"\s", value):
        raise ValueError(f"code {value!r} must be non-empty, without spaces")
    return value


def _choice(enum: type[StrEnum]) -> Conv:
    def conv(value: Any) -> str:
        if value not in {e.value for e in enum}:
            raise ValueError(f"{value!r} is not one of {', '.join(e.value for e in enum)}")
        return str(value)
    return conv


def _phone(value: Any) -> str:
    value = _text(32)(value).strip()
    if not re.fullmatch(r"\+?[0-9][0-9-]*", value) or not 5 <= len(value) <= 20:
        raise ValueError(f"{value!r} is not a phone number (digits, optionally + and -, 5 to 20 characters)")
    return value


INT_MAX = 2**31 - 1  # the database's INTEGER


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{value!r} is not a positive whole number")
    if value > INT_MAX:
        raise ValueError(f"{value} is too large (at most {INT_MAX})")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{value!r} is not a whole number")
    if not -INT_MAX - 1 <= value <= INT_MAX:
        raise ValueError(f"{value} is too large (between {-INT_MAX - 1} and {INT_MAX})")
    return value


def _timezone(value: Any) -> str:
    value = _text(64)(value)
    try:
        ZoneInfo(value)
    except (ValueError, KeyError, OSError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


def _language(value: Any) -> str:
    value = _text(10)(value)
    if not re.fullmatch(r"[A-Za-z]{2,3}(?:[_-][A-Za-z0-9]+)?", value):
        raise ValueError(f"{value!r} is not a language code such as zh_CN or en")
    return value


def _str_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ValueError("must be a list")
    return [_text(200)(v) for v in value]


def _keywords(value: Any) -> list[str]:
    """小区、楼栋、路名 a typed address may contain: a list, or one string split at 、 , ， ;"""
    if isinstance(value, str):
        value = [v for v in re.split(r"[、,，;；]", value)]
    words = [w.strip() for w in _str_list(value) if w.strip()]
    short = [w for w in words if len(w) < 2]
    if short:
        raise ValueError(f"{short[0]!r} is too short to recognise an address by (2 characters or more)")
    return list(dict.fromkeys(words))


def _times(value: Any) -> list[str]:
    times = []
    for t in _str_list(value):
        if not (m := re.fullmatch(r"([01]?[0-9]|2[0-3]):([0-5][0-9])", t.strip())):
            raise ValueError(f"{t!r} is not a time HH:MM such as 09:00")
        times.append(f"{int(m[1]):02d}:{m[2]}")
    return times


def _codes(value: Any) -> list[tuple[str, int]]:
    """Codes with the line each one is on, for errors about the reference."""
    if not isinstance(value, list):
        raise ValueError("must be a list of codes")
    lines = getattr(value, "lines", [0] * len(value))
    return [(_code(v), line) for v, line in zip(value, lines, strict=True)]


def _boundary(value: Any) -> dict:
    if not isinstance(value, dict):
        raise ValueError("must be a GeoJSON geometry mapping {type: Polygon, coordinates: ...}")
    try:
        geom = shape(_plain(value))
    except Exception as e:  # shapely raises many kinds for malformed input
        raise ValueError(f"not a GeoJSON geometry ({e})") from None
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise ValueError(f"must be a Polygon or MultiPolygon, not {geom.geom_type}")
    if geom.is_empty or not geom.is_valid:
        raise ValueError(f"invalid polygon: {explain_validity(geom)}")
    minx, miny, maxx, maxy = geom.bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise ValueError("coordinates must be longitude, latitude in degrees")
    return _plain(value)


class _Item:
    """One mapping from the file, checked field by field into `out`."""

    def __init__(self, src: _Source, data: Any, line: int, allowed: Iterable[str] | None, prefix: str = "") -> None:
        self.src, self.prefix = src, prefix
        self.data: dict = data if isinstance(data, dict) else {}
        self.line = getattr(data, "line", 0) or line
        self.lines: dict = getattr(data, "lines", {})
        self.out: dict[str, Any] = {"_line": self.line, "_lines": self.lines}
        if allowed is not None:
            for key in self.data:
                if key not in allowed:
                    self.err(key, f"unknown key (expected one of: {', '.join(allowed)})")

    def at(self, key: str) -> int:
        return self.lines.get(key, self.line)

    def err(self, key: Any, message: str) -> None:
        self.src.error(self.at(key), f"{self.prefix}{key}", message)

    def get(self, key: str, conv: Conv, required: bool = False, nullable: bool = True) -> Any:
        if key not in self.data:
            if required:
                self.err(key, "required")
            return None
        value = self.data[key]
        if value is None or value == "":
            if required or not nullable:
                self.err(key, "must not be empty")
            else:
                self.out[key] = None
            return None
        try:
            self.out[key] = conv(value)
        except ValueError as e:
            self.err(key, str(e))
            return None
        return self.out[key]


def _department(it: _Item) -> None:
    it.get("code", _code, required=True)
    it.get("name", _text(200), required=True)


def _node(it: _Item) -> None:
    it.get("code", _code, required=True)
    it.get("name", _text(200), required=True)
    it.get("level", _choice(Level), required=True)
    it.get("parent", _code)
    it.get("case_prefix", _text(16))
    it.get("timezone", _timezone)
    it.get("notice", _text(4000, multiline=True))
    crs = it.get("crs", geo.check_crs) or it.src.crs  # UnknownCRS names the three accepted
    if it.get("boundary", _boundary) and crs != "wgs84":
        # stored in WGS-84 whatever datum the file was drawn in
        it.out["boundary"] = geo.geometry_to_wgs84(it.out["boundary"], crs)
    it.get("patrol_times", _times)
    it.get("checklist", _str_list)
    it.get("address_keywords", _keywords)


def _person(it: _Item, csv_row: bool = False) -> None:
    it.get("code", _code, required=True)
    it.get("name", _text(100), required=True)
    it.get("phone", _phone)
    it.get("language", _language)
    it.get("partner", _code)
    it.get("preferred_channel", _text(20))
    if "roles" in it.data:
        raw = it.data["roles"] or []
        if not isinstance(raw, list):
            it.err("roles", "must be a list of {node: CODE, role: ROLE}")
            raw = []
        roles = []
        for i, entry in enumerate(raw):
            line = raw.lines[i] if isinstance(raw, _Seq) else it.at("roles")
            if not isinstance(entry, dict):
                it.src.error(line, f"roles[{i}]", "must be a mapping {node: CODE, role: ROLE}")
                continue
            sub = _Item(it.src, entry, line, ("node", "role"), "" if csv_row else f"roles[{i}].")
            node, role = sub.get("node", _code, required=True), sub.get("role", _choice(Role), required=True)
            if node and role:
                roles.append((node, role, sub.at("node"), f"{sub.prefix}node"))
        it.out["roles"] = roles
    if "accounts" in it.data:
        raw = it.data["accounts"] or {}
        if not isinstance(raw, dict):
            it.err("accounts", "must be a mapping {channel: id}")
            raw = {}
        sub = _Item(it.src, raw, it.at("accounts"), None, "" if csv_row else "accounts.")
        accounts = []
        for channel in raw:
            if not isinstance(channel, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,19}", channel):
                sub.err(channel, "channel name must be lower-case letters, digits or _")
            elif (ext := sub.get(channel, _text(128), required=True)) is not None:
                accounts.append((channel, ext.strip(), sub.at(channel), f"{sub.prefix}{channel}"))
        it.out["accounts"] = accounts


def _team(it: _Item) -> None:
    it.get("code", _code, required=True)
    it.get("name", _text(200), required=True)
    it.get("department", _code)
    it.get("lead", _code)
    for key in ("members", "grids"):
        if it.data.get(key, "") is None:
            it.out[key] = []
        else:
            it.get(key, _codes)


def _category(it: _Item) -> None:
    it.get("code", _code, required=True)
    it.get("name", _text(100), required=True)
    it.get("name_en", _text(100))
    it.get("time_limit_hours", _positive_int, nullable=False)
    it.get("default_team", _code)
    it.get("split", _choice(Split), nullable=False)
    it.get("urgency", _choice(Urgency), nullable=False)
    it.get("sort", _int, nullable=False)
    it.get("referral", _text(300))
    it.get("referral_en", _text(300))


PARSERS: dict[str, Callable[[_Item], None]] = {
    "departments": _department, "nodes": _node, "people": _person, "teams": _team, "categories": _category,
}
Parsed = dict[str, list[dict[str, Any]]]


def _parse_items(src: _Source, kind: str, items: Any, line: int) -> list[dict[str, Any]]:
    if items is None:
        return []
    if not isinstance(items, list):
        src.error(line, kind, "must be a list")
        return []
    out, seen = [], set()
    for i, raw in enumerate(items):
        it = _Item(src, raw, items.lines[i] if isinstance(items, _Seq) else line, KEYS[kind])
        if not isinstance(raw, dict):
            src.error(it.line, f"{kind}[{i}]", "must be a mapping")
            continue
        out.append(checked(it, kind, seen, kind))
    return out


def checked(it: _Item, kind: str, seen: set, where: str, parse: Callable[[_Item], None] | None = None) -> dict:
    """One item parsed (by its kind's parser unless given one); a code already seen in the same
    list is refused. Returns the checked values."""
    (parse or PARSERS[kind])(it)
    code = it.out.get("code")
    if code is not None and code in seen:
        it.err("code", f"duplicate code {code!r} in {where}")
    seen.add(code)
    return it.out


def _parse_yaml(src: _Source, text: str) -> Parsed:
    parsed: Parsed = {kind: [] for kind in KINDS}
    loader = _Loader(text)
    try:
        doc = loader.get_single_data()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line = mark.line + 1 if mark else 1
        src.found.append((line, f"{src.name}:{line}: YAML syntax: {getattr(e, 'problem', None) or e}"))
        return parsed
    finally:
        loader.dispose()
    for line, key in loader.duplicates:
        src.error(line, str(key), "appears twice in the same mapping")
    if doc is None:
        return parsed
    if not isinstance(doc, dict):
        src.error(1, "(top)", f"the file must be a mapping with keys {', '.join(KINDS)}")
        return parsed
    if "crs" in doc:
        try:
            src.crs = geo.check_crs(doc["crs"])
        except ValueError as e:
            src.error(doc.lines["crs"], "crs", str(e))
    from . import care_import

    for key, items in doc.items():
        if key == "crs":
            continue
        if key in care_import.SECTIONS:
            src.extra[key] = care_import.parse(src, key, items, doc.lines[key])
            continue
        if key not in KINDS:
            src.error(doc.lines[key], str(key), f"unknown key (expected one of: {', '.join(KINDS)})")
        else:
            parsed[key] = _parse_items(src, key, items, doc.lines[key])
    return parsed


# ---------------------------------------------------------------- references against file and database

async def _codes_in_db(session: AsyncSession, model: Any) -> set[str]:
    return {c for c in (await session.execute(select(model.code))).scalars() if c is not None}


async def _check_refs(session: AsyncSession, src: _Source, data: Parsed) -> None:
    known = {kind: await _codes_in_db(session, model) | {r["code"] for r in data[kind] if r.get("code")}
             for kind, model in (("departments", Department), ("nodes", Node), ("people", Person), ("teams", Team))}
    names = {"departments": "department", "nodes": "node", "people": "person", "teams": "team"}

    def ref(row: dict, key: str, kind: str, code: str | None, line: int | None = None) -> None:
        if code is not None and code not in known[kind]:
            src.error(line or row["_lines"].get(key, row["_line"]), key,
                      f"unknown {names[kind]} {code!r} (not in this file or the database)")

    for row in data["nodes"]:
        ref(row, "parent", "nodes", row.get("parent"))
    for row in data["people"]:
        ref(row, "partner", "people", row.get("partner"))
        if row.get("partner") and row.get("partner") == row.get("code"):
            src.error(row["_lines"]["partner"], "partner", "a person cannot be their own partner")
        for node, _, line, label in row.get("roles", []):
            ref(row, label, "nodes", node, line)
    for row in data["teams"]:
        ref(row, "department", "departments", row.get("department"))
        ref(row, "lead", "people", row.get("lead"))
        for code, line in row.get("members") or []:
            ref(row, "members", "people", code, line)
        for code, line in row.get("grids") or []:
            ref(row, "grids", "nodes", code, line)
    for row in data["categories"]:
        ref(row, "default_team", "teams", row.get("default_team"))
    await _check_cycles(session, src, data)
    await _check_accounts(session, src, data)


async def _check_cycles(session: AsyncSession, src: _Source, data: Parsed) -> None:
    rows = (await session.execute(select(Node.id, Node.code, Node.parent_id))).all()
    by_id = {nid: code for nid, code, _ in rows}
    parents = {code: by_id.get(pid) for _, code, pid in rows}
    parents.update({r["code"]: r["parent"] for r in data["nodes"] if "parent" in r and r.get("code")})
    reported: set[frozenset[str]] = set()
    for row in data["nodes"]:
        path, code = [row.get("code")], row.get("parent")
        while code is not None and code not in path:
            path.append(code)
            code = parents.get(code)
        if code is not None and code == path[0]:
            cycle = frozenset(path)
            if cycle not in reported:
                reported.add(cycle)
                src.error(row["_lines"]["parent"], "parent",
                          f"node {path[0]!r} would be its own ancestor: {' -> '.join([*path, path[0]])}")


async def _check_accounts(session: AsyncSession, src: _Source, data: Parsed) -> None:
    wanted: dict[tuple[str, str], tuple[str | None, int, str]] = {}  # (channel, id) -> owner, line, label
    for row in data["people"]:
        for ch, ext, line, label in row.get("accounts", []):
            if (ch, ext) in wanted:
                src.error(line, label, f"{ch} account {ext!r} is already given to {wanted[(ch, ext)][0]!r} in this file")
            else:
                wanted[(ch, ext)] = (row.get("code"), line, label)
    if not wanted:
        return
    rows = await session.execute(
        select(Account.channel, Account.external_id, Person.code)
        .join(Person, Person.id == Account.person_id)
        .where(Account.external_id.in_(sorted({ext for _, ext in wanted})))
    )
    for ch, ext, owner in rows.all():
        if (ch, ext) in wanted and wanted[(ch, ext)][0] != owner:
            _, line, label = wanted[(ch, ext)]
            src.error(line, label, f"{ch} account {ext!r} already belongs to {owner or 'a resident'!r}")


# ---------------------------------------------------------------- writing

def _assign(obj: Any, values: dict[str, Any]) -> bool:
    changed = False
    for key, value in values.items():
        if getattr(obj, key) != value:
            setattr(obj, key, value)
            changed = True
    return changed


def _present(row: dict, keys: Iterable[str]) -> dict[str, Any]:
    return {k: row[k] for k in keys if k in row}


class _Writer:
    def __init__(self, session: AsyncSession, now: datetime) -> None:
        self.session, self.now = session, now
        self.status: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}

    def mark(self, kind: str, code: str, changed: bool) -> None:
        current = self.status[kind].setdefault(code, "unchanged")
        if changed and current == "unchanged":
            self.status[kind][code] = "updated"

    async def all(self, model: Any) -> dict[str, Any]:
        return {o.code: o for o in (await self.session.execute(select(model))).scalars() if o.code is not None}

    def upsert(self, kind: str, model: Any, existing: dict[str, Any], code: str, values: dict[str, Any],
               **new_only: Any) -> Any:
        obj = existing.get(code)
        if obj is None:
            obj = existing[code] = model(code=code, **values, **new_only)
            self.session.add(obj)
            self.status[kind][code] = "created"
        else:
            self.mark(kind, code, _assign(obj, values))
        return obj

    def report(self) -> ImportReport:
        counts = {}
        for kind, states in self.status.items():
            if states:
                counts[kind] = {s: sum(1 for v in states.values() if v == s) for s in ("created", "updated", "unchanged")}
        return ImportReport(counts)

    async def write(self, data: Parsed) -> ImportReport:
        s = self.session
        depts = await self.all(Department)
        for row in data["departments"]:
            self.upsert("departments", Department, depts, row["code"], _present(row, ["name"]))

        nodes = await self.all(Node)
        for row in data["nodes"]:
            values = _present(row, ["name", "level", "case_prefix", "timezone", "notice", "boundary",
                                    "patrol_times", "checklist", "address_keywords"])
            self.upsert("nodes", Node, nodes, row["code"], values)
        if any("boundary" in row for row in data["nodes"]):
            geo.invalidate()
        await s.flush()  # parents may come later in the file: link once every node has an id
        for row in data["nodes"]:
            if "parent" in row:
                parent_id = nodes[row["parent"]].id if row["parent"] else None
                self.mark("nodes", row["code"], _assign(nodes[row["code"]], {"parent_id": parent_id}))

        people = await self.all(Person)
        for row in data["people"]:
            values = _present(row, ["name", "phone", "language", "preferred_channel"])
            self.upsert("people", Person, people, row["code"], values, created_at=self.now)
        await s.flush()
        self._partners(data, people)
        await self._accounts(data, people)
        await self._roles(data, people, nodes)

        teams = await self.all(Team)
        for row in data["teams"]:
            values = _present(row, ["name"])
            if "department" in row:
                values["department_id"] = depts[row["department"]].id if row["department"] else None
            if "lead" in row:
                values["lead_id"] = people[row["lead"]].id if row["lead"] else None
            self.upsert("teams", Team, teams, row["code"], values)
        await s.flush()
        await self._links(data, teams, "members", TeamMember, "person_id", people)
        await self._links(data, teams, "grids", TeamGrid, "node_id", nodes)

        cats = await self.all(Category)
        for row in data["categories"]:
            values = _present(row, ["name", "name_en", "time_limit_hours", "split", "urgency", "sort", "referral",
                                   "referral_en"])
            if "default_team" in row:
                values["default_team_id"] = teams[row["default_team"]].id if row["default_team"] else None
            self.upsert("categories", Category, cats, row["code"], values)
        await s.flush()
        return self.report()

    def _partners(self, data: Parsed, people: dict[str, Person]) -> None:
        # A/B posts pair both ways, and the file may name a pair on one side only: the other side
        # follows unless the file states it too or it is paired with someone else.
        states_partner = {row["code"] for row in data["people"] if "partner" in row}
        by_id = {p.id: p for p in people.values()}
        for row in data["people"]:
            if "partner" not in row:
                continue
            me = people[row["code"]]
            new = people[row["partner"]] if row["partner"] else None
            if me.partner_id == (new.id if new else None):
                continue
            old = by_id.get(me.partner_id) if me.partner_id else None
            me.partner_id = new.id if new else None
            self.mark("people", me.code, True)
            if old is not None and old.code not in states_partner and old.partner_id == me.id:
                old.partner_id = None
                self.mark("people", old.code, True)
            if new is not None and new.code not in states_partner and new.partner_id is None:
                new.partner_id = me.id
                self.mark("people", new.code, True)

    async def _accounts(self, data: Parsed, people: dict[str, Person]) -> None:
        ids = [people[row["code"]].id for row in data["people"] if row.get("accounts")]
        if not ids:
            return
        rows = await self.session.execute(select(Account).where(Account.person_id.in_(ids)).order_by(Account.id))
        held: dict[int, list[Account]] = {}
        for acc in rows.scalars():
            held.setdefault(acc.person_id, []).append(acc)
        for row in data["people"]:
            person = people[row["code"]]
            mine = held.get(person.id, [])
            for channel, ext, *_ in row.get("accounts", []):
                if any(a.channel == channel and a.external_id == ext for a in mine):
                    continue
                same_channel = next((a for a in mine if a.channel == channel), None)
                if same_channel is not None:  # the file names the person's account on that channel
                    _assign(same_channel, {"external_id": ext, "chat_id": ext, "undeliverable": None})
                else:
                    acc = Account(channel=channel, external_id=ext, chat_id=ext, person_id=person.id,
                                  created_at=self.now)
                    self.session.add(acc)
                    mine.append(acc)
                self.mark("people", row["code"], True)

    async def _roles(self, data: Parsed, people: dict[str, Person], nodes: dict[str, Node]) -> None:
        rows = [row for row in data["people"] if "roles" in row]
        if not rows:
            return
        ids = [people[row["code"]].id for row in rows]
        current: dict[int, list[Assignment]] = {}
        for a in (await self.session.execute(select(Assignment).where(Assignment.person_id.in_(ids)))).scalars():
            current.setdefault(a.person_id, []).append(a)
        for row in rows:
            pid = people[row["code"]].id
            want = {(nodes[node].id, role) for node, role, *_ in row["roles"]}
            have = {(a.node_id, a.role): a for a in current.get(pid, [])}
            for key in have.keys() - want:
                await self.session.delete(have[key])
            for node_id, role in want - have.keys():
                self.session.add(Assignment(person_id=pid, node_id=node_id, role=role))
            self.mark("people", row["code"], want != set(have))
        await self.session.flush()

    async def _links(self, data: Parsed, teams: dict[str, Team], key: str, model: Any, column: str,
                     targets: dict[str, Any]) -> None:
        rows = [row for row in data["teams"] if key in row]
        if not rows:
            return
        ids = [teams[row["code"]].id for row in rows]
        current: dict[int, dict[int, Any]] = {}
        for link in (await self.session.execute(select(model).where(model.team_id.in_(ids)))).scalars():
            current.setdefault(link.team_id, {})[getattr(link, column)] = link
        for row in rows:
            team_id = teams[row["code"]].id
            want = {targets[code].id for code, _ in row[key]}
            have = current.get(team_id, {})
            for target in have.keys() - want:
                await self.session.delete(have[target])
            for target in want - have.keys():
                self.session.add(model(team_id=team_id, **{column: target}))
            self.mark("teams", row["code"], want != set(have))
        await self.session.flush()


async def _import(session: AsyncSession, src: _Source, data: Parsed, now: datetime | None) -> ImportReport:
    from . import care_import

    await _check_refs(session, src, data)
    await care_import.check(session, src, data, src.extra)
    if src.errors:
        raise ImportFailed(src.errors)
    report = await _Writer(session, now or datetime.now(UTC)).write(data)
    await care_import.write(session, src.extra, report, now or datetime.now(UTC))
    return report


# ---------------------------------------------------------------- public entry points

async def import_yaml(session: AsyncSession, text: str, name: str = "<yaml>",
                      now: datetime | None = None) -> ImportReport:
    src = _Source(name)
    return await _import(session, src, _parse_yaml(src, text), now)


def _read(path: Path, encoding: str = "utf-8") -> str:
    raw = Path(path).read_bytes()
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        if _looks_gbk(raw):
            raise ImportFailed([
                f"{path}:{line}: the file is GBK (GB2312/GB18030) text, not UTF-8. Save it as UTF-8 and import "
                "again: in Excel, File > Save As > 'CSV UTF-8 (comma delimited) (*.csv)'; in WPS, Save As "
                "with encoding UTF-8; or `iconv -f GBK -t UTF-8 old.csv > new.csv`"]) from None
        raise ImportFailed([f"{path}:{line}: the file is not UTF-8 text ({e.reason})"]) from None


def _looks_gbk(raw: bytes) -> bool:
    """Chinese Excel and WPS save CSV as GBK by default; it decodes and has Chinese characters."""
    try:
        text = raw.decode("gbk")
    except UnicodeDecodeError:
        return False
    return any(0x4E00 <= ord(ch) <= 0x9FFF for ch in text)


async def import_file(session: AsyncSession, path: Path, now: datetime | None = None) -> ImportReport:
    """YAML (every kind), or a table: .xlsx (a sheet per kind) or CSV (one kind), see import_tables."""
    from . import import_tables  # it builds on this module's checks

    path = Path(path)
    if path.suffix.lower() == ".csv":
        return await import_tables.import_csv(session, path, now)
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return await import_tables.import_xlsx(session, path, now)
    return await import_yaml(session, _read(path), str(path), now)


async def load_demo(session: AsyncSession, now: datetime | None = None) -> ImportReport:
    return await import_file(session, DEMO_FILE, now)


# ---------------------------------------------------------------- export

class _Dumper(yaml.SafeDumper):
    pass


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _represent_list(dumper: yaml.SafeDumper, value: list) -> yaml.Node:
    # short lists of plain values (times, checklists, codes, coordinates) read best on one line
    flow = all(not isinstance(v, dict | list) for v in value) or all(
        isinstance(v, list) and all(not isinstance(x, dict | list) for x in v) for v in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


def _represent_dict(dumper: yaml.SafeDumper, value: dict) -> yaml.Node:
    # {code, name} and {node, role} pairs on one line
    flow = len(value) <= 2 and all(not isinstance(v, dict | list) for v in value.values())
    return dumper.represent_mapping("tag:yaml.org,2002:map", value, flow_style=flow)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(dict, _represent_dict)


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and v != []}


async def export_data(session: AsyncSession) -> str:
    s = session

    async def rows(stmt: Any) -> list[Any]:
        return list((await s.execute(stmt)).scalars())

    depts = await rows(select(Department).order_by(Department.code))
    dept_code = {d.id: d.code for d in depts}
    nodes = await rows(select(Node).order_by(Node.code))
    node_code = {n.id: n.code for n in nodes}
    kids: dict[int | None, list[Node]] = {}
    for n in nodes:
        kids.setdefault(n.parent_id if n.parent_id in node_code else None, []).append(n)
    ordered: list[Node] = []
    stack = list(reversed(kids.get(None, [])))
    while stack:  # parents before children, siblings by code
        n = stack.pop()
        ordered.append(n)
        stack.extend(reversed(kids.get(n.id, [])))
    people = await rows(select(Person).where(Person.code.is_not(None)).order_by(Person.code))
    person_code = {p.id: p.code for p in people}
    roles: dict[int, list[dict]] = {}
    for a in await rows(select(Assignment).order_by(Assignment.id)):
        roles.setdefault(a.person_id, []).append({"node": node_code[a.node_id], "role": a.role})
    accounts: dict[int, dict[str, str]] = {}
    for acc in await rows(select(Account).order_by(Account.id)):
        accounts.setdefault(acc.person_id, {}).setdefault(acc.channel, acc.external_id)
    teams = await rows(select(Team).order_by(Team.code))
    team_code = {t.id: t.code for t in teams}
    members: dict[int, list[str]] = {}
    for m in await rows(select(TeamMember)):
        members.setdefault(m.team_id, []).append(person_code.get(m.person_id))
    grids: dict[int, list[str]] = {}
    for g in await rows(select(TeamGrid)):
        grids.setdefault(g.team_id, []).append(node_code[g.node_id])
    cats = await rows(select(Category).order_by(Category.sort, Category.id))

    doc = {
        "departments": [{"code": d.code, "name": d.name} for d in depts],
        "nodes": [_clean({"code": n.code, "name": n.name, "level": n.level, "parent": node_code.get(n.parent_id),
                          "case_prefix": n.case_prefix, "timezone": n.timezone, "notice": n.notice,
                          "boundary": n.boundary, "patrol_times": n.patrol_times, "checklist": n.checklist,
                          "address_keywords": n.address_keywords})
                  for n in ordered],
        "people": [_clean({"code": p.code, "name": p.name, "phone": p.phone, "language": p.language,
                           "partner": person_code.get(p.partner_id), "roles": roles.get(p.id),
                           "accounts": accounts.get(p.id), "preferred_channel": p.preferred_channel})
                   for p in people],
        "teams": [_clean({"code": t.code, "name": t.name, "department": dept_code.get(t.department_id),
                          "lead": person_code.get(t.lead_id),
                          "members": sorted(c for c in members.get(t.id, []) if c),
                          "grids": sorted(grids.get(t.id, []))})
                  for t in teams],
        "categories": [_clean({"code": c.code, "name": c.name, "name_en": c.name_en,
                               "time_limit_hours": c.time_limit_hours, "default_team": team_code.get(c.default_team_id),
                               "split": c.split, "urgency": c.urgency, "sort": c.sort, "referral": c.referral,
                               "referral_en": c.referral_en})
                       for c in cats],
    }
    from . import care_import

    doc.update(await care_import.export(session, datetime.now(UTC)))
    return yaml.dump({k: v for k, v in doc.items() if v}, Dumper=_Dumper, allow_unicode=True, sort_keys=False,
                     width=100)
