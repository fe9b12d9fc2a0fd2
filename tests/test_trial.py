"""The terminal trial as a new user meets it (issue 9, points 13–16): `gridbot shell` driven through
stdin with the scheduler running on a clock `:time` moves; chat bindings that no button can move;
a refusal said once; Ctrl-C; the `gridbot` command's help, logging and time format."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time

from sqlalchemy import select

from bot.cli import build_parser
from bot.db import make_engine, make_sessionmaker
from workflows.models import Account, Person

from .test_terminal import Shell, env_for, gridbot, run_cli

NUMBER = re.compile(r"[A-Z]+-\d{8}-\d{3}")


async def open_shell(db_url: str, *args: str) -> Shell:
    proc = await asyncio.create_subprocess_exec(*gridbot(), "shell", *args, env=env_for(db_url),
                                                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT, cwd="/tmp")
    sh = Shell(proc)
    await sh.until_prompt()
    return sh


async def close_shell(sh: Shell) -> None:
    if sh.proc.returncode is None:
        sh.proc.stdin.write(b":quit\n")
        await sh.proc.stdin.drain()
        try:
            await asyncio.wait_for(sh.proc.wait(), 10)
        except TimeoutError:
            sh.proc.kill()
            await sh.proc.wait()


async def chats(db_url: str) -> dict[str, str]:
    """Every terminal account's private chat, by the person's code (residents by name)."""
    engine = make_engine(db_url)
    async with make_sessionmaker(engine)() as s:
        rows = await s.execute(select(Person.code, Person.name, Account.chat_id)
                               .join(Account, Account.person_id == Person.id).where(Account.channel == "terminal"))
        out = {code or name: chat for code, name, chat in rows}
    await engine.dispose()
    return out


async def report(sh: Shell, text: str = "12号楼前的路灯不亮") -> str:
    await sh.type(":resident 王大妈")
    await sh.type("/report")
    await sh.press("市政设施")
    await sh.type(text)
    await sh.press("下一步")
    await sh.type(":loc 30.2850 120.1150")  # in 翠苑第二网格
    await sh.press("跳过")
    out = await sh.press("提交")
    return NUMBER.search(out).group(0)


async def test_trial_loop_keeps_chats_says_refusals_once_and_runs_the_scheduler(db_url):
    code, out = await run_cli(db_url, "demo")
    assert code == 0, out
    sh = await open_shell(db_url)
    try:
        await report(sh)
        await sh.type(":as CY02-L")
        await sh.press("派遣")
        await sh.press("朱琳")  # CY02-W1; her task card goes to her private chat
        assert "[→ 私聊 朱琳]" in sh.screen

        # 胡军 (CY02-W2) presses the 接收 on 朱琳's private card: refused, and said once
        await sh.type(":as CY02-W2")
        out = await sh.press("接收")
        refusals = [line for line in out.splitlines() if line.strip() and not line.endswith("> ")]
        assert len(refusals) == 1, out
        assert "只有" in refusals[0] or "不能" in refusals[0] or "无权" in refusals[0], out

        # no button press moved anyone's private chat
        bound = await chats(db_url)
        assert bound.pop("王大妈") == "dm:resident:王大妈"
        assert bound and all(chat == f"dm:{code}" for code, chat in bound.items()), bound

        # the scheduler runs in the shell: move the clock to before the next morning patrol
        out = await sh.type(":time 2026-11-24 08:50")
        assert "2026-11-24T08:50:00+08:00" in out
        mine = [line for line in out.splitlines() if line.startswith("bot> ") and "巡查提醒" in line]
        hers = [line for line in out.splitlines() if line.startswith("[→ 私聊 朱琳]") and "巡查提醒" in line]
        assert len(mine) == 1 and "翠苑第二网格 09:00" in mine[0], out
        assert len(hers) == 1, out
        out = await sh.type(":time 2026-11-24 08:52")  # the sweeps again: nothing is said twice
        assert "巡查提醒" not in out, out
        out = await sh.type(":time tomorrow")
        assert "读不懂时间" in out and "Traceback" not in out
    finally:
        await close_shell(sh)
    assert sh.proc.returncode == 0 and "Traceback" not in sh.screen
    assert " INFO " not in sh.screen  # no log lines on the trial's screen


async def test_ctrl_c_leaves_the_shell_at_once(db_url):
    code, out = await run_cli(db_url, "demo")
    assert code == 0, out
    sh = await open_shell(db_url, "--as", "CY01-L")
    try:
        started = time.monotonic()
        sh.proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(sh.proc.wait(), 5)
        assert time.monotonic() - started < 5
        rest = (await sh.proc.stdout.read()).decode()
        assert "Traceback" not in rest
    finally:
        await close_shell(sh)


async def test_gridbot_command_help_logging_and_times(db_url):
    code, out = await run_cli(db_url, "demo")
    assert code == 0, out
    code, out = await run_cli(db_url)  # bare: the help
    assert code == 0 and "usage: gridbot" in out and "shell" in out and "jobs" in out

    code, out = await run_cli(db_url, "db", "upgrade")
    assert code == 0 and "INFO" not in out and "alembic" not in out, out
    code, out = await run_cli(db_url, "-v", "db", "upgrade")
    assert code == 0 and "alembic" in out, out

    code, out = await run_cli(db_url, "jobs", "run", "patrol_reminders", "--at", "2026-11-24T08:55:00+08:00")
    assert code == 0, out
    first = json.loads(out.strip().splitlines()[-1])
    assert first["as_of"] == "2026-11-24T08:55:00+08:00" and first["counts"], out
    code, out = await run_cli(db_url, "jobs", "run", "patrol_reminders", "--at", "2026-11-24T00:55:00Z")
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["as_of"] == "2026-11-24T08:55:00+08:00"
    code, out = await run_cli(db_url, "jobs", "run", "patrol_reminders", "--at", "2026-11-24 08:56")
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["as_of"] == "2026-11-24T08:56:00+08:00"
    code, out = await run_cli(db_url, "jobs", "run", "patrol_reminders", "--at", "24.11.2026")
    assert code != 0 and "ISO 8601" in out and "Traceback" not in out


def test_every_subcommand_and_argument_has_a_help_line():
    missing = []

    def walk(parser, path):
        for action in parser._actions:
            if action.__class__.__name__ == "_SubParsersAction":
                helps = {a.dest: a.help for a in action._choices_actions}
                for name, sub in action.choices.items():
                    if not helps.get(name):
                        missing.append(f"{path} {name}")
                    walk(sub, f"{path} {name}")
            elif not action.help:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "gridbot")
    assert not missing, missing


async def test_typing_works_where_tapping_does(db_url):
    """Issue 9 point 10 in the terminal: labels typed as text, a typed phone number, a typed
    address choosing the grid by its keywords, 取消 at any step."""
    code, out = await run_cli(db_url, "demo")
    assert code == 0, out
    sh = await open_shell(db_url, "--resident", "李阿姨")
    try:
        await sh.type("/report")
        await sh.type("市政设施")  # the category button's label, typed
        await sh.type("学院路15号门口井盖松动")
        await sh.type("下一步")  # typed, not pressed
        out = await sh.type("学院路15号")  # an address naming a keyword of 翠苑第二网格
        assert "所在网格：翠苑第二网格" in out, out
        out = await sh.type("13912345678")  # a phone number, not button number 13912345678
        assert "没有这个编号的按钮" not in out and "联系电话：13912345678" in out, out
        out = await sh.type("提交")
        number = NUMBER.search(out).group(0)

        await sh.type("/report")
        await sh.type("环境卫生")
        out = await sh.type("取消")  # at the description step, which shows no category buttons
        assert "已取消" in out, out
        await sh.type("/report")
        await sh.type("环境卫生")
        await sh.type("楼道里堆满杂物")
        await sh.type("下一步")
        out = await sh.type("某某大厦")  # no grid names it: the grid choice as before
        assert "请再选择所在网格" in out and "翠苑社区" in out, out
        out = await sh.type("取消")
        assert "已取消" in out, out
    finally:
        await close_shell(sh)
    assert "Traceback" not in sh.screen
    engine = make_engine(db_url)
    async with make_sessionmaker(engine)() as s:
        from workflows.models import Case, Node

        case = (await s.execute(select(Case).where(Case.number == number))).scalar_one()
        grid = await s.get(Node, case.grid_id)
        n = len((await s.execute(select(Case))).scalars().all())
    await engine.dispose()
    assert grid.code == "CY-02" and case.contact_phone == "13912345678" and case.address == "学院路15号"
    assert n == 1  # the cancelled reports left nothing


async def test_address_keywords_are_imported_and_exported(db_url, tmp_path):
    path = tmp_path / "office.yaml"
    path.write_text(
        "nodes:\n"
        "  - {code: ST, name: 西湖街道, level: street, case_prefix: XH}\n"
        "  - {code: G1, name: 第一网格, level: grid, parent: ST, address_keywords: 翠苑一区、文三路，12幢}\n",
        encoding="utf-8")
    code, out = await run_cli(db_url, "import", str(path))
    assert code == 0, out
    code, out = await run_cli(db_url, "export")
    assert "address_keywords: [翠苑一区, 文三路, 12幢]" in out, out
    path.write_text(path.read_text(encoding="utf-8").replace("12幢", "A"), encoding="utf-8")
    code, out = await run_cli(db_url, "import", str(path))
    assert code == 1 and "address_keywords" in out and "too short" in out and "Traceback" not in out


async def test_the_terminal_follows_language(db_url):
    """Issue 9 point 12: with LANGUAGE=en the shell's own lines, category and status names are English."""
    code, out = await run_cli(db_url, "demo")
    assert code == 0, out
    env = {**env_for(db_url), "LANGUAGE": "en"}
    proc = await asyncio.create_subprocess_exec(*gridbot(), "shell", "--resident", "Jane", env=env,
                                                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT, cwd="/tmp")
    sh = Shell(proc)
    try:
        first = await sh.until_prompt()
        assert "Shell commands:" in first and "You are now: resident Jane" in first, first
        await sh.type("/report")
        await sh.press("Municipal")  # (the test reads labels up to the first space)
        await sh.type("The street lamp at building 12 is out")
        await sh.press("Next")
        await sh.type(":loc 30.2850 120.1150")
        await sh.press("Skip")
        out = await sh.press("Submit")
        assert "[→ " in out and " work group]" in out, out  # the terminal's own label, in English
        out = await sh.type("/my")
        line = next(x for x in out.splitlines() if NUMBER.search(x))
        assert "Municipal facilities" in line and "Awaiting registration" in line, line
        assert not re.search(r"[\u4e00-\u9fff]", line), line
        out = await sh.type("999")
        assert "No button has that number." in out
    finally:
        await close_shell(sh)
    assert "Traceback" not in sh.screen


