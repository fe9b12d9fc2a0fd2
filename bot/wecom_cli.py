"""`gridbot wecom create-group NODE_CODE` and `gridbot wecom sync-groups`.

A WeChat Work app can only write to group chats it created itself (appchat), so the node's work
group is created here from the node's people (their WeChat Work userids, from the import file's
`accounts: {wecom: userid}`), with the leader as owner, and bound to the node.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from workflows import accounts
from workflows.clock import Clock, SystemClock
from workflows.context import Ctx
from workflows.errors import Invalid
from workflows.models import Account, Assignment, GroupBinding, Node
from workflows.tree import CARD_ACTORS, node_by_code

from .channels.wecom_api import WeComAPI, WeComError
from .settings import Settings

CH = "wecom"


async def node_userids(session: AsyncSession, node_id: int) -> tuple[list[str], list[str]]:
    """(everyone's userids, the owner candidates' userids) for the node, in a stable order."""
    rows = await session.execute(
        select(Account.external_id, Assignment.role)
        .join(Assignment, Assignment.person_id == Account.person_id)
        .where(Assignment.node_id == node_id, Account.channel == CH)
        .order_by(Assignment.id, Account.id)
    )
    members: list[str] = []
    owners: list[tuple[int, str]] = []
    for userid, role in rows:
        if userid not in members:
            members.append(userid)
        if role in CARD_ACTORS:
            owners.append((CARD_ACTORS.index(role), userid))
    return members, [u for _, u in sorted(owners, key=lambda x: x[0])]


async def create_group(session: AsyncSession, api: WeComAPI, node_code: str, clock: Clock | None = None) -> str:
    ctx = Ctx(session=session, clock=clock or SystemClock(), channels=frozenset({CH}))
    node = await node_by_code(ctx, node_code)
    members, owners = await node_userids(session, node.id)
    if len(members) < 2:
        raise Invalid("{node} 只有 {n} 人关联了企业微信账号，创建群聊至少需要 2 人。请在导入文件中为人员填写 accounts: {{wecom: userid}}。",
                      node=node.name, n=len(members))
    if not owners:
        raise Invalid("{node} 没有关联企业微信账号的网格长，无法指定群主。", node=node.name)
    chatid = f"grid{node.id}"
    try:
        result = await api.post("appchat/create", {"chatid": chatid, "name": f"{node.name}工作群"[:50],
                                                    "owner": owners[0], "userlist": members})
    except WeComError as e:
        raise Invalid("企业微信创建群聊失败：{error}", error=str(e)) from e
    chatid = result.get("chatid") or chatid
    await accounts.bind_group(ctx, node, CH, chatid, f"{node.name}工作群", None)
    return chatid


async def sync_groups(session: AsyncSession, api: WeComAPI) -> list[str]:
    """Brings every bound app group's members in line with the node's people; returns what was done."""
    done = []
    bindings = (await session.execute(
        select(GroupBinding).where(GroupBinding.channel == CH, GroupBinding.status == "active")
        .order_by(GroupBinding.id))).scalars().all()
    for b in bindings:
        node = await session.get(Node, b.node_id)
        want, _owners = await node_userids(session, b.node_id)
        try:
            info = await api.call("get", "appchat/get", params={"chatid": b.chat_id})
        except WeComError as e:
            done.append(f"{node.code} {b.chat_id}: 读取失败 {e}")
            continue
        have = list((info.get("chat_info") or {}).get("userlist") or [])
        add = [u for u in want if u not in have]
        remove = [u for u in have if u not in want]
        if not add and not remove:
            done.append(f"{node.code} {b.chat_id}: 无变化")
            continue
        body: dict = {"chatid": b.chat_id}
        if add:
            body["add_user_list"] = add
        if remove:
            body["del_user_list"] = remove
        try:
            await api.post("appchat/update", body)
        except WeComError as e:
            done.append(f"{node.code} {b.chat_id}: 更新失败 {e}")
            continue
        done.append(f"{node.code} {b.chat_id}: +{','.join(add) or '-'} −{','.join(remove) or '-'}")
    return done


def api_for(settings: Settings) -> WeComAPI:
    if not (settings.wecom_corp_id and settings.wecom_secret):
        print("WECOM_CORP_ID and WECOM_SECRET must be set.", file=sys.stderr)
        raise SystemExit(2)
    return WeComAPI(settings.wecom_corp_id, settings.wecom_secret, settings.wecom_agent_id,
                    settings.wecom_api_base_url)


def cmd_create_group(args: argparse.Namespace, settings: Settings) -> int:
    from .cli import with_session

    api = api_for(settings)

    async def go(session: AsyncSession) -> int:
        chatid = await create_group(session, api, args.node)
        print(f"created WeChat Work group {chatid} and bound it to {args.node}")
        return 0

    return asyncio.run(with_session(settings, go))


def cmd_sync_groups(args: argparse.Namespace, settings: Settings) -> int:
    from .cli import with_session

    api = api_for(settings)

    async def go(session: AsyncSession) -> int:
        for line in await sync_groups(session, api):
            print(line)
        return 0

    return asyncio.run(with_session(settings, go))


def add_commands(sub) -> None:
    wc = sub.add_parser("wecom", help="WeChat Work app groups")
    wsub = wc.add_subparsers(dest="wecom_command", required=True)
    cg = wsub.add_parser("create-group", help="create the node's app group chat from its people and bind it")
    cg.add_argument("node", metavar="NODE_CODE", help="the node whose group it creates, e.g. CY-01")
    cg.set_defaults(fn=cmd_create_group)
    wsub.add_parser("sync-groups", help="add and remove app group members to match the imported people") \
        .set_defaults(fn=cmd_sync_groups)
