"""The report's "Episodes by cell": one anchored section per (policy, target site) cell.

Every matrix cell of the report links to its section (`cell_anchor`). A section lists each
episode of the cell: its seed, outcome and reason, the exact ``testbed replay`` command,
steps, parts, and the per-episode values the KPI registry aggregates
(`testbed.results.kpis.KPIS`). Failed rows are marked, so the page's filter can show them
alone; a failed episode with a clip shows it below the table.

Clips are found, never made here: a file with the record's name and a clip suffix
(`CLIP_SUFFIXES`) beside the record (``<trial>/episodes/ep-00003.gif``, e.g. from
``testbed replay --video``) or under the report folder (``clips/<trial>/episodes/...``).
The page links them by a path relative to the report, so the folder opens from disk with
nothing fetched.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from testbed.episodes.browse import replay_command
from testbed.results.evaluator import MatrixCell, TransferReport
from testbed.results.kpis import KPI, KPIS
from testbed.results.report_blocks import Block, Code, Link, Mark, anchor

#: Clip files the report shows, in order of preference.
CLIP_SUFFIXES = (".gif", ".webp", ".mp4", ".webm")
#: Where the report looks for clips made for it, under its own folder.
CLIPS_DIR = "clips"
MATRIX_ANCHOR = "transfer-matrix"

#: Episode-table columns the KPI registry reads that are not per-episode values.
_NOT_PER_EPISODE = {"ended_by"}
#: Per-episode labels where the registry's column label names a cell aggregate.
_LABELS = {"violations_*": "violations"}
_AGGREGATE_WORDS = (" median", " p90", "/1k steps")


def cell_anchor(policy: str, site: str) -> str:
    """The id of the section of the (policy, site) cell."""
    return anchor("cell", policy, site)


def cell_link(cell: MatrixCell, text: str) -> Link:
    """``text`` linking to the section of ``cell``."""
    return Link(text, "#" + cell_anchor(cell.policy, cell.site))


def cell_place(cell: MatrixCell) -> str:
    """The cell's target site, starred when it is the policy's home site."""
    return cell.site + (" *" if cell.is_home else "")


def episode_sections(
    report: TransferReport, episodes: pd.DataFrame, root: Path, out_dir: Path
) -> list[Block]:
    """The "Episodes by cell" part of the report: one section per cell, in matrix order.

    Args:
        report: The evaluated matrix.
        episodes: The episode table (`testbed.results.episode_table.load_episodes`).
        root: The campaign folder, as the replay commands should name it.
        out_dir: The report folder (clip links are relative to it).
    """
    blocks: list[Block] = [
        ("h2", "Episodes by cell"),
        (
            "p",
            "One section per (policy, target site) cell; every cell of the matrices above "
            "links here. Failed episodes are marked; each row has the command that replays "
            "and verifies it.",
        ),
    ]
    kpis = _per_episode_kpis(episodes)
    for policy in report.policies:
        for site in report.sites:
            cell = report.cell(policy, site)
            if cell is None:
                continue
            rows = episodes[(episodes["policy"] == policy) & (episodes["site"] == site)]
            blocks.append(_section(cell, rows, kpis, root, out_dir))
    return blocks


def _section(
    cell: MatrixCell, rows: pd.DataFrame, kpis: dict[str, KPI], root: Path, out_dir: Path
) -> Block:
    home = " (home site)" if cell.is_home else ""
    title = f"{cell.policy} at {cell.site}{home}: {cell.successes}/{cell.episodes} successful"
    failed = "; ".join(f"{r.category} {r.episodes}" for r in cell.failures)
    summary = f"Failed by reason: {failed}." if failed else "Every episode succeeded."
    rows = rows.sort_values(_order(rows), kind="stable")
    labels = [_label(key, kpi) for key, kpi in kpis.items()]
    header = ["seed", "outcome", "reason", "replay", "steps", "parts", *labels]
    if _trained(rows):
        header.insert(0, "training seed")
    table = [_row(row, kpis, root, _trained(rows)) for _, row in rows.iterrows()]
    children: list[Block] = [
        ("h3", title),
        ("p", summary),
        ("table", header, table, "filterable"),
        *_clips(rows, root, out_dir),
        ("p", Link("Back to the transfer matrix", "#" + MATRIX_ANCHOR)),
    ]
    return ("section", cell_anchor(cell.policy, cell.site), children)


def _order(rows: pd.DataFrame) -> list[str]:
    return [c for c in ("policy_seed", "seed", "episode", "record") if c in rows]


def _trained(rows: pd.DataFrame) -> bool:
    return "policy_seed" in rows and bool(rows["policy_seed"].notna().any())


def _row(row: pd.Series, kpis: dict[str, KPI], root: Path, trained: bool) -> list[object]:
    success = bool(row["success"])
    outcome = Mark("success", "good") if success else Mark("failed", "bad")
    reason = "" if success else str(row.get("outcome") or row.get("ended_by") or "?")
    replay = Code(replay_command(root / str(row["record"])))
    cells: list[object] = [_number(row.get("seed")), outcome, reason, replay]
    cells += [_number(row.get("steps")), _parts(row)]
    cells += [_kpi_value(row, key, kpi) for key, kpi in kpis.items()]
    return [_number(row.get("policy_seed")), *cells] if trained else cells


def _per_episode_kpis(episodes: pd.DataFrame) -> dict[str, KPI]:
    """Episode-table column (or ``prefix_*``) -> the first KPI that reads it, in registry order."""
    keys: dict[str, KPI] = {}
    for kpi in KPIS.values():
        if kpi.summary_key in _NOT_PER_EPISODE or kpi.summary_key in keys:
            continue
        if kpi.reads(episodes.columns):
            keys[kpi.summary_key] = kpi
    return keys


def _label(key: str, kpi: KPI) -> str:
    if key in _LABELS:
        return _LABELS[key]
    label = kpi.column
    for word in _AGGREGATE_WORDS:
        label = label.removesuffix(word)
    return label


def _kpi_value(row: pd.Series, key: str, kpi: KPI) -> str:
    if key.endswith("*"):  # a count per kind: their sum (the events, when no summary)
        counts = [_float(row.get(c)) for c in kpi.reads(row.index)]
        finite = [c for c in counts if math.isfinite(c)]
        value = sum(finite) if finite else _float(row.get("violation_events"))
        return _number(value)
    value = _float(row.get(key))
    if not math.isfinite(value):
        return "n/a"
    if value.is_integer() and kpi.fmt in ("d", ".0f"):
        return str(int(value))
    fmt = kpi.fmt if "%" not in kpi.fmt else ".2f"
    return f"{value:{fmt}}"


def _parts(row: pd.Series) -> str:
    done, total = _float(row.get("parts_sorted")), _float(row.get("parts_total"))
    return f"{done:.0f}/{total:.0f}" if math.isfinite(done) and math.isfinite(total) else "n/a"


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _number(value: object) -> str:
    number = _float(value)
    if not math.isfinite(number):
        return "" if value is None or pd.isna(value) else str(value)  # type: ignore[call-overload]
    return str(int(number)) if number.is_integer() else f"{number:g}"


def _clips(rows: pd.DataFrame, root: Path, out_dir: Path) -> list[Block]:
    clips: list[Block] = []
    for _, row in rows[~rows["success"].astype(bool)].iterrows():
        href = find_clip(root, str(row["record"]), out_dir)
        if href is not None:
            alt = f"seed {_number(row.get('seed'))}: {row.get('outcome') or 'failed'}"
            clips.append(("media", href, alt))
    return clips


def find_clip(root: Path, record: str, out_dir: Path) -> str | None:
    """The clip of a record, as a path relative to ``out_dir``; None when there is none.

    Args:
        root: The campaign folder.
        record: The record's path relative to ``root`` (the ``record`` column).
        out_dir: The report folder.
    """
    for base in (Path(out_dir) / CLIPS_DIR / record, Path(root) / record):
        for suffix in CLIP_SUFFIXES:
            path = base.with_suffix(suffix)
            if path.is_file():
                return Path(os.path.relpath(path.resolve(), Path(out_dir).resolve())).as_posix()
    return None
