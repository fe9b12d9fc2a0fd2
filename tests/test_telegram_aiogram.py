"""The Telegram channel on aiogram 3 (TELEGRAM_FRAMEWORK=aiogram): the real aiogram code over HTTP
against the fake Bot API server, with the office and the delivery worker running as in `gridbot run`.

The fake server, the grid and the helpers come from the python-telegram-bot channel's tests, so
both channels are held to the same behaviour.
"""

from __future__ import annotations

import asyncio

import aiohttp
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
from bot.channels.base import MessageGone, OutgoingMessage, PermanentError, RetryLater, TransientError, Window
from bot.channels.telegram_aiogram_convert import to_inbound
from bot.channels.telegram_convert import to_inbound as ptb_to_inbound
from bot.channels.telegram_send import split_text
from bot.delivery import Delivery
from bot.ratelimit import Limiter
from bot.settings import Settings
from workflows import accounts
from workflows.models import Case, CaseEvent, Conversation, GroupBinding, InboundSeen, Outbox
from workflows.models import Person as DbPerson

from .fakes.telegram_api import BOT_ID, FakeTelegram, Person
from .test_telegram import (
    GROUP,
    LEADER,
    OTHER,
    RESIDENT,
    WORKER,
    Grid,
    TrackingOffice,
    free_port,
    report_until_confirm,
    until,
)

PING = [{"type": "bot_command", "offset": 0, "length": 5}]  # Telegram marks commands; PTB relies on it


class AioGrid(Grid):
    """The PTB tests' grid, running the aiogram channel instead."""

    runtime: telegram_aiogram.AiogramChannel | None

    async def start(self, **settings) -> None:
        self.settings = self.settings.model_copy(update={"telegram_framework": "aiogram", **settings})
        (self.runtime,) = build_channels(self.settings)  # as `gridbot run` picks it
        assert isinstance(self.runtime, telegram_aiogram.AiogramChannel)
        self.delivery = Delivery(self.sm, {"telegram": self.runtime.adapter}, clock=self.clock, poll_seconds=0.05)
        self.delivery.limiters["telegram"] = Limiter(())  # the 1/s window is tested on its own
        self.office = TrackingOffice(self.sm, clock=self.clock, channels=frozenset({"telegram"}),
                                     on_commit=self.delivery.wake)
        await self.runtime.start(self.office)
        self._task = asyncio.create_task(self.delivery.run())

    async def link_staff(self) -> None:
        async with self.sm() as s, s.begin():
            for code, p in (("L", LEADER), ("W1", WORKER), ("W2", OTHER)):
                person = await s.get(DbPerson, self.ids[code])
                await accounts.link(self.ctx(s), person, "telegram", str(p.id), str(p.id), p.first_name)


@pytest.fixture
async def tg():
    server = await FakeTelegram().start()
    yield server
    await server.stop()


@pytest.fixture
async def grid(sessionmaker, tg):
    g = await AioGrid(sessionmaker, tg).build_tree()
    yield g
    await g.stop()


@pytest.fixture
async def running(grid: AioGrid) -> AioGrid:
    """Staff linked, the group bound, the channel polling."""
    await grid.link_staff_and_bind()
    await grid.start()
    return grid


# ====================================================================== the whole loop


