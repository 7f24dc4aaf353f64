"""Browse the episodes of a campaign: find records, summarise their outcome, filter them.

Only the records are read (``**/episodes/ep-*.npz``), and of each only its meta (cheap: the
arrays stay compressed on disk), so browsing works on a campaign folder copied from anywhere,
finished or not. A file that holds no usable record (damaged, or not a record at all) can be set
aside (`testbed.episodes.damaged_records.set_aside`) and listed, so that a rerun of the campaign
records it again.
"""

from __future__ import annotations

import shlex
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.episodes.damaged_records import SetAside, set_aside, set_aside_records
from testbed.episodes.records import RECORD_GLOB, EpisodeMeta, RecordError, read_meta

VIOLATION_PREFIX = "violation:"
METRIC_VIOLATION_PREFIX = "violations_"


@dataclass(frozen=True)
class EpisodeEntry:
    """One recorded episode, as the browser shows it.

    Attributes:
        path: The record file.
        meta: Its meta.
    """

    path: Path
    meta: EpisodeMeta

    @property
    def success(self) -> bool:
        """Whether every part ended in its bin (``success_at_end``) and no fault ended it."""
        return self.meta.ended_by != "fault" and bool(self.meta.metrics.get("success_at_end"))

    @property
    def outcome(self) -> str:
        """``success``, or why the episode failed (``lost: KR-CAP-300 at step 695``)."""
        return self.meta.outcome

    @property
    def violations(self) -> dict[str, int]:
        """Safety violations by kind: steps with a ``violation:<kind>`` event, else metrics."""
        counts = Counter(
            event[len(VIOLATION_PREFIX) :]
            for _, event in self.meta.events
            if event.startswith(VIOLATION_PREFIX)
        )
        for key, value in self.meta.metrics.items():
            kind = key[len(METRIC_VIOLATION_PREFIX) :]
            if key.startswith(METRIC_VIOLATION_PREFIX) and kind != "per_1000_steps" and value:
                counts.setdefault(kind, int(value))
        return dict(sorted(counts.items()))

    @property
    def fault_kinds(self) -> list[str]:
        """Kinds of the policy faults recorded, in step order, without repeats."""
        return list(dict.fromkeys(f.kind for f in self.meta.faults))

    def replay_command(self) -> str:
        """The shell command that replays and verifies this episode."""
        return replay_command(self.path)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (what ``testbed episodes --json`` prints)."""
        meta = self.meta
        return {
            "path": str(self.path),
            "campaign": meta.campaign,
            "trial": meta.trial,
            "episode": meta.episode,
            "site": meta.site,
            "policy": meta.policy,
            "policy_id": meta.policy_id,
            "home_site": meta.home_site,
            "seed": meta.seed,
            "outcome": self.outcome,
            "success": self.success,
            "success_at_end": meta.metrics.get("success_at_end"),
            "ended_by": meta.ended_by,
            "steps": meta.steps,
            "total_reward": meta.total_reward,
            "faults": self.fault_kinds,
            "violations": self.violations,
            "replay": self.replay_command(),
        }


def replay_command(record: Path) -> str:
    """The shell command that replays and verifies the episode recorded at ``record``."""
    return f"testbed replay {shlex.quote(str(record))}"


@dataclass(frozen=True)
class EpisodeFilter:
    """Which episodes to keep (every condition given must hold).

    Attributes:
        failed: Only episodes that did not end in success.
        site: Only episodes at this site.
        policy: Only episodes of this policy (its config name or ``id@version``).
        violation: Only episodes with at least one violation of this kind.
        fault: Only episodes with at least one policy fault.
    """

    failed: bool = False
    site: str | None = None
    policy: str | None = None
    violation: str | None = None
    fault: bool = False

    def keeps(self, entry: EpisodeEntry) -> bool:
        """Whether ``entry`` passes every condition."""
        meta = entry.meta
        return not (
            (self.failed and entry.success)
            or (self.site is not None and meta.site != self.site)
            or (self.policy is not None and self.policy not in (meta.policy, meta.policy_id))
            or (self.violation is not None and not entry.violations.get(self.violation))
            or (self.fault and not meta.faults)
        )


def find_episodes(
    campaign_dir: Path, damaged: list[SetAside] | None = None
) -> tuple[list[EpisodeEntry], list[str]]:
    """Every record under ``campaign_dir``, sorted by trial and episode.

    Args:
        campaign_dir: The campaign folder.
        damaged: If given, files that hold no usable record are set aside (renamed to
            ``*.npz.damaged``) and listed here, with those set aside earlier and not recorded
            again since; otherwise they are reported as problems and left in place.

    Returns:
        The readable episodes, and one message (naming the file) per record that could not
        be read and was not set aside.

    Raises:
        FileNotFoundError: If ``campaign_dir`` is not a folder.
    """
    root = Path(campaign_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such campaign folder")
    entries, problems, stuck = [], [], []
    for path in sorted(root.glob(f"**/{RECORD_GLOB}")):
        try:
            entries.append(EpisodeEntry(path, read_meta(path)))
        except RecordError as exc:
            if damaged is None or not exc.to_set_aside:
                problems.append(str(exc))
            elif (aside := set_aside(exc)).moved_to is None:
                stuck.append(aside)
    if damaged is not None:
        damaged.extend(sorted([*stuck, *set_aside_records(root)], key=lambda a: a.record))
    entries.sort(key=lambda e: (e.meta.trial, e.meta.episode, str(e.path)))
    return entries, problems


def select_episodes(entries: list[EpisodeEntry], where: EpisodeFilter) -> list[EpisodeEntry]:
    """The entries ``where`` keeps, in order."""
    return [entry for entry in entries if where.keeps(entry)]
