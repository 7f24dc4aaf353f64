"""The conveyor-sort task: parts arrive on the belt; sort each into the bin for its type.

Part lifecycle: ``waiting`` (parked off-cell until its arrival time) -> ``belt`` -> ``held`` ->
``free`` (released or dropped, moving) -> ``sorted`` (in its bin) | ``wrong_bin`` | ``lost``
(on the floor or off the belt's end). A ``free`` part that lands back on the belt is ``belt``
again.

Success rule: ``success_at_end`` = every part of the episode lies in its correct bin at the
last step; ``success_once`` = every part was in its correct bin at some step.

Outcome reason (`ConveyorSortTask.outcome`): ``success``, else the main cause, first match of
``lost: <part_id> at step <n>``, ``wrong bin: <part_id> in <bin station> at step <n>``, ``time
limit with <k>/<n> parts sorted`` and, for an episode stopped before its end, ``step cap at step
<n> with <k>/<n> parts sorted``. Part ids are parts.csv's, bins stations.csv's, steps control
steps (the index of the action that led to it, as episode records count them). More parts of
the same kind are counted in parentheses: ``lost: KR-PCB-100 at step 271 (3 parts lost)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from envs.cells.cell import Cell
from envs.factory.schema import Part, SiteSpec
from envs.factory.task_sections import ConveyorSortSection

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
    #: Control step at which the part reached its status ``sorted``, ``wrong_bin`` or ``lost``.
    resolved_step: int | None = None
    #: Bin (index into the cell's bins) the part lies in, while ``sorted`` or ``wrong_bin``.
    in_bin: int | None = None


def sample_schedule(site: SiteSpec, rng: np.random.Generator) -> list[tuple[str, float]]:
    """Draw the episode's parts and arrival times from the site's production log."""
    process = site.arrival_process
    part_ids = sorted(process.part_shares)
    shares = np.array([process.part_shares[p] for p in part_ids], dtype=np.float64)
    shares /= shares.sum()
    gaps = np.asarray(process.inter_arrival_s, dtype=np.float64)
    count = site.site.task_section(ConveyorSortSection).parts_per_episode
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

    def update(self, held_body: int | None, step: int) -> list[str]:
        """Update part statuses from the poses `observe` read; returns events.

        Args:
            held_body: The body on the suction cup, if any.
            step: The control step (index of the action just applied), kept with each part
                that reaches a final status (for the outcome reason).
        """
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
            events.extend(self._settle(p, step))
        return events

    def _settle(self, p: PartInstance, step: int) -> list[str]:
        if p.status in ("sorted", "wrong_bin"):
            in_bin = self.cell.bin_containing(p.position)
            if in_bin is None:
                p.status = "free"  # knocked out of its bin
                p.resolved_step = p.in_bin = None
            return []
        if p.status == "lost":
            return []
        in_bin = self.cell.bin_containing(p.position)
        if in_bin is not None:
            correct = in_bin == p.bin_index
            p.status = "sorted" if correct else "wrong_bin"
            p.ever_sorted = p.ever_sorted or correct
            p.resolved_step, p.in_bin = step, in_bin
            return [f"{p.status}:{p.part.part_id}"]
        cell = self.cell
        beyond_end = cell.along_belt(p.position) > cell.belt_half_length + 0.05
        fallen = p.position[2] < cell.belt_top_z - 0.03  # and, from above, not in a bin
        if beyond_end or fallen:
            p.status = "lost"
            p.resolved_step = step
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

    def outcome(self, step: int, time_limit_reached: bool) -> str:
        """Why the episode stands as it does (module docstring): ``success`` or the main cause.

        Args:
            step: Control steps taken so far.
            time_limit_reached: Whether the episode ran to its time limit; otherwise an
                unfinished episode was stopped by its caller (a step cap).
        """
        if self.success_at_end():
            return "success"
        lost = self._first_resolved("lost")
        if lost is not None:
            first, count = lost
            return f"lost: {first.part.part_id}{_at(first.resolved_step)}{_more(count, 'lost')}"
        wrong = self._first_resolved("wrong_bin")
        if wrong is not None:
            first, count = wrong
            where = "" if first.in_bin is None else f" in {self.cell.bins[first.in_bin].station_id}"
            more = _more(count, "in a wrong bin")
            return f"wrong bin: {first.part.part_id}{where}{_at(first.resolved_step)}{more}"
        done = sum(p.status == "sorted" for p in self.parts)
        progress = f"with {done}/{len(self.parts)} parts sorted"
        if time_limit_reached:
            return f"time limit {progress}"
        return f"step cap at step {step} {progress}"

    def _first_resolved(self, status: str) -> tuple[PartInstance, int] | None:
        """The part that reached ``status`` first (by step, then arrival), and how many did."""
        parts = [p for p in self.parts if p.status == status]
        if not parts:
            return None
        first = min(parts, key=lambda p: (p.resolved_step or 0, p.index))
        return first, len(parts)

    # ------------------------------------------------------------------ snapshots

    def state(self) -> dict[str, Any]:
        """The part lifecycle, for env snapshots.

        ``parts``: one JSON object per part (identity: id, arrival, body; status and flags);
        ``part_position`` and ``part_velocity`` (parts, 3): the poses `observe` last read.
        """
        return {
            "parts": [
                {
                    "part_id": p.part.part_id,
                    "arrival_s": p.arrival_s,
                    "body": p.body,
                    "status": p.status,
                    "ever_sorted": p.ever_sorted,
                    "grasped_once": p.grasped_once,
                    "resolved_step": p.resolved_step,
                    "in_bin": p.in_bin,
                }
                for p in self.parts
            ],
            "part_position": np.array([p.position for p in self.parts], np.float64).reshape(-1, 3),
            "part_velocity": np.array([p.velocity for p in self.parts], np.float64).reshape(-1, 3),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Put back a `state` of the same episode.

        Raises:
            ValueError: If the state's parts (ids, arrival times, bodies) are not this task's:
                it belongs to another episode (reset with that episode's seed first).
        """
        saved = [(p["part_id"], p["arrival_s"], p["body"]) for p in state["parts"]]
        built = [(p.part.part_id, p.arrival_s, p.body) for p in self.parts]
        if saved != built:
            raise ValueError(
                "the env's part schedule differs from the saved one "
                f"(first parts {saved[:2]} vs {built[:2]}); reset it with the episode's seed first"
            )
        rows = zip(
            self.parts, state["parts"], state["part_position"], state["part_velocity"], strict=True
        )
        for p, saved_part, position, velocity in rows:
            p.status = saved_part["status"]
            p.ever_sorted = saved_part["ever_sorted"]
            p.grasped_once = saved_part["grasped_once"]
            p.resolved_step = saved_part["resolved_step"]
            p.in_bin = saved_part["in_bin"]
            p.position = np.array(position, dtype=np.float64)
            p.velocity = np.array(velocity, dtype=np.float64)


def _at(step: int | None) -> str:
    return "" if step is None else f" at step {step}"


def _more(count: int, what: str) -> str:
    return f" ({count} parts {what})" if count > 1 else ""
