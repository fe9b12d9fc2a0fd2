"""The grid's notice card (网格公示牌) carries the 微信客服 way in when WECHAT_KF_LINK is set."""

from __future__ import annotations

import io

import pytest
import segno

LINK = "https://work.weixin.qq.com/kfid/kfc0123456789abcdef"


@pytest.fixture
def gridbot(tmp_path, monkeypatch):
    from bot import cli

    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/n.db")
    monkeypatch.delenv("WECHAT_KF_LINK", raising=False)
    cli.get_settings.cache_clear()

    def run(argv: list[str]) -> int:
        cli.get_settings.cache_clear()  # the settings are read once per process; here per command
        return cli.main(argv)

    assert run(["db", "upgrade"]) == 0
    assert run(["demo"]) == 0
    yield run
    cli.get_settings.cache_clear()


def test_the_card_carries_the_link_when_it_is_set(gridbot, monkeypatch, capsys, tmp_path):
    capsys.readouterr()
    assert gridbot(["notice-card", "CY-01"]) == 0
    without = capsys.readouterr().out
    assert "【网格公示牌】翠苑第一网格" in without and "网格长：张伟" in without
    assert "微信扫码" not in without and "kfid" not in without
    assert gridbot(["notice-card", "CY-01", "--qr", str(tmp_path / "kf.png")]) == 2  # no link, no QR
    assert not (tmp_path / "kf.png").exists() and "WECHAT_KF_LINK" in capsys.readouterr().err

    monkeypatch.setenv("WECHAT_KF_LINK", LINK)
    assert gridbot(["notice-card", "CY-01", "--qr", str(tmp_path / "kf.png")]) == 0
    card = capsys.readouterr().out
    assert card.startswith(without.rstrip("\n"))  # the office's own text first, unchanged
    assert f"随时向网格反映问题（文字、图片、语音、视频、位置均可）：{LINK}" in card
    expected = io.BytesIO()
    segno.make(LINK, error="m").save(expected, kind="png", scale=10, border=4)
    assert (tmp_path / "kf.png").read_bytes() == expected.getvalue()


def test_an_unknown_node_is_refused(gridbot, monkeypatch, capsys):
    monkeypatch.setenv("WECHAT_KF_LINK", LINK)
    capsys.readouterr()
    assert gridbot(["notice-card", "NOPE-9"]) == 1
    captured = capsys.readouterr()
    assert "NOPE-9" in captured.err and LINK not in captured.out


FOLLOW = "https://mp.weixin.qq.com/mp/profile_ext?action=home&__biz=MzTEST=="


def test_the_card_carries_the_official_account_next_to_the_kf_link(gridbot, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("WECHAT_KF_LINK", LINK)
    monkeypatch.delenv("WECHAT_MP_FOLLOW_URL", raising=False)
    capsys.readouterr()
    assert gridbot(["notice-card", "CY-01", "--mp-qr", str(tmp_path / "mp.png")]) == 2  # no URL, no QR
    assert not (tmp_path / "mp.png").exists() and "WECHAT_MP_FOLLOW_URL" in capsys.readouterr().err

    monkeypatch.setenv("WECHAT_MP_FOLLOW_URL", FOLLOW)
    assert gridbot(["notice-card", "CY-01", "--qr", str(tmp_path / "kf.png"), "--mp-qr", str(tmp_path / "mp.png")]) == 0
    card = capsys.readouterr().out
    kf_line = next(n for n, line in enumerate(card.splitlines()) if LINK in line)
    mp_line = next(n for n, line in enumerate(card.splitlines()) if FOLLOW in line)
    assert mp_line == kf_line + 1 and "公众号" in card.splitlines()[mp_line]
    expected = io.BytesIO()
    segno.make(FOLLOW, error="m").save(expected, kind="png", scale=10, border=4)
    assert (tmp_path / "mp.png").read_bytes() == expected.getvalue()
    assert (tmp_path / "kf.png").read_bytes() != expected.getvalue()
