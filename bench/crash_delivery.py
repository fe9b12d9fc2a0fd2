"""Crash trials of delivery (not a test): `python -m bench.crash_delivery [--trials 20]
[--burst 150] [--chats 50] [--framework ptb|aiogram|both] [--db sqlite|postgresql]
[--signal KILL|TERM] [--latency 0.05]`.

Each trial writes a burst of outbox rows (replies and case cards with buttons, spread over many
private chats, each text unique) to the database, starts a real `gridbot run` (a subprocess,
delivering to the fake Bot API served from this process, each send answered after `--latency`
seconds as a real server's round trip), kills it with SIGKILL (or SIGTERM) once a random number
of the burst has reached the server, lets the dead process's claims (`sending` rows) age past
the lease — the database's `claimed_at` is moved back, instead of waiting two minutes — starts it
again and waits until every row is `sent`. Then the outbox is compared with what the server
accepted, per row:
- lost: a row whose text the server never accepted;
- duplicated: a row whose text the server accepted more than once (the promise is at least once
  with at most one send in flight per chat at the crash; the figure is how many, per trial).
`--two-processes` instead lets two `gridbot run` on one database (PostgreSQL, for scale-out)
deliver one burst: lost, duplicated, and the most sends the server accepted in any second.
`--unreachable` instead stops the process with SIGTERM while the fake has stopped answering
(every call hangs) and reports how long the exit took, then what a restart lost or repeated.
The suite runs a few trials (tests/test_delivery_crash.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sqlalchemy import func, select, update  # noqa: E402

from bench.crash import Process, _until  # noqa: E402

ROWS_TEXT = "crash-{trial}-{n}"


@dataclass
class DeliveryTrial:
    framework: str
    burst: int
    accepted_at_signal: int  # sends the server had accepted when the signal was sent
    in_flight: int  # rows left `sending` by the stopped process
    lost: int
    duplicated: int
    seconds: float


async def write_burst(sm, trial_no: int, burst: int, chats: int, first_chat: int) -> list[str]:
    """Replies (priority 0) and case cards with a button (priority 1, a card key each), round
    robin over `chats` private chats; returns the texts, one per row."""
    from workflows.clock import SystemClock
    from workflows.models import Outbox
    from workflows.outbox import CARD, REPLY, Button, Msg, outbox_values

    now = SystemClock().now()
    texts, rows = [], []
    for n in range(burst):
        text = ROWS_TEXT.format(trial=trial_no, n=n)
        chat = str(first_chat + n % chats)
        if n % 3 == 2:
            msg = Msg(text, buttons=[[Button("受理", f"t{trial_no}x{n}")]])
            rows.append(Outbox(**outbox_values(now, "telegram", chat, msg, priority=CARD,
                                               card_key=f"case:{trial_no}:{n}")))
        else:
            rows.append(Outbox(**outbox_values(now, "telegram", chat, Msg(text), priority=REPLY)))
        texts.append(text)
    async with sm() as s, s.begin():
        s.add_all(rows)
    return texts


def accepted(tg, texts: set[str]) -> Counter:
    return Counter(c.params.get("text") for c in tg.calls_of("sendMessage")
                   if c.status == 200 and c.params.get("text") in texts)


async def _statuses(sm, trial_no: int) -> Counter:
    from workflows.models import Outbox

    async with sm() as s:
        rows = (await s.execute(select(Outbox.status, func.count()).where(
            Outbox.payload["text"].as_string().like(f"crash-{trial_no}-%")).group_by(Outbox.status))).all()
    return Counter(dict(rows))


async def _age_claims(sm, trial_no: int) -> int:
    """What two minutes after the crash looks like: the dead process's claims are past the lease."""
    from bot.delivery import LEASE
    from workflows.clock import SystemClock
    from workflows.models import Outbox

    async with sm() as s, s.begin():
        res = await s.execute(update(Outbox).where(
            Outbox.status == "sending", Outbox.payload["text"].as_string().like(f"crash-{trial_no}-%"))
            .values(claimed_at=SystemClock().now() - LEASE * 2))
        return res.rowcount