async def test_full_loop_from_private_report_to_rating(grid: AioGrid, tg: FakeTelegram):
    await grid.link_staff()
    await grid.start()
    assert tg.calls_of("deleteWebhook") and not tg.webhook
    await until(lambda: tg.calls_of("getUpdates"), what="long polling")

    # the leader binds the work group with a single-use code
    async with grid.sm() as s, s.begin():
        bind_code = await accounts.bind_token(grid.ctx(s), "CY-01")
    await grid.say(LEADER, f"/bind@gridbot_test_bot {bind_code}", group=GROUP, title="翠苑一网格工作群")
    assert "本群已绑定为「翠苑一网格」的工作群" in tg.last_text(GROUP)
    async with grid.sm() as s:
        binding = (await s.execute(select(GroupBinding))).scalar_one()
    assert binding.chat_id == str(GROUP) and binding.title == "翠苑一网格工作群" and binding.status == "active"

    # a resident reports in a private chat, with a photo
    await grid.say(RESIDENT, "/report")
    await grid.press(RESIDENT, "市政设施")
    await grid.say(RESIDENT, "小区门口路灯坏了三天")
    await grid.say(RESIDENT, photo=[{"file_id": "lamp-small", "file_unique_id": "s", "width": 90, "height": 90},
                                    {"file_id": "lamp", "file_unique_id": "l", "width": 1280, "height": 960,
                                     "file_size": 150_000}])
    await grid.press(RESIDENT, "下一步")
    await grid.press(RESIDENT, "选择网格")
    await grid.press(RESIDENT, "翠苑一网格")
    await grid.press(RESIDENT, "跳过")
    assert "请确认上报内容" in tg.last_text(RESIDENT.id)
    await grid.press(RESIDENT, "提交")
    case = await grid.case()
    assert case.status == "reported" and case.description == "小区门口路灯坏了三天"
    assert case.number in tg.last_text(RESIDENT.id) and "上报成功" in tg.last_text(RESIDENT.id)

    # the card appears once in the bound group with the leader's buttons
    cards = [c for c in tg.sent_to(GROUP) if "【事件" in c.params["text"]]
    assert len(cards) == 1 and case.number in cards[0].params["text"]
    card_id = cards[0].result["message_id"]
    assert {"立案", "派遣", "要求补充", "不予立案"} <= {label for label, _ in cards[0].buttons()}
    # the report's photo (the largest size) went first, then the card
    group_sends = [c for c in tg.calls if c.method.startswith("send") and c.chat_id == str(GROUP)]
    assert [(c.method, c.params.get("photo")) for c in group_sends[-2:]] == [("sendPhoto", "lamp"),
                                                                             ("sendMessage", None)]

    # the leader dispatches to the worker
    await grid.press(LEADER, "派遣", chat=GROUP)
    await grid.press(LEADER, WORKER.first_name, chat=GROUP)
    case = await grid.case()
    assert case.status == "dispatched" and case.assignee_id == grid.ids["W1"]
    assert "【待办】" in tg.last_text(WORKER.id) and case.number in tg.last_text(WORKER.id)
    assert [c.params["photo"] for c in tg.calls_of("sendPhoto", chat=WORKER.id)] == ["lamp"]

    # the worker accepts, and finishes with a result and a photo (the largest size is kept)
    await grid.press(WORKER, "接收")
    assert (await grid.case()).status == "in_progress"
    await grid.press(WORKER, "办结")
    await grid.say(WORKER, "已更换灯泡，恢复照明")
    await grid.say(WORKER, photo=[{"file_id": "small", "file_unique_id": "s", "width": 90, "height": 90},
                                  {"file_id": "after-photo", "file_unique_id": "a", "width": 1280, "height": 960,
                                   "file_size": 180_000}])
    await grid.press(WORKER, "提交结果")
    case = await grid.case()
    assert case.status == "resolved" and case.result == "已更换灯泡，恢复照明"

    # the leader verifies in the group: an alert, and the card is edited in place
    answer = await grid.press(LEADER, "核查通过", chat=GROUP)
    assert answer["text"] == "核查通过，已结案。" and answer["show_alert"] in (True, "true")
    assert (await grid.case()).status == "closed"
    assert len([c for c in tg.sent_to(GROUP) if "【事件" in c.params["text"]]) == 1
    edits = tg.calls_of("editMessageText", chat=GROUP)
    assert len(edits) >= 3 and {int(e.params["message_id"]) for e in edits} == {card_id}
    final = tg.message(GROUP, card_id)
    assert "已结案" in final["text"] and "已更换灯泡" in final["text"]
    assert final["reply_markup"] == {"inline_keyboard": []}

    # the resident rates the result
    assert "请对处理结果进行评价" in tg.last_text(RESIDENT.id)
    await grid.press(RESIDENT, "满意")
    case = await grid.case()
    assert case.rating == "satisfied" and "感谢您的评价" in tg.last_text(RESIDENT.id)
    async with grid.sm() as s:
        actions = list((await s.execute(select(CaseEvent.action).where(CaseEvent.case_id == case.id)
                                        .order_by(CaseEvent.id))).scalars())
    assert actions == ["reported", "registered", "dispatched", "accepted", "resolved", "verified", "rated"]
    # every press answered, every call succeeded
    presses = tg.calls_of("answerCallbackQuery")
    assert len(presses) == len({c.params["callback_query_id"] for c in presses}) == 13
    assert not [c for c in tg.calls if c.status != 200]


