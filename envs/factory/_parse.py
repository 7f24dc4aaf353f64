"""Per-file parsing of a factory bundle: bytes -> text -> models, every problem as a DataIssue.

Nothing here raises on bad data: each function appends to an ``issues`` list and returns what
it could parse, so the loader can report every problem of every file at once.
"""

from __future__ import annotations

import csv
import difflib
import io
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from envs.errors import DataIssue
from envs.factory._yaml import YamlProblem, check_bounds, compose_and_load
from envs.factory.schema import IDENTIFIER_PATTERN, SLUG_PATTERN, SiteFile
from envs.factory.task_sections import SECTIONS_BY_KIND

M = TypeVar("M", bound=BaseModel)

LIST_COLUMNS = frozenset({"accepts"})
LIST_SEPARATOR = "|"
UNIT_SUFFIXES = frozenset(
    "mm cm m km in inch ft g kg lb lbs oz s ms min h mps mmps mpm kph deg rad n kn hz".split()
)
_PATTERN_WORDS = {
    IDENTIFIER_PATTERN: "an id of 1-63 letters, digits or _ . : - starting with a letter or digit",
    SLUG_PATTERN: "a lowercase id of 1-63 characters a-z, 0-9, _ or - starting with a-z or 0-9",
}
_ISO_EXAMPLE = "an ISO 8601 timestamp, e.g. 2025-03-03T06:00:00.000+09:00"


@dataclass(frozen=True)
class Row(Generic[M]):
    """One validated data row of a CSV file and where it came from."""

    number: int
    """1-based data row (the header is not counted)."""
    line: int
    """1-based line of the file the row starts on."""
    model: M

    @property
    def where(self) -> str:
        """Location text for issues, e.g. ``row 3 (line 4)``."""
        return f"row {self.number} (line {self.line})"


@dataclass
class Table(Generic[M]):
    """What a CSV file yielded: the valid rows, plus the keys of rows that failed validation."""

    rows: list[Row[M]] = field(default_factory=list)
    failed_keys: set[str] = field(default_factory=set)
    """First-column values of invalid rows, so cross-file checks don't report them twice."""

    def models(self) -> tuple[M, ...]:
        """Return the validated models in file order."""
        return tuple(row.model for row in self.rows)


def short_repr(value: object, limit: int = 80) -> str:
    """``repr`` cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def decode(name: str, data: bytes, issues: list[DataIssue]) -> str | None:
    """UTF-8 text of a bundle file (a leading BOM is dropped), or None after adding an issue."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        bad = short_repr(data[error.start : error.end])
        issues.append(DataIssue(name, f"line {line}, byte {column}", bad, "UTF-8 text"))
        return None
    if not text.strip():
        issues.append(DataIssue(name, "", "an empty file", "content (see docs/factory_bundle.md)"))
        return None
    return text


def expectation(error: ErrorDetails) -> str:
    """Turn a pydantic error into the 'expected ...' half of a DataIssue."""
    kind, message = error["type"], error["msg"]
    if kind == "missing":
        return "a value (required)"
    if kind == "string_pattern_mismatch":
        pattern = str(error.get("ctx", {}).get("pattern", ""))
        return _PATTERN_WORDS.get(pattern, f"text matching {pattern}")
    if kind.startswith(("datetime", "date_")):
        return _ISO_EXAMPLE
    for prefix in ("Value error, ", "Assertion failed, ", "Input should be ", "expected "):
        message = message.removeprefix(prefix)
    return message


# ------------------------------------------------------------------------------- site.yaml


def parse_site_yaml(text: str, issues: list[DataIssue]) -> SiteFile | None:
    """Validate site.yaml; key paths in issues look like ``robot.gripper.kind (line 14)``."""
    try:
        check_bounds(text)
        node, data = compose_and_load(text)
    except YamlProblem as problem:
        issues.append(DataIssue("site.yaml", problem.where, "", problem.expected))
        return None
    lines = _key_lines(node, (), {}, issues)
    if not isinstance(data, dict):
        got = type(data).__name__
        issues.append(DataIssue("site.yaml", "top level", got, "a mapping (site_id: ...)"))
        return None
    try:
        return SiteFile.model_validate(data)
    except ValidationError as error:
        for detail in error.errors():
            issues.append(_yaml_issue(detail, lines))
        return None


