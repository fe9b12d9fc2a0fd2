"""Sending outbox messages through the Telegram Bot API, and mapping its errors for Delivery."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    InputMediaVideo,
)
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.warnings import PTBDeprecationWarning

from .base import MessageGone, OutgoingMessage, PermanentError, RetryLater, Sent, TransientError, Window

log = logging.getLogger(__name__)

NAME = "telegram"
MAX_TEXT = 4096
MAX_ALBUM = 10
MAX_CALLBACK_BYTES = 64
MAX_REMEMBERED = 1000
# Telegram's published limits: ~1 message/s per chat, 20/min per group, 30/s overall
WINDOWS = (Window("chat", 1, 1.0), Window("group", 20, 60.0), Window("global", 30, 1.0))

R = TypeVar("R")


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Cut a long text into parts Telegram accepts, at line breaks where possible."""
    text = text or "-"  # Telegram refuses an empty message
    parts: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", limit // 2, limit)
        if cut <= 0:
            cut = limit
        parts.append(text[:cut])
        text = text[cut:].lstrip("\n")
    parts.append(text or "-")
    return parts


def fit_card(text: str, limit: int = MAX_TEXT) -> str:
    """A card is one message that is edited in place, so it cannot be split: keep its head
    (number, status, description) and its tail (latest progress) and drop the middle."""
    if len(text) <= limit:
        return text or "-"
    marker = "\n…\n"
    half = (limit - len(marker)) // 2
    return text[:half] + marker + text[-half:]


def keyboard(rows: list[list[dict]], button: type = InlineKeyboardButton,
             markup: type = InlineKeyboardMarkup) -> InlineKeyboardMarkup:
    """Payload buttons as an inline keyboard; aiogram passes its own two classes (same fields)."""
    out = []
    for row in rows:
        cells = []
        for b in row:
            if len(b["token"].encode()) > MAX_CALLBACK_BYTES:
                raise PermanentError(f"button token longer than {MAX_CALLBACK_BYTES} bytes")
            cells.append(button(text=b["label"], callback_data=b["token"]))
        if cells:
            out.append(cells)
    return markup(inline_keyboard=out)


def retry_seconds(error: RetryAfter) -> float:
    # PTB 22 gives retry_after as an int, or as a timedelta with PTB_TIMEDELTA set (and warns
    # that the timedelta will become the only form): accept both, without the warning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


async def call(request: Awaitable[R], *, editing: bool = False) -> R:
    """Await one Bot API request, translating errors into what Delivery understands."""
    try:
        return await request
    except RetryAfter as e:
        raise RetryLater(retry_seconds(e), str(e)) from e
    except ChatMigrated as e:
        # the group became a supergroup with a new id; the binding must be renewed with /bind
        raise PermanentError(f"group migrated to supergroup {e.new_chat_id}") from e
    except Forbidden as e:  # the person blocked the bot, or the bot was removed from the group
        raise PermanentError(f"forbidden: {e.message}") from e
    except BadRequest as e:  # BadRequest is a NetworkError in PTB, so it must come first
        text = e.message.lower()
        if editing and ("message to edit not found" in text or "message can't be edited" in text):
            raise MessageGone(e.message) from e
        raise PermanentError(f"bad request: {e.message}") from e
    except NetworkError as e:  # includes TimedOut and 5xx answers
        raise TransientError(str(e)) from e
    except TelegramError as e:  # InvalidToken, Conflict…: an operator's mistake, not the person's
        raise TransientError(f"{type(e).__name__}: {e}") from e


Step = tuple[str, Callable[[], Awaitable[list[str]]]]


def chat_ref(chat_id: str) -> int | str:
    try:
        return int(chat_id)
    except ValueError:
        return chat_id  # @username of a public chat