async def test_a_non_leader_pressing_a_leaders_button_changes_nothing(running: AioGrid, tg: FakeTelegram):
    await report_until_confirm(running)
    await running.press(RESIDENT, "提交")
    before = await running.count(CaseEvent)
    answer = await running.press(WORKER, "派遣", chat=GROUP)
    assert "网格长" in answer["text"] and answer["show_alert"] in (True, "true")
    assert (await running.case()).status == "reported" and await running.count(CaseEvent) == before
    assert not tg.calls_of("editMessageText")
    # and a forged button is refused the same way
    card_id, _ = running.find(GROUP, "派遣")
    update_id, query = tg.press(LEADER, GROUP, card_id, "forged-0123456789")
    await running.settle(update_id, query)
    assert "按钮已失效" in running.answer(query)["text"]


# ====================================================================== restart, repeats, limits, webhook


async def test_restart_in_the_middle_of_a_report_resumes(grid: AioGrid, tg: FakeTelegram):
    await grid.start()
    await grid.say(RESIDENT, "/report")
    await grid.press(RESIDENT, "市政设施")
    await grid.stop()

    pending = tg.say(RESIDENT, "路灯不亮")  # written while the bot is down
    await grid.start()  # a new Bot and Dispatcher on the same database
    await grid.settle(pending)
    assert "可以发送现场照片" in tg.last_text(RESIDENT.id)
    await grid.press(RESIDENT, "下一步")
    await grid.press(RESIDENT, "选择网格")
    await grid.press(RESIDENT, "翠苑一网格")
    await grid.press(RESIDENT, "跳过")
    await grid.press(RESIDENT, "提交")
    case = await grid.case()
    assert case.description == "路灯不亮" and case.grid_id == grid.ids["grid"]
    assert len([c for c in tg.sent_to(RESIDENT.id) if "请选择问题类别" in c.params["text"]]) == 1
    assert await grid.count(Conversation) == 0


async def test_429_is_retried_after_retry_after_and_delivered_once(running: AioGrid, tg: FakeTelegram):
    tg.fail_next("sendMessage", 1, retry_after=1)
    await running.settle(tg.say(RESIDENT, "/start"), timeout=8)
    sends = tg.sent_to(RESIDENT.id)
    assert [c.status for c in sends] == [429, 200]
    assert sends[1].at - sends[0].at >= 0.9
    delivered = [m for (chat, _), m in tg.messages.items() if chat == str(RESIDENT.id)]
    assert len(delivered) == 1 and "请选择要办理的事项" in delivered[0]["text"]
    async with running.sm() as s:
        row = (await s.execute(select(Outbox).where(Outbox.chat_id == str(RESIDENT.id)))).scalar_one()
    assert row.status == "sent" and row.message_id == str(delivered[0]["message_id"])


