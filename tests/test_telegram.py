"""The Telegram channel: the real python-telegram-bot code over HTTP against a fake Bot API server,
with the office and the delivery worker running as they do in `gridbot run`."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import pytest
from sqlalchemy import func, select
from telegram import Update

from bot.app import build_channels
from bot.channels import telegram_aiogram, telegram_ptb
from bot.channels.base import (
    ChannelRuntime,
    MessageGone,
    OutgoingMessage,
    PermanentError,
    RetryLater,
    TransientError,
    Window,
)
from bot.channels.telegram_convert import to_inbound
from bot.channels.telegram_send import split_text
from bot.delivery import Delivery
from bot.ratelimit import Limiter
from bot.settings import Settings
from workflows import accounts, cases
from workflows.context import Ctx
from workflows.models import (
    Assignment,
    Case,
    CaseEvent,
    Category,
    Conversation,
    GroupBinding,
    InboundSeen,
    Node,
    Outbox,
)
from workflows.models import Person as DbPerson

from .fakes.telegram_api import BOT_ID, FakeTelegram, Person
from .support import MovingClock, Reads, TrackingOffice, free_port, until

GROUP = -1001234567
RESIDENT = Person(501, "王小明")
LEADER = Person(601, "陈网格长")
WORKER = Person(602, "张网格员")
OTHER = Person(603, "李网格员")
MB = 1024 * 1024


class Grid(Reads):
    """A street → community → two grids, a leader and two workers; a telegram runtime over it."""

    def __init__(self, sm, tg: FakeTelegram, framework: str = "ptb") -> None:
        self.sm = sm
        self.tg = tg
        self.clock = MovingClock()
        self.settings = Settings(_env_file=None, telegram_bot_token=tg.token, telegram_api_base_url=tg.base_url,
                                 telegram_framework=framework)
        self.ids: dict[str, int] = {}
        self.runtime: ChannelRuntime | None = None
        self.office: TrackingOffice | None = None
        self.delivery: Delivery | None = None
        self._task: asyncio.Task | None = None

    async def build_tree(self) -> Grid:
        now = self.clock.now()

        def square(lon: float, lat: float, d: float = 0.02) -> dict:
            return {"type": "Polygon", "coordinates": [[[lon, lat], [lon + d, lat], [lon + d, lat + d],
                                                        [lon, lat + d], [lon, lat]]]}

        async with self.sm() as s, s.begin():
            street = Node(code="XH", name="西湖街道", level="street", case_prefix="XH")
            s.add(street)
            await s.flush()
            community = Node(code="CY", name="翠苑社区", level="community", parent_id=street.id)
            s.add(community)
            await s.flush()
            g1 = Node(code="CY-01", name="翠苑一网格", level="grid", parent_id=community.id,
                      boundary=square(120.10, 30.26))
            g2 = Node(code="CY-02", name="翠苑二网格", level="grid", parent_id=community.id,
                      boundary=square(120.12, 30.26))
            s.add_all([g1, g2, Category(code="SZ", name="市政设施", name_en="Municipal facilities",
                                        time_limit_hours=72, sort=1),
                       Category(code="HJ", name="环境卫生", time_limit_hours=24, sort=2)])
            staff = [DbPerson(code="CY01-L", name=LEADER.first_name, phone="13800000001", created_at=now),
                     DbPerson(code="CY01-W1", name=WORKER.first_name, created_at=now),
                     DbPerson(code="CY01-W2", name=OTHER.first_name, created_at=now)]
            s.add_all(staff)
            await s.flush()
            s.add_all([Assignment(person_id=staff[0].id, node_id=g1.id, role="leader"),
                       Assignment(person_id=staff[1].id, node_id=g1.id, role="worker"),
                       Assignment(person_id=staff[2].id, node_id=g1.id, role="worker")])
            self.ids = {"grid": g1.id, "L": staff[0].id, "W1": staff[1].id, "W2": staff[2].id}
        return self

    async def link_staff_and_bind(self) -> None:
        """What /link and /bind do, done directly for tests that are about something else."""
        async with self.sm() as s, s.begin():
            ctx = self.ctx(s)
            for code, p in (("L", LEADER), ("W1", WORKER), ("W2", OTHER)):
                person = await s.get(DbPerson, self.ids[code])
                await accounts.link(ctx, person, "telegram", str(p.id), str(p.id), p.first_name)
            node = await s.get(Node, self.ids["grid"])
            await accounts.bind_group(ctx, node, "telegram", str(GROUP), "翠苑一网格工作群", self.ids["L"])

    def ctx(self, session) -> Ctx:
        return Ctx(session=session, clock=self.clock, channels=frozenset({"telegram"}))

    # ------------------------------------------------------------------ running

    async def start(self, server=None, **settings) -> None:
        """`server`: a bot.web.WebServer the channel puts its webhook on, as in `gridbot run`."""
        if settings:
            self.settings = self.settings.model_copy(update=settings)
        (self.runtime,) = build_channels(self.settings)  # as `gridbot run` picks ptb or aiogram
        if server is not None:
            self.runtime.routes(server)
        self.delivery = Delivery(self.sm, {"telegram": self.runtime.adapter}, clock=self.clock, poll_seconds=0.05)
        # the per-chat window (1/s) is tested on its own; here it would only make the suite slow
        self.delivery.limiters["telegram"] = Limiter(())
        self.office = TrackingOffice(self.sm, clock=self.clock, channels=frozenset({"telegram"}),
                                     on_commit=self.delivery.wake)
        await self.runtime.start(self.office)
        self._task = asyncio.create_task(self.delivery.run())

    async def stop(self) -> None:
        if self.runtime is not None:
            await self.runtime.stop()
        if self.delivery is not None:
            self.delivery.stop()
            await self._task
        self.runtime = self.delivery = None

    # ------------------------------------------------------------------ waiting for effects

    def seen(self, update_id: int) -> bool:
        return self.office is not None and str(update_id) in self.office.done

    async def quiet(self) -> bool:
        async with self.sm() as s:
            n = await s.execute(select(func.count()).select_from(Outbox).where(
                Outbox.channel == "telegram", Outbox.status.in_(["pending", "sending"])))
            return n.scalar_one() == 0

    async def settle(self, update_id: int, query: str | None = None, timeout: float = 5.0) -> None:
        await until(lambda: self.seen(update_id), timeout, f"update {update_id}")
        if query is not None:
            await until(lambda: self.answer(query) is not None, timeout, f"answer to query {query}")
        await until(self.quiet, timeout, "delivery")

    def answer(self, query: str) -> dict | None:
        for c in self.tg.calls_of("answerCallbackQuery"):
            if c.params.get("callback_query_id") == query:
                return c.params
        return None

    # ------------------------------------------------------------------ people acting

    async def say(self, person: Person, text: str | None = None, *, group: int | None = None, **content) -> None:
        await self.settle(self.tg.say(person, text, group=group, **content))

    def find(self, chat: object, label: str) -> tuple[int, str]:
        """The newest message in the chat showing a button with this label (as it is now)."""
        for (chat_id, message_id), msg in sorted(self.tg.messages.items(), key=lambda kv: -kv[0][1]):
            if chat_id != str(chat):
                continue
            for row in (msg.get("reply_markup") or {}).get("inline_keyboard", []):
                for b in row:
                    if b["text"] == label:
                        return message_id, b["callback_data"]
        raise AssertionError(f"no button {label!r} in chat {chat}")

    async def press(self, person: Person, label: str, *, chat: object | None = None) -> dict:
        """Press a button; returns the answerCallbackQuery parameters."""
        chat = chat if chat is not None else person.id
        message_id, data = self.find(chat, label)
        update_id, query = self.tg.press(person, chat, message_id, data)
        await self.settle(update_id, query)
        return self.answer(query)


@pytest.fixture
async def tg():
    server = await FakeTelegram().start()
    yield server
    await server.stop()


@pytest.fixture(params=["ptb", "aiogram"])
async def grid(request, sessionmaker, tg):
    """The same scenarios on both Telegram transports."""
    g = await Grid(sessionmaker, tg, request.param).build_tree()
    yield g
    await g.stop()


@pytest.fixture
async def office(grid):
    """The grid with staff linked and the group bound, running."""
    await grid.link_staff_and_bind()
    await grid.start()
    return grid


async def report_until_confirm(g: Grid, who: Person = RESIDENT) -> None:
    await g.say(who, "/report")
    await g.press(who, "市政设施")
    await g.say(who, "小区门口路灯坏了三天")
    await g.press(who, "下一步")
    await g.press(who, "选择网格")
    await g.press(who, "翠苑一网格")
    await g.press(who, "跳过")


# ====================================================================== the whole loop


async def test_full_loop_from_private_report_to_rating(grid: Grid, tg: FakeTelegram):
    await grid.start()
    # staff link their chat accounts: the leader with /link, the worker with the /start deep link
    async with grid.sm() as s, s.begin():
        leader_code = await accounts.link_token(grid.ctx(s), "CY01-L")
        worker_code = await accounts.link_token(grid.ctx(s), "CY01-W1")
        bind_code = await accounts.bind_token(grid.ctx(s), "CY-01")
    await grid.say(LEADER, f"/link {leader_code}")
    assert "账号已关联：陈网格长" in tg.last_text(LEADER.id)
    await grid.say(WORKER, f"/start {worker_code}")
    assert "账号已关联：张网格员" in tg.last_text(WORKER.id)
    # the leader binds the work group (Telegram appends @botname to commands in groups)
    await grid.say(LEADER, f"/bind@gridbot_test_bot {bind_code}", group=GROUP)
    assert "本群已绑定为「翠苑一网格」的工作群" in tg.last_text(GROUP)

    # a resident reports in a private chat
    await report_until_confirm(grid)
    assert "请确认上报内容" in tg.last_text(RESIDENT.id)
    await grid.press(RESIDENT, "提交")
    case = await grid.case()
    assert case is not None and case.status == "reported" and case.description == "小区门口路灯坏了三天"
    assert case.number in tg.last_text(RESIDENT.id) and "上报成功" in tg.last_text(RESIDENT.id)

    # the card appears once in the bound group, with the leader's buttons
    cards = [c for c in tg.sent_to(GROUP) if case.number in c.params["text"] and "【事件" in c.params["text"]]
    assert len(cards) == 1
    card_id = cards[0].result["message_id"]
    assert {"立案", "派遣", "要求补充", "不予立案"} <= {label for label, _ in cards[0].buttons()}

    # the leader dispatches to the worker
    await grid.press(LEADER, "派遣", chat=GROUP)
    await grid.press(LEADER, WORKER.first_name, chat=GROUP)
    case = await grid.case()
    assert case.status == "dispatched" and case.assignee_id == grid.ids["W1"]
    task = tg.last_text(WORKER.id)
    assert "【待办】" in task and case.number in task
    assert "已派遣" in tg.message(GROUP, card_id)["text"]

    # the worker accepts, and finishes with a result text and a photo
    await grid.press(WORKER, "接收")
    assert (await grid.case()).status == "in_progress"
    await grid.press(WORKER, "办结")
    await grid.say(WORKER, "已更换灯泡，恢复照明")
    await grid.say(WORKER, photo=[{"file_id": "small", "file_unique_id": "s", "width": 90, "height": 90,
                                   "file_size": 900},
                                  {"file_id": "after-photo", "file_unique_id": "a", "width": 1280, "height": 960,
                                   "file_size": 180_000}])
    assert "1 张照片" in tg.last_text(WORKER.id)
    await grid.press(WORKER, "提交结果")
    case = await grid.case()
    assert case.status == "resolved" and case.result == "已更换灯泡，恢复照明"
    async with grid.sm() as s:
        resolved = (await s.execute(select(CaseEvent).where(CaseEvent.case_id == case.id,
                                                            CaseEvent.action == "resolved"))).scalar_one()
    assert [a["ref"] for a in resolved.attachments] == ["after-photo"]  # the largest size only

    # the leader verifies in the group; the answer is a pop-up alert
    answer = await grid.press(LEADER, "核查通过", chat=GROUP)
    assert answer["text"] == "核查通过，已结案。" and answer["show_alert"] in (True, "true")
    case = await grid.case()
    assert case.status == "closed"

    # the card was edited in place every time: one post, several edits of the same message
    card_posts = [c for c in tg.sent_to(GROUP) if "【事件" in c.params["text"]]
    assert len(card_posts) == 1
    edits = tg.calls_of("editMessageText", chat=GROUP)
    assert len(edits) >= 3 and {int(e.params["message_id"]) for e in edits} == {card_id}
    final = tg.message(GROUP, card_id)
    assert "已结案" in final["text"] and "已更换灯泡" in final["text"]
    assert final["reply_markup"] == {"inline_keyboard": []}  # nothing left to press

    # the resident rates the result
    assert "请对处理结果进行评价" in tg.last_text(RESIDENT.id)
    await grid.press(RESIDENT, "满意")
    case = await grid.case()
    assert case.rating == "satisfied"
    assert "感谢您的评价" in tg.last_text(RESIDENT.id)
    async with grid.sm() as s:
        actions = list((await s.execute(select(CaseEvent.action).where(CaseEvent.case_id == case.id)
                                        .order_by(CaseEvent.id))).scalars())
    assert actions == ["reported", "registered", "dispatched", "accepted", "resolved", "verified", "rated"]
    # every button press was answered, with or without text
    presses = [c for c in tg.calls if c.method == "answerCallbackQuery"]
    assert len(presses) == 13 and all(c.params.get("text") is None for c in presses[:6])
    assert not [c for c in tg.calls if c.status != 200]


# ====================================================================== buttons pressed by the wrong person / too late


async def test_wrong_person_stale_and_forged_buttons_change_nothing(office: Grid, tg: FakeTelegram):
    async with office.sm() as s, s.begin():
        resident = DbPerson(name="王小明", created_at=office.clock.now())
        s.add(resident)
        await s.flush()
        cat = (await s.execute(select(Category).where(Category.code == "SZ"))).scalar_one()
        await cases.report(office.ctx(s), reporter_id=resident.id, category_id=cat.id, description="井盖缺失",
                           grid_id=office.ids["grid"])
    office.delivery.wake()
    await until(office.quiet)
    card_id, old_register = office.find(GROUP, "立案")

    # a worker presses the leader's button: an alert, nothing changes
    answer = await office.press(WORKER, "立案", chat=GROUP)
    assert "只有" in answer["text"] and answer["show_alert"] in (True, "true")
    assert (await office.case()).status == "reported"
    assert not tg.calls_of("editMessageText")

    # the leader registers; the card gets new buttons
    await office.press(LEADER, "立案", chat=GROUP)
    assert (await office.case()).status == "registered"
    events = await office.count(CaseEvent)

    # the old 立案 button (a client that had not refreshed yet) is refused
    update_id, query = tg.press(LEADER, GROUP, card_id, old_register)
    await office.settle(update_id, query)
    assert "已有新进展" in office.answer(query)["text"]
    # callback data nobody issued
    update_id, query = tg.press(LEADER, GROUP, card_id, "forged-0123456789")
    await office.settle(update_id, query)
    assert "按钮已失效" in office.answer(query)["text"]
    assert (await office.case()).status == "registered" and await office.count(CaseEvent) == events


# ====================================================================== restart in the middle of a report


async def test_restart_in_the_middle_of_a_report_resumes(grid: Grid, tg: FakeTelegram):
    await grid.start()
    await grid.say(RESIDENT, "/report")
    await grid.press(RESIDENT, "市政设施")
    await grid.stop()

    # written while the bot is down: Telegram keeps it until a new process polls
    pending = tg.say(RESIDENT, "路灯不亮")
    await grid.start()  # a new Application against the same database
    await grid.settle(pending)
    assert "可以发送现场照片" in tg.last_text(RESIDENT.id)
    await grid.press(RESIDENT, "下一步")
    await grid.press(RESIDENT, "选择网格")
    await grid.press(RESIDENT, "翠苑一网格")
    await grid.press(RESIDENT, "跳过")
    await grid.press(RESIDENT, "提交")
    case = await grid.case()
    assert case.description == "路灯不亮" and case.grid_id == grid.ids["grid"]
    # nothing was handled twice across the restart
    assert len([c for c in tg.sent_to(RESIDENT.id) if "请选择问题类别" in c.params["text"]]) == 1
    assert await grid.count(Conversation) == 0


# ====================================================================== limits, repeats, webhook


async def test_429_is_retried_after_retry_after_and_delivered_once(office: Grid, tg: FakeTelegram):
    tg.fail_next("sendMessage", 1, retry_after=1)
    update_id = tg.say(RESIDENT, "/start")
    await office.settle(update_id, timeout=8)
    sends = tg.sent_to(RESIDENT.id)
    assert [c.status for c in sends] == [429, 200]
    assert sends[1].at - sends[0].at >= 0.9  # waited retry_after before trying again
    delivered = [m for (chat, _), m in tg.messages.items() if chat == str(RESIDENT.id)]
    assert len(delivered) == 1 and "请选择要办理的事项" in delivered[0]["text"]
    async with office.sm() as s:
        row = (await s.execute(select(Outbox).where(Outbox.chat_id == str(RESIDENT.id)))).scalar_one()
    assert row.status == "sent" and row.message_id == str(delivered[0]["message_id"])


async def test_duplicate_update_has_one_effect(office: Grid, tg: FakeTelegram):
    update = tg.message_update(RESIDENT, text="/report")
    update_id = tg.push(update)
    tg.push(dict(update))  # the same update_id again, as after a crash before the offset was confirmed
    await office.settle(update_id)
    await asyncio.sleep(0.1)
    await until(office.quiet)
    assert len([c for c in tg.sent_to(RESIDENT.id) if "请选择问题类别" in c.params["text"]]) == 1
    assert await office.count(InboundSeen) == 1


async def test_webhook_rejects_a_wrong_secret_and_ignores_repeats(grid: Grid, tg: FakeTelegram):
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
    await grid.settle(777)
    await asyncio.sleep(0.1)
    assert len(tg.sent_to(RESIDENT.id)) == 1 and "请选择要办理的事项" in tg.last_text(RESIDENT.id)


def test_webhook_without_a_secret_is_refused():
    settings = Settings(_env_file=None, telegram_bot_token="1:x", telegram_webhook_url="https://example.org/tg")
    with pytest.raises(ValueError, match="TELEGRAM_WEBHOOK_SECRET"):
        telegram_ptb.build(settings)


async def test_command_menus_in_chinese_and_english(grid: Grid, tg: FakeTelegram):
    await grid.start()
    menus = {(c.params["scope"]["type"], c.params.get("language_code")): c.params["commands"]
             for c in tg.calls_of("setMyCommands")}
    assert set(menus) == {("all_private_chats", None), ("all_private_chats", "en"),
                          ("all_group_chats", None), ("all_group_chats", "en")}
    private = {c["command"]: c["description"] for c in menus[("all_private_chats", None)]}
    group = {c["command"] for c in menus[("all_group_chats", None)]}
    assert private["report"] == "上报问题" and "bind" not in private
    assert "bind" in group and "report" not in group
    english = {c["command"]: c["description"] for c in menus[("all_private_chats", "en")]}
    assert set(english) == set(private)


# ====================================================================== bad input


async def test_bad_input_gets_a_clear_answer(office: Grid, tg: FakeTelegram):
    sticker = {"file_id": "stk", "file_unique_id": "s", "width": 512, "height": 512, "is_animated": False,
               "is_video": False, "type": "regular"}
    await office.say(RESIDENT, sticker=sticker)
    assert "暂不支持这种消息" in tg.last_text(RESIDENT.id)
    await office.settle(tg.push(tg.message_update(RESIDENT, kind="edited", text="改一下")))
    assert "修改已发送的消息不会改变" in tg.last_text(RESIDENT.id)
    origin = {"type": "user", "date": 1700000000, "sender_user": {"id": 9, "is_bot": False, "first_name": "x"}}
    await office.say(RESIDENT, "别人发的通知", forward_origin=origin)
    assert "转发的消息不能直接作为上报内容" in tg.last_text(RESIDENT.id)

    # a group nobody bound: one short hint, not one per message
    for text in ("大家好", "今天开会"):
        await office.say(OTHER, text, group=-100999)
    hints = tg.sent_to(-100999)
    assert len(hints) == 1 and "本群还没有绑定网格" in hints[0].params["text"] and "/bind" in hints[0].params["text"]

    # a 100 MB video is refused with the limit for videos (10 MB), the report stays where it was
    await office.say(RESIDENT, "/report")
    await office.press(RESIDENT, "市政设施")
    await office.say(RESIDENT, "垃圾堆在路边")
    video = {"file_id": "big", "file_unique_id": "b", "width": 1920, "height": 1080, "duration": 600,
             "file_size": 100 * MB}
    await office.say(RESIDENT, video=video)
    assert "视频太大（100.0 MB）" in tg.last_text(RESIDENT.id) and "上限是 10 MB" in tg.last_text(RESIDENT.id)
    async with office.sm() as s:
        conv = (await s.execute(select(Conversation).where(Conversation.user_id == str(RESIDENT.id)))).scalar_one()
    assert conv.step == "media" and not conv.data.get("media")

    # a location far outside every grid (Beijing, the grids are in Hangzhou): choose a grid instead
    await office.press(RESIDENT, "下一步")
    await office.say(RESIDENT, location={"latitude": 39.9042, "longitude": 116.4074})
    assert "不在本辖区任何网格内" in tg.sent_to(RESIDENT.id)[-2].params["text"]
    assert {"翠苑一网格", "翠苑二网格"} <= {label for label, _ in tg.sent_to(RESIDENT.id)[-1].buttons()}
    # a location inside a grid picks it
    await office.say(RESIDENT, location={"latitude": 30.27, "longitude": 120.11})
    assert "所在网格：翠苑一网格" in tg.last_text(RESIDENT.id)
    assert await office.count(Case) == 0


async def test_bot_removed_from_the_group_breaks_the_binding(office: Grid, tg: FakeTelegram):
    await office.settle(tg.bot_status(GROUP, LEADER, old="member", new="left"))
    async with office.sm() as s:
        binding = (await s.execute(select(GroupBinding))).scalar_one()
    assert binding.status == "broken"
    assert "机器人已被移出" in tg.last_text(LEADER.id)


async def test_group_upgraded_to_supergroup_keeps_its_binding(office: Grid, tg: FakeTelegram):
    """Telegram moves a group to a new id when it becomes a supergroup; the binding follows it."""
    supergroup = -1009876543
    await office.say(LEADER, group=GROUP, migrate_to_chat_id=supergroup)
    async with office.sm() as s:
        binding = (await s.execute(select(GroupBinding))).scalar_one()
    assert binding.chat_id == str(supergroup) and binding.status == "active"
    await report_until_confirm(office)
    await office.press(RESIDENT, "提交")
    case = await office.case()
    assert any(case.number in c.params["text"] for c in tg.sent_to(supergroup))
    assert not any(case.number in c.params["text"] for c in tg.sent_to(GROUP))


# ====================================================================== the adapter on its own


@contextlib.asynccontextmanager
async def open_adapter(framework: str, settings: Settings):
    """The adapter of either transport, with its HTTP client open."""
    if framework == "ptb":
        runtime = telegram_ptb.build(settings)
        await runtime.application.initialize()
        try:
            yield runtime.adapter
        finally:
            await runtime.application.shutdown()
    else:
        channel = telegram_aiogram.build(settings.model_copy(update={"telegram_framework": "aiogram"}))
        try:
            yield channel.adapter
        finally:
            await channel.bot.session.close()


@pytest.mark.parametrize("framework", ["ptb", "aiogram"])
async def test_adapter_sends_media_first_splits_long_text_and_maps_errors(tg: FakeTelegram, framework: str):
    settings = Settings(_env_file=None, telegram_bot_token=tg.token, telegram_api_base_url=tg.base_url)
    async with open_adapter(framework, settings) as adapter:
        assert adapter.name == "telegram" and adapter.can_edit
        assert adapter.windows == (Window("chat", 1, 1.0), Window("group", 20, 60.0), Window("global", 30, 1.0))
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

    if framework == "ptb":
        return  # PTB's application will not even initialize without a server (getMe), so no "down" case
    # nothing listening at all: a network error, tried again later
    down = settings.model_copy(update={"telegram_api_base_url": f"http://127.0.0.1:{free_port()}/bot"})
    async with open_adapter(framework, down) as adapter:
        with pytest.raises(TransientError):
            await adapter.send(OutgoingMessage(9, "telegram", "501", False, {"text": "hi"}))


# ====================================================================== updates → Inbound


def _update(data: dict) -> Update:
    return Update.de_json({"update_id": 5, **data}, None)


def test_updates_become_inbound_events():
    fake = FakeTelegram()
    contact = {"phone_number": "+8613800000001", "first_name": "陈", "user_id": LEADER.id}
    own = to_inbound(_update(fake.message_update(LEADER, contact=contact)))
    assert own.contact_phone == "+8613800000001" and own.contact_is_own and own.event_id == "5"
    other = to_inbound(_update(fake.message_update(LEADER, contact={**contact, "user_id": 42})))
    assert not other.contact_is_own

    voice = to_inbound(_update(fake.message_update(RESIDENT, voice={
        "file_id": "vx", "file_unique_id": "v", "duration": 3, "file_size": 5000})))
    assert [(m.kind, m.ref, m.size) for m in voice.media] == [("voice", "vx", 5000)]
    doc = to_inbound(_update(fake.message_update(RESIDENT, caption="说明", document={
        "file_id": "dx", "file_unique_id": "d", "file_name": "a.pdf", "file_size": 10})))
    assert doc.text == "说明" and [(m.kind, m.name) for m in doc.media] == [("file", "a.pdf")]
    note = to_inbound(_update(fake.message_update(RESIDENT, video_note={
        "file_id": "nx", "file_unique_id": "n", "length": 240, "duration": 5})))
    assert [m.kind for m in note.media] == ["video"]

    group = to_inbound(_update(fake.message_update(LEADER, group=GROUP, title="翠苑一网格工作群", text="/help")))
    assert group.is_group and group.chat_id == str(GROUP) and group.chat_title == "翠苑一网格工作群"
    assert group.user_id == str(LEADER.id) and group.user_name == "陈网格长" and group.language == "zh-hans"

    anim = {"file_id": "g", "file_unique_id": "g", "width": 1, "height": 1, "duration": 1}
    gif = to_inbound(_update(fake.message_update(RESIDENT, animation=anim, document=anim)))
    assert gif.kind == "unsupported"
    joined = fake.message_update(LEADER, group=GROUP, new_chat_members=[{"id": BOT_ID, "is_bot": True,
                                                                          "first_name": "Gridbot"}])
    assert to_inbound(_update(joined)) is None  # service messages are not answered

    query = to_inbound(_update({"callback_query": {"id": "1", "from": RESIDENT.as_user(), "chat_instance": "c",
                                                   "data": "tok", "message": {
                                                       "message_id": 3, "date": 0,
                                                       "chat": fake.chat(RESIDENT.id, person=RESIDENT)}}}))
    assert query.kind == "button" and query.button == "tok" and query.chat_id == str(RESIDENT.id)
    fake.updates.clear()
    fake.bot_status(GROUP, LEADER, old="left", new="member")
    added = to_inbound(_update(fake.updates[-1]))
    assert added.kind == "bot_added" and added.is_group
    fake.bot_status(GROUP, LEADER, old="member", new="kicked")
    assert to_inbound(_update(fake.updates[-1])).kind == "bot_removed"
    assert telegram_ptb.file_url("http://127.0.0.1:9/bot") == "http://127.0.0.1:9/file/bot"


async def test_per_chat_window_spaces_messages_to_one_chat(office: Grid, tg: FakeTelegram):
    # the real limits: two messages for one private chat go out at least a second apart
    office.delivery.limiters["telegram"] = Limiter(office.runtime.adapter.windows)
    async with office.sm() as s, s.begin():
        from workflows.outbox import Msg, to_chat

        for text in ("一", "二"):
            await to_chat(office.ctx(s), "telegram", str(RESIDENT.id), Msg(text))
    office.delivery.wake()
    await until(lambda: len(tg.sent_to(RESIDENT.id)) == 2, 5)
    first, second = tg.sent_to(RESIDENT.id)
    assert [first.params["text"], second.params["text"]] == ["一", "二"]
    assert second.at - first.at >= 0.9



# ====================================================================== a person who cannot be reached


async def test_blocked_worker_is_shown_to_the_leader(office: Grid, tg: FakeTelegram):
    """A worker who blocked the bot: the task is recorded as failed once, the grid group is told
    who cannot be reached, and the rest of the messages still go out."""
    from workflows.models import Account

    tg.blocked.add(str(WORKER.id))
    await report_until_confirm(office)
    await office.press(RESIDENT, "提交")
    await office.press(LEADER, "派遣", chat=GROUP)
    await office.press(LEADER, WORKER.first_name, chat=GROUP)
    await until(office.quiet, what="delivery")
    assert (await office.case()).status == "dispatched"
    async with office.sm() as s:
        failed = (await s.execute(select(Outbox).where(Outbox.chat_id == str(WORKER.id)))).scalars().all()
        account = (await s.execute(select(Account).where(Account.external_id == str(WORKER.id)))).scalar_one()
    assert [r.status for r in failed] == ["failed"] and "blocked" in failed[0].error
    assert account.undeliverable and "blocked" in account.undeliverable
    warnings = [c for c in tg.sent_to(GROUP) if "无法给 张网格员 发送消息" in c.params["text"]]
    assert len(warnings) == 1
    assert "已派遣处理" in tg.last_text(RESIDENT.id)  # the others were not held up
    # a second failure to the same person does not repeat the warning
    async with office.sm() as s, s.begin():
        case = (await s.execute(select(Case))).scalar_one()
        await cases.hand_back(office.ctx(s), office.ids["W1"], case.id, "测试")
        await cases.dispatch(office.ctx(s), office.ids["L"], case.id, assignee_id=office.ids["W1"])
    office.delivery.wake()
    await until(office.quiet, what="delivery")
    assert len([c for c in tg.sent_to(GROUP) if "无法给 张网格员" in c.params["text"]]) == 1
