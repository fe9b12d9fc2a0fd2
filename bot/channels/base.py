"""What the delivery worker needs from a channel, and the errors a send may end in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from handlers.office import Office


@dataclass(frozen=True)
class Window:
    """At most `count` messages per `seconds` within one scope."""

    scope: str  # chat | group | private | global
    count: int
    seconds: float


@dataclass
class OutgoingMessage:
    id: int
    channel: str
    chat_id: str
    is_group: bool
    payload: dict
    card_key: str | None = None
    edit_message_id: str | None = None  # set when this is a later version of a posted card
    # an adapter awaits pace(chat_id, is_group) before every platform call after the first, so each
    # call counts against the window it uses (the first one's slot Delivery has already taken)
    pace: Callable[[str, bool], Awaitable[None]] | None = None
    # an earlier attempt may have reached the platform (a timeout, a crash): ask for its duplicate check
    maybe_sent: bool = False

    async def paced(self, chat_id: str | None = None, is_group: bool | None = None) -> None:
        if self.pace is not None:
            await self.pace(self.chat_id if chat_id is None else chat_id,
                            self.is_group if is_group is None else is_group)

    @property
    def text(self) -> str:
        return self.payload.get("text", "")

    @property
    def buttons(self) -> list[list[dict]]:
        return self.payload.get("buttons", [])

    @property
    def media(self) -> list[dict]:
        return self.payload.get("media", [])


@dataclass
class Sent:
    message_id: str | None = None
    extra_ids: list[str] = field(default_factory=list)


class RetryLater(Exception):
    def __init__(self, seconds: float, detail: str = "") -> None:
        super().__init__(detail or f"retry after {seconds}s")
        self.seconds = seconds


class TransientError(Exception):
    """Network trouble or a server error: try again with backoff."""


class PermanentError(Exception):
    """Blocked, chat not found, bad request: record and move on."""


class MessageGone(Exception):
    """The message to edit no longer exists: post a new one instead."""


class Adapter(Protocol):
    name: str
    can_edit: bool
    windows: tuple[Window, ...]

    async def send(self, msg: OutgoingMessage) -> Sent: ...

    async def edit(self, msg: OutgoingMessage, message_id: str) -> None: ...


class ChannelRuntime(Protocol):
    """A running channel: receives updates for the office and delivers for the outbox."""

    name: str
    adapter: Adapter

    async def start(self, office: Office) -> None: ...

    async def stop(self) -> None: ...
