"""API keys of the systems that post cases (the 12345 hotline platform and others).

A key is shown once when created; only its SHA-256 is stored, so a copy of the database does not
let anyone call the API. A key sees only the cases it created unless it was granted read-all.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import case, func, select

from .api_models import ApiKey
from .context import Ctx
from .errors import Invalid, NotAllowed, NotFound

KEY_PREFIX = "gbk_"
SOURCE_RE = re.compile(r"^[a-z][a-z0-9_]{1,19}$")
# the chat's own sources: an API key may not pretend to be a resident or a patrol
RESERVED_SOURCES = {"resident", "patrol"}


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass
class NewKey:
    key: ApiKey
    secret: str  # the API key itself, shown once
    webhook_secret: str | None


def _check_webhook(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid("回调地址必须是 http:// 或 https:// 开头的完整网址。")
    return url


async def create_key(ctx: Ctx, name: str, *, source: str = "hotline", webhook_url: str | None = None,
                     read_all: bool = False, rate_per_minute: int = 60) -> NewKey:
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise Invalid("密钥名称不能为空，且不超过 100 个字符。")
    if not SOURCE_RE.match(source) or source in RESERVED_SOURCES:
        raise Invalid("来源名称只能用小写字母、数字和下划线（2–20 个字符），且不能是 resident 或 patrol。")
    if rate_per_minute < 1:
        raise Invalid("每分钟请求上限至少为 1。")
    webhook_url = _check_webhook(webhook_url)
    if (await ctx.session.execute(select(ApiKey.id).where(ApiKey.name == name))).first():
        raise Invalid("已有名为 {name} 的密钥。", name=name)
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    hook_secret = secrets.token_urlsafe(32) if webhook_url else None
    key = ApiKey(name=name, source=source, key_hash=hash_key(secret), key_prefix=secret[:12],
                 read_all=read_all, rate_per_minute=rate_per_minute, webhook_url=webhook_url,
                 webhook_secret=hook_secret, created_at=ctx.now())
    ctx.session.add(key)
    await ctx.session.flush()
    return NewKey(key, secret, hook_secret)


async def key_by_name(ctx: Ctx, name: str) -> ApiKey:
    key = (await ctx.session.execute(select(ApiKey).where(ApiKey.name == name))).scalar_one_or_none()
    if key is None:
        raise NotFound("找不到名为 {name} 的密钥。", name=name)
    return key


async def revoke_key(ctx: Ctx, name: str) -> ApiKey:
    key = await key_by_name(ctx, name)
    if key.revoked_at is None:
        key.revoked_at = ctx.now()
    return key


async def list_keys(ctx: Ctx) -> list[ApiKey]:
    return list((await ctx.session.execute(select(ApiKey).order_by(ApiKey.id))).scalars())


@dataclass
class WebhookQueue:
    """A key's webhook deliveries: waiting (retrying included), the oldest waiting, failed."""

    waiting: int = 0
    oldest: datetime | None = None
    retrying: int = 0  # waiting rows that failed at least once
    failed: int = 0
    last_error: str | None = None


async def webhook_queues(ctx: Ctx) -> dict[int, WebhookQueue]:
    """Per key id, its webhook rows in the outbox (their chat id is "key:<id>")."""
    from .models import Outbox
    from .open311 import WEBHOOK_CHANNEL

    out: dict[int, WebhookQueue] = {}
    rows = await ctx.session.execute(
        select(Outbox.chat_id, Outbox.status, func.count(), func.min(Outbox.created_at),
               func.sum(case((Outbox.attempts > 0, 1), else_=0)))
        .where(Outbox.channel == WEBHOOK_CHANNEL, Outbox.status.in_(("pending", "sending", "failed")))
        .group_by(Outbox.chat_id, Outbox.status))
    for chat, status, n, oldest, tried in rows:
        q = out.setdefault(int(chat.removeprefix("key:")), WebhookQueue())
        if status == "failed":
            q.failed += n
        else:
            q.waiting += n
            q.retrying += int(tried or 0)
            q.oldest = oldest if q.oldest is None else min(q.oldest, oldest)
    for key_id, q in out.items():
        if q.failed:
            q.last_error = (await ctx.session.execute(
                select(Outbox.error).where(Outbox.channel == WEBHOOK_CHANNEL, Outbox.chat_id == f"key:{key_id}",
                                           Outbox.status == "failed").order_by(Outbox.id.desc()).limit(1)
            )).scalar_one_or_none()
    return out


async def authenticate(ctx: Ctx, secret: str | None) -> ApiKey:
    """The live key with this secret; a missing, unknown or revoked key is refused alike."""
    if not secret:
        raise NotAllowed("缺少 api_key。")
    key = (await ctx.session.execute(
        select(ApiKey).where(ApiKey.key_hash == hash_key(secret.strip())))).scalar_one_or_none()
    if key is None or key.revoked_at is not None:
        raise NotAllowed("api_key 无效或已被吊销。")
    return key
