"""`gridbot api-key create|revoke|list`: the keys of the systems that use the Open311 API."""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from workflows import api_keys

from .settings import Settings


def webhook_state(q: api_keys.WebhookQueue | None, now: datetime) -> str:
    """The key's webhook queue in a few words: waiting (retrying, oldest), failed and why."""
    if q is None:
        return ""
    parts = []
    if q.waiting:
        from .outbox_cli import age

        parts.append(f"{q.waiting} waiting ({q.retrying} retrying, oldest {age(now - q.oldest)})")
    if q.failed:
        parts.append(f"{q.failed} failed, last: {(q.last_error or '')[:120]}")
    return ("\twebhook: " + "; ".join(parts)) if parts else ""


def cmd_api_key(args: argparse.Namespace, settings: Settings) -> int:
    from .cli import ctx_for, with_session

    async def go(session: AsyncSession) -> int:
        ctx = ctx_for(session, settings)
        if args.action == "create":
            new = await api_keys.create_key(ctx, args.name, source=args.source, webhook_url=args.webhook,
                                            read_all=args.read_all, rate_per_minute=args.rate)
            print(f"API key for {new.key.name} (source {new.key.source}); shown only now, keep it safe:")
            print(new.secret)
            if new.webhook_secret:
                print(f"webhook secret (HMAC-SHA256 of each body, header X-Gridbot-Signature):\n{new.webhook_secret}")
            return 0
        if args.action == "revoke":
            key = await api_keys.revoke_key(ctx, args.name)
            print(f"revoked {key.name} ({key.key_prefix}…)")
            return 0
        queues = await api_keys.webhook_queues(ctx)
        now = ctx.now()
        for key in await api_keys.list_keys(ctx):
            state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
            flags = ", read-all" if key.read_all else ""
            print(f"{key.name}\t{key.key_prefix}…\t{key.source}\t{state}\t{key.rate_per_minute}/min{flags}"
                  f"\t{key.webhook_url or '-'}{webhook_state(queues.get(key.id), now)}")
        return 0

    return asyncio.run(with_session(settings, go))


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("api-key", help="create, revoke or list keys of the Open311 API (docs/open311.md)")
    actions = p.add_subparsers(dest="action", required=True)
    c = actions.add_parser("create", help="create a key and print it once")
    c.add_argument("name", metavar="NAME", help="a name for the key, e.g. the hotline platform (12345)")
    c.add_argument("--source", default="hotline", help="the cases' source (default hotline)")
    c.add_argument("--webhook", metavar="URL", help="POST every step of this key's cases to URL")
    c.add_argument("--read-all", action="store_true", help="may read every case, not only its own")
    c.add_argument("--rate", type=int, default=60, metavar="N", help="requests a minute (default 60)")
    r = actions.add_parser("revoke", help="revoke a key (it stops working at once)")
    r.add_argument("name", metavar="NAME", help="the key to revoke, by its name")
    actions.add_parser("list", help="the keys, without their secrets")
    p.set_defaults(fn=cmd_api_key)
