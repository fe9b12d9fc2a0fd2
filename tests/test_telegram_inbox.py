"""The Telegram inbox on both transports: an update is stored before it is confirmed, handled
from the table, survives a restart, and an unreadable one is logged once, kept and skipped."""

from __future__ import annotations

import asyncio
import logging
import random

import aiohttp
import pytest
from sqlalchemy import select

from bot.channels.telegram_validate import clean, problem, reply_address
from workflows.inbox_models import InboxUpdate
from workflows.models import InboundSeen

from .fakes.telegram_api import FakeTelegram
from .support import free_port, until
from .test_telegram import RESIDENT, WORKER, Grid

UNSUPPORTED = "暂不支持这种消息"
MENU = "请选择要办理的事项"


@pytest.fixture
async def tg():
    server = await FakeTelegram().start()
    yield server
    await server.stop()


@pytest.fixture(params=["ptb", "aiogram"])
async def grid(request, sessionmaker, tg):
    g = await Grid(sessionmaker, tg, request.param).build_tree()
    yield g
    await g.stop()


def poison(tg: FakeTelegram) -> list[dict]:
    """Updates no library version reads the same: wrong types where text is promised, a
    malformed business message, a poll of another Bot API shape, a button without its id."""
    text_number = tg.message_update(RESIDENT, text="x")
    text_number["message"]["text"] = 12345
    caption_list = tg.message_update(RESIDENT, caption="y")
    caption_list["message"]["caption"] = ["a", "b"]
    no_query_id = {"callback_query": {"from": RESIDENT.as_user(), "data": "x", "chat_instance": "c",
                                      "message": {"message_id": 1, "date": 0, "chat": tg.chat(RESIDENT.id)}}}
    return [text_number, caption_list, no_query_id,
            {"business_message": "not a message"},
            {"message": {"message_id": 5, "date": 0, "chat": tg.chat(RESIDENT.id), "from": RESIDENT.as_user(),
                         "poll": {"id": 7, "question": {"text": "?"}, "options": "many"}}}]


async def inbox_rows(g: Grid, status: str | None = None) -> list[InboxUpdate]:
    async with g.sm() as s:
        q = select(InboxUpdate)
        if status:
            q = q.where(InboxUpdate.status == status)
        return list((await s.execute(q)).scalars())


async def test_poison_updates_are_kept_logged_once_and_skipped_when_polling(grid: Grid, tg: FakeTelegram,
                                                                           caplog):
    await grid.start()
    bad_ids = [tg.push(u) for u in poison(tg)]
    good = tg.say(WORKER, "/start")
    with caplog.at_level(logging.WARNING, logger="bot.channels.telegram_inbox"):
        await grid.settle(good)
        await until(lambda: len([r for r in caplog.records if "unreadable update" in r.getMessage()])
                    >= len(bad_ids), what="unreadable logged")
        await asyncio.sleep(0.3)  # a few more polls: the bad ones must not come back
    assert MENU in tg.last_text(WORKER.id)
    unreadable = await inbox_rows(grid, "unreadable")
    assert sorted(r.update_id for r in unreadable) == sorted(bad_ids)
    assert all(r.error for r in unreadable)
    for bad in bad_ids:  # logged once each, with the id
        assert len([r for r in caplog.records if f"unreadable update {bad} " in r.getMessage()]) == 1
    # confirmed: the server no longer offers them (the last getUpdates' offset is past them)
    assert int(tg.calls_of("getUpdates")[-1].params["offset"]) > max(bad_ids)
    # the resident is told their messages were not understood (the button without an id cannot be answered)
    assert len([c for c in tg.sent_to(RESIDENT.id) if UNSUPPORTED in c.params["text"]]) >= 3


