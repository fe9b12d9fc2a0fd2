"""Keeps the translation catalogues complete.

Every Chinese string literal in the code is text a person reads, so every one of them is a
message id; so is every Chinese `_("…")` in the web console's templates (bot/console/templates). `python -m bot.catalog` adds new ones to each catalogue (keeping translations)
and drops ids no longer used; the test suite fails while any id lacks a translation.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

from workflows.i18n import LOCALE_DIR

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("workflows", "handlers", "bot")
CJK = re.compile(r"[\u4e00-\u9fff]")
SKIP_FILES: set[str] = set()  # the terminal's own lines are messages too (they follow LANGUAGE)


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def scan(root: Path = ROOT) -> dict[str, list[str]]:
    """msgid -> where it occurs."""
    found: dict[str, list[str]] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel in SKIP_FILES:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            skip = _docstrings(tree)
            for node in ast.walk(tree):
                if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
                        and CJK.search(node.value)):
                    found.setdefault(node.value, []).append(f"{rel}:{node.lineno}")
        for path in sorted((root / package).rglob("*.html")):  # the web console's Jinja2 templates
            rel = path.relative_to(root).as_posix()
            for msgid, line in template_messages(path.read_text(encoding="utf-8")):
                found.setdefault(msgid, []).append(f"{rel}:{line}")
    return found


# `_("…")` / `_('…')` calls in a template: every Chinese text there is a message id like the code's
TEMPLATE_CALL = re.compile(r"""\b_\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""")


def template_messages(source: str) -> list[tuple[str, int]]:
    out = []
    for m in TEMPLATE_CALL.finditer(source):
        text = m.group(1) if m.group(1) is not None else m.group(2)
        if CJK.search(text):
            out.append((text, source.count("\n", 0, m.start()) + 1))
    return out


def po_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / "gridbot.po"


def load(language: str) -> Catalog:
    path = po_path(language)
    if not path.exists():
        return Catalog(locale=language, domain="gridbot")
    with path.open("rb") as f:
        return read_po(f, locale=language)


def missing(language: str) -> list[str]:
    catalog = load(language)
    return [m for m in scan() if not (catalog.get(m) and catalog.get(m).string)]


def update(language: str) -> tuple[int, int]:
    old = load(language)
    found = scan()
    new = Catalog(locale=language, domain="gridbot", project="gridbot", fuzzy=False)
    for msgid, where in found.items():
        prev = old.get(msgid)
        locations = [(w.rsplit(":", 1)[0], int(w.rsplit(":", 1)[1])) for w in where]
        new.add(msgid, prev.string if prev else "", locations=locations)
    path = po_path(language)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        write_po(f, new, width=0, omit_header=False)
    return len(found), len([m for m in found if not (new.get(m) and new.get(m).string)])


if __name__ == "__main__":
    for lang in sys.argv[1:] or ["en"]:
        total, untranslated = update(lang)
        print(f"{lang}: {total} messages, {untranslated} untranslated")
