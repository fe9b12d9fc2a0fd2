"""Every Chinese text in the code has an English translation with the same placeholders."""

from __future__ import annotations

import string

from bot.catalog import load, missing, scan
from workflows.errors import Invalid
from workflows.i18n import T, normalize


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_every_message_is_translated():
    assert missing("en") == [], "run `python -m bot.catalog en` and translate the new messages"


def test_translations_keep_their_placeholders():
    catalog = load("en")
    wrong = [m for m in scan() if fields(catalog.get(m).string) != fields(m)]
    assert wrong == []


def test_translator_and_language_names():
    en, zh = T("en"), T("zh-CN")
    assert zh("已立案。") == "已立案。"
    assert en("已立案。") != "已立案。" and en("已立案。").isascii()
    assert "XH-1" in en("事件 {number} 已撤销。", number="XH-1")
    assert normalize("en-US") == "en" and normalize(None) == "zh_CN" and normalize("fr") == "zh_CN"


def test_error_parameters_are_translated_too():
    err = Invalid("{what}不能为空。", what="问题描述")
    assert err.render(T("zh_CN")) == "问题描述不能为空。"
    text = err.render(T("en"))
    assert text.isascii() and "问题描述" not in text
