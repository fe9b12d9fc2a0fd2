"""Report charts: PNGs drawn with Pillow, once per distinct content in a sweep, none for an empty grid."""

from __future__ import annotations

import io

from PIL import Image
from sqlalchemy import select

from workflows import charts
from workflows.models import Outbox
from workflows.routines.reports import ChartCache
from workflows.routines.stats import Stats

from .test_routines_reports import _history
from .test_routines_world import World, local


def test_bar_chart_is_a_png_with_negative_and_many_bars():
    png = charts.bar_chart("S1 2026-11 ranking", [f"G{i}" for i in range(120)], [100 - 2.5 * i for i in range(120)],
                           "score")
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG" and img.size == (charts.WIDTH, charts.HEIGHT)
    assert len(png) < 8000
    assert charts.bar_chart("empty", [], [])[:4] == b"\x89PNG"


def test_equal_contents_are_drawn_once():
    drawn = ChartCache()
    a, b, c = Stats(reported=3, closed=1), Stats(reported=3, closed=1), Stats(reported=4)
    assert drawn.stats(a, "week 2026-W48") is drawn.stats(b, "week 2026-W48")
    assert drawn.stats(c, "week 2026-W48") is not drawn.stats(a, "week 2026-W48")
    assert len(drawn.drawn) == 2


async def test_weekly_report_has_no_chart_for_a_grid_with_nothing_to_show(sessionmaker, clock, media_store):
    w = await World(sessionmaker, clock).setup()
    await _history(w)  # CY-01 has cases and a patrol; CY-02 nothing
    await w.sweep("weekly_reports", local(2026, 11, 27, 17, 0))
    async with sessionmaker() as s:
        rows = {r.chat_id: r.payload for r in (await s.execute(
            select(Outbox).where(Outbox.dedupe_key.like("weekly_report:%")))).scalars()}
    chart = rows["g:CY-01"]["media"][0]
    assert "data" not in chart  # the outbox row refers to the stored file, it does not carry it
    assert (await media_store.get(chart["sha256"]))[:4] == b"\x89PNG"
    assert not rows["g:CY-02"].get("media") and "上报 0 件" in rows["g:CY-02"]["text"]
