"""The care register (结对关爱) as a table: .xlsx and GBK CSV in, the blank form
(`gridbot template care`), and the register back out to .xlsx — all or nothing, errors naming the
file, row and column."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from bot.excel_cli import cmd_template
from workflows.care_models import CareAccess, CareHousehold, CarePerson
from workflows.import_tables import export_care_xlsx, write_template
from workflows.importer import ImportFailed, import_file, import_yaml

from .test_import import BASE
from .test_import_tables import workbook

HEAD = ["户编码", "所属网格", "楼栋", "门牌", "纬度", "经度", "关爱对象编码", "姓名", "关爱类型", "走访频次",
        "责任网格员", "联系人", "联系人电话", "首次走访日期"]
FORM = [*HEAD[:6], "户备注", *HEAD[6:13], "备注", HEAD[13]]  # every column, as the template writes them
CSV = ",".join(HEAD) + "\n" + "\n".join([
    "H1,G1,3幢,2单元101,30.29,120.105,H1-1,王秀英,独居老人,,P2,王强（儿子）,13900000001,2026-11-23",
    "H1,G1,,,,,H1-2,李建国,空巢老人,每月,P2,,,",
    "H2,G1,5幢,1单元302,,,H2-1,周桂兰,低保,10,P2,李梅,13900000002,",
]) + "\n"


async def _register(session) -> dict[str, CarePerson]:
    return {p.code: p for p in (await session.execute(select(CarePerson))).scalars()}


async def _sizes(session) -> tuple[int, int]:
    return (await session.scalar(select(func.count()).select_from(CareHousehold)),
            await session.scalar(select(func.count()).select_from(CarePerson)))


async def test_gbk_csv(session, tmp_path):
    await import_yaml(session, BASE)
    path = tmp_path / "关爱.csv"
    path.write_bytes(CSV.encode("gbk"))
    report = await import_file(session, path)
    assert report.counts["care_households"]["created"] == 2 and report.counts["care_people"]["created"] == 3
    people = await _register(session)
    one, two, three = people["H1-1"], people["H1-2"], people["H2-1"]
    assert one.household_id == two.household_id != three.household_id  # rows grouped by 户编码
    assert (one.frequency_days, two.frequency_days, three.frequency_days) == (7, 30, 10)  # type default, 每月, days
    assert one.next_due == date(2026, 11, 23) and one.contact_name == "王强（儿子）"
    h1 = await session.get(CareHousehold, one.household_id)
    assert (h1.building, h1.door, h1.latitude, h1.longitude) == ("3幢", "2单元101", 30.29, 120.105)
    assert await session.scalar(select(func.count()).select_from(CareAccess).where(CareAccess.what == "import")) == 3
    # the same file again, as UTF-8 with a BOM: nothing changes
    path.write_bytes(CSV.encode("utf-8-sig"))
    again = await import_file(session, path)
    assert again.counts["care_people"] == {"created": 0, "updated": 0, "unchanged": 3}


async def test_csv_errors_name_row_and_column_and_write_nothing(session, tmp_path):
    await import_yaml(session, BASE)
    bad = CSV.replace("H1,G1,,,,,H1-2", "H1,G1,4幢,,,,H1-2").replace("低保,10,P2", "外星人,10,P1")
    path = tmp_path / "care.csv"
    path.write_bytes(bad.encode("gbk"))
    with pytest.raises(ImportFailed) as e:
        await import_file(session, path)
    assert str(e.value).splitlines() == [
        f"{path}:3: field '楼栋': household 'H1' has '3幢' on row 2: one value per household",
        f"{path}:4: field '关爱类型': unknown care type '外星人' (one of: 独居老人, 空巢老人, 重度残疾, 留守儿童, 低保, 困难家庭)",
        f"{path}:4: field '责任网格员': 'P1' is not a worker of grid 'G1'",
    ]
    assert await _sizes(session) == (0, 0)


async def test_xlsx_with_an_error_on_row_17(session, tmp_path):
    await import_yaml(session, BASE)
    rows = [HEAD] + [[f"H{i}", "G1", f"{i}幢", None, None, None, f"H{i}-1", f"对象{i}", "独居老人", None, "P2",
                      None, 13900000000 + i, None] for i in range(2, 17)]
    rows.append(["H17", "G1", "17幢", None, None, None, "H17-1", "对象17", "独居老人", None, "NOBODY",
                 None, None, None])
    path = workbook(tmp_path / "register.xlsx", {"关爱对象": rows})
    with pytest.raises(ImportFailed) as e:
        await import_file(session, path)
    assert str(e.value) == f"{path}, sheet '关爱对象', row 17, column K '责任网格员': unknown person 'NOBODY'"
    assert await _sizes(session) == (0, 0)
    rows[-1][10] = "P2"
    workbook(path, {"关爱对象": rows})
    assert (await import_file(session, path)).counts["care_people"]["created"] == 16
    assert (await _register(session))["H5-1"].contact_phone == "13900000005"  # a number cell, read as text


async def test_a_workbook_with_people_and_the_register(session, tmp_path):
    """A worker added in the people sheet can be named in the register sheet of the same file."""
    await import_yaml(session, BASE)
    path = workbook(tmp_path / "both.xlsx", {
        "人员": [["人员编码", "姓名", "手机号", "所属网格", "职务"], ["W9", "新网格员", "13800000009", "G1", "网格员"]],
        "关爱对象": [HEAD, ["H9", "G1", None, None, None, None, "H9-1", "赵奶奶", "空巢老人", None, "W9", None, None, None]],
    })
    report = await import_file(session, path)
    assert report.counts["people"]["created"] == 1 and report.counts["care_people"]["created"] == 1
    wrong = workbook(tmp_path / "wrong.xlsx", {
        "人员": [["人员编码", "姓名", "手机号", "所属网格", "职务"], ["W8", "另一人", "13800000008", "G1", "网格长"]],
        "关爱对象": [HEAD, ["H8", "G1", None, None, None, None, "H8-1", "钱爷爷", "空巢老人", None, "W8", None, None, None]],
    })
    with pytest.raises(ImportFailed) as e:
        await import_file(session, wrong)
    assert str(e.value) == f"{wrong}, sheet '关爱对象', row 2, column K '责任网格员': 'W8' is not a worker of grid 'G1'"


async def test_blank_form_and_export_round_trip(session, tmp_path, monkeypatch):
    await import_yaml(session, BASE)
    monkeypatch.chdir(tmp_path)
    assert cmd_template(argparse.Namespace(file="care", kind=None), None) == 0  # `gridbot template care`
    wb = load_workbook(tmp_path / "care.xlsx")
    assert wb.sheetnames == ["关爱对象"]
    ws = wb.active
    assert [c.value for c in ws[1]] == FORM and ws.freeze_panes == "A3"
    kinds = next(dv for dv in ws.data_validations.dataValidation if "J3" in str(dv.sqref))
    assert "独居老人" in kinds.formula1 and "留守儿童" in kinds.formula1
    ws.append(["H1", "G1", "3幢", "101", 30.29, 120.105, "电梯房", "H1-1", "王秀英", "独居老人", "每周", "P2", "王强",
               "13900000001", "腿脚不便", None])
    ws.append(["H1", "G1", None, None, None, None, None, "H1-2", "李建国", "空巢老人", None, "P2", None, None, None,
               None])
    wb.save(tmp_path / "care.xlsx")
    assert (await import_file(session, Path("care.xlsx"))).counts["care_people"]["created"] == 2  # hints skipped

    out = tmp_path / "register-out.xlsx"
    assert await export_care_xlsx(session, out) == 2
    rows = [list(r) for r in load_workbook(out).active.iter_rows(values_only=True)]
    assert rows[0] == FORM
    assert rows[1] == ["H1", "G1", "3幢", "101", 30.29, 120.105, "电梯房", "H1-1", "王秀英", "独居老人", 7, "P2",
                       "王强", "13900000001", "腿脚不便", None]
    assert rows[2][:3] == ["H1", "G1", "3幢"] and rows[2][7:10] == ["H1-2", "李建国", "空巢老人"]
    assert await session.scalar(select(func.count()).select_from(CareAccess).where(CareAccess.what == "export")) == 2
    again = await import_file(session, out)  # what comes out goes back in unchanged
    assert again.counts["care_people"] == {"created": 0, "updated": 0, "unchanged": 2}
    assert again.counts["care_households"] == {"created": 0, "updated": 0, "unchanged": 1}


def test_every_kind_template_has_the_register_sheet(tmp_path):
    write_template(tmp_path / "all.xlsx")
    assert load_workbook(tmp_path / "all.xlsx").sheetnames[-1] == "关爱对象"
