"""The Telegram channel on aiogram 3 (TELEGRAM_FRAMEWORK=aiogram): the real aiogram code over HTTP
against the fake Bot API server, with the office and the delivery worker running as in `gridbot run`.

The scenarios (whole loop, refusals, restart, 429, duplicates, webhook secret …) live in
tests/test_telegram.py and run on both transports; this file has what is aiogram's own: the
mountable Router, the adapter, the update conversion, the command menu.
"""

from __future__ import annotations

import asyncio

import pytest
from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.filters import Command
from aiogram.types import Message
from aiogram.types import Update as AioUpdate
from sqlalchemy import select
from telegram import Update as PtbUpdate

from bot.app import build_channels
from bot.channels import telegram_aiogram
from bot.channels.telegram_aiogram_convert import to_inbound
from bot.channels.telegram_convert import to_inbound as ptb_to_inbound
from bot.delivery import Delivery
from bot.settings import Settings
from workflows.models import Conversation, Outbox

from .fakes.telegram_api import BOT_ID, FakeTelegram, Person
from .test_telegram import (
    GROUP,
    LEADER,
    RESIDENT,
    Grid,
    TrackingOffice,
    until,
)

PING = [{"type": "bot_command", "offset": 0, "length": 5}]  # Telegram marks commands; PTB relies on it


@pytest.fixture
async def tg():
    server = await FakeTelegram().start()
    yield server
    await server.stop()


@pytest.fixture
async def grid(sessionmaker, tg):
    g = await Grid(sessionmaker, tg, "aiogram").build_tree()
    yield g
    await g.stop()


async def test_command_menus_match_the_ptb_channel(grid: Grid, tg: FakeTelegram):
    from bot.channels.telegram_menu import command_menus

    await grid.start()
    menus = {(c.params["scope"]["type"], c.params.get("language_code")): c.params["commands"]
             for c in tg.calls_of("setMyCommands")}
    assert set(menus) == {("all_private_chats", None), ("all_private_chats", "en"),
                          ("all_group_chats", None), ("all_group_chats", "en")}
    for (where, language), commands in command_menus().items():
        sent = menus[(f"all_{where}_chats", language)]
        assert [(c["command"], c["description"]) for c in sent] == commands
    private = {c["command"]: c["description"] for c in menus[("all_private_chats", None)]}
    assert private["report"] == "上报问题"
    assert {c["command"]: c["description"] for c in menus[("all_private_chats", "en")]}["report"] == "Report a problem"






# ====================================================================== gridbot inside someone else's aiogram bot


async def their_ping_then_gridbots_report(grid: Grid, tg: FakeTelegram) -> None:
    """In a bot that mounts gridbot: their /ping answers, gridbot's /report and buttons work."""
    tg.say(RESIDENT, "/ping", entities=PING)
    await until(lambda: tg.last_text(RESIDENT.id) == "pong", what="their /ping")
    tg.say(RESIDENT, "/report")
    await until(lambda: "请选择问题类别" in tg.last_text(RESIDENT.id), what="gridbot's /report")
    message_id, data = grid.find(RESIDENT.id, "市政设施")
    _, query = tg.press(RESIDENT, RESIDENT.id, message_id, data)
    await until(lambda: grid.answer(query) is not None, what="the button answered")
    await until(lambda: "描述" in tg.last_text(RESIDENT.id), what="the next step")


async def test_router_mounted_in_a_users_own_dispatcher(grid: Grid, tg: FakeTelegram, db_url):
    """A bot of their own, with their own /ping; gridbot added with setup_gridbot (its Router last)."""
    theirs = Router(name="theirs")

    @theirs.message(Command("ping"))
    async def ping(message: Message) -> None:
        await message.answer("pong")

    dp = Dispatcher()
    dp.include_router(theirs)
    settings = Settings(_env_file=None, database_url=db_url, scheduler_enabled=False, delivery_poll_seconds=0.05)
    router = telegram_aiogram.setup_gridbot(dp, settings)
    assert isinstance(router, Router) and router.parent_router is dp

    bot = Bot(tg.token, session=AiohttpSession(api=telegram_aiogram.api_server(tg.base_url)))
    polling = asyncio.create_task(dp.start_polling(bot, polling_timeout=1, handle_signals=False))
    try:
        await their_ping_then_gridbots_report(grid, tg)
        tg.say(RESIDENT, "/ping", entities=PING)  # their command still theirs in the middle of a report
        await until(lambda: tg.last_text(RESIDENT.id) == "pong", what="their /ping again")
        async with grid.sm() as s:
            conv = (await s.execute(select(Conversation))).scalar_one()
        assert conv.step == "description"
    finally:
        await dp.stop_polling()
        await polling
    assert await grid.count(Outbox, Outbox.status != "sent") == 0


