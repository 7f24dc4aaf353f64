"""The conveyor-sort task: parts arrive on the belt; sort each into the bin for its type.

Part lifecycle: ``waiting`` (parked off-cell until its arrival time) -> ``belt`` -> ``held`` ->
``free`` (released or dropped, moving) -> ``sorted`` (in its bin) | ``wrong_bin`` | ``lost``
(on the floor or off the belt's end). A ``free`` part that lands back on the belt is ``belt``
again.

Success rule: ``success_at_end`` = every part of the episode lies in its correct bin at the
last step; ``success_once`` = every part was in its correct bin at some step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from envs.cells.cell import Cell
from envs.factory.schema import Part, SiteSpec

FIRST_ARRIVAL_S = 0.5
RESOLVED = ("sorted", "wrong_bin", "lost")


@dataclass
class PartInstance:
    """One part of an episode."""

    index: int
    part: Part
    bin_index: int
    arrival_s: float
    body: int = -1
    status: str = "waiting"
    ever_sorted: bool = False
    grasped_once: bool = False
    position: np.ndarray = field(default_factory=lambda: np.zeros(3))
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(3))


def sample_schedule(site: SiteSpec, rng: np.random.Generator) -> list[tuple[str, float]]:
    """Draw the episode's parts and arrival times from the site's production log."""
    process = site.arrival_process
    part_ids = sorted(process.part_shares)
    shares = np.array([process.part_shares[p] for p in part_ids], dtype=np.float64)
    shares /= shares.sum()
    gaps = np.asarray(process.inter_arrival_s, dtype=np.float64)
    count = site.site.task.parts_per_episode
    chosen = rng.choice(len(part_ids), size=count, p=shares)
    times = FIRST_ARRIVAL_S + np.concatenate([[0.0], np.cumsum(rng.choice(gaps, size=count - 1))])
    return [(part_ids[int(i)], float(t)) for i, t in zip(chosen, times, strict=True)]


class ConveyorSortTask:
    """Tracks the parts of one episode and scores what happens to them."""

    def __init__(self, cell: Cell, schedule: list[tuple[str, float]]) -> None:
        self.cell = cell
        site = cell.site
        self.parts = [
            PartInstance(i, site.part(pid), site.bin_index_for(pid), t)
            for i, (pid, t) in enumerate(schedule)
        ]
        for instance in self.parts:
            instance.body = cell.create_part(instance.part, instance.index)
        self._by_body = {p.body: p for p in self.parts}

    # ------------------------------------------------------------------ per physics step

    def belt_bodies(self) -> list[int]:
        """Bodies the belt should carry this physics step."""
        return [p.body for p in self.parts if p.status == "belt"]

    # ------------------------------------------------------------------ per control step

    def arrive(self, now_s: float) -> list[str]:
        """Place parts whose arrival time has come on the belt; returns events."""
        events = []
        for p in self.parts:
            if p.status == "waiting" and now_s >= p.arrival_s:
                self.cell.place_on_belt(p.body, p.part)
                p.status = "belt"
                events.append(f"arrive:{p.part.part_id}")
        return events

    def observe(self) -> None:
        """Read the pose and velocity of every part in the cell (once per step, after physics)."""
        sim = self.cell.sim
        for p in self.parts:
            if p.status == "waiting":
                continue
            position, _ = sim.base_pose(p.body)
            velocity, _ = sim.base_velocity(p.body)
            p.position = np.array(position, dtype=np.float64)
            p.velocity = np.array(velocity, dtype=np.float64)

    def positions(self) -> dict[int, np.ndarray]:
        """Body -> position of the parts in the cell, as `observe` last read them."""
        return {p.body: p.position for p in self.parts if p.status != "waiting"}

    def update(self, held_body: int | None) -> list[str]:
        """Update part statuses from the poses `observe` read; returns events."""
        events: list[str] = []
        for p in self.parts:
            if p.status == "waiting":
                continue
            if p.body == held_body:
                if not p.grasped_once:
                    events.append(f"grasp:{p.part.part_id}")
                p.grasped_once = True
                p.status = "held"
                continue
            events.extend(self._settle(p))
        return events

    def _settle(self, p: PartInstance) -> list[str]:
        if p.status in ("sorted", "wrong_bin"):
            in_bin = self.cell.bin_containing(p.position)
            if in_bin is None:
                p.status = "free"  # knocked out of its bin
            return []
        if p.status == "lost":
            return []
        in_bin = self.cell.bin_containing(p.position)
        if in_bin is not None:
            correct = in_bin == p.bin_index
            p.status = "sorted" if correct else "wrong_bin"
            p.ever_sorted = p.ever_sorted or correct
            return [f"{p.status}:{p.part.part_id}"]
        cell = self.cell
        beyond_end = cell.along_belt(p.position) > cell.belt_half_length + 0.05
        fallen = p.position[2] < cell.belt_top_z - 0.03  # and, from above, not in a bin
        if beyond_end or fallen:
            p.status = "lost"
            return [f"lost:{p.part.part_id}"]
        p.status = "belt" if cell.on_belt(p.body) else "free"
        return []

    # ------------------------------------------------------------------ queries

    def current(self) -> PartInstance | None:
        """The part a policy should work on: the held one, else the earliest unresolved arrival."""
        candidates = [p for p in self.parts if p.status not in RESOLVED and p.status != "waiting"]
        held = [p for p in candidates if p.status == "held"]
        if held:
            return held[0]
        return candidates[0] if candidates else None

    def graspable(self) -> dict[int, Part]:
        """Parts the suction cup may pick up: on the belt or lying free."""
        return {p.body: p.part for p in self.parts if p.status in ("belt", "free")}

    def done(self) -> bool:
        """Every part has arrived and been resolved."""
        return all(p.status in RESOLVED for p in self.parts)

    def success_at_end(self) -> bool:
        """Every part lies in its correct bin now."""
        return all(p.status == "sorted" for p in self.parts)

    def success_once(self) -> bool:
        """Every part was in its correct bin at some step."""
        return all(p.ever_sorted for p in self.parts)
