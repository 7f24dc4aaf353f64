"""Per-episode metrics: energy, speed, contact force and safety violations against a site profile.

`EpisodeMetrics` accumulates what a step measured and summarises the episode in the vocabulary
of DESIGN.md (success_once, success_at_end, cycle time, throughput, energy per part, violations).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from envs.factory.schema import SafetySpec

VIOLATION_KINDS = ("tcp_speed", "contact_force", "keep_out")


@dataclass
class EpisodeMetrics:
    """Running totals of one episode.

    Args:
        safety: The site's safety profile the episode is checked against.
    """

    safety: SafetySpec
    steps: int = 0
    energy_j: float = 0.0
    peak_tcp_speed_mps: float = 0.0
    peak_contact_force_n: float = 0.0
    violations: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VIOLATION_KINDS, 0))
    sorted_times_s: list[float] = field(default_factory=list)
    grasps: int = 0
    grip_losses: int = 0
    wrong_bin: int = 0
    lost: int = 0

    def state(self) -> dict[str, Any]:
        """The running totals as JSON values (``metrics``: field -> value), for env snapshots."""
        return {
            "metrics": {
                f.name: copy.deepcopy(getattr(self, f.name))
                for f in fields(self)
                if f.name != "safety"
            }
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Put back what `state` returned (fields it lacks keep their values)."""
        for name, value in state["metrics"].items():
            setattr(self, name, copy.deepcopy(value))

    def add_work(self, joules: float) -> None:
        """Add mechanical work already summed over joints and physics steps (`Sim.advance`)."""
        self.energy_j += joules

    def check_step(self, tool: np.ndarray, tool_speed: float, contact_force: float) -> list[str]:
        """Record one control step's safety readings; returns the violated limits' names."""
        self.steps += 1
        self.peak_tcp_speed_mps = max(self.peak_tcp_speed_mps, tool_speed)
        self.peak_contact_force_n = max(self.peak_contact_force_n, contact_force)
        violated = []
        if tool_speed > self.safety.max_tcp_speed_mps:
            violated.append("tcp_speed")
        if contact_force > self.safety.max_contact_force_n:
            violated.append("contact_force")
        if any(_inside(tool, zone.min_xyz, zone.max_xyz) for zone in self.safety.keep_out_zones):
            violated.append("keep_out")
        for kind in violated:
            self.violations[kind] += 1
        return violated

    def summary(
        self, parts_total: int, success_once: bool, success_at_end: bool, sim_time_s: float
    ) -> dict[str, float | int | bool]:
        """The episode summary placed in ``info["episode_metrics"]`` at the last step."""
        sorted_count = len(self.sorted_times_s)
        cycle = _mean_gap(self.sorted_times_s)
        total_violations = sum(self.violations.values())
        return {
            "success_once": success_once,
            "success_at_end": success_at_end,
            "parts_total": parts_total,
            "parts_sorted": sorted_count,
            "parts_wrong_bin": self.wrong_bin,
            "parts_lost": self.lost,
            "grasps": self.grasps,
            "grip_losses": self.grip_losses,
            "cycle_time_s": cycle,
            "throughput_parts_per_h": 3600.0 * sorted_count / sim_time_s if sim_time_s > 0 else 0.0,
            "energy_j": self.energy_j,
            "energy_per_part_j": self.energy_j / sorted_count if sorted_count else math.nan,
            "peak_tcp_speed_mps": self.peak_tcp_speed_mps,
            "peak_contact_force_n": self.peak_contact_force_n,
            "violations_tcp_speed": self.violations["tcp_speed"],
            "violations_contact_force": self.violations["contact_force"],
            "violations_keep_out": self.violations["keep_out"],
            "violations_per_1000_steps": 1000.0 * total_violations / max(self.steps, 1),
            "steps": self.steps,
            "sim_time_s": sim_time_s,
        }


def _inside(point: np.ndarray, low: tuple[float, ...], high: tuple[float, ...]) -> bool:
    x, y, z = point
    return low[0] <= x <= high[0] and low[1] <= y <= high[1] and low[2] <= z <= high[2]


def _mean_gap(times: list[float]) -> float:
    """Mean time per sorted part: from episode start to the first, then between sorts."""
    if not times:
        return math.nan
    return times[-1] / len(times)
