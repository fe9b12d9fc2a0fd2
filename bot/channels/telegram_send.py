"""Sending outbox messages through the Telegram Bot API, and mapping its errors for Delivery."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
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

from ..media import inline_blob
from ..voice import OGG
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

    def __init__(self, bot, *, call: Callable, keyboard: Callable, photo: type, video: type,
                 upload: Callable[[bytes, str], object] | None = None,
                 fetch: Callable[[object], Awaitable[bytes]] | None = None) -> None:
        self.bot = bot
        self.media = None  # bot.media.MediaLibrary, set by the runtime: uploads from the store
        self._upload = upload or (lambda data, name: InputFile(data, filename=name))
        self._fetch = fetch or (lambda f: f.download_as_bytearray())
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
        # each item goes by this bot's file_id when it has one, else uploaded from the media
        # store (another platform's photo, a chart); an item not in the store yet is left out
        items = [m for m in msg.media if m.get("kind") in SENDABLE and _has_source(m)]
        visual = [m for m in items if m["kind"] in ("photo", "video")]
        steps: list[Step] = []
        for start in range(0, len(visual), MAX_ALBUM):
            chunk = visual[start:start + MAX_ALBUM]

            async def album(chunk: list[dict] = chunk) -> list[str]:
                sources = [(m, s) for m in chunk if (s := await self._source(m)) is not None]
                if len(sources) == 1:  # an album needs two items; one goes on its own
                    m, src = sources[0]
                    method = "photo" if m["kind"] == "photo" else "video"
                    sent = await self._send_file(chat, method, src)
                    await self._remember(src, sent, method)
                    return [str(sent.message_id)]
                if not sources:
                    return []
                items = [self._photo(media=src.file) if m["kind"] == "photo" else self._video(media=src.file)
                         for m, src in sources]
                sent = await self._call(self.bot.send_media_group(chat_id=chat, media=items))
                for (m, src), one in zip(sources, sent, strict=False):
                    await self._remember(src, one, "photo" if m["kind"] == "photo" else "video")
                return [str(one.message_id) for one in sent]

            steps.append((f"album:{start}", album))
        for n, m in enumerate(items):
            if m["kind"] not in ("voice", "file"):
                continue

            async def single(m: dict = m) -> list[str]:
                src = await self._source(m)
                if src is None:
                    return []
                # Telegram plays OGG/Opus voice: another platform's (WeChat Work's AMR) is converted;
                # one that could not be goes as a file to open
                method = "voice" if m["kind"] == "voice" and src.playable_voice else "document"
                sent = await self._send_file(chat, method, src)
                await self._remember(src, sent, method)
                return [str(sent.message_id)]

            steps.append((f"{m['kind']}:{n}", single))
        return steps

    # ------------------------------------------------------------------ media sources

    @property
    def ref_scope(self) -> str:
        return str(self.bot.token).split(":", 1)[0]  # file_ids belong to one bot

    async def _source(self, m: dict) -> Source | None:
        lib = self.media
        if lib is not None and m.get("kind") == "voice" and m.get("channel") != NAME:
            src = await self._voice_source(m)
            if src is not None:
                return src
        if lib is not None:
            ref = await lib.ref_for(m, NAME, self.ref_scope, None)
            if ref:
                return Source(ref, None, playable_voice=m.get("channel") == NAME or _ogg(m.get("mime")))
            blob = await lib.blob_or_wait(m)
            if blob is None:
                return None
            return Source(self._upload(blob.data, blob.name), blob.sha256, playable_voice=_ogg(blob.mime))
        if m.get("channel") == NAME and m.get("ref"):  # no store configured: our own ids and inline data
            return Source(m["ref"], None, playable_voice=True)
        blob = inline_blob(m) if m.get("data") else None
        return Source(self._upload(blob.data, blob.name), None) if blob else None

    async def _voice_source(self, m: dict) -> Source | None:
        """Another platform's voice as OGG/Opus (converted once, its file_id remembered), or None."""
        ref = await self.media.voice_ref(m, OGG, NAME, self.ref_scope, None)
        if ref:
            return Source(ref, None, playable_voice=True)
        blob = await self.media.voice_as(m, OGG)
        if blob is None:
            return None
        return Source(self._upload(blob.data, blob.name), blob.sha256, playable_voice=True)

    async def _send_file(self, chat: int | str, method: str, src: Source):
        send = getattr(self.bot, f"send_{method}")
        return await self._call(send(chat_id=chat, **{method: src.file}))

    async def _remember(self, src: Source, sent, method: str) -> None:
        if src.sha256 and self.media is not None:
            file_id = sent_file_id(sent, method)
            if file_id:
                await self.media.remember(src.sha256, NAME, self.ref_scope, file_id, None)

    async def download(self, ref: str) -> tuple[bytes, str | None, str | None]:
        """For the media fetcher: getFile, then the file itself (bots may fetch up to 20 MB)."""
        f = await self._call(self.bot.get_file(ref))
        data = await self._call(self._fetch(f))
        name = (f.file_path or "").rsplit("/", 1)[-1] or None
        return bytes(data), None, name


SENDABLE = ("photo", "video", "voice", "file")


def _has_source(m: dict) -> bool:
    return bool(m.get("ref") or m.get("sha256") or m.get("item") or m.get("data"))


def _ogg(mime: str | None) -> bool:
    return bool(mime) and mime.lower() in ("audio/ogg", "audio/opus")


@dataclass
class Source:
    file: object  # a file_id, or an upload
    sha256: str | None  # set for an upload from the store: the file_id Telegram gives is remembered
    playable_voice: bool = False


def sent_file_id(message, method: str) -> str | None:
    if method == "photo":
        return message.photo[-1].file_id if message.photo else None
    obj = getattr(message, method, None)
    return obj.file_id if obj is not None else None


class TelegramAdapter(StepwiseSender):
    """The python-telegram-bot transport's adapter."""

    def __init__(self, bot: Bot) -> None:
        super().__init__(bot, call=call, keyboard=keyboard, photo=InputMediaPhoto, video=InputMediaVideo)
