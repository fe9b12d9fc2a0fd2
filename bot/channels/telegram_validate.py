"""Edge checks of a raw Telegram update, before either library reads it.

Telegram's JSON may carry what neither the database nor our conversion can take: lone UTF-16
surrogates (`"\\ud800"` is valid JSON, but not UTF-8, so PostgreSQL refuses it), NUL characters
(refused by PostgreSQL's JSONB), a number or a list where the Bot API promises text. `clean`
makes every string storable; `problem` names the first field gridbot reads that has the wrong
shape, so the update is kept as unreadable and answered plainly instead of raising somewhere
deep in a handler.
"""

from __future__ import annotations

from typing import Any

REPLACEMENT = "\ufffd"

# the fields gridbot reads, and what they must be; anything else is the library's business
_USER = {"id": int, "first_name": str, "last_name": str, "username": str, "language_code": str}
_CHAT = {"id": int, "type": str, "title": str}
_FILE = {"file_id": str, "file_size": int, "mime_type": str, "file_name": str}
_LOCATION = {"latitude": (int, float), "longitude": (int, float)}
_MESSAGE: dict[str, Any] = {
    "message_id": int, "chat": _CHAT, "from": _USER, "text": str, "caption": str,
    "photo": [_FILE], "voice": _FILE, "video": _FILE, "video_note": _FILE, "audio": _FILE,
    "document": _FILE, "location": _LOCATION,
    "venue": {"location": _LOCATION, "address": str, "title": str},
    "contact": {"phone_number": str, "user_id": int}, "migrate_to_chat_id": int,
    "forward_origin": dict,
}
_MEMBER = {"status": str}
UPDATE: dict[str, Any] = {
    "update_id": int,
    "message": _MESSAGE, "edited_message": _MESSAGE, "channel_post": dict, "edited_channel_post": dict,
    "callback_query": {"id": str, "from": _USER, "data": str, "message": {"chat": _CHAT, "message_id": int}},
    "my_chat_member": {"chat": _CHAT, "from": _USER, "old_chat_member": _MEMBER, "new_chat_member": _MEMBER},
}
REQUIRED = {"callback_query": ("id", "from"), "message": ("chat",), "edited_message": ("chat",),
            "my_chat_member": ("chat", "from", "old_chat_member", "new_chat_member")}


def _clean_text(s: str) -> str:
    if s.isprintable() or not any(c == "\x00" or "\ud800" <= c <= "\udfff" for c in s):
        return s
    return "".join(REPLACEMENT if c == "\x00" or "\ud800" <= c <= "\udfff" else c for c in s)


def clean(value: Any) -> tuple[Any, bool]:
    """The value with every lone surrogate and NUL replaced by U+FFFD; True when anything changed."""
    if isinstance(value, str):
        out = _clean_text(value)
        return out, out is not value
    if isinstance(value, list):
        items = [clean(v) for v in value]
        return [v for v, _ in items], any(c for _, c in items)
    if isinstance(value, dict):
        changed = False
        out = {}
        for k, v in value.items():
            k2, ck = clean(k) if isinstance(k, str) else (k, False)
            v2, cv = clean(v)
            out[k2] = v2
            changed = changed or ck or cv
        return out, changed
    return value, False


def _check(value: Any, spec: Any, where: str) -> str | None:
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            return f"{where} is {type(value).__name__}, not an object"
        for name, sub in spec.items():
            if name in value and value[name] is not None:
                found = _check(value[name], sub, f"{where}.{name}")
                if found:
                    return found
        return None
    if isinstance(spec, list):
        if not isinstance(value, list):
            return f"{where} is {type(value).__name__}, not a list"
        for i, item in enumerate(value):
            found = _check(item, spec[0], f"{where}[{i}]")
            if found:
                return found
        return None
    types = spec if isinstance(spec, tuple) else (spec,)
    # bool is an int to Python, never to the Bot API
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        return f"{where} is {type(value).__name__}, not {'/'.join(t.__name__ for t in types)}"
    return None


def problem(update: Any) -> str | None:
    """What is wrong with the update's shape, in a few words; None when gridbot can read it."""
    found = _check(update, UPDATE, "update")
    if found:
        return found
    for part, names in REQUIRED.items():
        if isinstance(update.get(part), dict):
            missing = [n for n in names if update[part].get(n) is None]
            if missing:
                return f"update.{part} has no {', '.join(missing)}"
            for who in ("chat", "from"):  # an answer needs somewhere to go
                if isinstance(update[part].get(who), dict) and update[part][who].get("id") is None:
                    return f"update.{part}.{who} has no id"
    return None


def reply_address(update: Any) -> tuple[int, int | None, bool] | None:
    """(chat id, user id, is group) of an unreadable update, when those at least can be read,
    so the person can be told their message was not understood."""
    if not isinstance(update, dict):
        return None
    for part in ("message", "edited_message", "callback_query"):
        body = update.get(part)
        if not isinstance(body, dict):
            continue
        holder = body if part != "callback_query" else body.get("message")
        chat = holder.get("chat") if isinstance(holder, dict) else None
        user = body.get("from")
        user_id = user.get("id") if isinstance(user, dict) else None
        user_id = user_id if isinstance(user_id, int) and not isinstance(user_id, bool) else None
        chat_id = chat.get("id") if isinstance(chat, dict) else None
        if isinstance(chat_id, int) and not isinstance(chat_id, bool):
            return chat_id, user_id, chat.get("type") in ("group", "supergroup")
        if user_id is not None:
            return user_id, user_id, False
    return None
