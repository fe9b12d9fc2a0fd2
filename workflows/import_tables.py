"""Reference data from the tables offices keep: .xlsx workbooks (one sheet per kind, or a single
people sheet) and CSV files, with the Chinese headers offices use or the English keys.

A table is turned into the same items the YAML import checks, so every rule of the import holds
(all or nothing, matched by code, references checked against the file and the database); only
the reading differs. Errors name the file, the sheet, the row and the column as the office wrote
it. CSV text may be UTF-8 (with or without BOM), GBK/GB18030 (what Excel writes on Chinese
Windows) or UTF-16 with BOM (Excel's "Unicode text"): the bytes decide, not the file name.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import yaml
from openpyxl import load_workbook
from openpyxl.utils import get_column_letter

from .care import CARE_TYPES
from .importer import KINDS, ImportFailed, ImportReport, _import, _Item, _Map, _person, _Seq, _Source, checked

MAX_BYTES = 20 * 1024 * 1024  # a roster of a whole city is a few MB

_DATA = yaml.safe_load((Path(__file__).parent / "data" / "tables.yaml").read_text(encoding="utf-8"))
# header as the office writes it -> the import's key; the English keys are accepted as they are
HEADERS: dict[str, dict[str, list[str]]] = _DATA["headers"]
SHEETS: dict[str, list[str]] = _DATA["sheets"]
VALUES: dict[str, dict[str, str]] = _DATA["values"]  # values in the office's words -> stored value
HINTS: dict[str, dict[str, str]] = _DATA["hints"]  # the template's second row, skipped on import
TABLE_KINDS = (*KINDS, "care")  # care: the register (结对关爱), handed to care_import like YAML's care:
LISTS = ("patrol_times", "checklist", "members", "grids", "address_keywords")
NUMBERS = ("time_limit_hours", "sort")
SPLIT = re.compile(r"[,，、;；\n]+")
# the second row of a template: hints, skipped on import when left as written
@dataclass
class _Column:
    key: str
    header: str  # as written in the file
    letter: str  # A, B, … (CSV: the position)


class _TableSource(_Source):
    """Errors in the office's words: file, sheet, row, column letter and header."""

    def __init__(self, name: str, sheet: str | None, kind: str, columns: dict[str, _Column]) -> None:
        super().__init__(name)
        self.sheet, self.kind, self.columns = sheet, kind, columns

    def error(self, line: int, name: str, message: str) -> None:
        col = self.columns.get(name)
        if self.sheet is None:  # CSV: FILE:ROW: field 'header as written'
            self.found.append((line, f"{self.name}:{line}: field '{col.header if col else name}': {message}"))
            return
        where = f"column {col.letter} '{col.header}'" if col else f"'{name}'"
        self.found.append((line, f"{self.name}, sheet '{self.sheet}', row {line}, {where}: {message}"))


def _keys(kind: str) -> dict[str, str]:
    """Every accepted header (lower-cased, spaces removed) -> key."""
    out = {}
    for key, names in HEADERS[kind].items():
        out[key.lower()] = key
        for n in names:
            out[re.sub(r"\s+", "", n).lower()] = key
    return out


def _header_key(cell: Any) -> str:
    return re.sub(r"\s+", "", str(cell)).lower() if cell is not None else ""


def _guess_kind(headers: list[Any]) -> str:
    """The kind whose headers match most cells; people when it is a tie (the usual single sheet)."""
    scores = {kind: sum(_header_key(h) in _keys(kind) for h in headers) for kind in HEADERS}
    best = max(scores.values())
    return "people" if scores["people"] == best else max(scores, key=scores.__getitem__)


