"""Import and export of reference data: the demo, idempotence, updates, every error with FILE:LINE."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from shapely.geometry import Point, shape
from sqlalchemy import func, select

from workflows.importer import (
    ImportFailed,
    export_data,
    import_file,
    import_yaml,
    load_demo,
)
from workflows.models import (
    Account,
    Assignment,
    Category,
    Department,
    Node,
    Person,
    Team,
    TeamGrid,
    TeamMember,
)

TABLES = (Department, Node, Person, Account, Assignment, Team, TeamMember, TeamGrid, Category)

BASE = """\
departments:
  - {code: D1, name: 城市管理局}
nodes:
  - {code: ST, name: 西湖街道, level: street, case_prefix: XH}
  - code: G1
    name: 第一网格
    level: grid
    parent: ST
    patrol_times: [09:00, 15:00]
people:
  - code: P1
    name: 张三
    phone: "138-0000-0001"
    roles:
      - {node: G1, role: leader}
  - code: P2
    name: 李四
    roles:
      - {node: G1, role: worker}
teams:
  - {code: T1, name: 城管中队, department: D1, lead: P1, members: [P1], grids: [G1]}
categories:
  - {code: c1, name: 市政设施, time_limit_hours: 72, default_team: T1}
"""


def write(tmp_path: Path, text: str, name: str = "data.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


async def counts(session) -> dict[str, int]:
    return {m.__tablename__: (await session.execute(select(func.count()).select_from(m))).scalar_one()
            for m in TABLES}


async def by_code(session, model, code):
    return (await session.execute(select(model).where(model.code == code))).scalar_one()


async def test_demo_loads(session):
    report = await load_demo(session)
    assert report.counts["nodes"]["created"] == 11 and report.counts["categories"]["created"] == 14
    assert report.updated == 0 and report.unchanged == 0
    xh = await by_code(session, Node, "XH")
    assert xh.case_prefix == "XH" and xh.level == "street"
    grids = list((await session.execute(select(Node).where(Node.level == "grid"))).scalars())
    assert len(grids) == 6
    shapes = [shape(g.boundary) for g in grids]
    assert all(a.intersection(b).area == 0 for i, a in enumerate(shapes) for b in shapes[i + 1:])
    assert sum(s.contains(Point(120.115, 30.285)) for s in shapes) == 1
    assert all(g.patrol_times == ["09:00", "15:00"] and "灭火器" in g.checklist and "网格长" in g.notice
               for g in grids)
    w1, w2 = await by_code(session, Person, "CY01-W1"), await by_code(session, Person, "CY02-W2")
    assert w1.partner_id == w2.id and w2.partner_id == w1.id
    fire = (await session.execute(select(Category).where(Category.name == "消防安全隐患"))).scalar_one()
    assert (fire.time_limit_hours, fire.urgency) == (24, "urgent")
    team = await by_code(session, Team, "T-CG")
    members = (await session.execute(select(func.count()).where(TeamMember.team_id == team.id))).scalar_one()
    served = (await session.execute(select(func.count()).where(TeamGrid.team_id == team.id))).scalar_one()
    assert (team.name, members, served) == ("城管中队", 2, 6)


async def test_import_twice_changes_nothing(session):
    first = await load_demo(session)
    await session.commit()
    before = await counts(session)
    second = await load_demo(session)
    assert (second.created, second.updated) == (0, 0)
    assert second.unchanged == first.created
    assert await counts(session) == before


async def test_reimport_updates_by_code(session, tmp_path):
    await import_file(session, write(tmp_path, BASE))
    changed = (BASE.replace("name: 李四", "name: 李四四")
               .replace("{node: G1, role: worker}", "{node: ST, role: centre_staff}")
               .replace("members: [P1]", "members: [P1, P2]")
               .replace("time_limit_hours: 72", "time_limit_hours: 48"))
    report = await import_file(session, write(tmp_path, changed))
    assert report.counts["people"] == {"created": 0, "updated": 1, "unchanged": 1}
    assert report.counts["teams"]["updated"] == 1 and report.counts["categories"]["updated"] == 1
    assert report.counts["nodes"] == {"created": 0, "updated": 0, "unchanged": 2}
    p2 = await by_code(session, Person, "P2")
    roles = (await session.execute(select(Assignment.role).where(Assignment.person_id == p2.id))).scalars()
    assert p2.name == "李四四" and list(roles) == ["centre_staff"]
    assert (await by_code(session, Category, "c1")).time_limit_hours == 48
    # a person listed without `roles` keeps them; null clears a column
    report = await import_yaml(session, "people:\n  - {code: P2, name: 李四四, phone: null}\n")
    assert report.counts["people"] == {"created": 0, "updated": 0, "unchanged": 1}
    roles = (await session.execute(select(Assignment.role).where(Assignment.person_id == p2.id))).scalars()
    assert list(roles) == ["centre_staff"]


async def test_parents_may_come_after_children(session, tmp_path):
    await import_file(session, write(tmp_path, """\
        nodes:
          - {code: G1, name: 网格, level: grid, parent: C1}
          - {code: C1, name: 社区, level: community, parent: S1}
          - {code: S1, name: 街道, level: street}
        """))
    g1, c1 = await by_code(session, Node, "G1"), await by_code(session, Node, "C1")
    assert g1.parent_id == c1.id


ERRORS = [
    # (snippet replaced into BASE, replacement, line, field, words in the message)
    ("level: grid\n", "level: grid\n    colour: red\n", 8, "colour", "unknown key"),
    ("  - {code: ST, name: 西湖街道, level: street, case_prefix: XH}",
     "  - {code: ST, name: 西湖街道, case_prefix: XH}", 4, "level", "required"),
    ("level: street", "level: town", 4, "level", "'town' is not one of"),
    ("parent: ST", "parent: NOPE", 8, "parent", "unknown node 'NOPE'"),
    ("code: P2", "code: P1", 16, "code", "duplicate code 'P1'"),
    ('phone: "138-0000-0001"', "phone: call-me", 13, "phone", "not a phone number"),
    ("time_limit_hours: 72", "time_limit_hours: 0", 23, "time_limit_hours", "positive"),
    ("[09:00, 15:00]", "[9:00, 9am]", 9, "patrol_times", "HH:MM"),
    ("{node: G1, role: worker}", "{node: G1, role: boss}", 19, "roles[0].role", "'boss' is not one of"),
    ("{node: G1, role: worker}", "{node: G9, role: worker}", 19, "roles[0].node", "unknown node 'G9'"),
    ("members: [P1]", "members: [P1, P9]", 21, "members", "unknown person 'P9'"),
    ("department: D1", "department: D9", 21, "department", "unknown department"),
    ("default_team: T1", "default_team: T9", 23, "default_team", "unknown team 'T9'"),
    ("categories:", "colours: []\ncategories:", 22, "colours", "unknown key"),
    ("time_limit_hours: 72", "time_limit_hours: 72, split: both", 23, "split", "'both' is not one of"),
    ("    name: 李四\n", "    name: 李四\n    partner: P2\n", 18, "partner", "own partner"),
]


@pytest.mark.parametrize(("old", "new", "line", "name", "words"), ERRORS)
async def test_errors_name_file_line_and_field_and_write_nothing(session, tmp_path, old, new, line, name, words):
    assert old in BASE
    path = write(tmp_path, BASE.replace(old, new, 1))
    before = await counts(session)
    with pytest.raises(ImportFailed) as e:
        await import_file(session, path)
    assert f"{path}:{line}: field '{name}': " in str(e.value) and words in str(e.value), str(e.value)
    assert await counts(session) == before


async def test_every_error_is_listed_at_once(session, tmp_path):
    text = BASE.replace("level: street", "level: town").replace("parent: ST", "parent: NOPE").replace(
        "time_limit_hours: 72", "time_limit_hours: -1")
    with pytest.raises(ImportFailed) as e:
        await import_file(session, write(tmp_path, text))
    assert len(e.value.errors) == 3
    assert set((await counts(session)).values()) == {0}


BOWTIE = "{type: Polygon, coordinates: [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}"


@pytest.mark.parametrize(("boundary", "words"), [
    (BOWTIE, "invalid polygon"),
    ("{type: Point, coordinates: [120.1, 30.2]}", "not Point"),
    ("{type: Polygon}", "not a GeoJSON geometry"),
    ("[1, 2]", "must be a GeoJSON geometry"),
    ("{type: Polygon, coordinates: [[[500, 0], [501, 0], [501, 1], [500, 0]]]}", "longitude, latitude"),
])
async def test_invalid_boundary(session, tmp_path, boundary, words):
    path = write(tmp_path, f"nodes:\n  - code: G1\n    name: 网格\n    level: grid\n    boundary: {boundary}\n")
    with pytest.raises(ImportFailed) as e:
        await import_file(session, path)
    assert f"{path}:5: field 'boundary': " in str(e.value) and words in str(e.value), str(e.value)
    assert (await counts(session))["node"] == 0


async def test_cycle_in_the_file(session, tmp_path):
    path = write(tmp_path, """\
        nodes:
          - {code: A, name: A, level: community, parent: B}
          - {code: B, name: B, level: community, parent: A}
          - {code: C, name: C, level: grid, parent: C}
        """)
    with pytest.raises(ImportFailed) as e:
        await import_file(session, path)
    assert e.value.errors == [
        f"{path}:2: field 'parent': node 'A' would be its own ancestor: A -> B -> A",
        f"{path}:4: field 'parent': node 'C' would be its own ancestor: C -> C",
    ]


async def test_cycle_through_the_database(session, tmp_path):
    await import_yaml(session, "nodes:\n  - {code: S, name: S, level: street}\n"
                               "  - {code: G, name: G, level: grid, parent: S}\n")
    path = write(tmp_path, "nodes:\n  - {code: S, name: S, level: street, parent: G}\n")
    with pytest.raises(ImportFailed, match="would be its own ancestor: S -> G -> S"):
        await import_file(session, path)
    assert (await by_code(session, Node, "S")).parent_id is None


async def test_yaml_syntax_and_duplicate_keys(session, tmp_path):
    path = write(tmp_path, "nodes:\n  - {code: A, name: [unclosed\n")
    with pytest.raises(ImportFailed, match=rf"{path}:\d+: YAML syntax"):
        await import_file(session, path)
    path = write(tmp_path, "nodes:\n  - code: A\n    name: A\n    level: grid\n    name: B\n")
    with pytest.raises(ImportFailed, match=rf"{path}:5: field 'name': appears twice"):
        await import_file(session, path)


async def test_unquoted_times_and_numbers_stay_text(session, tmp_path):
    await import_file(session, write(tmp_path, """\
        nodes:
          - {code: 0571, name: 网格, level: grid, patrol_times: [8:30, 15:00]}
        people:
          - {code: 007, name: 王五, phone: 13800000001, accounts: {telegram: 12345}}
        """))
    node = await by_code(session, Node, "0571")
    assert node.patrol_times == ["08:30", "15:00"]
    person = await by_code(session, Person, "007")
    assert person.phone == "13800000001"
    acc = (await session.execute(select(Account).where(Account.person_id == person.id))).scalar_one()
    assert (acc.channel, acc.external_id, acc.chat_id) == ("telegram", "12345", "12345")


async def test_accounts_partner_and_conflicts(session, tmp_path):
    await import_file(session, write(tmp_path, BASE))
    report = await import_yaml(
        session, 'people:\n  - {code: P1, name: 张三, partner: P2, accounts: {telegram: "111", wecom: zhangsan}}\n')
    assert report.counts["people"] == {"created": 0, "updated": 2, "unchanged": 0}  # P2 got the other side
    p1, p2 = await by_code(session, Person, "P1"), await by_code(session, Person, "P2")
    assert p1.partner_id == p2.id and p2.partner_id == p1.id
    # a new partner: the old one is released, the new one pairs back
    await import_yaml(session, "people:\n  - {code: P3, name: 王五}\n  - {code: P1, name: 张三, partner: P3}\n")
    p3 = await by_code(session, Person, "P3")
    assert (p1.partner_id, p2.partner_id, p3.partner_id) == (p3.id, None, p1.id)
    # a new telegram id replaces the person's telegram account; no second one appears
    await import_yaml(session, "people:\n  - {code: P1, name: 张三, accounts: {telegram: '222'}}\n")
    accounts = (await session.execute(select(Account.channel, Account.external_id)
                                      .where(Account.person_id == p1.id).order_by(Account.channel))).all()
    assert [tuple(a) for a in accounts] == [("telegram", "222"), ("wecom", "zhangsan")]
    path = write(tmp_path, "people:\n  - code: P2\n    name: 李四\n    accounts:\n      telegram: '222'\n")
    with pytest.raises(ImportFailed) as e:
        await import_file(session, path)
    assert str(e.value) == f"{path}:5: field 'accounts.telegram': telegram account '222' already belongs to 'P1'"


CSV = """\
code,name,phone,node,role,partner,telegram,wecom
W1,王一,13800000001,G1,worker,W2,1001,
W2,王二,13800000002,G1,,W1,,wanger
H1,楼栋长,,G1,helper,,,
"""


async def test_people_csv(session, tmp_path):
    await import_file(session, write(tmp_path, BASE))
    path = write(tmp_path, CSV, "people.csv")
    report = await import_file(session, path)
    assert report.counts["people"]["created"] == 3
    w1, w2 = await by_code(session, Person, "W1"), await by_code(session, Person, "W2")
    assert w1.partner_id == w2.id and w2.partner_id == w1.id and w1.phone == "13800000001"
    roles = (await session.execute(select(Assignment.role).join(Person).where(Person.code.in_(["W2", "H1"]))
                                   .order_by(Person.code))).scalars()
    assert list(roles) == ["helper", "worker"]  # an empty role is a worker
    again = await import_file(session, path)
    assert (again.created, again.updated) == (0, 0)


@pytest.mark.parametrize(("row", "line", "name", "words"), [
    ("X1,某人,12,G1,worker,,,", 3, "phone", "not a phone number"),
    ("X1,某人,,G9,worker,,,", 3, "node", "unknown node 'G9'"),
    ("X1,某人,,,worker,,,", 3, "node", "required"),
    ("X1,某人,,G1,boss,,,", 3, "role", "'boss' is not one of"),
    ("X1,,,G1,worker,,,", 3, "name", "required"),
    ("X1,某人,,G1,worker,X9,,", 3, "partner", "unknown person 'X9'"),
    ("W1,某人,,G1,worker,,,", 3, "code", "duplicate code 'W1'"),
    ("X1,某人,,G1,worker,,1001,", 3, "telegram", "is already given to 'W1'"),
    ("X1,某人", 3, "(row)", "expected 8 columns"),
])
async def test_people_csv_errors(session, tmp_path, row, line, name, words):
    await import_file(session, write(tmp_path, BASE))
    path = write(tmp_path, CSV.splitlines()[0] + "\n" + CSV.splitlines()[1] + "\n" + row + "\n", "people.csv")
    before = await counts(session)
    with pytest.raises(ImportFailed) as e:
        await import_file(session, path)
    assert f"{path}:{line}: field '{name}': " in str(e.value) and words in str(e.value), str(e.value)
    assert await counts(session) == before


async def test_people_csv_header(session, tmp_path):
    path = write(tmp_path, "code,name,email\nX1,某人,x@y\n", "people.csv")
    with pytest.raises(ImportFailed, match=rf"{path}:1: column C 'email': unknown column for people"):
        await import_file(session, path)


async def test_export_then_import_is_a_noop(session, tmp_path):
    await load_demo(session)
    await import_file(session, write(tmp_path, CSV.replace("G1", "CY-01"), "people.csv"))
    await import_yaml(session, "people:\n  - {code: ADMIN, name: 韩冰, language: en, preferred_channel: telegram}\n")
    text = await export_data(session)
    assert "西湖街道" in text and "\\u" not in text and "'09:00'" in text
    path = write(tmp_path, text, "export.yaml")
    before = await counts(session)
    report = await import_file(session, path)
    assert (report.created, report.updated) == (0, 0) and report.unchanged > 40
    assert await counts(session) == before
    assert await export_data(session) == text


# ---------------------------------------------------------------- hostile input: clear errors, never a traceback


@pytest.mark.parametrize(("old", "new", "name", "words"), [
    ("time_limit_hours: 72", "time_limit_hours: 99999999999999999999", "time_limit_hours", "too large"),
    ("time_limit_hours: 72", "time_limit_hours: 72, sort: -99999999999", "sort", "too large"),
    ("name: 张三", 'name: "张\\0三"', "name", "control character U+0000"),
    ("name: 张三", 'name: "张\\x07三"', "name", "control character U+0007"),
    ("name: 张三", 'name: "张\\n三"', "name", "control character U+000A"),
])
async def test_numbers_too_large_and_control_characters_are_refused(session, tmp_path, old, new, name, words):
    path = write(tmp_path, BASE.replace(old, new, 1))
    with pytest.raises(ImportFailed) as e:
        await import_file(session, path)
    assert f"field '{name}': " in str(e.value) and words in str(e.value), str(e.value)
    assert all(v == 0 for v in (await counts(session)).values())


async def test_csv_control_characters_and_a_huge_cell(session, tmp_path):
    await import_file(session, write(tmp_path, BASE))
    header = CSV.splitlines()[0]
    before = await counts(session)
    path = write(tmp_path, f"{header}\nX1,某\x00人,,G1,worker,,,\n", "people.csv")
    with pytest.raises(ImportFailed, match="field 'name': contains the control character U\\+0000"):
        await import_file(session, path)
    path = write(tmp_path, f"{header}\nX1,{'长' * 140_000},,G1,worker,,,\n", "people.csv")
    with pytest.raises(ImportFailed, match=rf"{path}:\d+: field larger than field limit \(131072\)"):
        await import_file(session, path)
    assert await counts(session) == before


async def test_gbk_csv_is_read_and_other_bytes_are_named(session, tmp_path):
    await import_file(session, write(tmp_path, BASE))
    path = tmp_path / "people.csv"
    path.write_bytes("code,name\nX1,王小明\n".encode("gbk"))  # what Excel writes on Chinese Windows
    assert (await import_file(session, path)).counts["people"]["created"] == 1
    assert (await by_code(session, Person, "X1")).name == "王小明"
    path.write_bytes(b"code,name\nX2,\xff\xfe\xfa\n")  # neither UTF-8 nor GBK
    with pytest.raises(ImportFailed, match="neither UTF-8 nor GBK text; in Excel save it as"):
        await import_file(session, path)
