"""The cyclic collector is off while a sweep runs and back on after it, also after a failure."""

from __future__ import annotations

import gc

import pytest

from workflows.routines import collector, sweeps
from workflows.routines.common import SweepResult


def test_held_off_nests_and_restores():
    assert gc.isenabled()
    with collector.held_off():
        assert not gc.isenabled()
        with collector.held_off():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer one is still inside
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector.held_off():
        raise RuntimeError("a sweep failed")
    assert gc.isenabled()


def test_a_collector_switched_off_by_someone_else_stays_off():
    gc.disable()
    try:
        with collector.held_off():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


async def test_run_sweep_holds_the_collector_off_inside_only(sessionmaker, monkeypatch):
    seen: list[bool] = []

    async def watch(ctx) -> SweepResult:
        seen.append(gc.isenabled())
        return SweepResult()

    async def fail(ctx) -> SweepResult:
        seen.append(gc.isenabled())
        raise ValueError("bad row")

    monkeypatch.setitem(sweeps.SWEEPS, "watch", sweeps.Sweep("watch", watch, 60, "test"))
    monkeypatch.setitem(sweeps.SWEEPS, "fail", sweeps.Sweep("fail", fail, 60, "test"))
    await sweeps.run_sweep(sessionmaker, "watch")
    assert seen == [False] and gc.isenabled()
    with pytest.raises(ValueError):
        await sweeps.run_sweep(sessionmaker, "fail")
    assert seen == [False, False] and gc.isenabled()
