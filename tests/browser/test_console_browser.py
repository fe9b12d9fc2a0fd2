"""The web console in a real browser (chromium through Playwright), with the bot on
python-telegram-bot long-polling the fake Telegram Bot API, on the demo street:

a resident reports through Telegram; the grid leader sends /console, opens the link the bot sent,
filters the case list, opens the case and dispatches it — and the group's card at the fake
Telegram server is edited to say so. Then what must be refused is refused: the link a second
time, an expired link, another community's case by URL (404) and a POST without the CSRF token.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from bot.console import Console
from bot.web import WebServer
from handlers import console as console_command
from workflows import cases
from workflows.models import Case, Category, Node

from ..contract.drivers import TelegramDriver
from ..contract.test_contract import report
from ..support import until
from .shots import screenshot

pytestmark = pytest.mark.demo

LEADER, WORKER = "CY01-L", "CY01-W1"  # 张伟 leads CY-01, 孙丽 works there
GRID = "CY-01"
LINK = re.compile(r"http://\S+/console/signin/\w+")


@pytest.fixture
async def bot(sessionmaker):
    """The Telegram runtime as `gridbot run` wires it, and the console on the one web server."""
    d = TelegramDriver(sessionmaker, "ptb")
    await d.start()
    server = WebServer("127.0.0.1", 0, sessionmaker, d.clock)
    console = Console(d.office, url="http://127.0.0.1", on_commit=d.delivery.wake)
    console.routes(server)
    await server.start()
    console.set_url(server.base_url)
    d.console_url = server.base_url
    try:
        for code in (LEADER, WORKER):
            await d.as_staff(code)
        await d.bind_group(GRID)
        yield d
    finally:
        await server.stop()
        console_command.LINK.url = None
        await d.close()


async def link_for(d: TelegramDriver, who: str) -> str:
    await d.say(who, "/console")
    text = d.private_texts(who)[-1]
    m = LINK.search(text)
    assert m, text
    return m.group(0)


async def other_community_case(d: TelegramDriver) -> Case:
    async with d.sm() as s, s.begin():
        grid = (await s.execute(select(Node).where(Node.code == "WX-01"))).scalar_one()
        cat = (await s.execute(select(Category).order_by(Category.id).limit(1))).scalar_one()
        return await cases.report(d.ctx(s), reporter_id=None, category_id=cat.id, description="文新社区的井盖缺失",
                                  grid_id=grid.id)


async def test_leader_signs_in_filters_and_dispatches_and_the_group_card_changes(bot: TelegramDriver, browser):
    d = bot
    await report(d, description="翠苑一区门口路灯坏了三天")
    await report(d, who="李阿姨", description="楼道堆放杂物")
    async with d.sm() as s:
        case = (await s.execute(select(Case).where(Case.description.like("%路灯%")))).scalar_one()
    theirs = await other_community_case(d)

    link = await link_for(d, LEADER)
    ctx = await browser.new_context(locale="zh-CN")
    page = await ctx.new_page()
    await page.goto(link)
    await page.click("#signin")
    await page.wait_for_url("**/console/cases")
    assert "张伟" in await page.inner_text("header")
    numbers = await page.locator("tr[data-number]").evaluate_all("rows => rows.map(r => r.dataset.number)")
    assert case.number in numbers and theirs.number not in numbers and len(numbers) == 2
    await screenshot(page, "cases")

    # filter by words of the description
    await page.fill("input[name=q]", "路灯")
    await page.click("#apply")
    await page.wait_for_url("**q=*")
    numbers = await page.locator("tr[data-number]").evaluate_all("rows => rows.map(r => r.dataset.number)")
    assert numbers == [case.number]

    # open it and dispatch it to 孙丽
    await page.click(f"text={case.number}")
    await page.wait_for_url(f"**/console/cases/{case.id}")
    assert "翠苑一区门口路灯坏了三天" in await page.inner_text("#card")
    assert "王大妈" not in await page.content()  # the reporter is masked (王**) as on the card
    await screenshot(page, "case")
    await page.select_option("#dispatch-to", label="孙丽")
    await page.click("form[data-action='case.assign'] button")
    await page.wait_for_function("document.querySelector('#case-status').textContent.includes('已派遣')")
    assert "派遣" in await page.inner_text("#timeline") and "网页控制台" in await page.inner_text("#timeline")

    # the group's card at the fake Telegram server now says it was dispatched, and the worker heard
    await until(lambda: any(case.number in t and "已派遣" in t for t in d.group_texts(GRID)), 10, "group card")
    edits = [c for c in d.tg.calls_of("editMessageText", chat=str(d.group_chat(GRID))) if c.status == 200]
    assert any(case.number in c.params["text"] and "孙丽" in c.params["text"] for c in edits)
    await until(lambda: any(case.number in t for t in d.private_texts(WORKER)), 10, "the worker's task")

    # the worker accepts in Telegram: the open page shows it without a reload (htmx polls it)
    await d.press(WORKER, "接收")
    await page.wait_for_function("document.querySelector('#case-status').textContent.includes('处置中')",
                                 timeout=10_000)
    assert "接收" in await page.inner_text("#timeline")

    # another community's case by URL: not found, not "forbidden"
    resp = await page.goto(f"{d.console_url}/console/cases/{theirs.id}")
    assert resp.status == 404 and theirs.number not in await page.content()

    # a POST without the CSRF token (with the session cookie, from the page's own origin): refused
    refused = await page.request.post(f"{d.console_url}/console/cases/{case.id}/act",
                                      form={"action": "case.register", "status": "dispatched",
                                            "level": str(case.level_node_id)},
                                      headers={"Origin": d.console_url})
    assert refused.status == 403

    # the same link a second time, in another browser context: refused
    other = await (await browser.new_context(locale="zh-CN")).new_page()
    await other.goto(link)
    await other.click("#signin")
    assert "这个码已经用过了" in await other.inner_text("#refused")


async def test_expired_link_is_refused(bot: TelegramDriver, browser):
    d = bot
    link = await link_for(d, LEADER)
    d.clock.advance(11 * 60)
    page = await (await browser.new_context(locale="zh-CN")).new_page()
    await page.goto(link)
    await page.click("#signin")
    assert "已过期" in await page.inner_text("#refused")
    resp = await page.goto(f"{d.console_url}/console/cases")
    assert resp.url.endswith("/console")  # not signed in: back to the sign-in page