def _key_lines(
    node: yaml.Node | None,
    path: tuple[str | int, ...],
    lines: dict[tuple[str | int, ...], int],
    issues: list[DataIssue],
) -> dict[tuple[str | int, ...], int]:
    """Map each key path to its 1-based line; report duplicate keys (YAML keeps the last)."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, str(key_node.value))
            line = key_node.start_mark.line + 1
            if child in lines:
                where = f"{_dotted(child)} (line {line})"
                first = f"a key used once (first on line {lines[child]})"
                issues.append(DataIssue("site.yaml", where, short_repr(key_node.value), first))
            lines[child] = line
            _key_lines(value_node, child, lines, issues)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _key_lines(item, (*path, index), lines, issues)
    return lines


def _dotted(loc: Sequence[str | int]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "top level"


def _without_tags(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """Drop the ``kind`` pydantic puts after a ``tasks`` index (the user never wrote it)."""
    return tuple(
        part
        for i, part in enumerate(loc)
        if not (i >= 2 and loc[i - 2] == "tasks" and isinstance(loc[i - 1], int))
    )


def _yaml_issue(detail: ErrorDetails, lines: dict[tuple[str | int, ...], int]) -> DataIssue:
    tagged = tuple(detail["loc"])
    loc = _without_tags(tagged)
    if detail["type"] in ("union_tag_invalid", "union_tag_not_found"):  # tasks[i].kind
        ctx = detail.get("ctx", {})
        kinds = ", ".join(SECTIONS_BY_KIND)
        where = _dotted((*loc, "kind"))
        line = lines.get((*loc, "kind"), lines.get(loc))
        where += f" (line {line})" if line else ""
        got = repr(ctx["tag"]) if "tag" in ctx else ""
        return DataIssue("site.yaml", where, got, f"a task kind: one of {kinds}")
    line = next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), None)
    where = _dotted(loc) + (f" (line {line})" if line else "")
    value = "" if detail["type"] == "missing" else short_repr(detail["input"])
    if detail["type"] == "extra_forbidden":
        return DataIssue("site.yaml", where, value, _known_key_hint(tagged))
    return DataIssue("site.yaml", where, value, expectation(detail))


def _known_key_hint(loc: tuple[str | int, ...]) -> str:
    model: type[BaseModel] | None = SiteFile
    for part in loc[:-1]:
        if model is None:
            break
        if isinstance(part, str):
            section = SECTIONS_BY_KIND.get(part)
            info = model.model_fields.get(part)
            model = section or (_model_in(info.annotation) if info else None)
    if model is None:
        return "no such key"
    keys = list(model.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), keys, n=1)
    guess = f"did you mean {close[0]!r}? " if close else ""
    return f"a known key ({guess}keys here: {', '.join(keys)})"


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


# ------------------------------------------------------------------------------------- CSV


def parse_csv(name: str, text: str, model: type[M], issues: list[DataIssue]) -> Table[M] | None:
    """Validate every data row of a CSV file against ``model`` (one column per field).

    Empty cells are left out, so the field's default (or None) applies. Cells of list
    columns (``accepts``) are split on ``|``.

    Returns:
        The rows, or None if the file as a whole is unusable (a required column is missing,
        a column is repeated, or the CSV syntax is broken); its issues are in ``issues``.
    """
    table: Table[M] = Table()
    # strict: a stray quote is an error instead of silently swallowing the rest of the file.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [cell.strip() for cell in next(reader)]
        usable, absent = _check_header(name, header, reader.line_num, model, issues)
        previous_line, number = reader.line_num, 0
        for cells in reader:
            start, previous_line = previous_line + 1, reader.line_num
            if any(cell.strip() for cell in cells):  # blank lines are not rows
                number += 1
                _parse_row(name, header, cells, (number, start), (model, absent), table, issues)
    except csv.Error as error:
        issues.append(DataIssue(name, f"line {reader.line_num}", "", f"valid CSV ({error})"))
        return None
    return table if usable else None


def _check_header(
    name: str, header: list[str], line: int, model: type[M], issues: list[DataIssue]
) -> tuple[bool, frozenset[str]]:
    """Report header problems; return whether rows can be used and the absent required columns."""
    known = list(model.model_fields)
    where = f"header (line {line})"
    hinted: set[str] = set()
    for index, column in enumerate(header, start=1):
        if not column:
            issues.append(DataIssue(name, f"{where}, column {index}", "''", "a column name"))
        elif header.index(column) != index - 1:
            issues.append(
                DataIssue(
                    name,
                    f"{where}, column {index}",
                    repr(column),
                    "each column once (duplicate column)",
                )
            )
        elif column not in known:
            hint, target = _column_hint(column, known)
            hinted.update([target] if target else [])
            issues.append(DataIssue(name, f"{where}, unknown column {index}", repr(column), hint))
    required = [f for f, info in model.model_fields.items() if info.is_required()]
    missing = [f for f in required if f not in header and f not in hinted]
    if missing:
        issues.append(DataIssue(name, where, "", f"required column(s) {', '.join(missing)}"))
    absent = frozenset(f for f in required if f not in header)
    return not absent and len(set(header)) == len(header), absent


def _column_hint(column: str, known: list[str]) -> tuple[str, str | None]:
    """Say what an unknown column should be, and which known column it stands for, if any."""
    stem, _, suffix = column.rpartition("_")
    if stem and suffix.lower() in UNIT_SUFFIXES:
        for candidate in known:
            if candidate == stem or candidate.rpartition("_")[0] == stem:
                return f"{candidate} (SI units: metres, kilograms, seconds, radians)", candidate
    close = difflib.get_close_matches(column, known, n=1)
    if close:
        return f"a known column (did you mean {close[0]!r}?)", close[0]
    return f"one of the columns {', '.join(known)}", None


def _parse_row(
    name: str,
    header: list[str],
    cells: list[str],
    position: tuple[int, int],  # (1-based data row, first line)
    schema: tuple[type[M], frozenset[str]],  # (row model, required columns the header lacks)
    table: Table[M],
    issues: list[DataIssue],
) -> None:
    number, line = position
    model, absent = schema
    where = f"row {number} (line {line})"
    key = cells[0].strip() if cells else ""
    if len(cells) != len(header):
        expected = f"{len(header)} cells, one per header column"
        issues.append(DataIssue(name, where, f"{len(cells)} cells", expected))
        table.failed_keys.add(key)
        return
    data: dict[str, Any] = {}
    for column, cell in zip(header, cells, strict=True):
        cell = cell.strip()
        if cell and column in model.model_fields:
            data[column] = _split(cell) if column in LIST_COLUMNS else cell
    try:
        table.rows.append(Row(number, line, model.model_validate(data)))
    except ValidationError as error:
        table.failed_keys.add(key)
        for detail in error.errors():
            if not (detail["loc"] and detail["loc"][0] in absent):  # reported with the header
                issues.append(_row_issue(name, where, detail, key))


def _split(cell: str) -> list[str]:
    return [item.strip() for item in cell.split(LIST_SEPARATOR) if item.strip()]


def _row_issue(name: str, where: str, detail: ErrorDetails, key: str) -> DataIssue:
    loc = detail["loc"]
    if not loc:  # a rule across the row's columns (model validator)
        return DataIssue(name, where, short_repr(key), expectation(detail))
    location = f"{where}, column {loc[0]}"
    if len(loc) > 1 and isinstance(loc[1], int):
        location += f" item {loc[1] + 1}"
    value = "" if detail["type"] == "missing" else short_repr(detail["input"])
    return DataIssue(name, location, value, expectation(detail))
