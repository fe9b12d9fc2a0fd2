"""Delivery under a morning's burst (not a test): `python -m bench.delivery`.

Starts its own fake Bot API server in a process of its own (tests/fakes/telegram_api.py, every
50th send answered 429 with retry_after 1) and a fresh database (SQLite by default, `--db postgresql` starts a throwaway
server), writes a burst of bulk messages (default 10,000: 9,000 to 1,000 private chats, 1,000 to
20 groups) and lets the real Delivery worker with the real python-telegram-bot adapter send
them. In the middle of the burst a reply to a person is committed. Everything is measured as the
server saw it:

- sustained rate (accepted sends per second between the first and the last) against the
  configured overall limit (Telegram's 30/s unless --rate);
- lost (a row never accepted) and duplicated (a row's text accepted twice);
- the smallest spacing of two sends to one chat, the most sends to one group in any 60 s,
  the most sends in any 1 s;
- how long the mid-burst reply and the last message took.

Options: --messages, --chats, --groups, --rate, --db sqlite|postgresql, --every-429.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from telegram import Bot  # noqa: E402
from telegram.request import HTTPXRequest  # noqa: E402

from bot.channels.base import Window  # noqa: E402
from bot.channels.telegram_send import WINDOWS, TelegramAdapter  # noqa: E402
from bot.db import make_engine, make_sessionmaker, upgrade  # noqa: E402
from bot.delivery import Delivery  # noqa: E402
from tests.fakes.telegram_api import FakeTelegram  # noqa: E402
from workflows.clock import SystemClock  # noqa: E402
from workflows.models import Outbox  # noqa: E402
from workflows.outbox import BULK, REPLY, Msg, outbox_values  # noqa: E402


@dataclass
class Call:
    method: str
    chat_id: str
    text: str | None
    status: int
    at: float  # the server's time.monotonic(), the same clock as ours on one machine


def windows_with_rate(rate: float | None) -> tuple[Window, ...]:
    if rate is None:
        return WINDOWS
    return tuple(Window("global", int(rate), 1.0) if w.scope == "global" else w for w in WINDOWS)


async def write_burst(sm, messages: int, chats: int, groups: int) -> list[tuple[str, str]]:
    """(chat id, text) per row: every 10th to a group, the rest to private chats, interleaved as a
    sweep writes them; each text is unique so the server's copy can be matched to its row."""
    rows: list[tuple[str, str]] = []
    private = 0
    for n in range(messages):
        if groups and n % 10 == 0:
            chat = str(-1000000 - (n // 10) % groups)
        else:
            chat = str(100000 + private % chats)
            private += 1
        rows.append((chat, f"m{n}"))
    now = SystemClock().now()
    async with sm() as s, s.begin():
        s.add_all([Outbox(**outbox_values(now, "telegram", chat, Msg(body), is_group=chat.startswith("-"),
                                          priority=BULK)) for chat, body in rows])
    return rows


async def serve_fake(every_429: int) -> None:
    """The fake Bot API in a process of its own (so the worker is measured, not the fake): prints
    its port and a second port whose /calls answers what it received, then serves until killed."""
    from aiohttp import web

    tg = await FakeTelegram().start()
    tg.rate_limit_every = every_429

    async def calls(_request: web.Request) -> web.Response:
        return web.json_response([[c.method, c.chat_id, c.params.get("text"), c.status, c.at] for c in tg.calls
                                  if c.method == "sendMessage"])

    async def accepted(_request: web.Request) -> web.Response:
        return web.json_response(sum(1 for c in tg.calls if c.method == "sendMessage" and c.status == 200))

    app = web.Application()
    app.router.add_get("/calls", calls)
    app.router.add_get("/accepted", accepted)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(tg.port, site._server.sockets[0].getsockname()[1], tg.token, flush=True)
    await asyncio.Event().wait()


class RemoteFake:
    def __init__(self, every_429: int) -> None:
        self.every_429 = every_429

    async def start(self) -> RemoteFake:
        import aiohttp

        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.delivery", "--serve-fake", "--every-429", str(self.every_429),
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), stdout=asyncio.subprocess.PIPE)
        port, control, self.token = (await self.proc.stdout.readline()).decode().split()
        self.base_url = f"http://127.0.0.1:{port}/bot"
        self.control = f"http://127.0.0.1:{control}"
        self.http = aiohttp.ClientSession()
        return self

    async def get(self, what: str):
        async with self.http.get(f"{self.control}/{what}") as r:
            return await r.json()

    async def stop(self) -> None:
        await self.http.close()
        self.proc.kill()
        await self.proc.wait()


def max_in_window(times: list[float], span: float) -> int:
    best = 0
    for i, t in enumerate(times):
        j = bisect.bisect_right(times, t + span - 1e-9)
        best = max(best, j - i)
    return best


