"""The console's tree and people (read-only): the operator's health view — every node in scope
with its people, roles, A/B partners, work groups, and who the bot cannot reach."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from workflows import health
from workflows.tree import level_name

from .core import Viewer, page

PAGE = 200  # nodes a page: a district's whole tree is 1,000+ nodes and their people


@page("/console/people", template="people.html", nav="网格与人员", order=40,
      summary="Console: the grid tree, people, groups and who cannot be reached")
async def people_page(viewer: Viewer, request: web.Request) -> dict:
    only_problems = request.query.get("problems") == "1"
    rows = await health.tree_health(viewer.ctx, viewer.person.id, viewer.paths, viewer.ctx.channels)
    shown = [h for h in rows if not only_problems or h.unreachable or health.needs_group(h)]
    pages = max(1, -(-len(shown) // PAGE))
    try:
        at = min(max(1, int(request.query.get("page") or 1)), pages)
    except ValueError:
        at = 1

    def link(page: int) -> str:
        return "/console/people?" + urlencode({**({"problems": "1"} if only_problems else {}), "page": page})

    return {"rows": shown[(at - 1) * PAGE:at * PAGE], "page": at, "pages": pages, "link": link,
            "total": len(rows), "only_problems": only_problems,
            "unreachable": sum(h.unreachable for h in rows),
            "without_group": sum(1 for h in rows if health.needs_group(h)),
            "needs_group": health.needs_group, "level_name": level_name, "roles": health.ROLE_LABELS,
            "NO_ACCOUNT": health.NO_ACCOUNT, "BLOCKED": health.BLOCKED}
