"""Telegram `Update` → platform-neutral `Inbound`. Pure functions: no network, no database."""

from __future__ import annotations

from telegram import Chat, ChatMember, Message, Update, User

from handlers.events import Inbound, Media

from .telegram_send import NAME

# service messages (members joining, titles, pins…) are Telegram's bookkeeping, not something a
# person said to us: they are dropped instead of being answered with "unsupported"
SERVICE_FIELDS = (
    "new_chat_members", "left_chat_member", "new_chat_title", "new_chat_photo", "delete_chat_photo",
    "group_chat_created", "supergroup_chat_created", "channel_chat_created", "migrate_to_chat_id",
    "migrate_from_chat_id", "pinned_message", "message_auto_delete_timer_changed", "video_chat_started",
    "video_chat_ended", "video_chat_scheduled", "video_chat_participants_invited", "forum_topic_created",
    "forum_topic_edited", "forum_topic_closed", "forum_topic_reopened", "write_access_allowed",
    "chat_shared", "users_shared", "boost_added", "chat_background_set",
)
GONE = {ChatMember.LEFT, ChatMember.BANNED}
PRESENT = {ChatMember.MEMBER, ChatMember.ADMINISTRATOR, ChatMember.OWNER, ChatMember.RESTRICTED}


def _base(update: Update, chat: Chat | None, user: User | None, **kw) -> Inbound:
    is_group = chat is not None and chat.type in (Chat.GROUP, Chat.SUPERGROUP)
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


def _unsupported(message: Message) -> bool:
    # an animation also carries `document` for old clients, so it is checked first
    return any(getattr(message, f, None) for f in (
        "sticker", "animation", "poll", "dice", "game", "story", "invoice", "successful_payment",
        "passport_data", "giveaway", "paid_media", "checklist",
    ))


def _message(update: Update, message: Message, kind: str) -> Inbound | None:
    if message.migrate_to_chat_id:
        # the group became a supergroup with a new id: its binding must follow
        return _base(update, message.chat, message.from_user, kind="group_moved",
                     text=str(message.migrate_to_chat_id))
    if message.new_chat_members and message.chat.type in (Chat.GROUP, Chat.SUPERGROUP):
        # people joining a work group: strangers among them are pointed out once
        people = [u for u in message.new_chat_members if not u.is_bot]
        if not people:
            return None
        return _base(update, message.chat, message.from_user, kind="member_joined",
                     joined=[(str(u.id), u.full_name[:200]) for u in people])
    if any(getattr(message, f, None) for f in SERVICE_FIELDS):
        return None
    user = message.from_user
    if kind == "message" and message.forward_origin is not None:
        kind = "forwarded"
    elif kind == "message" and _unsupported(message):
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
        if message.venue:
            inbound.address = (message.venue.address or message.venue.title or "").strip()[:300] or None
    if message.contact is not None:
        c = message.contact
        inbound.contact_phone = c.phone_number
        # Telegram fills user_id only when the contact is a Telegram user; equal to the sender
        # means they pressed "share my phone number", which Telegram itself verified
        inbound.contact_is_own = user is not None and c.user_id == user.id
    return inbound


def _membership(update: Update) -> Inbound | None:
    change = update.my_chat_member
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
        return _membership(update)
    if update.edited_message is not None:
        return _message(update, update.edited_message, "edited")
    if update.message is not None:
        if update.message.chat.type == Chat.CHANNEL:
            return None
        return _message(update, update.message, "message")
    return None
