"""Benchmark of the Open311 API over real HTTP (not a test): `python -m bench.open311`.

On the demo street, against the real web server on a free port: N requests posted one after
another (each a case, a card and its outbox rows in one transaction), then N posted by 8
concurrent clients, then GET requests.json returning 1,000 requests, and GET requests/{id}.json.
Runs on a SQLite file by default; `--pg` starts a throwaway PostgreSQL server (tests/pg.py).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

from bot.db import make_engine, make_sessionmaker, upgrade
from bot.open311 import Open311Api
from bot.web import WebServer
from handlers.office import Office
from workflows import api_keys
from workflows.importer import load_demo

API = "/open311/v2"


def form(i: int, key: str) -> dict:
    return {"api_key": key, "service_code": "shizheng", "description": f"路灯不亮 {i}",
            "lat": str(30.285 + (i % 10) * 0.001), "long": "120.105", "phone": "13812345678",
            "external_id": f"bench-{i}"}


async def run(url: str, n: int) -> None:
    engine = make_engine(url)
    sm = make_sessionmaker(engine)
    async with sm() as s, s.begin():
        await load_demo(s)
    office = Office(sm, channels=frozenset({"test"}))
    async with sm() as s, s.begin():
        key = (await api_keys.create_key(office.ctx(s), "bench", rate_per_minute=10 ** 9, read_all=True)).secret
    server = WebServer("127.0.0.1", 0, sm)
    Open311Api(office).routes(server)
    await server.start()
    try:
        async with aiohttp.ClientSession(server.base_url) as http:
            answers: Counter[int] = Counter()

            async def post(i: int) -> None:
                async with http.post(f"{API}/requests.json", data=form(i, key)) as r:
                    answers[r.status] += 1  # 503 = SQLite's write lock was busy past its timeout

            t = time.perf_counter()
            for i in range(n):
                await post(i)
            dt = time.perf_counter() - t
            print(f"POST requests.json, one client:   {n} in {dt:.2f} s = {dt / n * 1000:.1f} ms each, {n / dt:.0f}/s")

            t = time.perf_counter()
            queue = iter(range(n, 2 * n))

            async def client() -> None:
                for i in queue:
                    await post(i)

            await asyncio.gather(*(client() for _ in range(8)))
            dt = time.perf_counter() - t
            print(f"POST requests.json, 8 clients:    {n} in {dt:.2f} s = {n / dt:.0f}/s")
            print(f"answers: {dict(answers)}")

            t = time.perf_counter()
            async with http.get(f"{API}/requests.json", params={"api_key": key}) as r:
                body = await r.json()
            dt = time.perf_counter() - t
            print(f"GET requests.json ({len(body)} results): {dt * 1000:.0f} ms")

            t = time.perf_counter()
            for i in range(1, 101):
                async with http.get(f"{API}/requests/{i}.json", params={"api_key": key}) as r:
                    await r.read()
            dt = time.perf_counter() - t
            print(f"GET requests/{{id}}.json:           {dt / 100 * 1000:.1f} ms each")
    finally:
        await server.stop()
        await engine.dispose()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("-n", type=int, default=500, help="requests posted in each round (default 500)")
    p.add_argument("--pg", action="store_true", help="on a throwaway PostgreSQL server instead of SQLite")
    args = p.parse_args()
    if args.pg:
        from tests.pg import PostgresServer

        server = PostgresServer().start()
        try:
            subprocess.run([str(server.bindir / "psql"), "-h", "127.0.0.1", "-p", str(server.port), "-U",
                            "postgres", "-q", "-c", "CREATE DATABASE bench"], check=True, stdout=subprocess.DEVNULL)
            url = server.url("bench")
            upgrade(url)
            asyncio.run(run(url, args.n))
        finally:
            server.stop()
        return
    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite+aiosqlite:///{Path(d) / 'bench.db'}"
        upgrade(url)
        asyncio.run(run(url, args.n))


if __name__ == "__main__":
    main()
