"""Delivery on WeChat Work's per-member windows (not a test): `python -m bench.delivery_wecom`.

WeChat Work takes 30 messages a minute and 1,000 an hour per member and silently drops what is
over; a row with photos is several `message/send` calls (each photo, then the text). This bench
queues more than an hour's worth for a few members — every `--photos-every`-th row with 3
photos — and lets the real Delivery worker with the real WeComAdapter send them to the fake
WeChat Work API (tests/fakes/wecom_api.py), then reads what the server received, per member:
- the most calls in any minute and in any hour (the platform's 30 and 1,000; gridbot plans 28
  and 950);
- the rate while only the minute window held a member back, against the planned 28 a minute;
- lost (a planned call never received) and duplicated (one received twice).

An hour is long for a benchmark: `--speed N` divides both window lengths by N, in the adapter
and in what is checked (the default 20: a "minute" of 3 s and an "hour" of 180 s), so the same
planning logic runs N times faster; the overall 30/s window is left as it is. Members are few
enough that the per-member windows, not the overall one, hold the pace.

Options: --members, --calls (per member), --photos-every, --speed, --db sqlite|postgresql.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import os
import sys
import time
from collections import Counter, defaultdict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.delivery import run_and_print  # noqa: E402
from bot.channels.base import Window  # noqa: E402
from bot.channels.wecom_api import WeComAPI  # noqa: E402
from bot.channels.wecom_send import WeComAdapter  # noqa: E402
from bot.db import make_engine, make_sessionmaker, upgrade  # noqa: E402
from bot.delivery import Delivery  # noqa: E402
from tests.fakes.wecom_api import CORP_ID, SECRET, FakeWeCom  # noqa: E402
from workflows.clock import SystemClock  # noqa: E402
from workflows.models import Outbox  # noqa: E402
from workflows.outbox import BULK, Msg, outbox_values  # noqa: E402

PHOTOS = 3


def scaled(windows: tuple[Window, ...], speed: float) -> tuple[Window, ...]:
    return tuple(w if w.scope == "global" else Window(w.scope, w.count, w.seconds / speed) for w in windows)


def max_in(times: list[float], span: float) -> int:
    best = 0
    for i, t in enumerate(times):
        best = max(best, bisect.bisect_right(times, t + span - 1e-9) - i)
    return best


async def write_rows(sm, members: list[str], calls: int, photos_every: int) -> dict[str, list[str]]:
    """Rows interleaved across members, until each has `calls` calls planned; returns the
    calls each member should receive (a text or a photo's media id, each unique)."""
    planned: dict[str, list[str]] = {m: [] for m in members}
    outbox = []
    now = SystemClock().now()
    n = 0
    while any(len(v) < calls for v in planned.values()):
        for m in members:
            if len(planned[m]) >= calls:
                continue
            text = f"{m}-m{n}"
            media = []
            if photos_every and n % photos_every == 0:
                media = [{"kind": "photo", "ref": f"{text}-p{k}", "channel": "wecom"} for k in range(PHOTOS)]
            planned[m] += [p["ref"] for p in media] + [text]
            outbox.append(Outbox(**outbox_values(now, "wecom", m, Msg(text, media=media), priority=BULK)))
        n += 1
    async with sm() as s, s.begin():
        s.add_all(outbox)
    return planned


def what(call) -> str | None:
    body = call.body
    if body.get("msgtype") == "text":
        return body["text"]["content"]
    if body.get("msgtype") == "image":
        return body["image"]["media_id"]
    return None


async def bench(args: argparse.Namespace, url: str) -> dict:
    upgrade(url)
    engine = make_engine(url, pool_size=20) if url.startswith("postgresql") else make_engine(url)
    sm = make_sessionmaker(engine)
    fake = await FakeWeCom().start()
    adapter = WeComAdapter(WeComAPI(CORP_ID, SECRET, "1000002", fake.base_url), sm)
    adapter.windows = scaled(WeComAdapter.windows, args.speed)
    minute = next(w for w in adapter.windows if w.scope == "private" and w.count < 100)
    hour = next(w for w in adapter.windows if w.scope == "private" and w.count >= 100)
    members = [f"worker{i:02d}" for i in range(args.members)]
    planned = await write_rows(sm, members, args.calls, args.photos_every)
    total = sum(len(v) for v in planned.values())
    delivery = Delivery(sm, {"wecom": adapter})
    t0 = time.monotonic()
    task = asyncio.create_task(delivery.run())
    try:
        while len(fake.calls_of("message/send", ok=True)) < total and time.monotonic() - t0 < args.timeout:
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # anything sent twice would arrive now
    finally:
        delivery.stop()
        await task
        await fake.stop()
        await engine.dispose()
    received: dict[str, list] = defaultdict(list)
    for c in fake.calls_of("message/send", ok=True):
        received[c.body.get("touser", "")].append(c)
    lost = dup = 0
    worst_minute = worst_hour = 0
    rates = []
    for m in members:
        got = Counter(what(c) for c in received[m])
        lost += sum(1 for x in planned[m] if got[x] == 0)
        dup += sum(n - 1 for n in got.values() if n > 1)
        times = sorted(c.at for c in received[m])
        worst_minute = max(worst_minute, max_in(times, minute.seconds))
        worst_hour = max(worst_hour, max_in(times, hour.seconds))
        # while the hour window still had room: the first `hour.count` calls
        first = times[:hour.count]
        if len(first) > minute.count:
            rates.append((len(first) - 1) / (first[-1] - first[0]) * minute.seconds)
    span = max(c.at for cs in received.values() for c in cs) - t0
    return {
        "db": url.split(":")[0],
        "members": len(members),
        "calls planned": total,
        "speed (window lengths divided by)": args.speed,
        "most calls to a member in any minute (platform 30, planned 28)": worst_minute,
        "most calls to a member in any hour (platform 1000, planned 950)": worst_hour,
        "per-member rate under the minute window, calls a minute (planned 28)":
            sum(rates) / len(rates) if rates else float("nan"),
        "  share of the planned 28": (sum(rates) / len(rates)) / minute.count if rates else float("nan"),
        "lost": lost,
        "duplicated": dup,
        "last call after start (s)": span,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--members", type=int, default=3)
    p.add_argument("--calls", type=int, default=1100, help="calls planned per member (over an hour's 950)")
    p.add_argument("--photos-every", type=int, default=5)
    p.add_argument("--speed", type=float, default=20.0)
    p.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--timeout", type=float, default=1800)
    args = p.parse_args()
    run_and_print("bench.delivery_wecom", args.db, lambda url: bench(args, url), width=72)


if __name__ == "__main__":
    main()
