"""A square hole built from box primitives: four walls around a gap, and a 45-degree lead-in.

PyBullet inserts box-primitive pegs into box-primitive holes at 0.1-3 mm clearance, where
convex-mesh pegs jam a few millimetres above the hole (DESIGN.md, "Tasks"). The hole stands on
a fixture's top face, which is its floor. Every box is its own static body (not one compound
shape), for the reason `envs.sim.Sim.create_open_box` gives: a saved state must restore the
contacts exactly.

The chamfer is four thin plates at 45 degrees on the walls' inner top edges: the walls stop
``chamfer`` below the mouth, and each plate's face runs from the wall's inner face there to
``chamfer`` further out at the mouth. Bullet's boxes have no bevelled edges, so this is the
primitive way to a lead-in; the plates overlap at the corners (static bodies may).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from envs.sim import Quat, Sim, Vec3

_WALL_COLOR = (0.45, 0.47, 0.52, 1.0)
_PLATE_M = 0.004  # thickness of a chamfer plate behind its face


@dataclass(frozen=True)
class HoleShape:
    """A hole's fit.

    Attributes:
        gap: Full width of the gap along the hole's x and y (m).
        depth: From the floor (the fixture's top face) to the mouth (m), chamfer included.
        chamfer: Width and height of the 45-degree lead-in (m); 0 for a sharp edge.
        wall: Wall thickness (m).
    """

    gap: tuple[float, float]
    depth: float
    chamfer: float
    wall: float


def hole_boxes(shape: HoleShape) -> list[tuple[Vec3, Vec3, float, float]]:
    """The hole's boxes in the hole frame (origin at the floor's centre, z up).

    Returns:
        (half extents, centre, pitch, yaw) of each box: four walls, then the chamfer plates.
    """
    gx, gy = shape.gap[0] / 2.0, shape.gap[1] / 2.0
    w, c = shape.wall, shape.chamfer
    h = shape.depth - c
    boxes: list[tuple[Vec3, Vec3, float, float]] = [
        ((w / 2.0, gy + w, h / 2.0), (gx + w / 2.0, 0.0, h / 2.0), 0.0, 0.0),
        ((w / 2.0, gy + w, h / 2.0), (-gx - w / 2.0, 0.0, h / 2.0), 0.0, 0.0),
        ((gx, w / 2.0, h / 2.0), (0.0, gy + w / 2.0, h / 2.0), 0.0, 0.0),
        ((gx, w / 2.0, h / 2.0), (0.0, -gy - w / 2.0, h / 2.0), 0.0, 0.0),
    ]
    if c <= 0.0:
        return boxes
    root = math.sqrt(0.5)
    # Each side, as (yaw, half-gap across it, half-gap along it): the plate's face runs from
    # (d, h) to (d + c, depth) in the side's (outward, z) plane; the plate lies behind it.
    for yaw, across, along in (
        (0.0, gx, gy),
        (math.pi / 2, gy, gx),
        (math.pi, gx, gy),
        (-math.pi / 2, gy, gx),
    ):
        out = across + c / 2.0 + root * _PLATE_M / 2.0
        z = h + c / 2.0 - root * _PLATE_M / 2.0
        half = (c * root, along + c, _PLATE_M / 2.0)
        centre = (out * math.cos(yaw), out * math.sin(yaw), z)
        boxes.append((half, centre, -math.pi / 4.0, yaw))
    return boxes


def build_hole(sim: Sim, shape: HoleShape, floor: Vec3, yaw: float) -> tuple[int, ...]:
    """Create the hole's static bodies on a floor point (the fixture's top-face centre)."""
    bodies = []
    for half, centre, pitch, box_yaw in hole_boxes(shape):
        at, orientation = _posed(sim, floor, yaw, centre, pitch, box_yaw)
        bodies.append(sim.create_box(half, at, orientation, 0.0, _WALL_COLOR))
    return tuple(bodies)


def place_hole(
    sim: Sim, bodies: tuple[int, ...], shape: HoleShape, floor: Vec3, yaw: float
) -> None:
    """Move the hole's bodies (made by `build_hole` with the same shape) to another floor point."""
    for body, (_, centre, pitch, box_yaw) in zip(bodies, hole_boxes(shape), strict=True):
        at, orientation = _posed(sim, floor, yaw, centre, pitch, box_yaw)
        sim.reset_base(body, at, orientation)


def _posed(
    sim: Sim, floor: Vec3, yaw: float, centre: Vec3, pitch: float, box_yaw: float
) -> tuple[Vec3, Quat]:
    cos, sin = math.cos(yaw), math.sin(yaw)
    at = (
        floor[0] + cos * centre[0] - sin * centre[1],
        floor[1] + sin * centre[0] + cos * centre[1],
        floor[2] + centre[2],
    )
    return at, sim.quat_from_euler((0.0, pitch, yaw + box_yaw))
