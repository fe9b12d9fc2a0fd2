"""Fixtures: a fresh migrated database per test, on SQLite and on a throwaway PostgreSQL server."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import subprocess
from datetime import UTC, datetime

import pytest

from bot.db import make_engine, make_sessionmaker, upgrade
from workflows.clock import FixedClock

from .pg import PostgresServer

BACKENDS = [b for b in os.environ.get("GRIDBOT_TEST_DB", "sqlite,postgresql").split(",") if b]
_counter = itertools.count()

# Monday 2026-11-23 09:00 in Shanghai
START = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def pg_server():
    server = PostgresServer().start()
    yield server
    server.stop()


def _psql(server: PostgresServer, sql: str) -> None:
    subprocess.run([str(server.bindir / "psql"), "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres",
                    "-d", "postgres", "-q", "-c", sql], check=True, stdout=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def pg_template(pg_server):
    _psql(pg_server, "CREATE DATABASE gridbot_template")
    upgrade(pg_server.url("gridbot_template"))
    return "gridbot_template"


@pytest.fixture(scope="session")
def pg_demo_template(pg_server, pg_template):
    _psql(pg_server, f"CREATE DATABASE gridbot_demo TEMPLATE {pg_template}")
    asyncio.run(_load_demo(pg_server.url("gridbot_demo")))
    return "gridbot_demo"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("tpl") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def sqlite_demo_template(sqlite_template, tmp_path_factory):
    path = tmp_path_factory.mktemp("tpl") / "demo.db"
    shutil.copy(sqlite_template, path)
    asyncio.run(_load_demo(f"sqlite+aiosqlite:///{path}"))
    return path


async def _load_demo(url: str) -> None:
    from workflows.importer import load_demo

    engine = make_engine(url)
    async with make_sessionmaker(engine)() as s, s.begin():
        await load_demo(s, now=START)
    await engine.dispose()


def pytest_configure(config):
    config.addinivalue_line("markers", "demo: the test database starts with the demo street loaded")


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    """A fresh, migrated database: empty, or with the demo street for tests marked `demo`."""
    demo = request.node.get_closest_marker("demo") is not None
    if request.param == "sqlite":
        path = tmp_path / "gridbot.db"
        shutil.copy(request.getfixturevalue("sqlite_demo_template" if demo else "sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    server = request.getfixturevalue("pg_server")
    template = request.getfixturevalue("pg_demo_template" if demo else "pg_template")
    name = f"t{os.getpid()}_{next(_counter)}"
    _psql(server, f"CREATE DATABASE {name} TEMPLATE {template}")
    yield server.url(name)
    _psql(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
async def engine(db_url):
    engine = make_engine(db_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessionmaker(engine):
    return make_sessionmaker(engine)


@pytest.fixture
def clock():
    return FixedClock(START)


@pytest.fixture
async def session(sessionmaker):
    async with sessionmaker() as s:
        yield s


@pytest.fixture(autouse=True)
def media_store(tmp_path):
    """Every process of gridbot configures a media store at start (bot.media.configure); so does
    every test: a directory of its own. Tests that need a particular store set their own."""
    from workflows.media_store import DirectoryStore, use_store

    store = DirectoryStore(tmp_path / "media-store")
    use_store(store)
    yield store
    use_store(None)
