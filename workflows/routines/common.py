"""What the sweeps share: local time, claims on routine_mark, and bulk outbox writing.

A *claim* inserts (kind, subject, slot) rows with ON CONFLICT DO NOTHING and returns the rows
this transaction really inserted: whatever another run or another process already did is not
returned, so it is not done again. The outbox batch resolves every recipient with one query per
kind (people, accounts, group bindings) instead of one per message, and writes with
ON CONFLICT (dedupe_key) DO NOTHING as a second guard.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, any_, bindparam, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from ..context import Ctx
from ..i18n import T
from ..models import Account, GroupBinding, Node, Person
from ..outbox import BULK, Msg, outbox_values, write_many
from .models import RoutineMark

CHUNK = 2000


def zone(ctx: Ctx, node_tz: str | None = None) -> ZoneInfo:
    return ZoneInfo(node_tz or ctx.timezone)


def local_now(ctx: Ctx, node_tz: str | None = None) -> datetime:
    return ctx.now().astimezone(zone(ctx, node_tz))


def at_local(day: date, hhmm: str, tz: ZoneInfo) -> datetime:
    h, m = (int(x) for x in hhmm.split(":"))
    return datetime.combine(day, time(h, m), tz)


def dialect_insert(ctx: Ctx | AsyncSession):
    """The insert with ON CONFLICT of the database behind a context or a session."""
    session = ctx if isinstance(ctx, AsyncSession) else ctx.session
    return postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert


def is_pg(ctx: Ctx) -> bool:
    return ctx.session.bind.dialect.name == "postgresql"


def among(ctx: Ctx, column, ids: list[int]):
    """`column IN ids`; on PostgreSQL `= ANY(one array parameter)`, so neither compiling nor
    sending grows with the ids (an IN list renders and binds a parameter per id: 1.6 s of a
    50,000-case deadline batch under the profiler). On SQLite an IN list: the caller keeps it to a
    few thousand ids."""
    if is_pg(ctx):
        return column == any_(bindparam(None, ids, type_=postgresql.ARRAY(BigInteger)))
    return column.in_(ids)


def id_chunks(ctx: Ctx, ids: list[int]) -> Iterable[list[int]]:
    """Ids in parts an `among` takes: all at once on PostgreSQL, 5,000 at a time on SQLite."""
    return chunks(ids, 100_000 if is_pg(ctx) else 5000)


async def pg_insert_unnest(ctx: Ctx, table: str, columns: tuple[tuple[str, str], ...], rows: list[dict],
                           tail: str = "") -> None:
    """One INSERT … SELECT FROM unnest(arrays) for any number of rows (PostgreSQL): a handful of
    parameters instead of one per value, so neither compiling nor sending grows with the rows."""
    names = [c for c, _ in columns]
    for part in chunks(rows, 50_000):
        # a column with one value in every row (the time, the status, the priority …) goes as one
        # parameter, not an array: asyncpg's per-element encoding was a large share of a burst
        params, same = {}, set()
        for c, t in columns:
            values = [r[c] for r in part]
            if t == "jsonb":
                values = _json_texts(values)
            first = values[0]
            if values.count(first) == len(values):  # one C loop; most columns of a burst are constant
                same.add(c)
            params[c] = first if c in same else values
        varying = [(c, t) for c, t in columns if c not in same]
        picks = ", ".join(f"CAST(:{c} AS {t})" if c in same else f"v.{c}" for c, t in columns)
        source = (f"unnest({', '.join(f'CAST(:{c} AS {t}[])' for c, t in varying)}) AS v({', '.join(c for c, _ in varying)})"
                  if varying else f"generate_series(1, {len(part)})")
        sql = f"INSERT INTO {table} ({', '.join(names)}) SELECT {picks} FROM {source} {tail}"
        await ctx.session.execute(text(sql), params)


async def pg_copy(ctx: Ctx, table: str, columns: tuple[tuple[str, str], ...], rows: list[dict]) -> None:
    """COPY rows into a table (PostgreSQL) through the session's own connection, in its transaction:
    for plain inserts (no ON CONFLICT) of a burst. The rows travel in COPY's binary format instead of
    as arrays the server unpacks (200,000 case events: 4.8 s as INSERT … unnest)."""
    if not rows:
        return
    names = [c for c, _ in columns]
    values = {c: (_json_texts([r[c] for r in rows]) if t == "jsonb" else [r[c] for r in rows]) for c, t in columns}
    raw = await (await ctx.session.connection()).get_raw_connection()
    await raw.driver_connection.copy_records_to_table(table, records=zip(*(values[c] for c in names), strict=True),
                                                      columns=names)


STAGE_OVER = 2000  # rows above which pg_copy_upsert stages by COPY; below, one INSERT … unnest


async def pg_copy_upsert(ctx: Ctx, table: str, columns: tuple[tuple[str, str], ...], rows: list[dict],
                         conflict: str) -> None:
    """Insert rows with ON CONFLICT (PostgreSQL), which COPY cannot do: a burst goes by COPY into a
    temporary table dropped at commit, then one INSERT … SELECT … `conflict` into the table. COPY's
    binary rows cost the client and the server less than unnesting arrays (200,000 deadline
    notices: see README, bench.sweeps); a handful of rows keeps the one INSERT … unnest."""
    if len(rows) <= STAGE_OVER:
        await pg_insert_unnest(ctx, table, columns, rows, conflict)
        return
    names = ", ".join(c for c, _ in columns)
    stage = f"{table}_stage"
    await ctx.session.execute(text(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} ({', '.join(f'{c} {t}' for c, t in columns)}) ON COMMIT DROP"))
    await pg_copy(ctx, stage, columns, rows)
    await ctx.session.execute(text(f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} {conflict}"))
    await ctx.session.execute(text(f"TRUNCATE {stage}"))  # a second call in the same transaction starts empty


def _json_texts(values: list) -> list[str | None]:
    """JSON text of each value; empty lists and dicts (most attachments, most data) without the encoder."""
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    return [None if v is None else ("[]" if v == [] else "{}" if v == {} else dumps(v)) for v in values]


def chunks(rows: list, size: int = CHUNK) -> Iterable[list]:
    for i in range(0, len(rows), size):
        yield rows[i:i + size]


@dataclass
class SweepResult:
    """What one sweep run did: counts by kind, and warnings a person should read."""

    counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def add(self, key: str, n: int = 1) -> None:
        if n:
            self.counts[key] = self.counts.get(key, 0) + n

    def warn(self, text: str) -> None:
        self.warnings.append(text)

    def merge(self, other: SweepResult) -> None:
        """Add another run's counts and warnings (the batches and lanes of one sweep)."""
        for k, v in other.counts.items():
            self.add(k, v)
        self.warnings.extend(other.warnings)

    @property
    def acted(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict:
        return {"counts": dict(self.counts), "warnings": self.warnings[:200],
                "warnings_total": len(self.warnings)}


async def claim(ctx: Ctx, kind: str, rows: list[dict]) -> set[tuple[int, str]]:
    """Insert marks (rows: subject_id, slot, optional node_id, person_id, note); returns the new ones."""
    if not rows:
        return set()
    now = ctx.now()
    if is_pg(ctx):
        res = await ctx.session.execute(text(
            "INSERT INTO routine_mark (kind, subject_id, slot, node_id, person_id, note, at) "
            "SELECT :kind, s, sl, n, p, nt, :at FROM unnest(CAST(:s AS bigint[]), CAST(:sl AS text[]), "
            "CAST(:n AS bigint[]), CAST(:p AS bigint[]), CAST(:nt AS text[])) AS v(s, sl, n, p, nt) "
            "ON CONFLICT (kind, subject_id, slot) DO NOTHING RETURNING subject_id, slot"),
            {"kind": kind, "at": now, "s": [r["subject_id"] for r in rows], "sl": [r["slot"] for r in rows],
             "n": [r.get("node_id") for r in rows], "p": [r.get("person_id") for r in rows],
             "nt": [r.get("note") for r in rows]})
        return {(r[0], r[1]) for r in res}
    ins = dialect_insert(ctx)
    won: set[tuple[int, str]] = set()
    for part in chunks(rows):
        values = [{"kind": kind, "subject_id": r["subject_id"], "slot": r["slot"], "node_id": r.get("node_id"),
                   "person_id": r.get("person_id"), "note": r.get("note"), "at": now} for r in part]
        stmt = (ins(RoutineMark).values(values)
                .on_conflict_do_nothing(index_elements=["kind", "subject_id", "slot"])
                .returning(RoutineMark.subject_id, RoutineMark.slot))
        won.update((r[0], r[1]) for r in await ctx.session.execute(stmt))
    return won


Compose = Callable[[T], Msg]


class OutboxBatch:
    """Messages for many people and groups, resolved and written in a few statements."""

    def __init__(self, ctx: Ctx, priority: int = BULK, pace: float | None = None) -> None:
        """`pace`: at most this many rows a second become due (not_before spread from now on), so a
        city's reports go out over a window instead of all at once."""
        self.ctx = ctx
        self.priority = priority
        self.pace = pace
        self._people: list[tuple[int, Compose, str | None]] = []
        self._groups: list[tuple[int, Compose, str | None]] = []

    def to_person(self, person_id: int, compose: Compose, dedupe_key: str | None = None) -> None:
        self._people.append((person_id, compose, dedupe_key))

    def to_group(self, node_id: int, compose: Compose, dedupe_key: str | None = None) -> None:
        self._groups.append((node_id, compose, dedupe_key))

    def __len__(self) -> int:
        return len(self._people) + len(self._groups)

    async def flush(self) -> dict[str, int]:
        """Write everything; returns counts of pending and undeliverable rows."""
        ctx = self.ctx
        now = ctx.now()
        rows: list[dict] = []
        stats = {"pending": 0, "undeliverable": 0}
        translators: dict[str, T] = {}

        def tr(lang: str | None) -> T:
            key = lang or ctx.language
            if key not in translators:
                translators[key] = T(key)
            return translators[key]

        def row(channel: str, chat_id: str, msg: Msg, *, is_group: bool, person_id=None, node_id=None,
                dedupe_key=None, status="pending", error=None) -> None:
            stats[status] = stats.get(status, 0) + 1
            rows.append(outbox_values(now, channel, chat_id, msg, is_group=is_group, person_id=person_id,
                                      node_id=node_id, dedupe_key=dedupe_key, status=status, error=error,
                                      priority=self.priority))

        if self._people:
            ids = list({p for p, _, _ in self._people})
            people: dict[int, tuple[str | None, str | None]] = {}
            accounts: dict[int, list[tuple[str, str]]] = {}
            for part in id_chunks(ctx, ids):
                for pid, lang, pref in await ctx.session.execute(
                        select(Person.id, Person.language, Person.preferred_channel).where(among(ctx, Person.id, part))):
                    people[pid] = (lang, pref)
                for pid, channel, chat in await ctx.session.execute(
                        select(Account.person_id, Account.channel, Account.chat_id)
                        .where(among(ctx, Account.person_id, part), Account.channel.in_(list(ctx.channels)),
                               Account.chat_id.is_not(None))
                        .order_by(Account.id)):
                    accounts.setdefault(pid, []).append((channel, chat))
            for pid, compose, key in self._people:
                if pid not in people:
                    continue
                lang, pref = people[pid]
                msg = compose(tr(lang))
                accs = accounts.get(pid, [])
                acc = next((a for a in accs if a[0] == pref), accs[0] if accs else None)
                if acc is None:
                    row("none", f"person:{pid}", msg, is_group=False, person_id=pid, dedupe_key=key,
                        status="undeliverable", error="no chat account")
                else:
                    row(acc[0], acc[1], msg, is_group=False, person_id=pid, dedupe_key=key)
        if self._groups:
            ids = list({n for n, _, _ in self._groups})
            bindings: dict[int, list[tuple[str, str]]] = {}
            codes: dict[int, str] = {}
            for part in id_chunks(ctx, ids):
                for nid, channel, chat in await ctx.session.execute(
                        select(GroupBinding.node_id, GroupBinding.channel, GroupBinding.chat_id)
                        .where(among(ctx, GroupBinding.node_id, part), GroupBinding.status == "active",
                               GroupBinding.channel.in_(list(ctx.channels)))
                        .order_by(GroupBinding.id)):
                    bindings.setdefault(nid, []).append((channel, chat))
                missing = [n for n in part if n not in bindings]
                if missing:
                    for nid, code in await ctx.session.execute(select(Node.id, Node.code).where(among(ctx, Node.id, missing))):
                        codes[nid] = code
            t = tr(None)
            for nid, compose, key in self._groups:
                msg = compose(t)
                bs = bindings.get(nid)
                if not bs:
                    row("none", f"node:{codes.get(nid, nid)}", msg, is_group=True, node_id=nid, dedupe_key=key,
                        status="undeliverable", error="no bound group")
                    continue
                for i, (channel, chat) in enumerate(bs):
                    k = key if i == 0 or key is None else f"{key}#{channel}"
                    row(channel, chat, msg, is_group=True, node_id=nid, dedupe_key=k)
        if self.pace:
            pending = [r for r in rows if r["status"] == "pending"]
            for k, r in enumerate(pending):
                r["not_before"] = now + timedelta(seconds=k / self.pace)
        await write_many(ctx, rows)
        self._people.clear()
        self._groups.clear()
        return stats


def week_key(day: date) -> str:
    y, w, _ = day.isocalendar()
    return f"{y}-W{w:02d}"
