"""Importing the tables offices keep: .xlsx workbooks and CSV in UTF-8 or GBK, with Chinese
headers; errors name file, sheet, row and column; nothing is written on any error."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import select

from workflows.import_tables import write_template
from workflows.importer import ImportFailed, import_file, import_yaml
from workflows.models import Assignment, Category, Node, Person

from .test_import import BASE, by_code, counts

GBK_CSV = "人员编码,姓名,手机号,所属网格,职务/角色,A/B岗\nW1,王一,13800000001,G1,网格员,W2\nW2,王二,13800000002,G1,网格长,W1\n"


def workbook(path: Path, sheets: dict[str, list[list]]) -> Path:
    wb = Workbook()
    wb.remove(wb.active)
    for title, rows in sheets.items():
        ws = wb.create_sheet(title)
        for row in rows:
            ws.append(row)
    wb.save(path)
    return path


async def test_gbk_csv_with_chinese_headers(session, tmp_path):
    await import_yaml(session, BASE)
    path = tmp_path / "人员.csv"
    path.write_bytes(GBK_CSV.encode("gbk"))  # what Excel writes on Chinese Windows
    report = await import_file(session, path)
    assert report.counts["people"]["created"] == 2
    w1, w2 = await by_code(session, Person, "W1"), await by_code(session, Person, "W2")
    assert w1.name == "王一" and w1.partner_id == w2.id and w2.phone == "13800000002"
    roles = (await session.execute(select(Assignment.role).where(Assignment.person_id.in_([w1.id, w2.id]))
                                   .order_by(Assignment.person_id))).scalars()
    assert list(roles) == ["worker", "leader"]  # 网格员, 网格长 in the office's words
    # the same table again, now saved as UTF-8 with a BOM: nothing changes
    path.write_bytes(GBK_CSV.encode("utf-8-sig"))
    again = await import_file(session, path)
    assert (again.created, again.updated) == (0, 0)


async def test_csv_neither_utf8_nor_gbk(session, tmp_path):
    path = tmp_path / "p.csv"
    path.write_bytes(b"code,name\nX1,\xff\xff\xff\n")
    with pytest.raises(ImportFailed, match=r"p.csv:1: the file is neither UTF-8 nor GBK text; in Excel save it as"):
        await import_file(session, path)


async def test_xlsx_sheets_per_kind_and_an_error_on_row_17(session, tmp_path):
    await import_yaml(session, BASE)
    people = [["人员编码", "姓名", "手机号", "所属网格", "职务"]]
    people += [[f"X{i}", f"人员{i}", 13800000000 + i, "G2", "网格员"] for i in range(2, 17)]  # rows 2..16
    people += [["X17", "人员17", "12", "G2", "网格员"]]  # row 17: not a phone number
    nodes = [["网格编码", "网格名称", "层级", "上级编码", "巡查时间"], ["G2", "第二网格", "网格", "ST", "09:00、15:00"]]
    path = workbook(tmp_path / "roster.xlsx", {"网格": nodes, "人员": people})
    before = await counts(session)
    with pytest.raises(ImportFailed) as e:
        await import_file(session, path)
    assert str(e.value) == (f"{path}, sheet '人员', row 17, column C '手机号': '12' is not a phone number "
                            "(digits, optionally + and -, 5 to 20 characters)")
    assert await counts(session) == before  # all or nothing
    people[-1][2] = "13800000017"
    workbook(path, {"网格": nodes, "人员": people})
    report = await import_file(session, path)
    assert report.counts["nodes"]["created"] == 1 and report.counts["people"]["created"] == 16
    g2 = await by_code(session, Node, "G2")
    assert g2.patrol_times == ["09:00", "15:00"] and g2.level == "grid"
    assert (await by_code(session, Person, "X2")).phone == "13800000002"  # a number cell, read as text


async def test_xlsx_reference_errors_name_the_sheet(session, tmp_path):
    await import_yaml(session, BASE)
    path = workbook(tmp_path / "r.xlsx", {
        "网格": [["编码", "名称", "层级", "上级"], ["G3", "第三网格", "网格", "NOPE"]],
        "人员": [["编码", "姓名", "所属网格", "A/B岗"], ["Y1", "某人", "G3", "ZZ"]],
    })
    with pytest.raises(ImportFailed) as e:
        await import_file(session, path)
    assert str(e.value).splitlines() == [
        f"{path}, sheet '网格', row 2, column D '上级': unknown node 'NOPE' (not in this file or the database)",
        f"{path}, sheet '人员', row 2, column D 'A/B岗': unknown person 'ZZ' (not in this file or the database)",
    ]


async def test_bad_workbooks(session, tmp_path):
    merged = tmp_path / "merged.xlsx"
    wb = Workbook()
    ws = wb.active
    ws.title = "人员"
    ws.append(["基本信息", None, "手机号"])
    ws.merge_cells("A1:B1")
    ws.append(["X1", "某人", "13800000001"])
    wb.save(merged)
    with pytest.raises(ImportFailed, match=r"sheet '人员', row 1: merged header cells A1:B1"):
        await import_file(session, merged)

    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04 not really a workbook")
    with pytest.raises(ImportFailed, match=r"broken.xlsx: not a readable .xlsx workbook"):
        await import_file(session, broken)

    big = tmp_path / "big.xlsx"
    with big.open("wb") as f:
        f.truncate(50 * 1024 * 1024)  # a 50 MB file (sparse: nothing is written to disk)
    with pytest.raises(ImportFailed, match=r"the file is 50.0 MB; at most 20 MB"):
        await import_file(session, big)

    unknown = workbook(tmp_path / "u.xlsx", {"人员": [["编码", "姓名", "邮箱"], ["X1", "某人", "a@b"]]})
    with pytest.raises(ImportFailed, match=r"sheet '人员', row 1, column C '邮箱': unknown column for people"):
        await import_file(session, unknown)


async def test_csv_cell_over_the_limit(session, tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("code,name\nX1,\"" + "长" * 200_000 + "\"\n", encoding="utf-8")
    with pytest.raises(ImportFailed, match=r"long.csv:\d+: field larger than field limit"):
        await import_file(session, path)


async def test_template_round_trip(session, tmp_path):
    await import_yaml(session, BASE)
    path = tmp_path / "all.xlsx"
    write_template(path)
    wb = load_workbook(path)
    assert wb.sheetnames == ["部门", "网格", "人员", "队伍", "类别", "关爱对象"]
    ws = wb["人员"]
    assert [c.value for c in ws[1]][:3] == ["人员编码", "姓名", "手机号"] and ws.freeze_panes == "A3"
    role_rule = next(dv for dv in ws.data_validations.dataValidation if "E3" in str(dv.sqref))
    assert "网格员" in role_rule.formula1 and "网格长" in role_rule.formula1
    ws.append(["T1", "填表人", "13900000000", "G1", "网格长"])
    cats = wb["类别"]
    cats.append(["c9", "噪音扰民", None, 48, None, "大家事", "紧急", 3])
    wb.save(path)
    report = await import_file(session, path)  # the hint row is skipped
    assert report.counts["people"]["created"] == 1 and report.counts["categories"]["created"] == 1
    cat = await by_code(session, Category, "c9")
    assert (cat.time_limit_hours, cat.split, cat.urgency) == (48, "shared", "urgent")