async def test_router_needs_only_an_office(grid: Grid, tg: FakeTelegram):
    """The bare Router with an Office and Delivery the host wires itself."""
    bot = telegram_aiogram.make_bot(grid.settings)
    adapter = telegram_aiogram.AiogramAdapter(bot)
    delivery = Delivery(grid.sm, {"telegram": adapter}, clock=grid.clock)
    office = TrackingOffice(grid.sm, clock=grid.clock, channels=frozenset({"telegram"}))
    dp = Dispatcher()
    dp.include_router(telegram_aiogram.gridbot_router(office))
    try:
        update = {"update_id": 42, **tg.message_update(RESIDENT, text="/start")}
        await dp.feed_update(bot, AioUpdate.model_validate(update, context={"bot": bot}))
        assert office.done == ["42"]
        await delivery.drain()
        assert "请选择要办理的事项" in tg.last_text(RESIDENT.id)
    finally:
        await bot.session.close()


# ====================================================================== the adapter on its own


def test_webhook_without_a_secret_is_refused():
    settings = Settings(_env_file=None, telegram_bot_token="123456:TEST", telegram_framework="aiogram",
                        telegram_webhook_url="https://bot.example.org/hook")
    with pytest.raises(ValueError, match="TELEGRAM_WEBHOOK_SECRET"):
        build_channels(settings)


def test_api_server_accepts_both_url_forms():
    for url in ("http://127.0.0.1:8081/bot", "http://127.0.0.1:8081/bot/", "http://127.0.0.1:8081"):
        server = telegram_aiogram.api_server(url)
        assert server.api_url("1:x", "getMe") == "http://127.0.0.1:8081/bot1:x/getMe"
        assert server.file_url("1:x", "a.jpg") == "http://127.0.0.1:8081/file/bot1:x/a.jpg"
    assert telegram_aiogram.api_server(None).api_url("1:x", "getMe") == "https://api.telegram.org/bot1:x/getMe"


# ====================================================================== updates → Inbound, as the PTB channel


def _samples() -> list[tuple[str, dict]]:
    fake = FakeTelegram()
    contact = {"phone_number": "+8613800000001", "first_name": "陈", "user_id": LEADER.id}
    anim = {"file_id": "g", "file_unique_id": "g", "width": 1, "height": 1, "duration": 1}
    message = {"message_id": 3, "date": 0, "chat": fake.chat(RESIDENT.id, person=RESIDENT)}
    out = [
        ("text", fake.message_update(RESIDENT, text="你好")),
        ("group", fake.message_update(LEADER, group=GROUP, title="翠苑一网格工作群", text="/help")),
        ("own contact", fake.message_update(LEADER, contact=contact)),
        ("other contact", fake.message_update(LEADER, contact={**contact, "user_id": 42})),
        ("photo", fake.message_update(RESIDENT, caption="路灯", photo=[
            {"file_id": "s", "file_unique_id": "s", "width": 90, "height": 90, "file_size": 900},
            {"file_id": "l", "file_unique_id": "l", "width": 1280, "height": 960, "file_size": 90000}])),
        ("voice", fake.message_update(RESIDENT, voice={"file_id": "vx", "file_unique_id": "v", "duration": 3,
                                                       "file_size": 5000, "mime_type": "audio/ogg"})),
        ("video", fake.message_update(RESIDENT, video={"file_id": "big", "file_unique_id": "b", "width": 1920,
                                                       "height": 1080, "duration": 600, "file_size": 100 * 2**20})),
        ("document", fake.message_update(RESIDENT, caption="说明", document={
            "file_id": "dx", "file_unique_id": "d", "file_name": "a.pdf", "file_size": 10})),
        ("audio", fake.message_update(RESIDENT, audio={"file_id": "ax", "file_unique_id": "a", "duration": 9})),
        ("video note", fake.message_update(RESIDENT, video_note={"file_id": "nx", "file_unique_id": "n",
                                                                 "length": 240, "duration": 5})),
        ("location", fake.message_update(RESIDENT, location={"latitude": 30.27, "longitude": 120.11})),
        ("venue", fake.message_update(RESIDENT, venue={"location": {"latitude": 30.2, "longitude": 120.1},
                                                       "title": "翠苑小区", "address": "文一西路 1 号"})),
        ("sticker", fake.message_update(RESIDENT, sticker={
            "file_id": "stk", "file_unique_id": "s", "width": 512, "height": 512, "is_animated": False,
            "is_video": False, "type": "regular"})),
        ("gif", fake.message_update(RESIDENT, animation=anim, document=anim)),
        ("forwarded", fake.message_update(RESIDENT, text="通知", forward_origin={
            "type": "user", "date": 1700000000, "sender_user": {"id": 9, "is_bot": False, "first_name": "x"}})),
        ("edited", fake.message_update(RESIDENT, kind="edited", text="改一下")),
        ("joined", fake.message_update(LEADER, group=GROUP, new_chat_members=[
            {"id": BOT_ID, "is_bot": True, "first_name": "Gridbot"}])),
        ("english", fake.message_update(Person(700, "Ann", "en"), text="hi")),
        ("no language", fake.message_update(Person(701, "无名", None), text="hi")),
        ("button", {"callback_query": {"id": "1", "from": RESIDENT.as_user(), "chat_instance": "c",
                                       "data": "tok", "message": message}}),
        ("button in a group", {"callback_query": {"id": "2", "from": LEADER.as_user(), "chat_instance": "c",
                                                  "data": "tok2", "message": {**message, "chat": fake.chat(GROUP)}}}),
        ("inline button", {"callback_query": {"id": "3", "from": RESIDENT.as_user(), "chat_instance": "c",
                                              "inline_message_id": "im", "data": "tok3"}}),
        ("channel post", {"channel_post": {"message_id": 1, "date": 0, "text": "x",
                                           "chat": {"id": -1009, "type": "channel", "title": "c"}}}),
    ]
    for old, new in (("left", "member"), ("member", "kicked"), ("member", "left"), ("member", "member")):
        fake.updates.clear()
        fake.bot_status(GROUP, LEADER, old=old, new=new)
        out.append((f"bot {old}→{new}", fake.updates[-1]))
    return [(name, {**{k: v for k, v in u.items() if k != "update_id"}, "update_id": 5}) for name, u in out]


