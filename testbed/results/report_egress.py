"""What of a campaign's per-episode assets the report may carry, by the egress gate.

The report's aggregates (the transfer matrix, KPI tables and figures) are aggregate metrics.
Its per-episode assets are not: the ``episodes.csv``/``.parquet`` copies and the episode
tables are episode records, the clips of failed episodes are video. For each site the gate
decides once per class (`testbed.governance`); a refused site's rows and clips are left out
and the report says what was withheld, under which rule and how to clear it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from envs.factory.governance import ArtifactClass
from testbed.episodes.records import RecordError, read_meta
from testbed.governance.classes import Artifact, Tags
from testbed.governance.gate import Decision, Destination, EgressGate, governance_root
from testbed.governance.records import EgressRequest, site_governance
from testbed.results.report_blocks import Block

#: The per-episode assets of a report, by class, as clearances name them.
ASSETS: dict[ArtifactClass, str] = {
    "episode_records": "report/episodes",
    "images_video": "report/clips",
}


@dataclass(frozen=True)
class Withheld:
    """One site's assets of one class left out of the report.

    Attributes:
        site: The site.
        artifact_class: What was left out.
        rows: Episodes affected.
        decision: The gate's refusal.
    """

    site: str
    artifact_class: str
    rows: int
    decision: Decision

    def describe(self) -> str:
        """One line: what, whose, which rule, how to clear it."""
        hints = self.decision.refusal().hints
        return (
            f"{self.artifact_class} of {self.site} ({self.rows} episodes) withheld from "
            f"{self.decision.destination.recipient!r}: {self.decision.rule} "
            f"({self.decision.reason}); {hints[0] if hints else ''}"
        )


@dataclass(frozen=True)
class GatedEpisodes:
    """The episode rows the report may carry, per class, and what it withholds.

    Attributes:
        records: Rows for ``episodes.csv``/``.parquet`` and the episode tables.
        clips: Rows whose failed episodes may be filmed or shown as clips.
        withheld: What was left out, per site and class.
    """

    records: pd.DataFrame
    clips: pd.DataFrame
    withheld: tuple[Withheld, ...]


def gate_report(
    episodes: pd.DataFrame, root: Path, out_dir: Path, egress: EgressRequest | None
) -> GatedEpisodes:
    """Ask the gate, per site and class, whether the report may carry its episode assets."""
    request = egress or EgressRequest()
    if episodes.empty or "site" not in episodes.columns:
        return GatedEpisodes(episodes, episodes, ())
    keep: dict[str, pd.Series] = {}
    withheld: list[Withheld] = []
    sites = sorted(str(site) for site in episodes["site"].unique())
    rules = {}
    tags: dict[str, str] = {}
    for site in sites:
        tags[site], rules[site] = site_governance(_site_ref(episodes, root, site))
    gate = EgressGate(governance_root(root), rules)
    for artifact_class, name in ASSETS.items():
        mask = pd.Series(True, index=episodes.index)
        for site in sites:
            artifact = Artifact(name, Tags(site, tags[site], artifact_class), request.redacted)
            to = Destination(request.recipient or site, Path(out_dir))
            decision = gate.check(artifact, to, request.requester, request.basis)
            if not decision.allowed:
                rows = episodes["site"] == site
                mask &= ~rows
                withheld.append(Withheld(site, artifact_class, int(rows.sum()), decision))
        keep[artifact_class] = mask
    return GatedEpisodes(
        episodes[keep["episode_records"]].reset_index(drop=True),
        episodes[keep["images_video"] & keep["episode_records"]].reset_index(drop=True),
        tuple(withheld),
    )


def withheld_blocks(withheld: tuple[Withheld, ...]) -> list[Block]:
    """The report's "Withheld by the sites' egress rules" section (none when nothing was)."""
    if not withheld:
        return []
    return [
        ("h2", "Withheld by the sites' egress rules"),
        (
            "p",
            "These sites' rules keep the following in their stores; the matrix and KPIs above "
            "still count their episodes (aggregate metrics). See docs/governance.md.",
        ),  # fmt: skip
        ("ul", [item.describe() for item in withheld]),
    ]


def _site_ref(episodes: pd.DataFrame, root: Path, site: str) -> str:
    """The bundle the site's episodes ran on (a record's env kwargs), else the site id."""
    if "record" not in episodes.columns:
        return site
    first = episodes.loc[episodes["site"] == site, "record"].iloc[0]
    try:
        meta = read_meta(Path(root) / str(first))
    except (RecordError, OSError):
        return site
    return str(meta.env_kwargs.get("site", site))
