"""Translations. Message ids are the Simplified Chinese text; catalogues add other languages.

Catalogues are Babel .po files read at start-up, so nothing has to be compiled at install.
"""

from __future__ import annotations

import gettext
import io
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).parent / "locale"
DEFAULT_LANGUAGE = "zh_CN"
LANGUAGES = {"zh_CN": "简体中文", "en": "English"}


def normalize(language: str | None) -> str:
    if not language:
        return DEFAULT_LANGUAGE
    lang = language.replace("-", "_")
    if lang.lower().startswith("zh"):
        return "zh_CN"
    if lang.lower().startswith("en"):
        return "en"
    return DEFAULT_LANGUAGE


@cache
def translations(language: str) -> gettext.NullTranslations:
    po = LOCALE_DIR / language / "LC_MESSAGES" / "gridbot.po"
    if not po.exists():
        return gettext.NullTranslations()
    with po.open("rb") as f:
        catalog = read_po(f, locale=language)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


class T:
    """A translator for one language; `t("…")` translates, `t("…{n}", n=1)` formats too."""

    def __init__(self, language: str | None = None) -> None:
        self.language = normalize(language)
        self._tr = translations(self.language)

    def __call__(self, msgid: str, **kw: object) -> str:
        text = self._tr.gettext(msgid)
        return text.format(**kw) if kw else text


def category_name(t: T, category) -> str:  # noqa: ANN001  (a workflows.models.Category)
    """A category's name in the reader's language: categories are data, their English comes
    from the import (name_en), not from the catalogue."""
    return category.name_en if t.language == "en" and category.name_en else category.name


def category_referral(t: T, category) -> str | None:  # noqa: ANN001
    """Where a declined resident can turn instead, in their language (data, like the name)."""
    return category.referral_en if t.language == "en" and category.referral_en else category.referral


def _(msgid: str) -> str:
    """Marks a string for extraction where it is translated later (e.g. in tables)."""
    return msgid
