"""The migrations build exactly the schema the models declare: a column added to a model without a
migration (or the other way round) fails here, not on an office's database after an upgrade."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text

import workflows.all_models  # noqa: F401  (every table registered on the metadata)
from bot.db import alembic_config, make_engine, make_sessionmaker
from workflows.models import Base, CaseDeadline


def _diff(connection) -> list:
    ctx = MigrationContext.configure(connection, opts={"compare_type": False})
    return compare_metadata(ctx, Base.metadata)


async def test_migrated_schema_matches_the_models(engine):
    async with engine.connect() as conn:
        diff = await conn.run_sync(_diff)
    assert diff == [], "\n".join(map(str, diff))


async def _grid_and_category(c) -> None:
    """Grid 1 and category 1, in SQL: the models may be newer than the schema being migrated."""
    await c.execute(text("INSERT INTO node (id, code, name, level) VALUES (1, 'G', '网格', 'grid')"))
    await c.execute(text("INSERT INTO category (id, code, name, time_limit_hours, split, urgency, sort) "
                         "VALUES (1, 'M', '市政设施', 72, 'public', 'normal', 0)"))


async def test_deadline_checks_move_to_their_table_and_back(db_url):
    """0031 moves a case's stage and next check out of case_file; downgrading puts them back."""
    config = alembic_config(db_url)
    await asyncio.to_thread(command.downgrade, config, "0030")
    due = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    engine = make_engine(db_url)
    try:
        async with engine.begin() as c:
            await _grid_and_category(c)
            for cid, stage, nxt, dl in ((1, 3, due, due), (2, 0, None, None)):
                await c.execute(text(
                    "INSERT INTO case_file (id, number, grid_id, level_node_id, category_id, description, status, "
                    "urgency, source, anonymous, attachments, created_at, deadline_at, deadline_stage, next_check_at, "
                    "rework_count, reopen_count, card_nodes, version) VALUES (:id, :n, 1, 1, 1, 'x', 'in_progress', "
                    "'normal', 'resident', false, '[]', :at, :dl, :stage, :nxt, 0, 0, '[]', 1)"),
                    {"id": cid, "n": f"N{cid}", "at": due, "dl": dl, "stage": stage, "nxt": nxt})
        await asyncio.to_thread(command.upgrade, config, "head")
        async with make_sessionmaker(engine)() as s:
            rows = (await s.execute(select(CaseDeadline).order_by(CaseDeadline.case_id))).scalars().all()
            assert [(r.case_id, r.stage, r.next_check_at) for r in rows] == [(1, 3, due)]  # 2: never registered
        await asyncio.to_thread(command.downgrade, config, "0030")
        async with engine.connect() as c:
            back = (await c.execute(text("SELECT id, deadline_stage FROM case_file ORDER BY id"))).all()
        assert [tuple(r) for r in back] == [(1, 3), (2, 0)]
    finally:
        await engine.dispose()
        await asyncio.to_thread(command.upgrade, config, "head")


async def test_remembered_contributions_lose_their_cards_and_get_them_back(db_url):
    """0033 strips the card keys from case_contribution (cards are read from the events now);
    downgrading counts them back from the card events, on the case's grid and Shanghai day."""
    import json

    config = alembic_config(db_url)
    await asyncio.to_thread(command.downgrade, config, "0032")
    at = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)  # 01:00 on the 24th in Shanghai
    own = {"reported|1|2026-11-20": 1, "registered|1|2026-11-20": 1}
    engine = make_engine(db_url)
    try:
        async with engine.begin() as c:
            await _grid_and_category(c)
            for cid in (1, 2):
                await c.execute(text(
                    "INSERT INTO case_file (id, number, grid_id, level_node_id, category_id, description, status, "
                    "urgency, source, anonymous, attachments, created_at, rework_count, reopen_count, card_nodes, "
                    "version) VALUES (:id, :n, 1, 1, 1, 'x', 'in_progress', 'normal', 'resident', false, '[]', :at, "
                    "0, 0, '[]', 1)"), {"id": cid, "n": f"N{cid}", "at": at})
            await c.execute(text("INSERT INTO case_event (case_id, at, action, attachments, data) "
                                 "VALUES (1, :at, 'yellow_card', '[]', '{}')"), {"at": at})
            for cid, contrib in ((1, {**own, "yellow|1|2026-11-24": 1}), (2, own)):
                await c.execute(text("INSERT INTO case_contribution (case_id, contrib) VALUES (:id, :c)"),
                                {"id": cid, "c": json.dumps(contrib)})

        async def remembered() -> dict:
            async with engine.connect() as c:
                rows = (await c.execute(text("SELECT case_id, contrib FROM case_contribution ORDER BY case_id"))).all()
            return {cid: json.loads(v) if isinstance(v, str) else v for cid, v in rows}

        await asyncio.to_thread(command.upgrade, config, "head")
        assert await remembered() == {1: own, 2: own}
        await asyncio.to_thread(command.downgrade, config, "0032")
        assert await remembered() == {1: {**own, "yellow|1|2026-11-24": 1}, 2: own}
    finally:
        await engine.dispose()
        await asyncio.to_thread(command.upgrade, config, "head")
