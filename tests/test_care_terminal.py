"""The demo street in the terminal: the worker sees the morning's visit list and records a visit."""

from __future__ import annotations

import re

from .test_terminal import run_cli
from .test_trial import close_shell, open_shell


async def test_demo_worker_sees_the_visit_reminder_and_records_a_visit(db_url):
    code, out = await run_cli(db_url, "demo")
    assert code == 0, out
    sh = await open_shell(db_url, "--as", "CY01-W1")
    try:
        start = sh.screen
        # the trial opens at 08:30 local (bot.app.trial_start): the demo's first visits fall due on the
        # day of the import, and the morning list has gone out from 08:00, to each worker, never a group
        assert "试用时钟从" in start and "T08:30:00+08:00" in start, start
        assert "bot> 【走访提醒】本周需要走访 2 位关爱对象" in start and "王秀英" in start
        assert "[→ 私聊 马超] 【走访提醒】" in start and "工作群] 【走访提醒】" not in start
        # nothing of a day already gone: no missed-patrol notices before the user typed anything
        assert "巡查未打卡" not in start and "巡查未完成" not in start
        out = await sh.type("/visit")
        number = re.search(r"\[(\d+)\] CY01-H01 王秀英", out).group(1)  # labels with spaces: by number
        out = await sh.type(number)
        assert "腿脚不便" in out
        await sh.press("正常")
        await sh.type("老人身体不错，已提醒注意保暖")
        out = await sh.type(":loc 30.2900 120.1050")
        assert "走访已登记：正常" in out
        await close_shell(sh)
        assert sh.proc.returncode == 0 and "Traceback" not in sh.screen
    finally:
        await close_shell(sh)
    code, out = await run_cli(db_url, "audit", "access", "--person", "CY01-H01-1")
    assert code == 0 and "孙丽\tvisit\tterminal" in out and "孙丽\tdetail\tterminal" in out, out
