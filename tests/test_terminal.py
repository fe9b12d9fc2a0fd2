"""`gridbot shell` driven through stdin: a resident's report to the rating, leader and worker in between."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.db import make_engine, make_sessionmaker
from workflows.models import Case

BUTTON = re.compile(r"\[(\d+)\] (\S+)")


def gridbot() -> list[str]:
    script = Path(sys.executable).parent / "gridbot"
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]


def env_for(db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "WECOM_"))}
    env.update(DATABASE_URL=db_url, LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
    return env


async def run_cli(db_url: str, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(*gridbot(), *args, env=env_for(db_url), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT, cwd="/tmp")
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode()


class Shell:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.screen = ""  # everything printed so far
        self.buttons: dict[str, int] = {}

    async def until_prompt(self) -> str:
        start = len(self.screen)
        while True:
            chunk = await asyncio.wait_for(self.proc.stdout.read(4096), 30)
            if not chunk:
                raise AssertionError("shell ended:\n" + self.screen[-2000:])
            self.screen += chunk.decode()
            last_line = self.screen.rsplit("\n", 1)[-1]
            if last_line.endswith("> ") and not last_line.startswith(("bot>", "[→", " ")):
                break
        out = self.screen[start:]
        for n, label in BUTTON.findall(out):
            self.buttons[label] = int(n)  # the newest button with a label wins
        return out

    async def type(self, line: str) -> str:
        self.proc.stdin.write((line + "\n").encode())
        await self.proc.stdin.drain()
        return await self.until_prompt()

    async def press(self, label: str) -> str:
        assert label in self.buttons, f"no button {label!r} on screen:\n{self.screen[-1500:]}"
        return await self.type(str(self.buttons[label]))


async def test_shell_from_report_to_rating(db_url):
    code, out = await run_cli(db_url, "demo")
    assert code == 0, out
    code, out = await run_cli(db_url, "demo")  # the same file again changes nothing
    assert code == 0, out

    proc = await asyncio.create_subprocess_exec(*gridbot(), "shell", "--resident", "王大妈", env=env_for(db_url),
                                                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT, cwd="/tmp")
    sh = Shell(proc)
    try:
        await sh.until_prompt()
        await sh.type("/report")
        await sh.press("市政设施")
        await sh.type("12号楼前的路灯不亮")
        await sh.type(":photo lamp.jpg")
        await sh.press("下一步")
        out = await sh.type(":loc 30.2850 120.1150")
        assert "所在网格" in out
        await sh.press("跳过")
        out = await sh.press("提交")
        number = re.search(r"[A-Z]+-\d{8}-\d{3}", out).group(0)
        assert "上报成功" in out
        assert "[→ " in sh.screen and "工作群]" in sh.screen  # the card went to the grid's group

        engine = make_engine(db_url)
        async with make_sessionmaker(engine)() as s:
            case = (await s.execute(select(Case).where(Case.number == number))).scalar_one()
            from workflows.models import Node, Person

            grid = (await s.get(Node, case.grid_id)).code
        prefix = grid.replace("-", "")
        leader, worker = f"{prefix}-L", f"{prefix}-W1"
        async with make_sessionmaker(engine)() as s:
            worker_name = (await s.execute(select(Person.name).where(Person.code == worker))).scalar_one()
        await engine.dispose()

        await sh.type(f":as {leader}")
        await sh.press("派遣")
        out = await sh.press(worker_name)
        assert "已派遣" in out

        await sh.type(f":as {worker}")
        await sh.press("接收")
        await sh.press("办结")
        await sh.type("已更换灯泡，恢复照明")
        await sh.press("提交结果")

        await sh.type(f":as {leader}")
        out = await sh.press("核查通过")
        assert "满意" in out  # the rating request goes to the resident

        await sh.type(":resident 王大妈")
        await sh.press("满意")
        out = await sh.type("谢谢")
        assert "已记录" in out
        proc.stdin.write(b":quit\n")
        await proc.stdin.drain()
        await asyncio.wait_for(proc.wait(), 10)
        assert proc.returncode == 0 and "Traceback" not in sh.screen
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    engine = make_engine(db_url)
    async with make_sessionmaker(engine)() as s:
        case = (await s.execute(select(Case).where(Case.number == number))).scalar_one()
    await engine.dispose()
    assert case.status == "closed" and case.rating == "satisfied" and case.rating_comment == "谢谢"


async def test_out_of_date_schema_says_how_to_fix(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    code, out = await run_cli(url, "demo")
    assert code == 2 and "gridbot db upgrade" in out
    code, out = await run_cli(url, "db", "upgrade")
    assert code == 0, out
    code, out = await run_cli(url, "demo")
    assert code == 0, out


@pytest.mark.parametrize("args", [["shell", "--as", "nobody"], ["bind-token", "NOPE"]])
async def test_cli_refusals(db_url, args):
    code, out = await run_cli(db_url, *args)
    assert code != 0 and "Traceback" not in out
