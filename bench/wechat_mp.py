"""Benchmark of the 公众号 callback over real HTTP (not a test): `python -m bench.wechat_mp`.

WeChat gives an account 5 seconds to answer a callback before it retries, so what matters is how
fast the "success" comes back while messages pile up. On the demo street, against the real web
server and the real channel runtime, R residents each post M encrypted (安全模式) text callbacks,
8 at a time; the answers (客服消息) go to a local fake 公众号 server through the delivery worker
running beside it. Printed: the time to answer a callback (median, 95th percentile, max), the
callbacks handled per second, and when the last answer reached the fake. SQLite file by default;
`--pg` on a throwaway PostgreSQL server.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time

from bot.app import build_channels
from bot.db import make_engine, make_sessionmaker, upgrade
from bot.delivery import Delivery
from bot.settings import Settings
from bot.web import WebServer
from handlers.office import Office
from workflows.importer import load_demo

from .sweeps import PostgresServer, fresh_database


async def run(url: str, residents: int, each: int) -> None:
    from tests.fakes.wechat_mp import APP_ID, APP_SECRET, MP_AES_KEY, MP_TOKEN, FakeOfficialAccount

    engine = make_engine(url)
    sm = make_sessionmaker(engine)
    async with sm() as s, s.begin():
        await load_demo(s)
    fake = await FakeOfficialAccount().start()
    settings = Settings(_env_file=None, wechat_mp_app_id=APP_ID, wechat_mp_secret=APP_SECRET,
                        wechat_mp_token=MP_TOKEN, wechat_mp_aes_key=MP_AES_KEY,
                        wechat_mp_api_base_url=fake.base_url)
    (mp,) = build_channels(settings)
    delivery = Delivery(sm, {"wechat_mp": mp.adapter}, poll_seconds=0.2)
    office = Office(sm, channels=frozenset({"wechat_mp"}), on_commit=delivery.wake)
    server = WebServer("127.0.0.1", 0, sm)
    mp.routes(server)
    await mp.start(office)
    await server.start()
    worker = asyncio.create_task(delivery.run())
    url_cb = f"{server.base_url}{settings.wechat_mp_callback_path}"
    jobs = iter([(f"oBench{r:05d}", m) for m in range(each) for r in range(residents)])
    acks: list[float] = []

    async def client() -> None:
        for openid, m in jobs:
            plain = fake.xml(openid, "text", f"<Content><![CDATA[{'/start' if m % 2 == 0 else '/help'}]]></Content>")
            t = time.perf_counter()
            status, answer = await fake.push(url_cb, plain)
            acks.append(time.perf_counter() - t)
            assert status == 200 and answer == "success", (status, answer)

    n = residents * each
    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(client() for _ in range(8)))
        posted = time.perf_counter() - t0
        await mp.idle()
        handled = time.perf_counter() - t0
        while len(fake.calls_of("message/custom/send", ok=True)) < n and time.perf_counter() - t0 < 600:
            await asyncio.sleep(0.05)
        answered = time.perf_counter() - t0
        sent = len(fake.calls_of("message/custom/send", ok=True))
    finally:
        delivery.stop()
        await worker
        await server.stop()
        await mp.stop()
        await fake.stop()
        await engine.dispose()
    acks.sort()
    print(f"{n} callbacks from {residents} residents, 8 at a time")
    print(f"answer to WeChat: median {statistics.median(acks) * 1000:.1f} ms, "
          f"95th percentile {acks[int(len(acks) * 0.95) - 1] * 1000:.1f} ms, max {acks[-1] * 1000:.1f} ms "
          f"(WeChat's limit: 5000 ms)")
    print(f"all posted in {posted:.2f} s; all handled after {handled:.2f} s ({n / handled:.0f}/s); "
          f"{sent} 客服消息 at the fake after {answered:.2f} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--residents", type=int, default=100)
    p.add_argument("--each", type=int, default=4, help="messages per resident (default 4)")
    p.add_argument("--pg", action="store_true", help="on a throwaway PostgreSQL server instead of SQLite")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        pg = PostgresServer().start() if args.pg else None
        try:
            url = fresh_database(pg, d, "bench")
            upgrade(url)
            asyncio.run(run(url, args.residents, args.each))
        finally:
            if pg is not None:
                pg.stop()


if __name__ == "__main__":
    main()
