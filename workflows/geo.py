"""Datums and the grid index: every point and boundary is stored in WGS-84.

Chinese consumer maps (Amap, Tencent, so WeChat and WeChat Work) use GCJ-02 and Baidu uses
BD-09; GPS, Telegram and survey data (CGCS2000) are WGS-84 for our purposes. The offsets are
100-700 m, more than a grid, so every edge converts: the importer, each channel on arrival and
each map link on the way out. The transform is `prcoords` (public domain, exact inverse by
iteration; pyproj has no GCJ-02) — see docs/geo.md.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import prcoords
import shapely
from shapely import STRtree
from shapely.geometry import Point, mapping, shape
from shapely.geometry.base import BaseGeometry

CRS = ("wgs84", "gcj02", "bd09")
METRES_PER_DEGREE = 111_000


class UnknownCRS(ValueError):
    def __init__(self, crs: object) -> None:
        super().__init__(f"unknown crs {crs!r} (expected one of: {', '.join(CRS)})")


def check_crs(crs: object) -> str:
    name = str(crs or "wgs84").lower().replace("-", "").replace("_", "")
    if name not in CRS:
        raise UnknownCRS(crs)
    return name


_TO_WGS: dict[str, Callable] = {"gcj02": prcoords.gcj_wgs_bored, "bd09": prcoords.bd_wgs_bored}
_FROM_WGS: dict[str, Callable] = {"gcj02": prcoords.wgs_gcj, "bd09": prcoords.wgs_bd}


def _convert(lat: float, lon: float, crs: str, table: dict[str, Callable]) -> tuple[float, float]:
    crs = check_crs(crs)
    if crs == "wgs84":
        return lat, lon
    c = table[crs](prcoords.Coords(lat, lon))
    return c.lat, c.lon


def to_wgs84(lat: float, lon: float, crs: str) -> tuple[float, float]:
    """(lat, lon) in `crs` → WGS-84. Outside China the national datums equal WGS-84."""
    return _convert(lat, lon, crs, _TO_WGS)


def from_wgs84(lat: float, lon: float, crs: str) -> tuple[float, float]:
    """WGS-84 (lat, lon) → `crs`, for what a Chinese map or a GCJ-02 client expects."""
    return _convert(lat, lon, crs, _FROM_WGS)


def geometry_to_wgs84(geojson: dict, crs: str) -> dict:
    """A GeoJSON geometry (lon, lat order) in `crs` → the same geometry in WGS-84."""
    crs = check_crs(crs)
    if crs == "wgs84":
        return geojson

    def conv(coords: np.ndarray) -> np.ndarray:  # rows of (lon, lat)
        return np.array([to_wgs84(lat, lon, crs)[::-1] for lon, lat in coords])

    return json.loads(json.dumps(mapping(shapely.transform(shape(geojson), conv))))


def geometry_from_wgs84(geojson: dict, crs: str) -> dict:
    """A stored WGS-84 GeoJSON geometry → the same geometry in `crs`, for a map drawn on that datum."""
    crs = check_crs(crs)
    if crs == "wgs84":
        return geojson

    def conv(coords: np.ndarray) -> np.ndarray:  # rows of (lon, lat)
        return np.array([from_wgs84(lat, lon, crs)[::-1] for lon, lat in coords])

    return json.loads(json.dumps(mapping(shapely.transform(shape(geojson), conv))))


def distance_metres(a: BaseGeometry, b: BaseGeometry) -> float:
    """Rough distance for warnings and tolerances (degrees scaled at the equator; enough for 'far')."""
    return a.distance(b) * METRES_PER_DEGREE


# ---------------------------------------------------------------- the grid index

@dataclass(frozen=True)
class GridShape:
    node_id: int
    geom: BaseGeometry


class GridIndex:
    """An STRtree over every grid boundary, built once; `locate` is pure Python + GEOS, no database."""

    def __init__(self, grids: list[GridShape]) -> None:
        self.grids = grids
        self.tree = STRtree([g.geom for g in grids]) if grids else None

    def locate(self, lat: float, lon: float, near_metres: float = 0) -> int | None:
        """A point inside a grid belongs to it (the smallest, if they overlap); only when no grid
        holds it does the tolerance apply, and then the nearest within it wins."""
        if self.tree is None:
            return None
        point = Point(lon, lat)
        inside = [self.grids[i] for i in self.tree.query(point, predicate="intersects")]
        if inside:
            return min(inside, key=lambda g: g.geom.area).node_id
        if near_metres <= 0:
            return None
        i = self.tree.nearest(point)
        if i is None:
            return None
        g = self.grids[int(i)]
        return g.node_id if distance_metres(g.geom, point) <= near_metres else None


# An import in this process invalidates at once; one run by another process (`gridbot import`
# beside `gridbot run`) is picked up when the cached index is older than this.
INDEX_MAX_AGE_SECONDS = 60.0
_indexes: dict[object, tuple[float, GridIndex]] = {}


def cached_index(key: object) -> GridIndex | None:
    hit = _indexes.get(key)
    if hit is None or time.monotonic() - hit[0] > INDEX_MAX_AGE_SECONDS:
        return None
    return hit[1]


def store_index(key: object, index: GridIndex) -> None:
    _indexes[key] = (time.monotonic(), index)


def invalidate() -> None:
    """Called when an import changes boundaries; the next lookup rebuilds the index."""
    _indexes.clear()
