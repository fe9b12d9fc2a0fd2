"""The resident's report: category → description → photos/voice → location or grid → phone → confirm."""

from __future__ import annotations

import re

from sqlalchemy import select

from workflows import cases, tree
from workflows.cards import local
from workflows.deadlines import promised_deadline
from workflows.errors import Invalid
from workflows.i18n import category_name
from workflows.models import Category, Node
from workflows.tree import GRID_LEVELS, children, locate

from .registry import action, command, flow
from .reply_windows import later_notices_note
from .turn import Turn

MAX_MEDIA = 9
MAX_MEDIA_BYTES = 50 * 1024 * 1024
PHONE_RE = re.compile(r"^\+?\d[\d\- ]{5,18}\d$")
NEAR_METRES = 300


async def _categories(turn: Turn) -> list[Category]:
    rows = await turn.session.execute(select(Category).order_by(Category.sort, Category.id))
    return list(rows.scalars())


def _cat_name(turn: Turn, c: Category) -> str:
    return category_name(turn.t, c)


async def _cancel_row(turn: Turn) -> list:
    return [await turn.button("取消", "flow.cancel")]


@command("report", "上报问题", private=True)
async def start_report(turn: Turn) -> None:
    await turn.start("report", "category")
    await ask_category(turn)


@action("menu.report")
async def report_button(turn: Turn, args: dict) -> None:
    if turn.inbound.is_group:
        return
    await start_report(turn)


async def ask_category(turn: Turn) -> None:
    cats = await _categories(turn)
    rows, row = [], []
    for c in cats:
        row.append(await turn.button(_cat_name(turn, c), "report.category", category_id=c.id))
        if len(row) == 3:
            rows.append(row)
            row = []
    if row:
        rows.append(row)
    rows.append(await _cancel_row(turn))
    await turn.say(turn.t("请选择问题类别（也可以直接输入类别名称）："), buttons=rows)


async def _in_report(turn: Turn) -> dict | None:
    conv = await turn.conversation()
    if conv is None or conv.flow != "report":
        turn.alert(turn.t("这次上报已经结束或已取消，请重新开始。"))
        return None
    return dict(conv.data)


@action("report.category")
async def chose_category(turn: Turn, args: dict) -> None:
    if await _in_report(turn) is None:
        return
    category = await turn.session.get(Category, args.get("category_id"))
    if category is None:
        raise Invalid("找不到该问题类别。")
    await _after_category(turn, category)


async def _after_category(turn: Turn, category: Category) -> None:
    await turn.step("description", category_id=category.id)
    await turn.say(turn.t("类别：{name}\n请用文字描述问题（发生了什么、在哪里）：", name=_cat_name(turn, category)),
                   buttons=[await _cancel_row(turn)])