async def test_duplicate_update_has_one_effect(running: AioGrid, tg: FakeTelegram):
    update = tg.message_update(RESIDENT, text="/report")
    update_id = tg.push(update)
    tg.push(dict(update))  # the same update_id again, as after a crash before the offset was confirmed
    await running.settle(update_id)
    await until(lambda: running.office.done.count(str(update_id)) == 2, what="both copies handled")
    await until(running.quiet)
    assert len([c for c in tg.sent_to(RESIDENT.id) if "请选择问题类别" in c.params["text"]]) == 1
    assert await running.count(InboundSeen) == 1


async def test_webhook_rejects_a_wrong_secret_and_ignores_repeats(grid: AioGrid, tg: FakeTelegram):
    await grid.link_staff_and_bind()
    port = free_port()
    url = f"http://127.0.0.1:{port}/tg/hook"
    await grid.start(telegram_webhook_url=url, telegram_webhook_secret="s3cret-token",
                     telegram_webhook_listen="127.0.0.1", telegram_webhook_port=port)
    assert tg.webhook["url"] == url and tg.webhook["secret_token"] == "s3cret-token"
    assert not tg.calls_of("getUpdates")

    update = {"update_id": 777, **tg.message_update(RESIDENT, text="/start")}
    async with aiohttp.ClientSession() as http:
        for headers in ({"X-Telegram-Bot-Api-Secret-Token": "wrong"}, {}):
            async with http.post(url, json=update, headers=headers) as r:
                assert r.status == 403
        await asyncio.sleep(0.2)
        assert await grid.count(InboundSeen) == 0 and not tg.sent_to(RESIDENT.id)

        for _ in range(2):  # Telegram repeats a webhook call it thinks failed
            async with http.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-token"}) as r:
                assert r.status == 200
    await until(lambda: grid.office.done.count("777") == 2, what="both copies handled")
    await until(grid.quiet)
    assert len(tg.sent_to(RESIDENT.id)) == 1 and "请选择要办理的事项" in tg.last_text(RESIDENT.id)

    # a button pressed through the webhook is answered too
    message_id, data = grid.find(RESIDENT.id, "上报问题")
    query = {"update_id": 778, "callback_query": {"id": "q1", "from": RESIDENT.as_user(), "chat_instance": "c",
                                                  "data": data, "message": tg.message(RESIDENT.id, message_id)}}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=query, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-token"}) as r:
            assert r.status == 200
    await grid.settle(778, "q1")
    assert "请选择问题类别" in tg.last_text(RESIDENT.id)


async def test_command_menus_match_the_ptb_channel(grid: AioGrid, tg: FakeTelegram):
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


async def test_bot_removed_from_the_group_breaks_the_binding(running: AioGrid, tg: FakeTelegram):
    await running.settle(tg.bot_status(GROUP, LEADER, old="member", new="left"))
    async with running.sm() as s:
        binding = (await s.execute(select(GroupBinding))).scalar_one()
    assert binding.status == "broken"
    assert "机器人已被移出" in tg.last_text(LEADER.id)


async def test_per_chat_window_spaces_messages_to_one_chat(running: AioGrid, tg: FakeTelegram):
    running.delivery.limiters["telegram"] = Limiter(running.runtime.adapter.windows)
    async with running.sm() as s, s.begin():
        from workflows.outbox import Msg, to_chat

        for text in ("一", "二"):
            await to_chat(running.ctx(s), "telegram", str(RESIDENT.id), Msg(text))
    running.delivery.wake()
    await until(lambda: len(tg.sent_to(RESIDENT.id)) == 2, 5)
    first, second = tg.sent_to(RESIDENT.id)
    assert [first.params["text"], second.params["text"]] == ["一", "二"]
    assert second.at - first.at >= 0.9


# ====================================================================== gridbot inside someone else's aiogram bot