class StepwiseSender:
    """Delivery's view of Telegram, whichever library speaks to it.

    One outbox message is several Bot API calls (albums, voice and files, then the text parts
    with the buttons on the last); a retry after a 429 halfway resumes where it stopped instead
    of posting the photos again. A card is one message, shortened instead of split, and is
    edited in place. Each transport gives its bot, its error mapping and its keyboard and media
    classes; the Bot API's keyword names are the same in both libraries.
    """

    name = NAME
    can_edit = True
    windows = WINDOWS

    def __init__(self, bot, *, call: Callable, keyboard: Callable, photo: type, video: type) -> None:
        self.bot = bot
        self._call = call
        self._keyboard = keyboard
        self._photo, self._video = photo, video
        # outbox row id → the steps already done (key → message ids). In-process memory only:
        # after a crash a message may repeat, which beats losing it.
        self._progress: dict[int, dict[str, list[str]]] = {}

    async def send(self, msg: OutgoingMessage) -> Sent:
        done = self._progress.setdefault(msg.id, {})
        if len(self._progress) > MAX_REMEMBERED:
            self._progress.pop(next(iter(self._progress)))
        try:
            for n, (key, step) in enumerate(self._steps(msg)):
                if key not in done:
                    if n:  # each further call waits for a slot in the chat's window too
                        await msg.paced()
                    done[key] = await step()
        except PermanentError:
            self._progress.pop(msg.id, None)
            raise
        self._progress.pop(msg.id, None)
        ids = [i for ids in done.values() for i in ids]
        # the last text part carries the buttons: it is the message a card edits later
        return Sent(ids[-1], extra_ids=ids[:-1])

    async def edit(self, msg: OutgoingMessage, message_id: str) -> None:
        # an empty keyboard removes the buttons of a card whose case has moved on
        markup = self._keyboard(msg.buttons)
        try:
            await self._call(self.bot.edit_message_text(text=fit_card(msg.text), chat_id=chat_ref(msg.chat_id),
                                                        message_id=int(message_id), reply_markup=markup),
                             editing=True)
        except PermanentError as e:
            if "message is not modified" in str(e).lower():
                return  # the card already shows this: the edit has done its job
            raise

    def _steps(self, msg: OutgoingMessage) -> list[Step]:
        chat = chat_ref(msg.chat_id)
        steps = self._media_steps(msg, chat)
        markup = self._keyboard(msg.buttons) if msg.buttons else None
        parts = [fit_card(msg.text)] if msg.card_key else split_text(msg.text)
        for n, part in enumerate(parts):
            async def text(part: str = part, last: bool = n == len(parts) - 1) -> list[str]:
                sent = await self._call(self.bot.send_message(chat_id=chat, text=part,
                                                              reply_markup=markup if last else None))
                return [str(sent.message_id)]

            steps.append((f"text:{n}", text))
        return steps

    def _media_steps(self, msg: OutgoingMessage, chat: int | str) -> list[Step]:
        # media from other channels have file ids Telegram cannot use; the text mentions them
        mine = [m for m in msg.media if m.get("channel") == NAME and m.get("ref")]
        visual = [m for m in mine if m.get("kind") in ("photo", "video")]
        steps: list[Step] = []
        for start in range(0, len(visual), MAX_ALBUM):
            chunk = visual[start:start + MAX_ALBUM]

            async def album(chunk: list[dict] = chunk) -> list[str]:
                if len(chunk) == 1:  # an album needs two items; one goes on its own
                    m = chunk[0]
                    if m["kind"] == "photo":
                        sent = await self._call(self.bot.send_photo(chat_id=chat, photo=m["ref"]))
                    else:
                        sent = await self._call(self.bot.send_video(chat_id=chat, video=m["ref"]))
                    return [str(sent.message_id)]
                items = [self._photo(media=m["ref"]) if m["kind"] == "photo" else self._video(media=m["ref"])
                         for m in chunk]
                sent = await self._call(self.bot.send_media_group(chat_id=chat, media=items))
                return [str(one.message_id) for one in sent]

            steps.append((f"album:{start}", album))
        for n, m in enumerate(mine):
            if m.get("kind") not in ("voice", "file"):
                continue

            async def single(m: dict = m) -> list[str]:
                if m["kind"] == "voice":
                    sent = await self._call(self.bot.send_voice(chat_id=chat, voice=m["ref"]))
                else:
                    sent = await self._call(self.bot.send_document(chat_id=chat, document=m["ref"]))
                return [str(sent.message_id)]

            steps.append((f"{m['kind']}:{n}", single))
        return steps


class TelegramAdapter(StepwiseSender):
    """The python-telegram-bot transport's adapter."""

    def __init__(self, bot: Bot) -> None:
        super().__init__(bot, call=call, keyboard=keyboard, photo=InputMediaPhoto, video=InputMediaVideo)
