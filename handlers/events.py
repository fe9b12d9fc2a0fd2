"""What a channel hands in and gets back. No chat library is imported here."""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_INBOUND_TEXT = 4000


@dataclass
class Media:
    kind: str  # photo | voice | video | file
    ref: str  # the platform's file id
    channel: str
    size: int | None = None
    mime: str | None = None
    name: str | None = None
    item: int | None = None  # the media_item row recording it (set when it arrives)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Inbound:
    channel: str
    chat_id: str
    user_id: str
    is_group: bool = False
    user_name: str = ""
    language: str | None = None
    event_id: str | None = None  # platform id; a repeat has no effect
    kind: str = "message"  # message | button | unsupported | forwarded | edited | bot_removed | bot_added | group_moved | member_joined
    text: str | None = None
    media: list[Media] = field(default_factory=list)
    location: tuple[float, float] | None = None  # latitude, longitude
    address: str | None = None  # the place's address as the platform gave it with the location
    contact_phone: str | None = None
    contact_is_own: bool = False  # the sender shared their own (platform-verified) number
    button: str | None = None  # opaque token from a pressed button
    chat_title: str | None = None
    joined: list[tuple[str, str]] = field(default_factory=list)  # member_joined: (user id, name) of each
    unionid: str | None = None  # WeChat's id of the person across an office's accounts (公众号, 微信客服)


@dataclass
class Reply:
    """What the channel must do at once (the rest is in the outbox)."""

    alert: str | None = None  # a short pop-up answer to a button press
    duplicate: bool = False
    handled: bool = True
    alert_in_chat: bool = False  # the alert's words were also written into the chat: no pop-up as well
    menu_changed: bool = False  # the sender's commands changed (a /link): refresh their chat's menu