def _plain(value: Any) -> Any:
    """A cell as the import's rules expect it: whole numbers as int, times as HH:MM, text stripped."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str):
        return value.strip()
    return value


def _value(key: str, value: Any) -> Any:
    if key in VALUES and isinstance(value, str):
        return VALUES[key].get(value, value)
    if key in NUMBERS and isinstance(value, str) and re.fullmatch(r"[-+]?\d{1,9}", value):
        return int(value)
    if key in LISTS:
        parts = SPLIT.split(str(value)) if not isinstance(value, list) else value
        seq = _Seq(p.strip() for p in parts if p.strip())
        return seq
    return value


def _data_row(src: _TableSource, keys: list[str], hints: dict, header_row: int, n: int,
              cells: list[Any]) -> list[Any] | None:
    """A row's cells padded to the header, or None for a row that holds no item: blank, the
    template's hint row, or one with cells beyond the header (recorded as an error)."""
    cells = cells + [None] * (len(keys) - len(cells))
    if all(c in (None, "") for c in cells):
        return None
    if n == header_row + 1 and all(c in (None, "", hints.get(k)) for k, c in zip(keys, cells, strict=False)):
        return None  # the template's hint row
    if len(cells) > len(keys) and any(c not in (None, "") for c in cells[len(keys):]):
        src.found.append((n, f"{src.name}{'' if src.sheet is None else f', sheet {src.sheet!r}'}, row {n}: "
                             f"{len(cells)} cells but only {len(keys)} columns have a header"))
        return None
    return cells


def _items(src: _TableSource, kind: str, header_row: int, rows: list[tuple[int, list[Any]]]) -> list[dict]:
    """Rows -> checked items of `kind` (the same parser the YAML import uses)."""
    out, seen = [], set()
    keys = list(src.columns)
    hints = HINTS.get(kind, {})
    for n, cells in rows:
        cells = _data_row(src, keys, hints, header_row, n, [_plain(c) for c in cells])
        if cells is None:
            continue
        row = {k: _value(k, c) for k, c in zip(keys, cells, strict=False) if c not in (None, "")}
        if kind == "people":
            item = _Map({k: row[k] for k in ("code", "name", "phone", "partner", "language") if k in row})
            if "node" in row or "role" in row:
                role = _Map({"role": row.get("role", "worker")} | ({"node": row["node"]} if "node" in row else {}))
                role.line, role.lines = n, {"node": n, "role": n}
                item["roles"] = _Seq([role])
                item["roles"].lines = [n]
            if accounts := {ch: str(row[ch]) for ch in ("telegram", "wecom") if ch in row}:
                item["accounts"] = _Map(accounts)
                item["accounts"].line, item["accounts"].lines = n, dict.fromkeys(accounts, n)
        else:
            item = _Map(row)
        for v in item.values():
            if isinstance(v, _Seq) and not hasattr(v, "lines"):
                v.lines = [n] * len(v)
        item.line, item.lines = n, dict.fromkeys(item, n)
        it = _Item(src, item, n, None, "")
        # a people row's node and role are its own columns, not roles[0].…
        parse = (lambda item: _person(item, csv_row=True)) if kind == "people" else None
        out.append(checked(it, kind, seen, "this sheet", parse))
    return out


def _columns(src_name: str, sheet: str | None, kind: str, headers: list[Any],
             errors: list[str]) -> dict[str, _Column]:
    known = _keys(kind)
    columns: dict[str, _Column] = {}

    def where(letter: str, header: Any = None) -> str:
        cell = f"column {letter}" + (f" '{header}'" if header not in (None, "") else "")
        return f"{src_name}:1: {cell}" if sheet is None else f"{src_name}, sheet '{sheet}', row 1, {cell}"

    for i, h in enumerate(headers):
        letter = get_column_letter(i + 1)
        if h in (None, ""):
            errors.append(f"{where(letter)}: the header is empty (every column needs one)")
            continue
        key = known.get(_header_key(h))
        if key is None:
            expected = ", ".join(f"{names[0]} ({k})" for k, names in HEADERS[kind].items())
            errors.append(f"{where(letter, h)}: unknown column for {kind} (expected: {expected})")
        elif key in columns:
            errors.append(f"{where(letter, h)}: the same column as {columns[key].letter}")
        else:
            columns[key] = _Column(key, str(h), letter)
    for key in ("code", "name"):
        if key not in columns:
            at = f"{src_name}:1" if sheet is None else f"{src_name}, sheet '{sheet}', row 1"
            errors.append(f"{at}: required column {HEADERS[kind][key][0]} ({key}) is missing")
    return columns


