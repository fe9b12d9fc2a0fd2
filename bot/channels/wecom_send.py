"""Sending outbox rows to WeChat Work: text, template cards with buttons, numbered choices, app groups.

- Private chat (chat id = userid), no buttons: text, split within 2,048 UTF-8 bytes.
- Private chat with up to 6 buttons: a `button_interaction` template card whose button keys
  are our opaque tokens (a long text goes first as text, the card carries a short title).
- More than 6 buttons: numbered text ending "回复数字选择"; the tokens are kept in the
  channel_choice table so a reply "2" presses the second button, even after a restart.
- App group (appchat) messages: markdown. An app group cannot carry buttons, so a group card's
  buttons go to the node's leaders (leader, stand-in, centre staff) privately as a template card,
  and the group is told "请网格长在应用内操作".
- WeChat Work cannot edit a sent message (can_edit = False): Delivery sends later versions of a
  card as its short update text.
"""

from __future__ import annotations

import logging
import secrets
from contextvars import ContextVar
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from workflows.channel_models import ChannelChoice
from workflows.clock import Clock, SystemClock
from workflows.models import Account, Assignment, GroupBinding
from workflows.tree import CARD_ACTORS

from ..media import inline_blob
from ..voice import AMR
from .base import OutgoingMessage, PermanentError, Sent, Window
from .wecom_api import WeComAPI

log = logging.getLogger(__name__)

NAME = "wecom"
MAX_BYTES = 2048
CARD_BUTTONS = 6
TITLE_CHARS = 26  # template card main_title.title
SUB_CHARS = 112  # template card sub_title_text
GROUP_HINT = "请网格长在应用内操作（操作按钮已私信发送）。"
CHOOSE_HINT = "回复数字选择。"
# roles that get a group card's buttons privately: whoever may act on the node's cards
MEDIA_TYPES = {"photo": "image", "voice": "voice", "video": "video", "file": "file"}
# what media/upload takes as each type; anything else goes as a file (Telegram's OGG voice, say)
UPLOAD_MIMES = {"image": ("image/jpeg", "image/png", "image/jpg"), "voice": ("audio/amr",), "video": ("video/mp4",)}
MEDIA_LIFETIME = timedelta(days=3)  # received and uploaded media_ids alike


def upload_type(mtype: str, mime: str | None) -> str:
    if mtype == "file" or (mime and mime.lower() not in UPLOAD_MIMES[mtype]):
        return "file"
    if mtype == "voice" and not mime:
        return "file"  # unknown voice format: WeChat Work plays only AMR
    return mtype


class Calls:
    """Counts every platform call of one outbox row against the window it uses: the first call
    to the row's own chat has the slot Delivery reserved; photos, further parts, the card and the
    leaders' private copies each wait for a slot of their own (WeChat Work drops what is over)."""

    def __init__(self, msg: OutgoingMessage) -> None:
        self.msg = msg
        self.first = True

    async def before(self, chat_id: str, is_group: bool) -> None:
        if self.first and chat_id == self.msg.chat_id:
            self.first = False
            return
        await self.msg.paced(chat_id, is_group)


# the row being sent, per delivery task (each task has its own context)
_calls: ContextVar[Calls | None] = ContextVar("wecom_calls", default=None)


async def _before(chat_id: str, is_group: bool) -> None:
    calls = _calls.get()
    if calls is not None:
        await calls.before(chat_id, is_group)


def utf8_len(s: str) -> int:
    return len(s.encode("utf-8"))


def split_text(text: str, limit: int = MAX_BYTES) -> list[str]:
    """Parts of at most `limit` UTF-8 bytes, cut at line breaks where possible, never inside a character."""
    if utf8_len(text) <= limit:
        return [text]
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = f"{current}\n{line}" if current else line
        if utf8_len(candidate) <= limit:
            current = candidate
            continue
        if current:
            parts.append(current)
            current = ""
        while utf8_len(line) > limit:  # one line longer than a message: cut by characters
            n, size = 0, 0
            while n < len(line) and size + utf8_len(line[n]) <= limit:
                size += utf8_len(line[n])
                n += 1
            parts.append(line[:n])
            line = line[n:]
        current = line
    if current:
        parts.append(current)
    return parts


