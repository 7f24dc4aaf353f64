"""Feasibility of finger grippers for the peg-in-hole and palletizing tasks a site lists.

The jaws close along one world direction for the whole episode: across the site's first
conveyor (`across_yaw` + 90 degrees; world y without a conveyor), the rule the env's finger
gripper follows (`envs.cells.gripper.make_gripper`). Two things can keep them from working:

- the part is wider across the jaws than they open (a peg's wider side; a carton turned to
  its slot's yaw, which it arrives with);
- no room beside it: a carton placed next to one already on the pallet, in the same layer,
  where the open jaws (`FingerInfo.jaw_reach_m` from the tool centre along the closing
  direction, `FingerInfo.jaw_half_width_m` across it) would reach into its neighbour.
  Tight interlocking patterns, a few millimetres between cartons, are built with suction or
  clamp grippers for this reason.

(Conveyor-sort parts are checked against the opening by the loader, `envs.factory.checks`.)
Each finding names the task's key in site.yaml, the value and what would fix it.
"""

from __future__ import annotations

import math

import numpy as np

from envs.factory.layout import Report
from envs.factory.pallet import SlotPose, slot_poses
from envs.factory.schema import SiteSpec
from envs.factory.task_sections import PalletizeSection, PegInHoleSection
from envs.robots.models import ROBOT_MODELS, FingerInfo


def across_yaw(spec: SiteSpec) -> float:
    """World yaw of the direction parts are aligned with: the first conveyor's, else 0."""
    conveyors = spec.stations_of("conveyor")
    return spec.world_pose(conveyors[0].station_id)[1][2] if conveyors else 0.0


def check_finger_room(spec: SiteSpec, report: Report) -> None:
    """Errors for the listed tasks whose parts the site's fingers cannot grip or place."""
    gripper = spec.site.robot.gripper
    if gripper.kind != "fingers":
        return
    info = ROBOT_MODELS[spec.site.robot.model].fingers
    opening = info.max_opening_m if gripper.opening_m is None else gripper.opening_m
    closing = across_yaw(spec) + math.pi / 2.0
    for section in spec.site.tasks:
        if isinstance(section, PegInHoleSection):
            _peg(section, opening, report)
        elif isinstance(section, PalletizeSection):
            _pallet(spec, section, info, opening, closing, report)


def _peg(section: PegInHoleSection, opening: float, report: Report) -> None:
    wide = max(section.peg_size_m[:2])
    if wide >= opening:
        report.site(
            "tasks[peg-in-hole].peg_size_m",
            repr(list(section.peg_size_m)),
            f"a peg the fingers can grip: its wider side {wide:g} m below the finger opening "
            f"{opening:g} m (site.yaml robot.gripper.opening_m), or a suction gripper",
        )


def _pallet(
    spec: SiteSpec,
    section: PalletizeSection,
    info: FingerInfo,
    opening: float,
    closing: float,
    report: Report,
) -> None:
    slots = slot_poses(spec, section)
    names = [
        f"layers[{layer}][{index}]"
        for layer, row in enumerate(section.layers)
        for index in range(len(row))
    ]
    reach = info.jaw_reach_m - (info.max_opening_m - opening) / 2.0
    half = (section.carton.size_m[0] / 2.0, section.carton.size_m[1] / 2.0)
    direction = (math.degrees(closing) + 180.0) % 360.0 - 180.0
    for i, slot in enumerate(slots):
        key = f"tasks[palletize].{names[i]}"
        across = 2.0 * _extent(half, slot.yaw, closing)
        if across >= opening:
            turned = (math.degrees(slot.yaw) + 90.0) % 180.0 - 90.0
            report.site(
                key,
                f"a carton {across:.3f} m across the jaws: they close along world yaw "
                f"{direction:.0f} deg, the carton arrives turned {turned:.0f} deg "
                "(the pallet's rz plus the slot's yaw)",
                f"at most the finger opening {opening:g} m: a pallet and slot turned so the "
                "carton's narrow side lies across the jaws, or a suction gripper",
            )
            continue
        for j in range(i):
            other = slots[j]
            if other.layer != slot.layer:
                continue
            depth = _jaw_overlap(slot, other, half, reach, info.jaw_half_width_m, closing)
            if depth > 0.0:
                report.site(
                    key,
                    f"the open jaws reach {reach:.3f} m each side of the carton's centre along "
                    f"world yaw {direction:.0f} deg and would hit the carton already in "
                    f"{names[j]} ({depth * 1000:.0f} mm into it)",
                    "room for the jaws beside the cartons of a layer (slots further apart "
                    "along the jaws, or an order that places this one first), or a suction "
                    "gripper",
                )
                break


def _extent(half: tuple[float, float], yaw: float, direction: float) -> float:
    """Half-extent along world ``direction`` of a box with half sides ``half`` turned ``yaw``."""
    delta = yaw - direction
    return abs(half[0] * math.cos(delta)) + abs(half[1] * math.sin(delta))


def _jaw_overlap(
    slot: SlotPose,
    other: SlotPose,
    half: tuple[float, float],
    reach: float,
    jaw_half_width: float,
    closing: float,
) -> float:
    """How deep the open jaws over ``slot`` reach into the carton in ``other`` (<= 0: clear).

    Both are rectangles in plan (the jaws' sweep: ``reach`` along the closing direction,
    ``jaw_half_width`` across it); separating axes: the smallest overlap over the four edge
    normals, negative if some axis separates them.
    """
    offset = np.asarray(other.position[:2] - slot.position[:2], dtype=np.float64)
    jaws = (closing, (reach, jaw_half_width))
    carton = (other.yaw, half)
    depth = math.inf
    for axis_yaw in (closing, closing + math.pi / 2.0, other.yaw, other.yaw + math.pi / 2.0):
        axis = np.array([math.cos(axis_yaw), math.sin(axis_yaw)])
        span = sum(_extent(h, yaw, axis_yaw) for yaw, h in (jaws, carton))
        depth = min(depth, span - abs(float(offset @ axis)))
    return depth
