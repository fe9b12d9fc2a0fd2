# ruff: noqa: F811  (the Telegram fixtures are imported from test_telegram)
"""On Telegram (real PTB and aiogram against the fake Bot API): who may use which command, menus
and /help by role, strangers in a work group, chat bindings no event can move, and a case card
reached by its number (issue 9 points 1, 11, 14; issue 14 point 5)."""

from __future__ import annotations

from sqlalchemy import select

from workflows import accounts, cases
from workflows.models import Account, Category
from workflows.models import Person as DbPerson

from .fakes.telegram_api import FakeTelegram, Person
from .support import until
from .test_telegram import GROUP, LEADER, OTHER, RESIDENT, WORKER, Grid, grid, office, tg  # noqa: F401

STRANGER = Person(901, "路人甲")
NEWCOMER = Person(902, "新同事")


async def chat_of(g: Grid) -> dict[str, str | None]:
    async with g.sm() as s:
        rows = await s.execute(select(Account.external_id, Account.chat_id).where(Account.channel == "telegram"))
        return dict(rows.all())


async def a_case(g: Grid) -> str:
    async with g.sm() as s, s.begin():
        resident = DbPerson(name="王小明", created_at=g.clock.now())
        s.add(resident)
        await s.flush()
        cat = (await s.execute(select(Category).where(Category.code == "SZ"))).scalar_one()
        case = await cases.report(g.ctx(s), reporter_id=resident.id, category_id=cat.id, description="井盖缺失",
                                  grid_id=g.ids["grid"])
    g.delivery.wake()
    await until(g.quiet)
    return case.number


def sent_texts(tg: FakeTelegram, chat: object) -> list[str]:
    return [c.params.get("text", "") for c in tg.sent_to(chat)]


async def test_no_event_moves_a_chat_binding_only_linking_does(office: Grid, tg: FakeTelegram):
    before = await chat_of(office)
    await office.say(LEADER, "/start")  # the main menu, with buttons, in the leader's private chat
    message_id, data = office.find(LEADER.id, "帮助")
    # the worker's client presses a button on a message of the leader's private chat (forged)
    update_id, query = tg.press(WORKER, LEADER.id, message_id, data)
    await office.settle(update_id, query)
    # a message "from" the worker in the leader's chat, and one from the worker in the group
    forged = tg.message_update(WORKER, text="/help")
    forged["message"]["chat"] = tg.chat(LEADER.id, person=LEADER)
    await office.settle(tg.push(forged))
    await office.say(WORKER, "/help", group=GROUP)
    assert await chat_of(office) == before

    # the linking command is what binds a chat: a new account gets its chat from /link
    async with office.sm() as s, s.begin():
        code = await accounts.link_token(office.ctx(s), "CY01-W2")
    await office.say(NEWCOMER, f"/link {code}")
    after = await chat_of(office)
    assert after[str(NEWCOMER.id)] == str(NEWCOMER.id)
    assert {k: v for k, v in after.items() if k != str(NEWCOMER.id)} == before


async def test_staff_commands_answer_staff_and_strangers_are_pointed_out_once(office: Grid, tg: FakeTelegram):
    number = await a_case(office)
    # a resident writing a staff command privately is refused, and nothing else happens
    await office.say(RESIDENT, "/diary 今天巡查一切正常")
    assert "没有使用 /diary 的权限" in tg.last_text(RESIDENT.id)
    # a worker is no centre: /notice is refused
    await office.say(WORKER, "/notice 周六消防演练")
    assert "没有使用 /notice 的权限" in tg.last_text(WORKER.id)

    # a stranger joins the bound work group: the group is told once
    group_before = len(tg.sent_to(GROUP))
    join = tg.message_update(LEADER, group=GROUP, new_chat_members=[STRANGER.as_user()])
    await office.settle(tg.push(join))
    told = sent_texts(tg, GROUP)[group_before:]
    assert len(told) == 1 and STRANGER.first_name in told[0] and "不是" in told[0], told
    again = tg.message_update(LEADER, group=GROUP, new_chat_members=[STRANGER.as_user()])
    await office.settle(tg.push(again))
    staff_joins = tg.message_update(LEADER, group=GROUP, new_chat_members=[OTHER.as_user()])
    await office.settle(tg.push(staff_joins))
    assert len(tg.sent_to(GROUP)) == group_before + 1

    # the stranger gets no answer in the group: not /cases, /stats, /help, nor a case number
    for text in ("/cases", "/stats", "/help", f"/case {number}", number):
        await office.say(STRANGER, text, group=GROUP)
    assert len(tg.sent_to(GROUP)) == group_before + 1
    # the node's staff do
    await office.say(WORKER, "/cases", group=GROUP)
    assert number in tg.last_text(GROUP)


async def test_help_and_menus_list_what_this_person_may_do(office: Grid, tg: FakeTelegram):
    menus = {c.params["scope"].get("chat_id"): {x["command"] for x in c.params["commands"]}
             for c in tg.calls_of("setMyCommands") if c.params["scope"]["type"] == "chat"}
    assert set(menus) == {LEADER.id, WORKER.id, OTHER.id}
    assert {"patrol", "diary", "tasks", "leave", "report"} <= menus[WORKER.id]
    assert "notice" not in menus[WORKER.id]
    public = next({x["command"] for x in c.params["commands"]} for c in tg.calls_of("setMyCommands")
                  if c.params["scope"]["type"] == "all_private_chats" and not c.params.get("language_code"))
    assert "diary" not in public and "report" in public

    await office.say(RESIDENT, "/help")
    resident_help = tg.last_text(RESIDENT.id)
    assert "/report" in resident_help and "/diary" not in resident_help and "/tasks" not in resident_help
    await office.say(WORKER, "/help")
    worker_help = tg.last_text(WORKER.id)
    assert "/diary" in worker_help and "/patrol" in worker_help and "/notice" not in worker_help
    await office.say(WORKER, "/help", group=GROUP)
    group_help = tg.last_text(GROUP)
    assert "/cases" in group_help and "/standin" not in group_help
    await office.say(LEADER, "/help", group=GROUP)
    assert "/standin" in tg.last_text(GROUP)

    # a staff member linking a new account gets their menu on that chat at once
    async with office.sm() as s, s.begin():
        code = await accounts.link_token(office.ctx(s), "CY01-W2")
    await office.say(NEWCOMER, f"/link {code}")
    await until(lambda: any(c.params["scope"].get("chat_id") == NEWCOMER.id
                            for c in tg.calls_of("setMyCommands")), what="the newcomer's menu")