async def test_poison_updates_over_the_webhook_get_200(grid: Grid, tg: FakeTelegram):
    port = free_port()
    url = f"http://127.0.0.1:{port}/tg/hook"
    secret = {"X-Telegram-Bot-Api-Secret-Token": "s3cret"}
    await grid.start(telegram_webhook_url=url, telegram_webhook_secret="s3cret",
                     telegram_webhook_listen="127.0.0.1", telegram_webhook_port=port)
    bad = [{"update_id": 900 + i, **u} for i, u in enumerate(poison(tg))]
    async with aiohttp.ClientSession() as http:
        for body in [b"{not json", b"[1, 2]", b'{"update_id": "seven"}']:
            async with http.post(url, data=body, headers=secret) as r:
                assert r.status == 200
        for u in bad:
            async with http.post(url, json=u, headers=secret) as r:
                assert r.status == 200
        good = {"update_id": 990, **tg.message_update(WORKER, text="/start")}
        async with http.post(url, json=good, headers=secret) as r:
            assert r.status == 200
    await grid.settle(990)
    assert MENU in tg.last_text(WORKER.id)
    await until(lambda: inbox_rows(grid, "unreadable"), what="unreadable stored")

    async def all_kept() -> bool:
        return len(await inbox_rows(grid, "unreadable")) == len(bad) + 3

    await until(all_kept, what="every unreadable body kept")


async def test_stored_updates_are_handled_after_a_restart(grid: Grid, tg: FakeTelegram):
    """What a crash left in the inbox, confirmed to Telegram but not handled, is handled on start."""
    now = grid.clock.now()
    async with grid.sm() as s, s.begin():
        for i, who in enumerate([RESIDENT, WORKER]):
            u = {"update_id": 500 + i, **tg.message_update(who, text="/start")}
            s.add(InboxUpdate(channel="telegram", update_id=500 + i, payload=u, status="pending", received_at=now))
    await grid.start()
    await grid.settle(500)
    await grid.settle(501)
    assert MENU in tg.last_text(RESIDENT.id) and MENU in tg.last_text(WORKER.id)
    assert await inbox_rows(grid) == []  # handled rows go
    # Telegram keeps the offset: a new process asks without one, and what Telegram sends again
    # (fetched by the dead process, never confirmed) has no second effect
    assert "offset" not in tg.calls_of("getUpdates")[0].params
    tg.push({"update_id": 501, **tg.message_update(WORKER, text="/start")})
    await grid.settle(tg.say(RESIDENT, "/help"))
    assert len([c for c in tg.sent_to(WORKER.id) if MENU in c.params["text"]]) == 1


async def test_repeated_update_id_after_the_row_is_gone_has_one_effect(grid: Grid, tg: FakeTelegram):
    await grid.start()
    first = tg.say(RESIDENT, "/start")
    await grid.settle(first)
    await grid.settle(tg.say(WORKER, "/start"))
    tg.push({"update_id": first, **tg.message_update(RESIDENT, text="/start")})  # as after a lost offset
    await grid.settle(tg.say(WORKER, "/help"))
    assert len([c for c in tg.sent_to(RESIDENT.id) if MENU in c.params["text"]]) == 1
    async with grid.sm() as s:
        assert len((await s.execute(select(InboundSeen))).all()) == 3


async def test_lone_surrogates_and_nul_are_stored_and_answered(grid: Grid, tg: FakeTelegram):
    """PostgreSQL takes neither a lone surrogate nor NUL: they become U+FFFD at the edge."""
    await grid.start()
    update_id = tg.say(RESIDENT, "/report\ud800")
    await grid.settle(update_id)
    update_id = tg.say(WORKER, "he\x00llo \udfff")
    await grid.settle(update_id)
    assert tg.sent_to(RESIDENT.id) and tg.sent_to(WORKER.id)