@pytest.mark.parametrize(("name", "update"), _samples(), ids=[name for name, _ in _samples()])
def test_updates_become_the_same_inbound_as_on_ptb(name: str, update: dict):
    ours = to_inbound(AioUpdate.model_validate(update))
    assert ours == ptb_to_inbound(PtbUpdate.de_json(update, None))
    if ours is not None:
        assert ours.channel == "telegram" and ours.event_id == "5"


def test_conversion_details():
    samples = dict(_samples())

    def conv(name: str):
        return to_inbound(AioUpdate.model_validate(samples[name]))

    assert conv("own contact").contact_is_own and not conv("other contact").contact_is_own
    assert [(m.kind, m.ref, m.size) for m in conv("photo").media] == [("photo", "l", 90000)]
    assert conv("group").is_group and conv("group").chat_title == "翠苑一网格工作群"
    assert [conv(n).kind for n in ("sticker", "gif", "forwarded", "edited")] == [
        "unsupported", "unsupported", "forwarded", "edited"]
    assert conv("joined") is None and conv("channel post") is None
    assert conv("button").kind == "button" and conv("button").button == "tok"
    assert conv("button in a group").is_group and conv("inline button").chat_id == str(RESIDENT.id)
    assert conv("bot left→member").kind == "bot_added" and conv("bot member→kicked").kind == "bot_removed"
    assert conv("bot member→member") is None
    assert conv("venue").location == (30.2, 120.1) and conv("venue").text == "文一西路 1 号"




# ====================================================================== mounting into an existing PTB Application


async def test_ptb_setup_gridbot_in_a_users_own_application(grid: Grid, tg: FakeTelegram, db_url):
    """bot.channels.telegram_ptb.setup_gridbot: their /ping keeps working, gridbot takes the rest
    (post_init/post_shutdown called by hand: only run_polling calls them itself)."""
    from telegram.ext import Application, CommandHandler

    from bot.channels.telegram_ptb import setup_gridbot as ptb_setup_gridbot

    settings = Settings(_env_file=None, database_url=db_url, delivery_poll_seconds=0.05, scheduler_enabled=False)
    their_init_ran: list[bool] = []

    async def their_init(app: Application) -> None:
        their_init_ran.append(True)

    async def ping(update: PtbUpdate, context) -> None:
        await update.message.reply_text("pong")

    app = Application.builder().token(tg.token).base_url(tg.base_url).post_init(their_init).build()
    app.add_handler(CommandHandler("ping", ping))
    ptb_setup_gridbot(app, settings)
    await app.initialize()
    await app.post_init(app)
    await app.start()
    await app.updater.start_polling(poll_interval=0, timeout=1, allowed_updates=PtbUpdate.ALL_TYPES)
    try:
        assert their_init_ran == [True]
        await their_ping_then_gridbots_report(grid, tg)
        assert [c.params["text"] for c in tg.sent_to(RESIDENT.id)].count("pong") == 1
        assert not [c for c in tg.sent_to(RESIDENT.id) if "没有这个命令" in c.params["text"]]
    finally:
        await app.updater.stop()
        await app.stop()
        await app.post_shutdown(app)
        await app.shutdown()