def _clip(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def card_fields(text: str) -> tuple[str, str, bool]:
    """(title, sub title, whether the whole text fits in the card)."""
    first, _, rest = text.strip().partition("\n")
    title = _clip(first, TITLE_CHARS)
    spill = first[TITLE_CHARS - 1:] if title != first else ""
    sub = "\n".join(x for x in (spill, rest.strip()) if x)
    return title or "请选择", _clip(sub, SUB_CHARS), len(sub) <= SUB_CHARS


def markdown_safe(text: str) -> str:
    # masked names (王**) and stray markers would turn into bold or lists in WeChat Work markdown
    return text.replace("*", "＊").replace("`", "'")


class WeComAdapter:
    name = NAME
    can_edit = False
    # 30/min and 1,000/hour per member; excess is dropped silently, so stay below
    windows = (
        Window("private", 28, 60.0),
        Window("private", 950, 3600.0),
        Window("group", 20, 60.0),
        Window("global", 30, 1.0),
    )

    ref_lifetime = MEDIA_LIFETIME

    def __init__(self, api: WeComAPI, sessionmaker: async_sessionmaker[AsyncSession] | None = None,
                 clock: Clock | None = None) -> None:
        self.api = api
        self.media = None  # bot.media.MediaLibrary, set by the runtime: uploads from the store
        self.ref_scope = f"{api.client.corp_id}:{api.agent_id}"  # media_ids belong to one corp's app
        self.sessionmaker = sessionmaker  # set by the runtime when it starts
        self.clock = clock or SystemClock()
        # parts of a message already out, so a retry after RetryLater does not repeat them
        self._done: dict[int, set[str]] = {}

    # ------------------------------------------------------------------ Adapter protocol

    async def send(self, msg: OutgoingMessage) -> Sent:
        done = self._done.setdefault(msg.id, set())
        token = _calls.set(Calls(msg))
        try:
            if msg.is_group:
                sent = await self._send_group(msg, done)
            else:
                sent = await self._send_private(msg.chat_id, msg.text, msg.buttons, msg.media, done,
                                                msg_id=msg.id, maybe_sent=msg.maybe_sent)
        except PermanentError:
            self._done.pop(msg.id, None)  # never retried: nothing to remember
            raise
        finally:
            _calls.reset(token)
        self._done.pop(msg.id, None)
        return sent

    async def edit(self, msg: OutgoingMessage, message_id: str) -> None:  # never called: can_edit is False
        raise PermanentError("WeChat Work messages cannot be edited")

    # ------------------------------------------------------------------ private chats

    async def _once(self, done: set[str], key: str, coro_fn) -> str | None:
        if key in done:
            return None
        result = await coro_fn()
        done.add(key)
        return result.get("msgid") if isinstance(result, dict) else None

    async def _media(self, send, media: list[dict], done: set[str]) -> list[str]:
        ids = []
        for n, m in enumerate(media):
            mtype = MEDIA_TYPES.get(m.get("kind", ""))
            if not mtype or f"media{n}" in done:
                continue
            try:
                mid = await self._one_media(send, m, mtype)
            except PermanentError as e:  # one unsendable file must not block the text
                log.info("wecom media %s not sent: %s", m.get("ref") or m.get("sha256"), e)
                mid = None
            done.add(f"media{n}")
            if mid:
                ids.append(mid)
        return ids

    async def _one_media(self, send, m: dict, mtype: str) -> str | None:
        """Our own media_id when one is still valid, else an upload from the store (cached 3 days)."""
        lib = self.media
        if lib is None:  # no store configured: WeChat Work's own ids and inline data only
            ref = m.get("ref") if m.get("channel") == NAME else None
            if ref:
                return (await send({"msgtype": mtype, mtype: {"media_id": ref}})).get("msgid")
            blob = inline_blob(m) if m.get("data") else None
            if blob is None:
                return None
            utype = upload_type(mtype, blob.mime)
            mid = await self.api.upload(utype, blob.data, blob.name, blob.mime)
            return (await send({"msgtype": utype, utype: {"media_id": mid}})).get("msgid")
        if mtype == "voice" and m.get("channel") != NAME:
            sent = await self._voice(send, m)
            if sent is not None:
                return sent.get("msgid")
        ref = await lib.ref_for(m, NAME, self.ref_scope, self.ref_lifetime)
        if ref:
            try:
                return (await send({"msgtype": mtype, mtype: {"media_id": ref}})).get("msgid")
            except PermanentError as e:  # expired or unknown after all: upload from the store
                log.info("wecom media_id %s refused (%s); uploading from the store", ref, e)
        blob = await lib.blob_or_wait(m)
        if blob is None:
            return None  # missing, or not fetched within FETCH_WAIT: the card's count still tells of it
        utype = upload_type(mtype, blob.mime)
        mid = await self.api.upload(utype, blob.data, blob.name, blob.mime)
        await lib.remember(blob.sha256, NAME, self.ref_scope, mid, self.ref_lifetime)
        return (await send({"msgtype": utype, utype: {"media_id": mid}})).get("msgid")

    async def _voice(self, send, m: dict) -> dict | None:
        """Another platform's voice (Telegram's OGG/Opus) as AMR, the only voice WeChat Work plays:
        converted once, uploaded as voice, its media_id kept 3 days. The platform's answer, or
        None when it was not sent so (it then goes as a file)."""
        lib = self.media
        ref = await lib.voice_ref(m, AMR, NAME, self.ref_scope, self.ref_lifetime)
        if ref:
            try:
                return await send({"msgtype": "voice", "voice": {"media_id": ref}}) or {}
            except PermanentError as e:
                log.info("wecom voice media_id %s refused (%s); uploading again", ref, e)
        blob = await lib.voice_as(m, AMR)
        if blob is None:
            return None
        mid = await self.api.upload("voice", blob.data, blob.name, blob.mime)
        await lib.remember(blob.sha256, NAME, self.ref_scope, mid, self.ref_lifetime)
        return await send({"msgtype": "voice", "voice": {"media_id": mid}}) or {}

    async def download(self, ref: str) -> tuple[bytes, str | None, str | None]:
        """For the media fetcher: an attachment that arrived here, by its media_id."""
        return await self.api.download(ref)

    async def _send_private(self, userid: str, text: str, buttons: list[list[dict]], media: list[dict],
                            done: set[str], *, msg_id: int, text_first: bool = True,
                            maybe_sent: bool = False) -> Sent:
        async def send(body: dict):
            await _before(userid, False)
            return await self.api.send_to_user(userid, body, dedupe=maybe_sent)

        extra = await self._media(send, media, done)
        flat = [b for row in buttons for b in row]
        last: str | None = None
        if len(flat) > CARD_BUTTONS:
            lines = [text, "", *[f"{n}. {b['label']}" for n, b in enumerate(flat, 1)], CHOOSE_HINT]
            await self._remember_choices(userid, [b["token"] for b in flat])
            for n, part in enumerate(split_text("\n".join(lines))):
                last = await self._once(done, f"text{n}", lambda part=part: send(
                    {"msgtype": "text", "text": {"content": part}})) or last
            return Sent(last, extra)
        if flat:
            await self._remember_choices(userid, None)
            title, sub, fits = card_fields(text)
            if not fits and text_first:
                for n, part in enumerate(split_text(text)):
                    mid = await self._once(done, f"text{n}", lambda part=part: send(
                        {"msgtype": "text", "text": {"content": part}}))
                    if mid:
                        extra.append(mid)
                sub = ""
            card = {"card_type": "button_interaction",
                    "main_title": {"title": title},
                    "task_id": f"gb{msg_id}_{secrets.token_hex(6)}",
                    "button_list": [{"text": _clip(b["label"], 20), "style": 1, "key": b["token"]} for b in flat]}
            if sub:
                card["sub_title_text"] = sub
            last = await self._once(done, "card", lambda: send({"msgtype": "template_card", "template_card": card}))
            return Sent(last, extra)
        for n, part in enumerate(split_text(text)):
            last = await self._once(done, f"text{n}", lambda part=part: send(
                {"msgtype": "text", "text": {"content": part}})) or last
        return Sent(last, extra)

    async def _remember_choices(self, chat_id: str, tokens: list[str] | None) -> None:
        if self.sessionmaker is None:
            return
        async with self.sessionmaker() as session:
            row = await session.get(ChannelChoice, (NAME, chat_id))
            if row is None and not tokens:
                return  # nothing to forget: no write (SQLite has one writer at a time)
        async with self.sessionmaker() as session, session.begin():
            await session.execute(delete(ChannelChoice).where(ChannelChoice.channel == NAME,
                                                              ChannelChoice.chat_id == chat_id))
            if tokens:
                session.add(ChannelChoice(channel=NAME, chat_id=chat_id, tokens=tokens, created_at=self.clock.now()))

    # ------------------------------------------------------------------ app groups

    async def _send_group(self, msg: OutgoingMessage, done: set[str]) -> Sent:
        async def send(body: dict):
            await _before(msg.chat_id, True)
            return await self.api.send_to_chat(msg.chat_id, body)

        await self._media(send, msg.media, done)
        text = msg.text
        if msg.buttons:
            text = f"{text}\n> {GROUP_HINT}"
        for n, part in enumerate(split_text(markdown_safe(text))):
            await self._once(done, f"md{n}", lambda part=part: send(
                {"msgtype": "markdown", "markdown": {"content": part}}))
        if msg.buttons:
            await self._buttons_to_actors(msg, done)
        # appchat/send returns no message id; a stand-in marks the card as posted, so later
        # versions go out as their short update text instead of the whole card again
        return Sent(f"appchat:{msg.id}")

    async def _buttons_to_actors(self, msg: OutgoingMessage, done: set[str]) -> None:
        for userid in await self.actors_of(msg.chat_id):
            key = f"actor:{userid}"
            if key in done:
                continue
            try:
                await self._send_private(userid, msg.text, msg.buttons, [], set(), msg_id=msg.id, text_first=False)
            except Exception as e:  # the group has the card; one leader's failure must not repost it
                log.warning("group card buttons to %s failed: %s", userid, e)
            done.add(key)

    async def actors_of(self, chat_id: str) -> list[str]:
        """WeChat Work userids of the people who act on the cards of the node bound to this app group."""
        if self.sessionmaker is None:
            return []
        async with self.sessionmaker() as session:
            rows = await session.execute(
                select(Account.chat_id, Account.external_id)
                .join(Assignment, Assignment.person_id == Account.person_id)
                .join(GroupBinding, GroupBinding.node_id == Assignment.node_id)
                .where(GroupBinding.channel == NAME, GroupBinding.chat_id == chat_id,
                       GroupBinding.status == "active", Assignment.role.in_(list(CARD_ACTORS)),
                       Account.channel == NAME, Account.undeliverable.is_(None))
                .order_by(Account.id)
            )
            out: list[str] = []
            for chat, external in rows:
                userid = chat or external
                if userid not in out:
                    out.append(userid)
            return out