async def trial(sm, url: str, tg, framework: str, rng: random.Random, *, trial_no: int, burst: int = 150,
                chats: int = 50, sig: int = signal.SIGKILL, log_dir: str, timeout: float = 120.0) -> DeliveryTrial:
    t0 = time.perf_counter()
    first_chat = 700_000 + trial_no * 1000
    texts = await write_burst(sm, trial_no, burst, chats, first_chat)
    wanted = set(texts)
    proc = Process(url, tg, framework, log_dir)
    proc.start()
    try:
        kill_at = rng.randint(1, burst - 1)
        await _until(lambda: sum(accepted(tg, wanted).values()) >= kill_at, 180, f"{kill_at} sends", proc)
        await asyncio.sleep(rng.uniform(0.0, 0.05))  # between two sends, or during one
        at_signal = sum(accepted(tg, wanted).values())
        proc.signal(sig)
        await proc.wait()
        in_flight = await _age_claims(sm, trial_no)
        proc.start()

        async def settled() -> bool:
            st = await _statuses(sm, trial_no)
            return st.get("sent", 0) == burst

        try:
            await _until(settled, timeout, "every row sent", proc)
        except AssertionError:
            pass  # counted below as lost
        await asyncio.sleep(0.5)  # a late repeat would show up now
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.signal(signal.SIGTERM)
            await proc.wait()
    got = accepted(tg, wanted)
    lost = len(wanted - set(got))
    duplicated = sum(n - 1 for n in got.values() if n > 1)
    if lost:
        sys.stderr.write(proc.logs()[-4000:])
    return DeliveryTrial(framework, burst, at_signal, in_flight, lost, duplicated, time.perf_counter() - t0)


@dataclass
class UnreachableStop:
    framework: str
    burst: int
    exit_seconds: float  # SIGTERM to exit, with every Bot API call hanging
    exit_code: int
    lost: int
    duplicated: int


