"""The `driver` fixture: every contract test runs once per channel (and per database backend)."""

from __future__ import annotations

import pytest

from .drivers import DRIVERS


@pytest.fixture(params=list(DRIVERS))
async def driver(request, sessionmaker):
    d = DRIVERS[request.param](sessionmaker)
    await d.start()
    try:
        yield d
    finally:
        await d.close()
