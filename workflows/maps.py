"""Where a case is, as a person reads it: the address the platform gave, and a map link.

Stored points are WGS-84; Amap (高德) expects GCJ-02, so the link converts back
(workflows.geo.from_wgs84). Coordinates are shown only when there is no address.
"""

from __future__ import annotations

from urllib.parse import urlencode

from .geo import from_wgs84
from .i18n import T

AMAP_MARKER = "https://uri.amap.com/marker"


def amap_link(lat: float, lon: float, name: str = "") -> str:
    """An Amap marker URI (opens the app on a phone, the web map elsewhere)."""
    glat, glon = from_wgs84(lat, lon, "gcj02")
    query = {"position": f"{glon:.6f},{glat:.6f}", "coordinate": "gaode", "callnative": "1", "src": "gridbot"}
    if name:
        query["name"] = name
    return f"{AMAP_MARKER}?{urlencode(query)}"


def place_lines(t: T, case) -> list[str]:
    """The card's lines for where the case is: address (or coordinates) and a map link."""
    lines = []
    if case.address:
        lines.append(t("地址：{address}", address=case.address))
    if case.latitude is not None and case.longitude is not None:
        if not case.address:
            lines.append(t("位置：{lat:.5f}, {lon:.5f}", lat=case.latitude, lon=case.longitude))
        lines.append(t("地图：{url}", url=amap_link(case.latitude, case.longitude, case.address or "")))
    return lines