def _media_error(turn: Turn) -> str | None:
    for m in turn.inbound.media:
        if m.size and m.size > MAX_MEDIA_BYTES:
            return turn.t("文件太大（{mb} MB），请发送 {limit} MB 以内的照片、语音或视频。",
                          mb=m.size // (1024 * 1024), limit=MAX_MEDIA_BYTES // (1024 * 1024))
    return None


def _add_media(turn: Turn, data: dict) -> list[dict]:
    media = list(data.get("media", []))
    media.extend(m.as_dict() for m in turn.inbound.media)
    return media[:MAX_MEDIA]


@flow("report")
async def report_flow(turn: Turn, data: dict) -> None:
    conv = await turn.conversation()
    step = conv.step
    i = turn.inbound
    if step == "category":
        wanted = turn.text
        match = [c for c in await _categories(turn) if wanted and wanted in (c.name, c.code, c.name_en)]
        if not match:
            await turn.say(turn.t("没有找到「{name}」这个类别，请从下面的列表中选择。", name=wanted[:20] or "…"))
            await ask_category(turn)
            return
        await _after_category(turn, match[0])
    elif step == "description":
        if err := _media_error(turn):
            await turn.say(err)
            return
        if i.media and not turn.text:
            await turn.step("description", media=_add_media(turn, data))
            await turn.say(turn.t("照片已收到。请再用文字描述一下问题："))
            return
        if not turn.text:
            await turn.say(turn.t("问题描述不能为空，请用文字描述问题："))
            return
        text = cases.clean_text(turn.text, "问题描述")
        await turn.step("media", description=text, media=_add_media(turn, data))
        await ask_media(turn)
    elif step == "media":
        if err := _media_error(turn):
            await turn.say(err)
            return
        if i.media:
            media = _add_media(turn, data)
            await turn.step("media", media=media)
            await turn.say(turn.t("已收到 {n} 个附件。可继续发送，或点击「下一步」。", n=len(media)),
                           buttons=[[await turn.button("下一步", "report.next")]])
            return
        if i.location:
            await _location(turn, data)
            return
        await turn.say(turn.t("请发送照片、语音或视频，或点击「下一步」。"),
                       buttons=[[await turn.button("下一步", "report.next")]])
    elif step == "location":
        if i.location:
            await _location(turn, data)
        elif turn.text:
            address = cases.clean_text(turn.text, "地址", limit=300)
            await turn.step("location", address=address)
            grids = await tree.grids_by_address(turn.ctx, address)
            if len(grids) == 1:
                await turn.say(turn.t("地址已记下：{a}。", a=address))
                await _chose_grid(turn, grids[0])
            elif grids:
                await turn.say(turn.t("地址已记下：{a}。请选择所在网格：", a=address),
                               buttons=[*([await turn.button(g.name, "report.node", node_id=g.id)] for g in grids),
                                        [await turn.button("其他网格", "report.node")], await _cancel_row(turn)])
            else:
                await turn.say(turn.t("地址已记下：{a}。请再选择所在网格：", a=address))
                await ask_node(turn, None)
        else:
            await ask_location(turn)
    elif step == "phone":
        phone = i.contact_phone or turn.text
        if not phone or not PHONE_RE.match(phone.strip()):
            await turn.say(turn.t("这不是有效的电话号码。请重新输入，或点击「跳过」。"),
                           buttons=[[await turn.button("跳过", "report.skip_phone")]])
            return
        phone = re.sub(r"[\s\-]", "", phone)
        if i.contact_is_own and turn.person is not None and not turn.person.phone:
            turn.person.phone = phone
        await turn.step("confirm", phone=phone)
        await ask_confirm(turn)
    elif step == "confirm":
        await turn.say(turn.t("请点击下面的按钮确认提交，或取消。"))
        await ask_confirm(turn)


async def ask_media(turn: Turn) -> None:
    await turn.say(turn.t("可以发送现场照片、语音或视频（最多 {n} 个），发送完点击「下一步」；没有可直接点击「下一步」。",
                          n=MAX_MEDIA),
                   buttons=[[await turn.button("下一步", "report.next")], await _cancel_row(turn)])


@action("report.next")
async def media_done(turn: Turn, args: dict) -> None:
    data = await _in_report(turn)
    if data is None:
        return
    conv = await turn.conversation()
    if conv.step != "media":
        return
    await turn.step("location")
    await ask_location(turn)


async def ask_location(turn: Turn) -> None:
    await turn.say(
        turn.t("请发送问题所在位置（点击附件里的「位置」），或输入地址，或直接选择所在网格："),
        buttons=[[await turn.button("选择网格", "report.node")], await _cancel_row(turn)],
    )


async def _location(turn: Turn, data: dict) -> None:
    lat, lon = turn.inbound.location
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        await turn.say(turn.t("位置无效，请重新发送。"))
        return
    grid = await locate(turn.ctx, lat, lon, near_metres=NEAR_METRES)
    # the address the platform gave with the point (WeChat Work Label, Telegram venue) is kept
    await turn.step("location", latitude=lat, longitude=lon,
                    **({"address": turn.inbound.address} if turn.inbound.address else {}))
    if grid is None:
        await turn.say(turn.t("这个位置不在本辖区任何网格内。请确认位置，或直接选择所在网格："))
        await ask_node(turn, None)
        return
    await _chose_grid(turn, grid)


async def ask_node(turn: Turn, parent_id: int | None) -> None:
    if parent_id is None:
        rows = await turn.session.execute(select(Node).where(Node.parent_id.is_(None)).order_by(Node.code))
        nodes = list(rows.scalars())
        # skip levels with a single choice, so residents start at the communities
        while len(nodes) == 1 and nodes[0].level not in GRID_LEVELS:
            nodes = await children(turn.ctx, nodes[0].id)
    else:
        nodes = await children(turn.ctx, parent_id)
    rows = [[await turn.button(n.name, "report.node", node_id=n.id)] for n in nodes[:30]]
    rows.append(await _cancel_row(turn))
    await turn.session.flush()
    await turn.say(turn.t("请选择所在区域或网格："), buttons=rows)


@action("report.node")
async def chose_node(turn: Turn, args: dict) -> None:
    if await _in_report(turn) is None:
        return
    conv = await turn.conversation()
    if conv.step not in ("location", "media"):
        return
    node_id = args.get("node_id")
    if node_id is None:
        await turn.step("location")
        await ask_node(turn, None)
        return
    node = await turn.session.get(Node, node_id)
    if node is None:
        raise Invalid("找不到该网格节点。")
    if node.level in GRID_LEVELS:
        await _chose_grid(turn, node)
    else:
        await ask_node(turn, node.id)


async def _chose_grid(turn: Turn, grid: Node) -> None:
    await turn.step("phone", grid_id=grid.id)
    if turn.person is not None and turn.person.phone:
        await turn.step("confirm", phone=turn.person.phone)
        await ask_confirm(turn)
        return
    await turn.say(turn.t("所在网格：{grid}。\n为方便回访，可以留下联系电话（可分享手机号或直接输入），也可以跳过：",
                          grid=grid.name),
                   buttons=[[await turn.button("跳过", "report.skip_phone")], await _cancel_row(turn)])


@action("report.skip_phone")
async def skip_phone(turn: Turn, args: dict) -> None:
    if await _in_report(turn) is None:
        return
    conv = await turn.conversation()
    if conv.step != "phone":
        return
    await turn.step("confirm", phone=None)
    await ask_confirm(turn)


async def ask_confirm(turn: Turn) -> None:
    data = dict((await turn.conversation()).data)
    category = await turn.session.get(Category, data["category_id"])
    grid = await turn.session.get(Node, data["grid_id"])
    t = turn.t
    lines = [t("请确认上报内容："), t("类别：{name}", name=_cat_name(turn, category)),
             t("描述：{text}", text=data["description"]), t("网格：{grid}", grid=grid.name)]
    if data.get("media"):
        lines.append(t("附件：{n} 个", n=len(data["media"])))
    if data.get("latitude") is not None:
        lines.append(t("位置：{lat:.5f}, {lon:.5f}", lat=data["latitude"], lon=data["longitude"]))
    if data.get("address"):
        lines.append(t("地址：{address}", address=data["address"]))
    if data.get("phone"):
        lines.append(t("联系电话：{phone}", phone=data["phone"]))
    lines.append(t("匿名提交时，网格群里不显示您的姓名和电话。"))
    await turn.say("\n".join(lines), buttons=[
        [await turn.button("提交", "report.submit", anonymous=False),
         await turn.button("匿名提交", "report.submit", anonymous=True)],
        [await turn.button("重新填写", "menu.report"), await turn.button("取消", "flow.cancel")],
    ])


@action("report.submit")
async def submit(turn: Turn, args: dict) -> None:
    data = await _in_report(turn)
    if data is None:
        return
    conv = await turn.conversation()
    if conv.step != "confirm":
        return
    case = await cases.report(
        turn.ctx,
        reporter_id=turn.person.id,
        category_id=data["category_id"],
        description=data["description"],
        grid_id=data["grid_id"],
        attachments=data.get("media", []),
        latitude=data.get("latitude"),
        longitude=data.get("longitude"),
        address=data.get("address"),
        anonymous=bool(args.get("anonymous")),
        contact_phone=data.get("phone"),
    )
    await turn.finish()
    expected = await promised_deadline(turn.ctx, case)
    await turn.say(turn.t("上报成功！事件编号：{number}\n网格长立案后开始办理，一般在 {at} 前办结。发送编号可随时查询进度。",
                          number=case.number, at=local(turn.ctx, expected, "%Y-%m-%d %H:%M"))
                   + later_notices_note(turn))