def decode_csv(data: bytes, name: str) -> str:
    """UTF-8 (BOM or not), UTF-16 with BOM, else GB18030 (a superset of GBK): whichever reads."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ImportFailed([f"{name}:1: the file is neither UTF-8 nor GBK text; in Excel save it as "
                        "\"CSV UTF-8\" or as an .xlsx workbook"])


def _check_size(path: Path) -> None:
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise ImportFailed([f"{path}: the file is {size / 2**20:.1f} MB; at most {MAX_BYTES // 2**20} MB can be "
                            "imported at once — split it by kind or by street"])


async def import_csv(session, path: Path, now: datetime | None = None) -> ImportReport:
    path = Path(path)
    _check_size(path)
    text = decode_csv(path.read_bytes(), str(path))
    first = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first and "," not in first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[tuple[int, list[Any]]] = []
    line = 1
    try:
        for cells in reader:
            rows.append((line, cells))
            line = reader.line_num + 1  # a quoted cell may span lines
    except csv.Error as e:
        raise ImportFailed([f"{path}:{reader.line_num}: {e} (a cell may hold at most "
                            f"{csv.field_size_limit():,} characters)"]) from None
    if not rows:
        raise ImportFailed([f"{path}:1: the file is empty"])
    headers = [h.strip() for h in rows[0][1]]
    kind = _guess_kind(headers)
    errors: list[str] = []
    columns = _columns(str(path), None, kind, headers, errors)
    if errors:
        raise ImportFailed(errors)
    src = _TableSource(str(path), None, kind, columns)
    for n, cells in rows[1:]:
        if len(cells) != len(headers) and any(c.strip() for c in cells):
            src.error(n, "(row)", f"expected {len(headers)} columns, found {len(cells)}")
    if src.errors:
        raise ImportFailed(src.errors)
    if kind == "care":
        src = _CareTableSource(str(path), None, kind, columns)
        src.extra["care"] = _care_items(src, 1, rows[1:])
        return await _import(session, src, {k: [] for k in KINDS}, now)
    parsed = {k: [] for k in KINDS} | {kind: _items(src, kind, 1, rows[1:])}
    return await _import(session, src, parsed, now)


async def import_xlsx(session, path: Path, now: datetime | None = None) -> ImportReport:
    path = Path(path)
    _check_size(path)
    try:
        wb = load_workbook(path, data_only=True)  # values, not formulas
    except Exception as e:  # openpyxl raises zipfile, KeyError, XML errors … for a damaged file
        raise ImportFailed([f"{path}: not a readable .xlsx workbook ({type(e).__name__}); "
                            "save it again from Excel as an .xlsx workbook"]) from None
    parsed: dict[str, list] = {k: [] for k in KINDS}
    sources: list[_TableSource] = []
    errors: list[str] = []
    sheets = [ws for ws in wb.worksheets if ws.max_row > 1 or ws.max_column > 1 or ws.cell(1, 1).value]
    for ws in sheets:
        rows = [(i, list(r)) for i, r in enumerate(ws.iter_rows(values_only=True), start=1)]
        header_at = next((i for i, r in rows if any(c not in (None, "") for c in r)), None)
        if header_at is None:
            continue
        for merged in ws.merged_cells.ranges:
            if merged.min_row <= header_at <= merged.max_row:
                errors.append(f"{path}, sheet '{ws.title}', row {header_at}: merged header cells {merged.coord}; "
                              "give every column its own header cell")
        headers = [_plain(c) for c in rows[header_at - 1][1]]
        while headers and headers[-1] in (None, ""):
            headers.pop()
        by_name = next((k for k, names in SHEETS.items() if ws.title.strip().lower() in names), None)
        kind = by_name or _guess_kind(headers)
        if any(s.kind == kind for s in sources):
            errors.append(f"{path}, sheet '{ws.title}': a second sheet of {kind}; put them in one sheet")
            continue
        columns = _columns(str(path), ws.title, kind, headers, errors)
        if kind == "care":
            src = _CareTableSource(str(path), ws.title, kind, columns)
            care = _care_items(src, header_at, rows[header_at:])
        else:
            src = _TableSource(str(path), ws.title, kind, columns)
            parsed[kind] = _items(src, kind, header_at, rows[header_at:])
        sources.append(src)
    wb.close()
    if not sources and not errors:
        raise ImportFailed([f"{path}: the workbook has no sheet with data"])
    errors += [e for s in sources for e in s.errors]
    if errors:
        raise ImportFailed(errors)
    combined = _Combined(str(path), sources)
    if any(src.kind == "care" for src in sources):
        combined.extra["care"] = care
    return await _import(session, combined, parsed, now)


# ---------------------------------------------------------------- the care register as a table

CARE_HOUSEHOLD = {"household": "household", "grid": "grid", "building": "building", "door": "door",
                  "household_notes": "notes"}  # column key -> the household's field in care_import
CARE_PERSON = ("code", "name", "type", "frequency", "worker", "contact", "contact_phone", "notes", "first_due")
CARE_CHECKS = ("household", "grid", "worker")  # fields care_import.check names without a prefix


class _CareTableSource(_TableSource):
    """care_import names fields as in YAML (care[0].people[1].worker): errors name the column."""

    def error(self, line: int, name: str, message: str) -> None:
        field = name.rsplit(".", 1)[-1]
        if ".people[" not in name and name.startswith("care["):
            field = {"notes": "household_notes", "location": "latitude"}.get(field, field)
        super().error(line, field, message)


def _number(src: _TableSource, n: int, key: str, value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        src.error(n, key, f"{value!r} is not a number")
        return None


def _care_items(src: _TableSource, header_row: int, rows: list[tuple[int, list[Any]]]) -> list[dict]:
    """Rows, one per person, grouped into households by 户编码, then checked by care_import.parse
    like the YAML `care:` section. A household's columns may repeat on its rows, but alike."""
    from .care_import import parse

    keys = list(src.columns)
    hints = HINTS["care"]
    households: dict[Any, _Map] = {}
    items = _Seq()
    items.lines = []

    def put(h: _Map, field: str, key: str, value: Any, n: int) -> None:
        if field not in h:
            h[field], h.lines[field] = value, n
        elif h[field] != value:
            src.error(n, key, f"household {h.get('household')!r} has {h[field]!r} on row {h.lines[field]}: "
                              "one value per household")

    for n, raw in rows:
        cells = _data_row(src, keys, hints, header_row, n,
                          [c.date() if k == "first_due" and isinstance(c, datetime) else _plain(c)
                           for k, c in zip(keys, raw, strict=False)] + [_plain(c) for c in raw[len(keys):]])
        if cells is None:
            continue
        row = {k: c for k, c in zip(keys, cells, strict=False) if c not in (None, "")}
        code = row.get("household")
        h = households.get(code) if code is not None else None
        if h is None:
            h = _Map()
            h.line, h.lines = n, {}
            h["people"] = _Seq()
            h["people"].lines, h.lines["people"] = [], n
            items.append(h)
            items.lines.append(n)
            if code is not None:
                households[code] = h
        for key, field in CARE_HOUSEHOLD.items():
            if key in row:
                put(h, field, key, row[key], n)
        if "latitude" in row or "longitude" in row:
            if "latitude" not in row or "longitude" not in row:
                src.error(n, "latitude" if "latitude" not in row else "longitude",
                          "give both latitude and longitude, or neither")
            else:
                lat, lon = _number(src, n, "latitude", row["latitude"]), _number(src, n, "longitude", row["longitude"])
                if lat is not None and lon is not None:
                    put(h, "location", "latitude", [lat, lon], n)
        person = _Map({k: row[k] for k in CARE_PERSON if k in row})
        person.line, person.lines = n, dict.fromkeys(person, n)
        if person:
            h["people"].append(person)
            h["people"].lines.append(n)
    return parse(src, "care", items, header_row)