async def test_case_number_reaches_the_card_in_the_terminal(db_url):
    """Issue 9 point 1: /case NUMBER and a bare number, in a private chat and in the work group,
    show the card with the buttons this viewer may press now — here after a restart of the shell."""
    code, out = await run_cli(db_url, "demo")
    assert code == 0, out
    sh = await open_shell(db_url)
    try:
        number = await report(sh)
    finally:
        await close_shell(sh)

    sh = await open_shell(db_url, "--as", "CY02-L")  # a new process: the old card's buttons are gone
    try:
        out = await sh.type(f"/case {number}")
        card = out[out.index("bot>"):]
        assert number in card and "] 立案" in card and "] 派遣" in card, out
        await sh.type(":group CY-02")
        out = await sh.type(number.lower())  # typed bare in the work group
        assert number in out and "] 派遣" in out, out
        await sh.type(":as CY02-W1")
        await sh.type(":group CY-02")
        out = await sh.type(number)
        assert number in out and "] 立案" not in out and "] 派遣" not in out, out  # a worker sees the card without the leader's buttons
        await sh.type(":as CY02-L")
        await sh.type(":dm")
        await sh.type(f"/case {number}")
        out = await sh.press("立案")  # a button from the card reached by its number works
        assert "Traceback" not in out, out
    finally:
        await close_shell(sh)
    assert "Traceback" not in sh.screen
    engine = make_engine(db_url)
    async with make_sessionmaker(engine)() as s:
        from workflows.models import Case

        case = (await s.execute(select(Case).where(Case.number == number))).scalar_one()
    await engine.dispose()
    assert case.status == "registered"


async def test_the_trial_opens_in_the_morning_and_its_time_only_moves_forward(sessionmaker):
    """A trial started late in the day would first catch up the whole day's missed patrols; it opens
    at 08:30 local instead, but never before what the database already holds."""
    from datetime import UTC, datetime, timedelta

    from bot.app import trial_start
    from workflows.models import Outbox

    evening = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)  # 17:00 in Hangzhou
    assert await trial_start(sessionmaker, "Asia/Shanghai", evening) == datetime(2026, 12, 2, 0, 30, tzinfo=UTC)
    last = datetime(2026, 12, 2, 3, 10, tzinfo=UTC)  # a previous trial got to 11:10
    async with sessionmaker() as s, s.begin():
        s.add(Outbox(channel="terminal", chat_id="dm:x", payload={"text": "x"}, status="sent", created_at=last,
                     not_before=last))
    assert await trial_start(sessionmaker, "Asia/Shanghai", evening) == last + timedelta(minutes=1)
