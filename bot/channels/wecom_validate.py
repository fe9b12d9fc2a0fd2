"""Edge checks of what WeChat Work hands us once the signature and the encryption are good: the
app's decrypted callback XML and 微信客服's `kf/sync_msg` messages (JSON).

The platform is trusted to be who it says, not to be well-formed: a callback can carry a lone
surrogate or a NUL (not storable in PostgreSQL), a control character or a character reference
XML forbids, an element where text belongs (`<Content><a/></Content>`), a word where a number
belongs, a missing sender, a message type or event from a newer version. What can be made
storable is (U+FFFD); what gridbot cannot read raises `Unreadable` with a short reason, which the
channel logs once and acknowledges — answering an error would only make WeChat Work send the
same body again.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import xmltodict

from handlers.events import Inbound

from .telegram_validate import REPLACEMENT, clean

# characters XML 1.0 forbids (C0 controls but tab, LF, CR; lone surrogates; U+FFFE/U+FFFF), and NUL
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
EXCERPT = 300
MAX_REF = 512  # media ids are stored as references (workflows/media_models.py: VARCHAR(512))


class Unreadable(ValueError):
    """A message gridbot cannot read; `sender` is who sent it, when that at least is readable."""

    def __init__(self, reason: str, sender: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sender = sender


def excerpt(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return repr(text[:EXCERPT]) + ("…" if len(text) > EXCERPT else "")


def read_xml(xml: Any) -> dict:
    """The callback's fields (the children of <xml>), every forbidden character made U+FFFD."""
    if not isinstance(xml, str) or not xml.strip():
        raise Unreadable("empty callback")
    try:
        doc = xmltodict.parse(_NOT_XML.sub(REPLACEMENT, xml))
    except Exception as e:  # expat's errors (a character reference to NUL, a broken tag …)
        raise Unreadable(f"not well-formed XML: {e}") from None
    root = doc.get("xml") if isinstance(doc, dict) else None
    if not isinstance(root, dict):
        raise Unreadable("no <xml> element with fields")
    return root


def text(fields: dict, name: str, *, required: bool = False, sender: str | None = None) -> str:
    """A field that must be text: '' when absent (or an error when required)."""
    value = fields.get(name)
    if value is None:
        if required:
            raise Unreadable(f"{name} is missing", sender)
        return ""
    if not isinstance(value, str):  # an element with children, or the field given twice
        raise Unreadable(f"{name} is {type(value).__name__}, not text", sender)
    if required and not value.strip():
        raise Unreadable(f"{name} is empty", sender)
    return value


def digits(fields: dict, name: str, *, required: bool = False, sender: str | None = None) -> str:
    """A field that must be a whole number (CreateTime, MsgId), as its text."""
    value = text(fields, name, required=required, sender=sender).strip()
    if value and not value.isdigit():
        raise Unreadable(f"{name} is {excerpt(value)}, not a number", sender)
    return value


def media_ref(value: str, where: str, sender: str | None = None) -> str:
    """A platform media id, as long as the media store can keep (PostgreSQL refused a longer one)."""
    if len(value) > MAX_REF or not value.isprintable():
        raise Unreadable(f"{where} is no media id ({len(value)} characters)", sender)
    return value


def json_text(value: Any, where: str, sender: str | None = None) -> str:
    """A JSON value that must be text (None is ''), made storable."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Unreadable(f"{where} is {type(value).__name__}, not text", sender)
    return clean(value)[0]


def json_id(value: Any, where: str, sender: str | None = None, *, limit: int = 100) -> str:
    """An id that must be non-empty text (a number is taken as its digits), at most `limit`
    characters (the tables keep ids in 128)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    out = json_text(value, where, sender).strip()
    if not out:
        raise Unreadable(f"{where} is missing", sender)
    if len(out) > limit:
        raise Unreadable(f"{where} is {len(out)} characters long", sender)
    return out


def unreadable_inbound(channel: str, user: str, body: Any) -> Inbound:
    """What the office hears of an unreadable message from a known sender: "not understood"
    (handlers/router.py answers it and changes nothing else). Its event id is the body's
    digest, so the same body delivered again has one effect."""
    digest = hashlib.sha256(repr(body).encode("utf-8", "replace")).hexdigest()[:24]
    return Inbound(channel=channel, chat_id=user, user_id=user, is_group=False, event_id=f"unreadable:{digest}",
                   kind="unsupported")
