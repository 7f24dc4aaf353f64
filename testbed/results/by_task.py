"""Campaigns of several tasks: a matrix row is one policy on one task.

A campaign may sweep tasks with the same policy names (``factory_3tasks``: ``scripted_kr`` runs
the conveyor, peg-in-hole and palletizing controllers of its home site). Such a campaign's
episode table names each policy with its task (``scripted_kr · PegInHole``), so every figure,
link and ranking keeps the tasks apart; a one-task campaign keeps its names as they are.
"""

from __future__ import annotations

import pandas as pd

SEPARATOR = " · "


def task_label(env_id: str) -> str:
    """``Testbed/PegInHole-v0`` -> ``PegInHole`` (any other id as it is)."""
    name = env_id.removeprefix("Testbed/")
    stem, _, version = name.rpartition("-v")
    return stem if stem and version.isdigit() else name


def tasks_of(episodes: pd.DataFrame) -> tuple[str, ...]:
    """The env ids of the table's episodes, sorted (none for records that do not say)."""
    if "env_id" not in episodes.columns:
        return ()
    return tuple(sorted(str(e) for e in episodes["env_id"].dropna().unique()))


def name_policies_by_task(episodes: pd.DataFrame) -> pd.DataFrame:
    """The table with each policy named with its task when it holds more than one task.

    The name the policy ran under stays in ``policy_name``.
    """
    if len(tasks_of(episodes)) < 2:
        return episodes
    df = episodes.copy()
    df["policy_name"] = df["policy"]
    labels = df["env_id"].map(lambda e: task_label(str(e)) if pd.notna(e) else "?")
    df["policy"] = df["policy"].astype(str) + SEPARATOR + labels
    return df


def task_of_policy(episodes: pd.DataFrame) -> dict[str, str]:
    """Policy -> its task's label, for a table of several tasks (empty for one task)."""
    if len(tasks_of(episodes)) < 2:
        return {}
    first = episodes.dropna(subset=["env_id"]).groupby("policy")["env_id"].first()
    return {str(p): task_label(str(e)) for p, e in first.items()}