async def test_router_mounted_in_a_users_own_dispatcher(grid: AioGrid, tg: FakeTelegram, db_url):
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
        tg.say(RESIDENT, "/ping", entities=PING)
        await until(lambda: tg.last_text(RESIDENT.id) == "pong", what="their /ping")
        tg.say(RESIDENT, "/report")
        await until(lambda: "请选择问题类别" in tg.last_text(RESIDENT.id), what="gridbot's /report")
        message_id, data = grid.find(RESIDENT.id, "市政设施")
        _, query = tg.press(RESIDENT, RESIDENT.id, message_id, data)
        await until(lambda: grid.answer(query) is not None, what="the button answered")
        await until(lambda: "描述" in tg.last_text(RESIDENT.id), what="the next step")
        tg.say(RESIDENT, "/ping", entities=PING)  # their command still theirs in the middle of a report
        await until(lambda: tg.last_text(RESIDENT.id) == "pong", what="their /ping again")
        async with grid.sm() as s:
            conv = (await s.execute(select(Conversation))).scalar_one()
        assert conv.step == "description"
    finally:
        await dp.stop_polling()
        await polling
    assert await grid.count(Outbox, Outbox.status != "sent") == 0


async def test_router_needs_only_an_office(grid: AioGrid, tg: FakeTelegram):
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


async def test_adapter_sends_media_first_splits_long_text_and_maps_errors(tg: FakeTelegram):
    settings = Settings(_env_file=None, telegram_bot_token=tg.token, telegram_api_base_url=tg.base_url,
                        telegram_framework="aiogram")
    channel = telegram_aiogram.build(settings)
    adapter = channel.adapter
    assert adapter.name == "telegram" and adapter.can_edit
    assert adapter.windows == (Window("chat", 1, 1.0), Window("group", 20, 60.0), Window("global", 30, 1.0))
    try:
        media = [{"kind": "photo", "ref": "p1", "channel": "telegram"},
                 {"kind": "video", "ref": "v1", "channel": "telegram"},
                 {"kind": "voice", "ref": "vo1", "channel": "telegram"},
                 {"kind": "photo", "ref": "wx-1", "channel": "wecom"}]  # not usable on Telegram
        card = OutgoingMessage(1, "telegram", str(GROUP), True, {
            "text": "【事件 XH-1】", "buttons": [[{"label": "立案", "token": "tok1"}]], "media": media}, card_key="c1")
        sent = await adapter.send(card)
        assert [c.method for c in tg.calls if c.method.startswith("send")] == ["sendMediaGroup", "sendVoice",
                                                                              "sendMessage"]
        assert [m["media"] for m in tg.calls_of("sendMediaGroup")[0].params["media"]] == ["p1", "v1"]
        assert sent.message_id == str(tg.calls_of("sendMessage")[-1].result["message_id"])
        assert len(sent.extra_ids) == 3
        assert tg.calls_of("sendMessage")[-1].buttons() == [("立案", "tok1")]

        await adapter.send(OutgoingMessage(2, "telegram", "501", False, {
            "text": "任务", "media": [{"kind": "photo", "ref": "p2", "channel": "telegram"}]}))
        assert tg.calls_of("sendPhoto")[-1].params["photo"] == "p2"

        long = "\n".join(f"第{n}行 " + "字" * 60 for n in range(200))
        before = len(tg.sent_to(501))
        await adapter.send(OutgoingMessage(3, "telegram", "501", False, {
            "text": long, "buttons": [[{"label": "好", "token": "t"}]]}))
        parts = tg.sent_to(501)[before:]
        assert len(parts) == len(split_text(long)) >= 3 and all(len(p.params["text"]) <= 4096 for p in parts)
        assert [bool(p.buttons()) for p in parts] == [False] * (len(parts) - 1) + [True]
        assert "".join(p.params["text"] for p in parts).replace("\n", "") == long.replace("\n", "")

        # edits: changed text is applied; the same content is fine; a vanished message is MessageGone
        changed = OutgoingMessage(1, "telegram", str(GROUP), True, {"text": "【事件 XH-1】已立案", "buttons": []},
                                  card_key="c1")
        await adapter.edit(changed, sent.message_id)
        assert tg.message(GROUP, int(sent.message_id))["text"] == "【事件 XH-1】已立案"
        assert tg.message(GROUP, int(sent.message_id))["reply_markup"] == {"inline_keyboard": []}
        await adapter.edit(changed, sent.message_id)  # "message is not modified" → success
        with pytest.raises(MessageGone):
            await adapter.edit(card, "99999")

        # a 429 in the middle: RetryLater with Telegram's delay, and the retry does not post the album again
        tg.fail_next("sendMessage", 1, retry_after=3)
        again = OutgoingMessage(4, "telegram", str(GROUP), True, dict(card.payload), card_key="c2")
        with pytest.raises(RetryLater) as retry:
            await adapter.send(again)
        assert retry.value.seconds == 3
        albums = len(tg.calls_of("sendMediaGroup"))
        await adapter.send(again)
        assert len(tg.calls_of("sendMediaGroup")) == albums

        tg.fail_next("sendMessage", 1, status=403, description="Forbidden: bot was blocked by the user")
        with pytest.raises(PermanentError, match="blocked"):
            await adapter.send(OutgoingMessage(5, "telegram", "501", False, {"text": "hi"}))
        tg.fail_next("sendMessage", 1, status=400, description="Bad Request: chat not found")
        with pytest.raises(PermanentError, match="(?i)chat not found"):
            await adapter.send(OutgoingMessage(6, "telegram", "777", False, {"text": "hi"}))
        tg.fail_next("sendMessage", 1, status=502, retry_after=None, description="Bad Gateway")
        with pytest.raises(TransientError):
            await adapter.send(OutgoingMessage(7, "telegram", "501", False, {"text": "hi"}))
        with pytest.raises(PermanentError, match="64 bytes"):
            await adapter.send(OutgoingMessage(8, "telegram", "501", False, {
                "text": "hi", "buttons": [[{"label": "x", "token": "t" * 65}]]}))
    finally:
        await channel.bot.session.close()

    # nothing listening at all: a network error, tried again later
    down = telegram_aiogram.build(settings.model_copy(update={"telegram_api_base_url": f"http://127.0.0.1:{free_port()}"}))
    try:
        with pytest.raises(TransientError):
            await down.adapter.send(OutgoingMessage(9, "telegram", "501", False, {"text": "hi"}))
    finally:
        await down.bot.session.close()


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