async def test_case_number_shows_the_card_with_the_viewers_buttons(office: Grid, tg: FakeTelegram):
    number = await a_case(office)
    # long after the card scrolled away: /case NUMBER in the leader's private chat
    await office.say(LEADER, f"/case {number}")
    office.find(LEADER.id, "立案")  # the leader's own buttons are on it
    # a bare number typed in the work group by the worker: the card, without the leader's buttons
    await office.say(WORKER, number.lower(), group=GROUP)
    assert number in tg.last_text(GROUP)
    last = tg.sent_to(GROUP)[-1]
    assert "立案" not in [label for label, _ in last.buttons()]
    # and by the leader in the group: with them
    await office.say(LEADER, number, group=GROUP)
    assert "立案" in [label for label, _ in tg.sent_to(GROUP)[-1].buttons()]
    # a resident asking for someone else's case is told the same as for a number that does not exist
    await office.say(RESIDENT, number)
    other = tg.last_text(RESIDENT.id)
    await office.say(RESIDENT, "XH-20200101-999")
    assert "找不到" in other and other.replace(number, "N") == tg.last_text(RESIDENT.id).replace("XH-20200101-999", "N")


async def test_typing_works_where_tapping_does(office: Grid, tg: FakeTelegram):
    async with office.sm() as s, s.begin():
        from workflows.models import Node

        (await s.get(Node, office.ids["grid"])).address_keywords = ["翠苑一区", "文三路"]
    await office.say(RESIDENT, "/report")
    await office.say(RESIDENT, "市政设施")
    await office.say(RESIDENT, "文三路88号路灯不亮")
    await office.say(RESIDENT, "下一步")
    await office.say(RESIDENT, "文三路88号")
    assert "所在网格：翠苑一网格" in tg.last_text(RESIDENT.id)
    await office.say(RESIDENT, "139 1234 5678")
    assert "联系电话：13912345678" in tg.last_text(RESIDENT.id)
    await office.say(RESIDENT, "匿名提交")
    assert "上报成功" in tg.last_text(RESIDENT.id)
    case = await office.case()
    assert case.grid_id == office.ids["grid"] and case.anonymous and case.contact_phone == "13912345678"

    # 取消 typed at a step that shows no 取消 button
    await office.say(RESIDENT, "/report")
    await office.say(RESIDENT, "环境卫生")
    await office.say(RESIDENT, "垃圾没人清")
    await office.say(RESIDENT, "取消")
    assert "已取消" in tg.last_text(RESIDENT.id)
    async with office.sm() as s:
        from workflows.models import Conversation

        assert (await s.execute(select(Conversation).where(Conversation.chat_id == str(RESIDENT.id)))).first() is None


async def test_an_english_client_reads_category_and_status_in_english(office: Grid, tg: FakeTelegram):
    jane = Person(777, "Jane", language_code="en")
    await office.say(jane, "/report")
    await office.press(jane, "Municipal facilities")
    await office.say(jane, "The lamp at gate 3 is out")
    await office.press(jane, "Next")
    await office.press(jane, "Choose grid")
    await office.press(jane, "翠苑一网格")  # the grid's own name is data
    await office.press(jane, "Skip")
    await office.press(jane, "Submit")
    number = (await office.case()).number
    await office.say(jane, "/my")
    listing = tg.last_text(jane.id)
    assert f"{number} Municipal facilities — Awaiting registration" in listing, listing
    await office.say(jane, number)
    detail = tg.last_text(jane.id)
    assert "Municipal facilities" in detail and "市政设施" not in detail and "待立案" not in detail, detail
    # the group card follows the group's language (the office's default), not hers
    assert "市政设施" in tg.last_text(GROUP)


async def test_a_refused_private_button_is_said_once(office: Grid, tg: FakeTelegram):
    from .test_telegram import report_until_confirm

    await report_until_confirm(office)
    await office.press(RESIDENT, "提交")
    number = (await office.case()).number
    await office.say(RESIDENT, number)  # the detail, with 撤销上报
    await office.press(LEADER, "立案", chat=GROUP)
    before = len(tg.sent_to(RESIDENT.id))
    answer = await office.press(RESIDENT, "撤销上报")
    said = sent_texts(tg, RESIDENT.id)[before:]
    refusals = [t for t in said if "当前状态" in t or "不能" in t or "只能" in t]
    assert len(refusals) == 1, said
    assert not answer.get("text")  # no pop-up saying it a second time
    assert (await office.case()).status == "registered"


async def test_a_label_typed_in_the_work_group_acts_on_the_newest_card(office: Grid, tg: FakeTelegram):
    await a_case(office)
    await office.say(WORKER, "立案", group=GROUP)  # the worker may not: refused in the chat, nothing changes
    assert "只有" in tg.last_text(GROUP) and (await office.case()).status == "reported"
    await office.say(STRANGER, "立案", group=GROUP)  # a stranger is not answered at all
    await office.say(LEADER, "立案", group=GROUP)
    assert (await office.case()).status == "registered"