async def bench(args: argparse.Namespace, url: str) -> dict:
    upgrade(url)
    engine = make_engine(url, pool_size=20) if url.startswith("postgresql") else make_engine(url)
    sm = make_sessionmaker(engine)
    tg = await RemoteFake(args.every_429).start()
    bot = Bot(tg.token, base_url=tg.base_url, request=HTTPXRequest(connection_pool_size=256))
    await bot.initialize()
    adapter = TelegramAdapter(bot)
    adapter.windows = windows_with_rate(args.rate)
    limit = next(w.count / w.seconds for w in adapter.windows if w.scope == "global")
    rows = await write_burst(sm, args.messages, args.chats, args.groups)
    delivery = Delivery(sm, {"telegram": adapter})
    t0 = time.monotonic()
    task = asyncio.create_task(delivery.run())
    total = len(rows)
    reply_at = reply_seen = None
    try:
        while True:
            accepted = await tg.get("accepted")
            if reply_at is None and accepted >= total // 2:
                async with sm() as s, s.begin():
                    s.add(Outbox(**outbox_values(SystemClock().now(), "telegram", "999999", Msg("reply"),
                                                 priority=REPLY)))
                reply_at = time.monotonic()
                delivery.wake()
            if accepted >= total + 1:
                break
            if time.monotonic() - t0 > args.timeout:
                print("timed out", file=sys.stderr)
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # anything sent twice would arrive now
        calls = [Call(*c) for c in await tg.get("calls")]
    finally:
        delivery.stop()
        await task
        await bot.shutdown()
        await tg.stop()
        await engine.dispose()

    ok = [c for c in calls if c.status == 200]
    refused = [c for c in calls if c.status == 429]
    counts = Counter(c.text for c in ok)
    reply_seen = next((c.at for c in ok if c.text == "reply"), None)
    expected = {body for _, body in rows} | {"reply"}
    per_chat: dict[str, list[float]] = defaultdict(list)
    per_chat_all: dict[str, list[float]] = defaultdict(list)
    for c in calls:
        per_chat_all[c.chat_id].append(c.at)
        if c.status == 200:
            per_chat[c.chat_id].append(c.at)

    def min_gap(d: dict[str, list[float]]) -> float:
        gaps = [b - a for ts in d.values() for a, b in zip(ts, ts[1:], strict=False)]
        return min(gaps) if gaps else float("inf")

    times = sorted(c.at for c in ok)
    span = times[-1] - times[0]
    groups = {k: v for k, v in per_chat.items() if k.startswith("-")}
    return {
        "db": url.split(":")[0],
        "messages": total,
        "private chats": len({c for c, _ in rows if not c.startswith("-")}),
        "groups": len({c for c, _ in rows if c.startswith("-")}),
        "configured limit /s": limit,
        "sustained rate /s": len(ok) / span if span else float("nan"),
        "rate vs limit": (len(ok) / span) / limit if span else float("nan"),
        "lost": len(expected - set(counts)),
        "duplicated": sum(n - 1 for n in counts.values() if n > 1),
        "429 answers": len(refused),
        "min spacing per chat, accepted (s)": min_gap(per_chat),
        "min spacing per chat, every attempt (s)": min_gap(per_chat_all),
        "max per group in any 60 s": max(max_in_window(v, 60.0) for v in groups.values()) if groups else 0,
        "max sends in any 1 s": max_in_window(times, 1.0),
        "mid-burst reply latency (s)": (reply_seen - reply_at) if reply_seen and reply_at else float("nan"),
        "last message after start (s)": times[-1] - t0,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=10_000)
    p.add_argument("--chats", type=int, default=1_000)
    p.add_argument("--groups", type=int, default=20)
    p.add_argument("--rate", type=float, default=None, help="overall limit per second (default Telegram's 30)")
    p.add_argument("--every-429", type=int, default=50)
    p.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve_fake:
        asyncio.run(serve_fake(args.every_429))
        return
    run_and_print("bench.delivery", args.db, lambda url: bench(args, url))


def run_and_print(name: str, db: str, bench_fn, width: int = 42) -> None:
    """Run a bench coroutine on a fresh database (a throwaway PostgreSQL server, or a SQLite file)
    and print its figures."""
    server = None
    if db == "postgresql":
        from tests.pg import PostgresServer

        server = PostgresServer().start()
        url = server.url("postgres")
    else:
        url = f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='gridbot-bench-')}/delivery.db"
    try:
        started = datetime.now(UTC)
        result = asyncio.run(bench_fn(url))
    finally:
        if server is not None:
            server.stop()
    print(f"{name} {started:%Y-%m-%d %H:%M} UTC")
    for k, v in result.items():
        print(f"  {k:<{width}} {v:.3f}" if isinstance(v, float) else f"  {k:<{width}} {v}")


if __name__ == "__main__":
    main()
