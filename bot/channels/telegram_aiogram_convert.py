"""aiogram's `Update` → platform-neutral `Inbound`. Pure functions: no network, no database.

The rules are those of `telegram_convert` (the python-telegram-bot channel), rule for rule, on
aiogram's types; tests/test_telegram_aiogram.py feeds the same updates through both and
compares the results.
"""

from __future__ import annotations

from aiogram.types import Chat, ChatMemberUpdated, Message, Update, User

from handlers.events import Inbound, Media

from .telegram_convert import SERVICE_FIELDS
from .telegram_send import NAME

GROUP_TYPES = ("group", "supergroup")
GONE = {"left", "kicked"}
PRESENT = {"member", "administrator", "creator", "restricted"}
UNSUPPORTED_FIELDS = (
    "sticker", "animation", "poll", "dice", "game", "story", "invoice", "successful_payment",
    "passport_data", "giveaway", "paid_media", "checklist",
)


def _base(update: Update, chat: Chat | None, user: User | None, **kw) -> Inbound:
    is_group = chat is not None and chat.type in GROUP_TYPES
    chat_id = str(chat.id) if chat is not None else (str(user.id) if user else "")
    return Inbound(
        channel=NAME,
        chat_id=chat_id,
        user_id=str(user.id) if user else "",
        is_group=is_group,
        user_name=(user.full_name if user else "")[:200],
        language=user.language_code if user else None,
        event_id=str(update.update_id),
        chat_title=chat.title if is_group else None,
        **kw,
    )


def media_of(message: Message) -> list[Media]:
    out: list[Media] = []
    if message.photo:
        # Telegram sends every resolution of one photo; the last is the largest
        p = message.photo[-1]
        out.append(Media("photo", p.file_id, NAME, size=p.file_size, mime="image/jpeg"))
    if message.voice:
        out.append(Media("voice", message.voice.file_id, NAME, size=message.voice.file_size,
                         mime=message.voice.mime_type))
    if message.video:
        v = message.video
        out.append(Media("video", v.file_id, NAME, size=v.file_size, mime=v.mime_type, name=v.file_name))
    if message.video_note:
        out.append(Media("video", message.video_note.file_id, NAME, size=message.video_note.file_size))
    if message.audio:
        a = message.audio
        out.append(Media("file", a.file_id, NAME, size=a.file_size, mime=a.mime_type, name=a.file_name))
    if message.document and not message.animation:
        d = message.document
        out.append(Media("file", d.file_id, NAME, size=d.file_size, mime=d.mime_type, name=d.file_name))
    return out


def _message(update: Update, message: Message, kind: str) -> Inbound | None:
    if any(getattr(message, f, None) for f in SERVICE_FIELDS):
        return None
    user = message.from_user
    if kind == "message" and message.forward_origin is not None:
        kind = "forwarded"
    elif kind == "message" and any(getattr(message, f, None) for f in UNSUPPORTED_FIELDS):
        kind = "unsupported"
    inbound = _base(update, message.chat, user, kind=kind, text=message.text or message.caption)
    if kind != "message":
        return inbound
    inbound.media = media_of(message)
    location = message.location or (message.venue.location if message.venue else None)
    if location is not None:
        inbound.location = (location.latitude, location.longitude)
        if message.venue and not inbound.text:
            inbound.text = message.venue.address or message.venue.title
    if message.contact is not None:
        c = message.contact
        inbound.contact_phone = c.phone_number
        # user_id equal to the sender: "share my phone number", verified by Telegram itself
        inbound.contact_is_own = user is not None and c.user_id == user.id
    return inbound


def _membership(update: Update, change: ChatMemberUpdated) -> Inbound | None:
    new, old = change.new_chat_member.status, change.old_chat_member.status
    if new in GONE:
        kind = "bot_removed"
    elif new in PRESENT and old in GONE:
        kind = "bot_added"
    else:
        return None  # promoted, restricted…: nothing the office needs to know
    return _base(update, change.chat, change.from_user, kind=kind)


def to_inbound(update: Update) -> Inbound | None:
    """The event for the office, or None for updates it has no use for (channel posts, service)."""
    if update.callback_query is not None:
        q = update.callback_query
        chat = q.message.chat if q.message is not None else None
        return _base(update, chat, q.from_user, kind="button", button=q.data or "")
    if update.my_chat_member is not None:
        return _membership(update, update.my_chat_member)
    if update.edited_message is not None:
        return _message(update, update.edited_message, "edited")
    if update.message is not None:
        if update.message.chat.type == "channel":
            return None
        return _message(update, update.message, "message")
    return None