def test_clean_and_problem_at_the_edge():
    assert clean({"a": ["x\ud83d", "ok"], "b\x00": 1}) == ({"a": ["x\ufffd", "ok"], "b\ufffd": 1}, True)
    assert clean({"a": "正常 text\n"})[1] is False
    assert problem({"update_id": 1, "message": {"chat": {"id": 1}, "text": 3}}) == \
        "update.message.text is int, not str"
    assert problem({"update_id": 1, "message": {"chat": {"id": True}}}) == "update.message.chat.id is bool, not int"
    assert problem({"update_id": 1, "callback_query": {"from": {"id": 1}}}) == "update.callback_query has no id"
    assert problem({"update_id": 1, "message": {"chat": {"id": 1, "type": "private"},
                                                "photo": [{"file_id": 9}]}}).startswith("update.message.photo[0]")
    assert problem({"update_id": 1, "message": {"chat": {"id": 1}, "text": "好"}}) is None
    # found by `python -m bench.fuzz --updates 1000`: a chat of null, a button's message as a number
    assert problem({"update_id": 1, "message": {"chat": None, "text": "x"}}) == "update.message has no chat"
    assert problem({"update_id": 1, "message": {"chat": {"id": None}, "text": "x"}}) == \
        "update.message.chat has no id"
    assert reply_address({"update_id": 1, "callback_query": {"id": "q", "message": 5, "from": {"id": 3}}}) \
        == (3, 3, False)


def test_seeded_fuzz_of_the_edge_never_raises():
    """The edge functions take any JSON-shaped value without raising."""
    from bench.fuzz import mutate_update

    rng = random.Random(14)
    tg = FakeTelegram()
    for _ in range(500):
        u = mutate_update(rng, tg.message_update(RESIDENT, text="/report"))
        cleaned, _ = clean(u)
        problem(cleaned)


@pytest.mark.parametrize("framework", ["ptb", "aiogram"])
async def test_seeded_fuzz_of_the_running_channel(sessionmaker, tg: FakeTelegram, framework: str):
    """`python -m bench.fuzz` at a small size: no traceback, every chat answered, nothing left
    pending, no staff account, binding or node changed."""
    from bench.fuzz import fuzz

    r = await fuzz(sessionmaker, tg, framework, n=150, seed=14)
    assert r.updates == 150 and r.malformed > 30
    assert (r.tracebacks, r.unanswered_chats, r.left_pending, r.state_changes) == (0, 0, 0, 0), r.samples
    assert r.unreadable_kept > 0


def test_gridbot_run_refuses_a_webhook_without_a_secret_cleanly(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "TELEGRAM_BOT_TOKEN": "1:x", "TELEGRAM_WEBHOOK_URL": "https://example.org/tg",
           "TELEGRAM_WEBHOOK_SECRET": "", "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/x.db"}
    done = subprocess.run([sys.executable, "-m", "bot.cli", "run"], env=env, capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    assert "TELEGRAM_WEBHOOK_SECRET" in done.stderr and "Traceback" not in done.stderr + done.stdout


async def test_webhook_on_the_one_web_server_answers_after_the_inbox_write(grid: Grid, tg: FakeTelegram):
    """As in `gridbot run`: the channel adds its route to bot/web.py's server before it starts."""
    from bot.web import WebServer

    server = WebServer("127.0.0.1", 0, grid.sm, grid.clock)
    await grid.start(server, telegram_webhook_url="https://bot.example.org/tg/3f9c",
                     telegram_webhook_secret="s3cret")
    await server.start()
    try:
        assert "/tg/3f9c" in server.openapi_document()["paths"]
        url = f"{server.base_url}/tg/3f9c"
        update = {"update_id": 4242, **tg.message_update(RESIDENT, text="/start")}
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json=update) as r:
                assert r.status == 403
            async with http.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret"}) as r:
                assert r.status == 200
                # the 200 came after the commit: the row is there, or gone because it was handled already
                rows = [row.update_id for row in await inbox_rows(grid)]
                assert rows == [4242] or grid.seen(4242)
        await grid.settle(4242)
        assert MENU in tg.last_text(RESIDENT.id)
    finally:
        await server.stop()