async def test_every_case_event_reaches_the_right_chat(running: AioGrid, tg: FakeTelegram):
    """A resident's report lands in the bound group only: the other chats hear nothing of it."""
    await report_until_confirm(running)
    await running.press(RESIDENT, "提交")
    case: Case = await running.case()
    assert [c.params["text"] for c in tg.sent_to(GROUP) if case.number in c.params["text"]]
    assert not [c for c in tg.sent_to(WORKER.id) + tg.sent_to(OTHER.id) if case.number in c.params["text"]]


# ====================================================================== mounting into an existing PTB Application


async def test_ptb_setup_gridbot_in_a_users_own_application(grid: AioGrid, tg: FakeTelegram, db_url):
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
        tg.say(RESIDENT, "/ping", entities=PING)
        await until(lambda: tg.last_text(RESIDENT.id) == "pong", what="their /ping")
        tg.say(RESIDENT, "/report")
        await until(lambda: "请选择问题类别" in tg.last_text(RESIDENT.id), what="gridbot's /report")
        message_id, data = grid.find(RESIDENT.id, "市政设施")
        _, query = tg.press(RESIDENT, RESIDENT.id, message_id, data)
        await until(lambda: grid.answer(query) is not None, what="the button answered")
        await until(lambda: "描述" in tg.last_text(RESIDENT.id), what="the next step")
        assert [c.params["text"] for c in tg.sent_to(RESIDENT.id)].count("pong") == 1
        assert not [c for c in tg.sent_to(RESIDENT.id) if "没有这个命令" in c.params["text"]]
    finally:
        await app.updater.stop()
        await app.stop()
        await app.post_shutdown(app)
        await app.shutdown()
