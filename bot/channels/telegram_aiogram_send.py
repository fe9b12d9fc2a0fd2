"""Sending outbox messages through an aiogram `Bot`, and mapping aiogram's errors for Delivery.

Behaves as `telegram_send.TelegramAdapter` (the python-telegram-bot channel): media first
(albums of photos and videos, then voice and files one by one), then the text split at 4,096
characters with the buttons on the last part; a card is one message, shortened instead of split,
and is edited in place. Text helpers and limits are imported from there, not copied.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiogram import Bot
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, InputMediaPhoto, InputMediaVideo

from .base import MessageGone, OutgoingMessage, PermanentError, RetryLater, TransientError
from .telegram_send import MAX_ALBUM, MAX_CALLBACK_BYTES, NAME, StepwiseSender, fit_card, split_text

R = TypeVar("R")


def keyboard(rows: list[list[dict]]) -> InlineKeyboardMarkup:
    out = []
    for row in rows:
        cells = []
        for b in row:
            if len(b["token"].encode()) > MAX_CALLBACK_BYTES:
                raise PermanentError(f"button token longer than {MAX_CALLBACK_BYTES} bytes")
            cells.append(InlineKeyboardButton(text=b["label"], callback_data=b["token"]))
        if cells:
            out.append(cells)
    return InlineKeyboardMarkup(inline_keyboard=out)


def _chat(chat_id: str) -> int | str:
    try:
        return int(chat_id)
    except ValueError:
        return chat_id  # @username of a public chat


async def call(request: Awaitable[R], *, editing: bool = False) -> R:
    """Await one Bot API request, translating aiogram's errors into what Delivery understands."""
    try:
        return await request
    except TelegramRetryAfter as e:
        raise RetryLater(float(e.retry_after), str(e)) from e
    except TelegramMigrateToChat as e:
        # the group became a supergroup with a new id; the binding must be renewed with /bind
        raise PermanentError(f"group migrated to supergroup {e.migrate_to_chat_id}") from e
    except TelegramForbiddenError as e:  # the person blocked the bot, or the bot left the group
        raise PermanentError(f"forbidden: {e.message}") from e
    except TelegramBadRequest as e:
        text = e.message.lower()
        if editing and ("message to edit not found" in text or "message can't be edited" in text):
            raise MessageGone(e.message) from e
        raise PermanentError(f"bad request: {e.message}") from e
    except TelegramEntityTooLarge as e:  # a NetworkError in aiogram, but retrying cannot help
        raise PermanentError(f"too large: {e.message}") from e
    except (TimeoutError, TelegramNetworkError, TelegramServerError, ClientDecodeError) as e:
        raise TransientError(str(e) or type(e).__name__) from e
    except TelegramAPIError as e:  # unauthorized, conflict, not found: an operator's mistake
        raise TransientError(f"{type(e).__name__}: {e}") from e


class AiogramAdapter(StepwiseSender):
    """Delivery's view of Telegram through aiogram: send a message (media first), edit a posted card."""

    def __init__(self, bot: Bot) -> None:
        super().__init__()
        self.bot = bot

    def _steps(self, msg: OutgoingMessage) -> list[tuple[str, Callable[[], Awaitable[list[str]]]]]:
        chat = _chat(msg.chat_id)
        steps = self._media_steps(msg, chat)
        markup = keyboard(msg.buttons) if msg.buttons else None
        parts = [fit_card(msg.text)] if msg.card_key else split_text(msg.text)
        for n, part in enumerate(parts):
            async def text(part: str = part, last: bool = n == len(parts) - 1) -> list[str]:
                sent = await call(self.bot.send_message(chat_id=chat, text=part,
                                                        reply_markup=markup if last else None))
                return [str(sent.message_id)]

            steps.append((f"text:{n}", text))
        return steps

    async def edit(self, msg: OutgoingMessage, message_id: str) -> None:
        # an empty keyboard removes the buttons of a card whose case has moved on
        markup = keyboard(msg.buttons)
        try:
            await call(self.bot.edit_message_text(text=fit_card(msg.text), chat_id=_chat(msg.chat_id),
                                                  message_id=int(message_id), reply_markup=markup),
                       editing=True)
        except PermanentError as e:
            if "message is not modified" in str(e).lower():
                return  # the card already shows this: the edit has done its job
            raise

    def _media_steps(self, msg: OutgoingMessage, chat) -> list[tuple[str, Callable[[], Awaitable[list[str]]]]]:
        # media from other channels have file ids Telegram cannot use; the text mentions them
        mine = [m for m in msg.media if m.get("channel") == NAME and m.get("ref")]
        visual = [m for m in mine if m.get("kind") in ("photo", "video")]
        steps: list[tuple[str, Callable[[], Awaitable[list[str]]]]] = []
        for start in range(0, len(visual), MAX_ALBUM):
            chunk = visual[start:start + MAX_ALBUM]

            async def album(chunk: list[dict] = chunk) -> list[str]:
                if len(chunk) == 1:  # an album needs two items; one goes on its own
                    m = chunk[0]
                    if m["kind"] == "photo":
                        sent = await call(self.bot.send_photo(chat_id=chat, photo=m["ref"]))
                    else:
                        sent = await call(self.bot.send_video(chat_id=chat, video=m["ref"]))
                    return [str(sent.message_id)]
                items = [InputMediaPhoto(media=m["ref"]) if m["kind"] == "photo" else InputMediaVideo(media=m["ref"])
                         for m in chunk]
                return [str(s.message_id) for s in await call(self.bot.send_media_group(chat_id=chat, media=items))]

            steps.append((f"album:{start}", album))
        for n, m in enumerate(mine):
            if m.get("kind") not in ("voice", "file"):
                continue

            async def single(m: dict = m) -> list[str]:
                if m["kind"] == "voice":
                    sent = await call(self.bot.send_voice(chat_id=chat, voice=m["ref"]))
                else:
                    sent = await call(self.bot.send_document(chat_id=chat, document=m["ref"]))
                return [str(sent.message_id)]

            steps.append((f"{m['kind']}:{n}", single))
        return steps
