"""Sending outbox messages through an aiogram `Bot`: aiogram's keyboard and error mapping.

The steps of sending (media first, text parts, cards edited in place, resuming after a 429) are
`telegram_send.StepwiseSender`'s, shared with the python-telegram-bot channel.
"""

from __future__ import annotations

from collections.abc import Awaitable
from functools import partial
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
from aiogram.types import (
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    InputMediaVideo,
)

from .base import MessageGone, PermanentError, RetryLater, TransientError
from .telegram_send import StepwiseSender
from .telegram_send import keyboard as ptb_keyboard

R = TypeVar("R")


keyboard = partial(ptb_keyboard, button=InlineKeyboardButton, markup=InlineKeyboardMarkup)


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
    """The aiogram transport's adapter: the same steps, aiogram's bot, errors and types."""

    def __init__(self, bot: Bot) -> None:
        super().__init__(bot, call=call, keyboard=keyboard, photo=InputMediaPhoto, video=InputMediaVideo,
                         upload=lambda data, name: BufferedInputFile(data, filename=name),
                         fetch=self._download_file)

    async def _download_file(self, f) -> bytes:
        return (await self.bot.download_file(f.file_path)).getvalue()
