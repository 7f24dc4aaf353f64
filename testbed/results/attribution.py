"""Which model team, policy id and version each policy of a campaign is.

A policy's name (``policy.name``) is the campaign's label for it; its records also name the
team that runs it (``policy.team``, or the CN of its client certificate) and the id and version
its server reported at the handshake (``PolicySpec.policy_id``/``version``). The report's
"Teams and policies" table, the leaderboard (and ``leaderboard.csv``) and the transfer matrix
(``transfer_matrix.csv``: `testbed.results.evaluator.MatrixCell`) attribute every result to them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from testbed.results.report_blocks import Block


@dataclass(frozen=True)
class Attribution:
    """A policy's team, id and version ("" where the records name none; several: ``; ``)."""

    team: str = ""
    policy_id: str = ""
    version: str = ""


def policy_attribution(episodes: pd.DataFrame) -> dict[str, Attribution]:
    """Policy name -> its attribution, from the episode table (`load_episodes`)."""
    found: dict[str, Attribution] = {}
    for policy, rows in episodes.groupby("policy", sort=True):
        ids = _values(rows, "policy_id")
        found[str(policy)] = Attribution(
            team=_join(_values(rows, "team")),
            policy_id=_join(i.rpartition("@")[0] or i for i in ids),
            version=_join(i.rpartition("@")[2] for i in ids if "@" in i),
        )
    return found


def attributed(frame: pd.DataFrame, attribution: dict[str, Attribution]) -> pd.DataFrame:
    """``frame`` (with a ``policy`` column) with ``team``, ``policy_id`` and ``policy_version``."""
    out = frame.copy()
    blank = Attribution()
    column = out["policy"].astype(str) if "policy" in out else pd.Series([], dtype=str)
    out["team"] = [attribution.get(p, blank).team for p in column]
    out["policy_id"] = [attribution.get(p, blank).policy_id for p in column]
    out["policy_version"] = [attribution.get(p, blank).version for p in column]
    return out


def team_blocks(episodes: pd.DataFrame) -> list[Block]:
    """The "Teams and policies" section: one row per policy."""
    attribution = policy_attribution(episodes)
    homes = episodes.groupby("policy")["home_site"].first().to_dict()
    rows = [
        [policy, a.team or "-", a.policy_id or "-", a.version or "-", str(homes.get(policy, ""))]
        for policy, a in attribution.items()
    ]
    teams = sorted({a.team for a in attribution.values() if a.team})
    said = f"{len(teams)} team(s): {', '.join(teams)}." if teams else "No policy names a team."
    text = (
        f"{said} Each policy's team is the one its config names (policy.team, or the common "
        "name of its client certificate); its id and version are those its server reported at "
        "the handshake, as every episode record stores them."
    )
    header = ["policy", "team", "policy id", "version", "home site"]
    return [("h2", "Teams and policies", "teams"), ("p", text), ("table", header, rows)]


def _values(rows: pd.DataFrame, name: str) -> list[str]:
    if name not in rows:
        return []
    return [str(v) for v in rows[name].dropna() if str(v)]


def _join(values: Iterable[str]) -> str:
    return "; ".join(sorted({v for v in values if v}))
