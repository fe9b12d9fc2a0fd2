"""aiogram's `Update` → platform-neutral `Inbound`.

The rules live once, in `telegram_convert` (python-telegram-bot's types): aiogram's update is
dumped back to the Bot API's own JSON and read by PTB, so both transports treat every kind of
message the same way.
"""

from __future__ import annotations

from aiogram.types import Update
from telegram import Update as PtbUpdate

from handlers.events import Inbound

from .telegram_convert import to_inbound as ptb_to_inbound


def to_inbound(update: Update) -> Inbound | None:
    data = update.model_dump(mode="json", by_alias=True, exclude_none=True)
    return ptb_to_inbound(PtbUpdate.de_json(data, None))
