"""The episode table of a campaign folder: one row per episode record.

`load_episodes` reads every record (checked whole) into a table that the evaluator, the report,
the ranking and the compliance sections share: `testbed.episodes.rows.episode_row`'s columns
and what the testbed adds (success, outcome category, fault counts, paths).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from testbed.episodes.damaged_records import SetAside, set_aside, set_aside_records
from testbed.episodes.outcomes import SUCCESS_KEY, outcome_category
from testbed.episodes.records import (
    RECORD_GLOB,
    EpisodeMeta,
    RecordError,
    read_summary,
)
from testbed.episodes.rows import episode_row
from testbed.errors import TestbedError


def load_episodes(
    campaign_dir: Path,
    skipped: list[str] | None = None,
    damaged: list[SetAside] | None = None,
) -> pd.DataFrame:
    """The episode table of a campaign folder: one row per ``**/episodes/ep-*.npz`` record.

    Every record is checked whole (CRC of every member), so no figure rests on a damaged one.
    Besides `episode_row`'s columns (``outcome`` among them) it adds ``success``
    (``success_at_end``, False on a fault), ``outcome_category`` (`outcome_category`),
    ``deadline_misses`` and ``invalid_actions`` (fault counts), ``violation_events`` (safety
    violations recorded as events, also for episodes cut short without a metrics summary),
    ``end_fault`` and ``end_fault_message`` (the fault that ended the episode), ``trial_dir``
    and ``record`` (paths relative to ``campaign_dir``).

    Args:
        campaign_dir: The campaign folder.
        skipped: If given, unreadable records are appended here as messages instead of raising.
        damaged: If given, files that hold no usable record (damaged, or not a record) are set
            aside (`testbed.episodes.damaged_records.set_aside`) and listed here, with those set
            aside earlier and not recorded again since; otherwise they count as unreadable.

    Raises:
        TestbedError: If the folder holds no episode records.
        RecordError: On an unreadable record (a ValueError naming the file), unless
            ``skipped`` (or, for a damaged one, ``damaged``) is given.
    """
    root = Path(campaign_dir)
    rows, stuck = [], []
    for path in sorted(root.glob(f"**/{RECORD_GLOB}")):
        try:
            meta, latencies = read_summary(path, verify=True)
        except RecordError as exc:
            if damaged is not None and exc.to_set_aside:
                if (aside := set_aside(exc)).moved_to is None:
                    stuck.append(aside)
            elif skipped is not None:
                skipped.append(str(exc))
            else:
                raise
            continue
        rows.append(_row(meta, latencies, path, root))
    if damaged is not None:
        damaged.extend(sorted([*stuck, *set_aside_records(root)], key=lambda a: a.record))
    if not rows:
        raise TestbedError(f"{root}: no episode records found (expected <trial>/{RECORD_GLOB})")
    return _tidy(pd.DataFrame(rows))


def _row(meta: EpisodeMeta, latencies: np.ndarray | None, path: Path, root: Path) -> dict[str, Any]:
    row = episode_row(meta, latencies)
    kinds = [f.kind for f in meta.faults]
    fault_end = meta.ended_by == "fault" and bool(meta.faults)
    row.update(
        policy=meta.policy or meta.policy_id or "unknown",
        success=meta.ended_by != "fault" and bool(meta.metrics.get(SUCCESS_KEY, False)),
        outcome_category=outcome_category(meta.outcome),
        deadline_misses=sum(k == "deadline" for k in kinds),
        invalid_actions=sum(k.startswith("invalid_action") for k in kinds),
        violation_events=sum(event.startswith("violation:") for _, event in meta.events),
        end_fault=meta.faults[-1].kind if fault_end else "",
        end_fault_message=meta.faults[-1].message if fault_end else "",
        trial_dir=path.parent.parent.relative_to(root).as_posix(),
        record=path.relative_to(root).as_posix(),
    )
    return row


def _tidy(df: pd.DataFrame) -> pd.DataFrame:
    """Give bool or int columns with gaps a nullable dtype (Parquet refuses mixed objects)."""
    for name in [c for c in df.columns if df[c].dtype == object]:
        present = df[name].dropna()
        if present.empty or len(present) == len(df):
            continue
        if all(isinstance(v, bool | np.bool_) for v in present):
            df[name] = df[name].astype("boolean")
        elif all(isinstance(v, int | np.integer) for v in present):
            df[name] = df[name].astype("Int64")
    return df
