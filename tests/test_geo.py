"""Datums against published reference pairs, the importer's crs, and the grid index."""

from __future__ import annotations

import pytest

from bot.channels.wecom_convert import DATUM
from workflows import geo, tree
from workflows.context import Ctx
from workflows.importer import ImportFailed, import_yaml

# Published pairs: Tiananmen WGS-84 39.90872,116.39748 is 39.91023,116.40372 on Amap (GCJ-02);
# the widely used eviltransform/coordtransform test point 39.9,116.4 ↔ 39.901403,116.406243.
PAIRS = [((39.9, 116.4), (39.901403, 116.406243))]


@pytest.mark.parametrize(("wgs", "gcj"), PAIRS)
def test_reference_pairs_both_ways(wgs, gcj):
    assert geo.from_wgs84(*wgs, "gcj02") == pytest.approx(gcj, abs=2e-6)
    assert geo.to_wgs84(*gcj, "gcj02") == pytest.approx(wgs, abs=2e-6)
    bd = geo.from_wgs84(*wgs, "bd09")
    assert geo.to_wgs84(*bd, "bd09") == pytest.approx(wgs, abs=2e-6)


def test_unknown_crs_is_refused():
    with pytest.raises(ValueError, match="wgs84, gcj02, bd09"):
        geo.check_crs("epsg4326")


def square(lon: float, lat: float, d: float = 0.002) -> str:
    return f"{{type: Polygon, coordinates: [[[{lon},{lat}],[{lon + d},{lat}],[{lon + d},{lat + d}],[{lon},{lat + d}],[{lon},{lat}]]]}}"


async def test_gcj02_point_from_wecom_lands_in_the_wgs84_grid(session):
    # two adjacent 200 m grids drawn in WGS-84; the GCJ-02 offset here is ~500 m, more than a grid
    await import_yaml(session, "nodes:\n"
                      f"  - {{code: A, name: A, level: grid, boundary: {square(120.100, 30.280)}}}\n"
                      f"  - {{code: B, name: B, level: grid, boundary: {square(120.102, 30.280)}}}\n")
    ctx = Ctx(session=session)
    wgs = (30.281, 120.101)  # inside A
    gcj = geo.from_wgs84(*wgs, DATUM)
    assert (await tree.locate(ctx, *gcj)) is None or (await tree.locate(ctx, *gcj)).code != "A"
    assert (await tree.locate(ctx, *geo.to_wgs84(*gcj, DATUM))).code == "A"


async def test_boundary_imported_in_gcj02_is_stored_in_wgs84(session):
    gcj_lat, gcj_lon = geo.from_wgs84(30.280, 120.100, "gcj02")
    await import_yaml(session, f"crs: gcj02\nnodes:\n  - {{code: G, name: G, level: grid, "
                      f"boundary: {square(gcj_lon, gcj_lat)}}}\n")
    ctx = Ctx(session=session)
    assert (await tree.locate(ctx, 30.281, 120.101)).code == "G"  # a WGS-84 (Telegram) point


async def test_import_with_unknown_crs_writes_nothing(session):
    with pytest.raises(ImportFailed, match="crs"):
        await import_yaml(session, f"nodes:\n  - {{code: G, name: G, level: grid, crs: mars, "
                          f"boundary: {square(120.1, 30.28)}}}\n")


def test_index_prefers_containing_grid_and_tolerance_only_outside():
    from shapely.geometry import box
    index = geo.GridIndex([geo.GridShape(1, box(0, 0, 1, 1)), geo.GridShape(2, box(1.0001, 0, 2, 1))])
    assert index.locate(0.5, 0.99995, near_metres=300) == 1  # inside 1 though 2 is within 300 m
    assert index.locate(0.5, 1.00008, near_metres=300) == 2  # in neither: nearest wins
    assert index.locate(5, 5, near_metres=300) is None


def test_locate_command(tmp_path, monkeypatch, capsys):
    from bot import cli

    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/g.db")
    cli.get_settings.cache_clear() if hasattr(cli.get_settings, "cache_clear") else None
    assert cli.main(["db", "upgrade"]) == 0
    assert cli.main(["demo"]) == 0
    capsys.readouterr()
    assert cli.main(["locate", "30.285", "120.115"]) == 0
    assert capsys.readouterr().out.strip()  # a grid code and name
    assert cli.main(["locate", "0", "0"]) == 1
    assert "no grid" in capsys.readouterr().out
    assert cli.main(["locate", "30.285", "120.115", "--crs", "mars"]) == 2
    assert "gcj02" in capsys.readouterr().out


def test_cached_index_expires_so_another_process_import_is_seen(monkeypatch):
    index = geo.GridIndex([])
    geo.store_index("db-x", index)
    assert geo.cached_index("db-x") is index
    monkeypatch.setattr(geo, "INDEX_MAX_AGE_SECONDS", -1.0)
    assert geo.cached_index("db-x") is None
