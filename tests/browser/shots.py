"""Screenshots of console pages for docs/console.md, taken by the tests' browser.

`await screenshot(page, "cases")` writes docs/console/cases.png when GRIDBOT_SCREENSHOTS is set
(to a directory, or 1 for docs/console); otherwise it does nothing, so normal runs write no files.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def shots_dir() -> Path | None:
    value = os.environ.get("GRIDBOT_SCREENSHOTS")
    if not value:
        return None
    return ROOT / "docs" / "console" if value == "1" else Path(value)


async def screenshot(page, name: str, *, full_page: bool = True, width: int = 1280, height: int = 800) -> Path | None:
    where = shots_dir()
    if where is None:
        return None
    where.mkdir(parents=True, exist_ok=True)
    await page.set_viewport_size({"width": width, "height": height})
    path = where / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    return path