async def unreachable_stop(sm, url: str, tg, framework: str, *, trial_no: int, burst: int = 100, chats: int = 40,
                           log_dir: str, timeout: float = 120.0) -> UnreachableStop:
    """SIGTERM while the Bot API has stopped answering (every call hangs) in the middle of a burst:
    how long the exit takes; then, the API back, a restart sends the rest: lost / duplicated."""
    texts = await write_burst(sm, trial_no, burst, chats, 700_000 + trial_no * 1000)
    wanted = set(texts)
    proc = Process(url, tg, framework, log_dir)
    proc.start()
    try:
        await _until(lambda: sum(accepted(tg, wanted).values()) >= burst // 4, 180, "a quarter sent", proc)
        tg.hang = True
        await asyncio.sleep(1.0)  # sends and the long poll now hang
        t0 = time.monotonic()
        proc.signal(signal.SIGTERM)
        code = await proc.wait(timeout=90)
        exit_seconds = time.monotonic() - t0
        tg.unhang()
        await _age_claims(sm, trial_no)  # anything a stop left claimed (none expected) counts as a crash's
        proc.start()

        async def settled() -> bool:
            return (await _statuses(sm, trial_no)).get("sent", 0) == burst

        try:
            await _until(settled, timeout, "every row sent", proc)
        except AssertionError:
            pass
        await asyncio.sleep(0.5)
    finally:
        tg.unhang()
        if proc.proc is not None and proc.proc.poll() is None:
            proc.signal(signal.SIGTERM)
            await proc.wait()
    got = accepted(tg, wanted)
    return UnreachableStop(framework, burst, exit_seconds, code, len(wanted - set(got)),
                           sum(n - 1 for n in got.values() if n > 1))


@dataclass
class TwoSenders:
    burst: int
    lost: int
    duplicated: int
    most_in_one_second: int  # sends the server accepted in any 1 s, both processes together
    seconds: float
    rate: float = 0.0  # accepted sends a second, first to last, both together
    min_chat_spacing: float = 0.0  # the closest two accepted sends to one chat (s)


async def two_senders(sm, url: str, tg, framework: str, *, trial_no: int, burst: int = 300, chats: int = 100,
                      log_dir: str, timeout: float = 180.0) -> TwoSenders:
    """Two `gridbot run` processes on one database deliver one burst: the claim (`pending` →
    `sending` in one UPDATE) gives every row to one of them. The live senders split the chats and
    the bot's overall window (bot/senders.py), so together they keep to the platform's rate."""
    import bisect

    texts = await write_burst(sm, trial_no, burst, chats, 700_000 + trial_no * 1000)
    wanted = set(texts)
    procs = [Process(url, tg, framework, log_dir) for _ in range(2)]
    for i, p in enumerate(procs):
        p.log_dir = os.path.join(log_dir, f"p{i}")
        os.makedirs(p.log_dir, exist_ok=True)
        p.start()
    t0 = time.perf_counter()
    try:
        async def settled() -> bool:
            return (await _statuses(sm, trial_no)).get("sent", 0) == burst

        try:
            await _until(settled, timeout, "every row sent", procs[0])
        except AssertionError:
            pass
        await asyncio.sleep(0.5)
    finally:
        for p in procs:
            if p.proc is not None and p.proc.poll() is None:
                p.signal(signal.SIGTERM)
        for p in procs:
            await p.wait()
    got = accepted(tg, wanted)
    times = sorted(c.at for c in tg.calls_of("sendMessage") if c.status == 200 and c.params.get("text") in wanted)
    most = max((bisect.bisect_right(times, t + 1.0 - 1e-9) - i for i, t in enumerate(times)), default=0)
    per_chat: dict[str, list[float]] = {}
    for c in tg.calls_of("sendMessage"):
        if c.status == 200 and c.params.get("text") in wanted:
            per_chat.setdefault(str(c.params["chat_id"]), []).append(c.at)
    gaps = [b - a for ts in map(sorted, per_chat.values()) for a, b in zip(ts, ts[1:], strict=False)]
    spacing = min(gaps, default=0.0)
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
    return TwoSenders(burst, len(wanted - set(got)), sum(n - 1 for n in got.values() if n > 1), most,
                      time.perf_counter() - t0, rate, spacing)


async def _main(args) -> int:
    from bot.db import make_engine, make_sessionmaker, upgrade
    from tests.fakes.telegram_api import FakeTelegram
    from tests.pg import PostgresServer

    from .sweeps import fresh_database

    frameworks = ["ptb", "aiogram"] if args.framework == "both" else [args.framework]
    sig = getattr(signal, f"SIG{args.signal}")
    pg = PostgresServer().start() if args.db == "postgresql" else None
    tmp = tempfile.mkdtemp(prefix="gridbot-crash-delivery-")
    rng = random.Random(args.seed)
    lost_all = 0
    try:
        for i, framework in enumerate(frameworks):
            url = fresh_database(pg, tmp, f"crashd{i}")
            await asyncio.to_thread(upgrade, url)
            engine = make_engine(url)
            tg = await FakeTelegram().start()
            tg.send_delay = args.latency
            dups: list[int] = []
            lost = 0
            try:
                if args.two_processes:
                    for n in range(args.trials):
                        t2 = await two_senders(make_sessionmaker(engine), url, tg, framework, trial_no=n,
                                               burst=args.burst, chats=args.chats, log_dir=tmp,
                                               timeout=max(180.0, args.burst / 10))
                        lost += t2.lost
                        print(f"{framework:8} {args.db:10} trial {n + 1:2}: two processes, {t2.burst} rows: lost "
                              f"{t2.lost}, duplicated {t2.duplicated}, most accepted in 1 s {t2.most_in_one_second}, "
                              f"rate {t2.rate:.1f}/s, closest two to one chat {t2.min_chat_spacing:.2f} s"
                              f" ({t2.seconds:.1f} s, load {os.getloadavg()[0]:.1f})", flush=True)
                    continue
                if args.unreachable:
                    for n in range(args.trials):
                        u = await unreachable_stop(make_sessionmaker(engine), url, tg, framework, trial_no=n,
                                                   log_dir=tmp)
                        lost += u.lost
                        print(f"{framework:8} {args.db:10} trial {n + 1:2}: SIGTERM with the Bot API unreachable: "
                              f"exit {u.exit_code} after {u.exit_seconds:.1f} s; then lost {u.lost}, duplicated "
                              f"{u.duplicated} (load {os.getloadavg()[0]:.1f})", flush=True)
                    continue
                for n in range(args.trials):
                    t = await trial(make_sessionmaker(engine), url, tg, framework, rng, trial_no=n,
                                    burst=args.burst, chats=args.chats, sig=sig, log_dir=tmp)
                    lost += t.lost
                    dups.append(t.duplicated)
                    print(f"{framework:8} {args.db:10} trial {n + 1:2}: SIG{args.signal} after {t.accepted_at_signal:3}"
                          f"/{t.burst} sent, {t.in_flight} left in flight -> lost {t.lost}, "
                          f"duplicated {t.duplicated} ({t.seconds:.1f} s)", flush=True)
            finally:
                await tg.stop()
                await engine.dispose()
            load = os.getloadavg()[0]
            print(f"{framework:8} {args.db:10} {args.trials} trials x {args.burst} rows / {args.chats} chats, "
                  f"SIG{args.signal}: lost {lost}, duplicated {sum(dups)} (per trial max {max(dups)}, "
                  f"mean {sum(dups) / len(dups):.2f}; trials with any: {sum(1 for d in dups if d)}) "
                  f"load {load:.1f}", flush=True)
            lost_all += lost
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if lost_all else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--burst", type=int, default=150)
    p.add_argument("--chats", type=int, default=50)
    p.add_argument("--latency", type=float, default=0.05, help="seconds the fake takes to answer a send")
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--framework", choices=["ptb", "aiogram", "both"], default="both")
    p.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("--signal", choices=["KILL", "TERM"], default="KILL")
    p.add_argument("--two-processes", action="store_true",
                   help="instead: two gridbot run processes on one database deliver one burst")
    p.add_argument("--unreachable", action="store_true",
                   help="instead: SIGTERM while the Bot API hangs every call; exit time, then lost/duplicated")
    return asyncio.run(_main(p.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
