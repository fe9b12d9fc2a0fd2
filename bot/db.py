"""The database engine, sessions and the schema check."""

from __future__ import annotations

import zlib
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

import migrations

MIGRATIONS_DIR = Path(migrations.__file__).parent


class SchemaOutOfDate(RuntimeError):
    pass


def _shard(chat_id: str | None) -> int:
    return zlib.crc32((chat_id or "").encode()) & 0x7FFFFFFF


def make_engine(url: str, **kw) -> AsyncEngine:
    if url.startswith("sqlite+aiosqlite:") and "module" not in kw:
        from .sqlite_driver import dbapi

        kw["module"] = dbapi()  # one trip to aiosqlite's thread per statement, not four
    if url.startswith("sqlite") and ":memory:" not in url:
        # One connection for the whole process. SQLite has one writer, and every transaction here
        # takes the write lock up front (see _sqlite_begin), so a second connection never runs
        # beside the first: it only waits, inside SQLite's busy handler, in sleeps of up to 100 ms
        # after the lock is already free (most of an update's time under load, bench.inbound).
        # Waiting for the pool's one connection is an asyncio wait, in order, woken at once.
        # Other processes (the CLI, a second `gridbot run`) still meet the busy timeout.
        kw.setdefault("pool_size", 1)
        kw.setdefault("max_overflow", 0)
        kw.setdefault("pool_timeout", 300)
    engine = create_async_engine(url, **kw)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001
            # the driver's own implicit BEGIN misses SAVEPOINT-first transactions (RELEASE then
            # commits at once); let SQLAlchemy begin them, see _sqlite_begin
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            # in WAL mode NORMAL syncs at checkpoints, not at every commit: a commit survives a
            # crash of the process; only a power cut or an OS crash may take the last ones back
            # (SQLite's own advice for WAL; PostgreSQL is the production database)
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.close()
            # the chat shard of bot/senders.py (PostgreSQL has hashtext)
            dbapi_conn.create_function("gridbot_shard", 1, _shard, deterministic=True)

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(conn):  # noqa: ANN001
            # IMMEDIATE takes the write lock up front: a transaction that read first and writes
            # later would otherwise fail with "database is locked" (no busy wait) whenever another
            # connection committed in between — e.g. the delivery worker marking a row sent
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


async def check_schema(engine: AsyncEngine, url: str) -> None:
    current = await current_revision(engine)
    head = head_revision(url)
    if current != head:
        what = "is empty" if current is None else f"is at revision {current}, the code needs {head}"
        raise SchemaOutOfDate(f"The database schema {what}. Run `gridbot db upgrade` to bring it up to date.")


def upgrade(url: str, revision: str = "head") -> None:
    """Alembic's env runs its own event loop, so from inside a running loop it goes to a thread."""
    import asyncio
    import threading

    from alembic import command

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        command.upgrade(alembic_config(url), revision)
        return
    errors: list[BaseException] = []

    def work() -> None:
        try:
            command.upgrade(alembic_config(url), revision)
        except BaseException as e:  # re-raised in the caller's thread
            errors.append(e)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
