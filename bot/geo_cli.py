"""`gridbot locate LAT LON [--crs gcj02] [--near METRES]`: the grid of a point, for operators and scripts."""

from __future__ import annotations

import argparse
import asyncio

from sqlalchemy.ext.asyncio import AsyncSession

from workflows import geo, tree
from workflows.context import Ctx

from .settings import Settings


def cmd_locate(args: argparse.Namespace, settings: Settings) -> int:
    from .cli import with_session

    try:
        lat, lon = geo.to_wgs84(args.lat, args.lon, args.crs)
    except ValueError as e:
        print(f"--crs: {e}")
        return 2
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        print("LAT must be within ±90 and LON within ±180 degrees")
        return 2

    async def go(session: AsyncSession) -> int:
        node = await tree.locate(Ctx(session=session), lat, lon, args.near)
        if node is None:
            print(f"no grid at {lat:.6f},{lon:.6f} (WGS-84)")
            return 1
        print(f"{node.code}\t{node.name}")
        return 0

    return asyncio.run(with_session(settings, go))


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("locate", help="print the grid holding a point")
    p.add_argument("lat", type=float, metavar="LAT", help="latitude in degrees, e.g. 30.285")
    p.add_argument("lon", type=float, metavar="LON", help="longitude in degrees, e.g. 120.115")
    p.add_argument("--crs", default="wgs84", help="datum of LAT LON: wgs84 (default), gcj02 (Amap, WeChat), bd09")
    p.add_argument("--near", type=float, default=0, metavar="METRES", help="when no grid holds it, the nearest within")
    p.set_defaults(fn=cmd_locate)
