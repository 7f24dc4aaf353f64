"""A palletizing pattern in world coordinates: where each carton of a site's pattern goes.

Shared by the task (`envs.tasks.palletize`, which places and scores cartons) and the
feasibility checks (`envs.factory.finger_room`), so both read one geometry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from envs.factory.schema import SiteSpec
from envs.factory.task_sections import PalletizeSection


@dataclass(frozen=True)
class SlotPose:
    """Where one carton of the pattern goes, in world coordinates."""

    layer: int
    position: np.ndarray
    yaw: float


def slot_poses(site: SiteSpec, section: PalletizeSection) -> tuple[SlotPose, ...]:
    """The pattern's slots in world coordinates: the pallet's pose applied to each slot.

    A slot of layer ``k`` has its centre ``(k + 0.5)`` carton heights above the pallet's top.
    """
    station = site.station(section.pallet_station)
    (px, py, pz), (_, _, pyaw) = site.world_pose(station.station_id)
    top = pz + station.size_z / 2.0
    height = section.carton.size_m[2]
    cos, sin = math.cos(pyaw), math.sin(pyaw)
    return tuple(
        SlotPose(
            layer,
            np.array(
                [px + cos * x - sin * y, py + sin * x + cos * y, top + (layer + 0.5) * height]
            ),
            pyaw + yaw,
        )
        for layer, (x, y, yaw) in section.slots()
    )
