"""The `webhook` outbox channel: POSTs each case step to the webhook URL of the API key that
created the case (workflows/open311.py writes the rows).

It is an Adapter like a chat channel's, so the delivery worker gives it what it gives them: one
send per row and marked sent once, rows of one key in order (the chat id is the key), retries with
backoff on network trouble, 5xx and 429 — for `retry_for` (24 h by default, backoff capped at 10
minutes) rather than a chat channel's few minutes; then the row is failed (`gridbot outbox`,
`gridbot api-key list`) and the key's next change goes. The body is signed with HMAC-SHA256 under the key's
webhook secret: `X-Gridbot-Signature: sha256=<hex>`; `X-Gridbot-Delivery` is the outbox row id,
the same on a retry, so a receiver can drop a repeat after a crash between its answer and ours.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import aiohttp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from workflows.api_models import ApiKey
from workflows.open311 import WEBHOOK_CHANNEL

from .channels.base import OutgoingMessage, PermanentError, RetryLater, Sent, TransientError, Window

NAME = WEBHOOK_CHANNEL
TIMEOUT = aiohttp.ClientTimeout(total=15)
RETRY_HOURS = 24.0  # GRIDBOT_WEBHOOK_RETRY_HOURS
BACKOFF_CAP = 600.0  # GRIDBOT_WEBHOOK_BACKOFF_CAP_SECONDS


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSender:
    name = NAME
    can_edit = False
    windows = (Window("chat", 20, 1.0),)  # at most 20 a second to one receiver

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], *, retry_hours: float = RETRY_HOURS,
                 backoff_cap: float = BACKOFF_CAP) -> None:
        self.sessionmaker = sessionmaker
        # a receiver down for hours still gets every change, in order: Delivery retries a row this
        # long (backoff doubling up to backoff_cap seconds), and a key's later rows wait behind it
        self.retry_for = timedelta(hours=retry_hours)
        self.backoff_cap = backoff_cap
        self._http: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _secret(self, key_id: int) -> str:
        async with self.sessionmaker() as session:
            key = await session.get(ApiKey, key_id)
        if key is None or key.revoked_at is not None or not key.webhook_secret:
            raise PermanentError("API key revoked or without a webhook secret")
        return key.webhook_secret

    async def send(self, msg: OutgoingMessage) -> Sent:
        p = msg.payload
        body = p["body"].encode()
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "gridbot-webhook/1",
                   "X-Gridbot-Signature": sign(await self._secret(p["key_id"]), body),
                   "X-Gridbot-Delivery": str(msg.id), "X-Gridbot-Event": p.get("event", "")}
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=TIMEOUT)
        try:
            async with self._http.post(p["url"], data=body, headers=headers, allow_redirects=False) as r:
                status = r.status
                retry_after = r.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError) as e:
            raise TransientError(f"webhook {p['url']}: {e!r}") from e
        if 200 <= status < 300:
            return Sent(None)
        if status == 429:
            try:
                wait = float(retry_after or 30)
            except ValueError:
                wait = 30.0
            raise RetryLater(wait, "webhook answered 429")
        if status >= 500 or status == 408:
            raise TransientError(f"webhook answered {status}")
        raise PermanentError(f"webhook answered {status}")

    async def edit(self, msg: OutgoingMessage, message_id: str) -> None:  # never called: can_edit is False
        raise PermanentError("webhooks cannot be edited")
