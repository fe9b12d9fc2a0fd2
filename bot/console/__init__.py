"""The web console (指挥中心): server-rendered pages for the desks above the grid (docs/console.md).

Routes on the one web server (bot/web.py), or — with CONSOLE_HOST/CONSOLE_PORT — a site of its
own. Jinja2 templates in `templates/`, htmx and other browser libraries in `static/vendor/`
(copied from npm by scripts/vendor-console, never a CDN). What a person may see and do is
decided in workflows/ (scope.py, cases.py): the console only calls it.

How another module adds a page
------------------------------
1. A module in this package registers its pages with `page`; every module of the package is
   imported when the console is mounted (`load_pages`), so a new file is all it takes::

       from .core import Viewer, page

       @page("/console/map", template="map.html", nav="地图", order=20)
       async def map_page(viewer: Viewer, request: web.Request) -> dict:
           return {"points": ...}          # the template's values

   - `nav` is the message id of its entry in the navigation bar (None: not listed, e.g. a
     JSON endpoint or an htmx fragment); `order` sorts the bar (cases are 10).
   - A page may return a `web.StreamResponse` instead of a dict (JSON, a file, `redirect(...)`).
   - `method="POST"` for an action: the core has already checked the CSRF token (form field
     `csrf` or header `X-CSRF-Token`) and the Origin; it commits after the function returns and
     wakes the delivery worker. Raise a `workflows.errors.DomainError` (or `Refused(status,
     msgid)`) to refuse: everything is rolled back and the error page is shown.
2. The template extends the base layout and fills `content` (and `title`)::

       {% extends "base.html" %}
       {% block title %}{{ _("地图") }}{% endblock %}
       {% block content %} … {% endblock %}
       {% block scripts %}<script src="{{ static('vendor/leaflet/leaflet.js') }}"></script>{% endblock %}

   Every text is `{{ _("中文") }}` (or `_("…{n}…", n=x)`): bot/catalog.py extracts these into
   the catalogue; fill English in workflows/locale/en/LC_MESSAGES/gridbot.po. `csrf` is the
   token for forms (`<input type="hidden" name="csrf" value="{{ csrf }}">`); htmx requests get
   it from the `hx-headers` the base layout sets on <body>.
3. Static files: add the npm package to static/package.json ("dependencies" and the files to
   copy under "vendor") and run scripts/vendor-console; commit the copied files.

The case page leaves `<div id="case-map" data-lat=… data-lon=…>` for a small map, and
`{% block scripts %}` in base.html is where a page adds its own scripts.

The signed-in person and their scope
------------------------------------
A page function gets a `Viewer`: `viewer.person` (workflows.models.Person), `viewer.ctx` (the
request's transaction; ctx.via_channel is "console"), `viewer.t` (translator in their language),
`viewer.paths` (node paths their staff roles cover: workflows.scope.staff_paths). Filter a query
with `.where(*workflows.scope.case_where(viewer.paths))` (cases; fast on long lists) or
`scope.case_clause(viewer.paths)` (one condition), `scope.nodes_under(viewer.paths)` (node ids);
workflows.case_list.find/conditions give the case list's filters; fetch one object by id with `await viewer.case(id)` / `await viewer.node(id)`, which
answer 404 outside the scope. Never trust an id from the browser without one of these.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from datetime import timedelta

from handlers import console as console_command
from handlers.office import Office

from ..web import WebServer
from .core import PAGES, Console, Page, Refused, Viewer, page, redirect

__all__ = ["PAGES", "Console", "Page", "Refused", "Viewer", "mount", "page", "redirect"]

log = logging.getLogger(__name__)

def load_pages() -> None:
    """Imports every module of this package, so each registers its pages (once: PAGES is kept)."""
    for mod in pkgutil.iter_modules(__path__):
        if mod.name != "core":
            importlib.import_module(f"{__name__}.{mod.name}")


def console_url(settings, server: WebServer | None) -> str:
    if settings.console_url:
        return settings.console_url.rstrip("/")
    if settings.console_port is not None:
        host = settings.console_host or "127.0.0.1"
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{settings.console_port}"
    return server.base_url if server is not None else "http://127.0.0.1"


def mount(settings, office: Office, server: WebServer, on_commit=None) -> WebServer | None:
    """Adds the console to `server` — or, with CONSOLE_PORT set, returns a WebServer of its own
    for the caller to start and stop. With CONSOLE_ENABLED off nothing is added and /console
    answers that the console is off."""
    if not settings.console_enabled:
        console_command.LINK.url = None
        return None
    load_pages()
    own = None
    if settings.console_port is not None:
        own = WebServer(settings.console_host or "127.0.0.1", settings.console_port, office.sessionmaker,
                        office.clock)
    console = Console(office, url=console_url(settings, own or server), session_hours=settings.console_session_hours,
                      link_lifetime=timedelta(minutes=settings.console_link_minutes), on_commit=on_commit)
    console.routes(own or server)
    from . import maps

    maps.configure(settings)  # the map's tile provider and its datum
    log.info("web console at %s/console", console.url)
    return own
