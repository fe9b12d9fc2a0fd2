"""bot/sqlite_driver.py: one trip to aiosqlite's thread per statement, with the same results and
errors as SQLAlchemy's own adapter (the rest of the suite runs the office on it)."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from bot.db import make_engine
from bot.sqlite_driver import OneTripCursor

meta = MetaData()
things = Table("things", meta, Column("id", Integer, primary_key=True), Column("name", String, unique=True))


class Counting:
    """aiosqlite's job queue, counting what is put on it (each put is one trip to its thread)."""

    def __init__(self, queue) -> None:
        self.queue = queue
        self.puts = 0

    def put_nowait(self, item) -> None:
        self.puts += 1
        self.queue.put_nowait(item)

    def __getattr__(self, name: str):
        return getattr(self.queue, name)


@pytest.fixture
async def engine(tmp_path):
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/t.db")
    async with engine.begin() as conn:
        await conn.run_sync(meta.create_all)
    yield engine
    await engine.dispose()


async def _counted(conn) -> Counting:
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    counting = Counting(driver._tx)
    driver._tx = counting  # the worker thread keeps reading the queue it was given
    return counting


async def test_a_select_is_one_trip(engine):
    async with engine.connect() as conn:
        counting = await _counted(conn)
        assert isinstance(conn.sync_connection.connection.dbapi_connection.cursor(), OneTripCursor)
        await conn.execute(text("SELECT 0"))  # the transaction's BEGIN IMMEDIATE is a trip of its own
        counting.puts = 0
        rows = (await conn.execute(text("SELECT 1 UNION SELECT 2 UNION SELECT 3"))).all()
        assert [r[0] for r in rows] == [1, 2, 3]
        assert counting.puts == 1  # SQLAlchemy's own adapter: four (cursor, execute, fetchall, close)


async def test_rowcount_lastrowid_executemany_returning(engine):
    async with engine.begin() as conn:
        result = await conn.execute(insert(things).values(name="a"))
        assert result.inserted_primary_key == (1,)
        many = await conn.execute(insert(things), [{"name": "b"}, {"name": "c"}, {"name": "d"}])
        assert many.rowcount == 3
        changed = await conn.execute(update(things).where(things.c.name.in_(["b", "c"])).values(name=things.c.name + "!"))
        assert changed.rowcount == 2
        back = await conn.execute(update(things).where(things.c.id == 4).values(name="D").returning(things.c.id))
        assert back.scalar_one() == 4
        assert (await conn.execute(select(things.c.name).order_by(things.c.id))).scalars().all() == [
            "a", "b!", "c!", "D"]
        nothing = await conn.execute(select(things.c.id).where(things.c.id > 99))
        assert nothing.first() is None


async def test_an_error_is_the_drivers_and_the_connection_goes_on(engine):
    async with engine.begin() as conn:
        await conn.execute(insert(things).values(name="x"))
    async with engine.connect() as conn:
        with pytest.raises(IntegrityError):
            await conn.execute(insert(things).values(name="x"))
        await conn.rollback()
        assert (await conn.execute(select(things.c.name))).scalars().all() == ["x"]