async def care_rows(session) -> list[list[Any]]:
    """The register as table rows in the template's column order (one per person; a household
    without people gets a row of its own) — the export, written to the access log."""
    from .care_import import export

    out = []
    for h in (await export(session, datetime.now(UTC))).get("care", []):
        lat, lon = h.get("location") or (None, None)
        base = {"household": h["household"], "grid": h.get("grid"), "building": h.get("building"),
                "door": h.get("door"), "latitude": lat, "longitude": lon, "household_notes": h.get("notes")}
        for p in h.get("people") or [{}]:
            row = base | {k: p.get(k) for k in CARE_PERSON}
            out.append([row.get(k) for k in HEADERS["care"]])
    return out


async def export_care_xlsx(session, path: Path) -> int:
    """The care register as a workbook the import reads back (the template's headers, no hint row)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill

    rows = await care_rows(session)
    wb = Workbook()
    ws = wb.active
    ws.title = SHEETS["care"][0]
    for i, names in enumerate(HEADERS["care"].values(), start=1):
        head = ws.cell(1, i, names[0])
        head.font, head.fill = Font(bold=True), PatternFill("solid", fgColor="DDEBF7")
        ws.column_dimensions[get_column_letter(i)].width = max(12, len(names[0]) * 2 + 4)
    for r, row in enumerate(rows, start=2):
        for i, value in enumerate(row, start=1):
            if value is not None:
                ws.cell(r, i, value).number_format = "@" if isinstance(value, str) else "General"
    ws.freeze_panes = "A2"
    wb.save(path)
    return len(rows)


class _Combined(_Source):
    """The reference checks run over all sheets at once; an error goes to the sheet of its kind."""

    def __init__(self, name: str, sources: list[_TableSource]) -> None:
        super().__init__(name)
        self.sources = sources

    def error(self, line: int, name: str, message: str) -> None:
        care = next((s for s in self.sources if s.kind == "care"), None)
        if care is not None and (name.startswith("care[") or name in CARE_CHECKS or "care person" in message):
            care.error(line, name, message)  # the register's own checks (care_import.check)
            self.found.append(care.found.pop())
            return
        # the reference checks name fields no two kinds share (parent, node, partner, lead, …)
        for src in self.sources:
            if name in src.columns or name.split(".")[0] in src.columns:
                src.error(line, name.split(".")[0], message)
                self.found.append(src.found.pop())
                return
        super().error(line, name, message)


# ---------------------------------------------------------------- templates

def write_template(path: Path, kinds: tuple[str, ...] = TABLE_KINDS) -> None:
    """An empty workbook to fill in: a sheet per kind with the Chinese headers, a row of hints
    (skipped on import), and drop-down lists where the value is one of a few."""
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill
    from openpyxl.worksheet.datavalidation import DataValidation

    wb = Workbook()
    wb.remove(wb.active)
    choices = {"role": VALUES["role"], "level": VALUES["level"], "split": VALUES["split"], "urgency": VALUES["urgency"],
               "type": {t: t for t in CARE_TYPES}}
    for kind in kinds:
        ws = wb.create_sheet(SHEETS[kind][0])
        for i, (key, names) in enumerate(HEADERS[kind].items(), start=1):
            letter = get_column_letter(i)
            head = ws.cell(1, i, names[0])
            head.font, head.fill = Font(bold=True), PatternFill("solid", fgColor="DDEBF7")
            hint = ws.cell(2, i, HINTS[kind].get(key, ""))
            hint.font = Font(italic=True, color="808080")
            ws.column_dimensions[letter].width = max(12, len(names[0]) * 2 + 4)
            if key in choices:
                # one word per stored value (the first the office uses for it)
                words = list(dict.fromkeys({v: w for w, v in reversed(list(choices[key].items()))}.values()))
                dv = DataValidation(type="list", formula1='"' + ",".join(words) + '"', allow_blank=True,
                                    showErrorMessage=True, error=_DATA["template"]["choose"].format(words="、".join(words)))
                ws.add_data_validation(dv)
                dv.add(f"{letter}3:{letter}10000")
        ws.freeze_panes = "A3"
    wb.save(path)
