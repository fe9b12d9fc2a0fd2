"""Grid lookup time with 6, 1,000 and 10,000 grids: `python -m bench.locate`.

Builds the same STRtree index `workflows.tree.locate` uses (no database: the index is built
once per process and refreshed on import, so a lookup never touches the database).
"""

from __future__ import annotations

import random
import time

from shapely.geometry import box

from workflows.geo import GridIndex, GridShape


def city(n: int) -> GridIndex:
    side = max(1, int(n ** 0.5 + 0.999))
    d = 0.004  # ~400 m grids around Hangzhou
    grids = [GridShape(i, box(120 + (i % side) * d, 30 + (i // side) * d,
                              120 + (i % side + 1) * d, 30 + (i // side + 1) * d)) for i in range(n)]
    return GridIndex(grids)


def main() -> None:
    rnd = random.Random(1)
    for n in (6, 1_000, 10_000):
        t0 = time.perf_counter()
        index = city(n)
        built = time.perf_counter() - t0
        side = max(1, int(n ** 0.5 + 0.999)) * 0.004
        points = [(30 + rnd.random() * side, 120 + rnd.random() * side) for _ in range(20_000)]
        t0 = time.perf_counter()
        found = sum(index.locate(lat, lon, 300) is not None for lat, lon in points)
        per = (time.perf_counter() - t0) / len(points)
        print(f"{n:>6} grids: build {built * 1000:7.1f} ms, lookup {per * 1e6:6.1f} µs "
              f"({found}/{len(points)} points in a grid)")


if __name__ == "__main__":
    main()
