"""What a cell env's world holds, for exporters: visual shapes, link poses, contacts, the tool.

An exporter (``testbed replay --rerun``) describes the scene once (`visual_shapes`: every
body's boxes, cylinders, spheres and meshes in its links' frames) and then reads, at each
step, where each link is (`link_poses`), where the tool is (`tool_position`) and the contact
forces (`contact_forces`). These read the simulator and change nothing, so a replay that
exports stays bit-identical. Like `envs.render`, the functions use the env's client object,
so `envs.sim` stays the only module that imports pybullet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from envs.core import CellEnv

Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]

#: PyBullet's geometry types (``GEOM_*``), by name.
_KINDS = {2: "sphere", 3: "box", 4: "cylinder", 5: "mesh", 6: "plane", 7: "capsule"}


@dataclass(frozen=True)
class VisualShape:
    """One visual shape of one link of a body.

    Attributes:
        body: The body's id.
        link: The link (-1: the base).
        kind: ``box``, ``sphere``, ``cylinder``, ``capsule``, ``mesh`` or ``plane``.
        size: Box: full extents; sphere: (radius, 0, 0); cylinder and capsule: (length,
            radius, 0); mesh: its scale; plane: unused.
        mesh: The mesh file (meshes only).
        position: Where the shape sits in the link's frame.
        orientation: Its rotation in the link's frame (x, y, z, w).
        rgba: Its colour.
    """

    body: int
    link: int
    kind: str
    size: Vec3
    mesh: str | None
    position: Vec3
    orientation: Quat
    rgba: tuple[float, float, float, float]


def _check(env: Any) -> CellEnv:
    unwrapped = getattr(env, "unwrapped", env)
    if not isinstance(unwrapped, CellEnv) or unwrapped.cell is None:
        raise TypeError(f"expected a reset testbed cell env, got {type(unwrapped).__name__}")
    return unwrapped


def bodies(env: Any) -> dict[int, str]:
    """Every body of the world, by id, with a name for it.

    ``robot``, ``floor`` and ``conveyor`` for the cell's own; a loaded model's name otherwise
    (a co-worker's, say), else ``body_<id>``.
    """
    unwrapped = _check(env)
    cell, client = unwrapped.cell, unwrapped.sim.client
    assert cell is not None
    known = {cell.arm.body: "robot", cell.floor: "floor", cell.conveyor: "conveyor"}
    names = {}
    for body in sorted(client.getBodyUniqueId(i) for i in range(client.getNumBodies())):
        name = (client.getBodyInfo(body)[1] or b"").decode("utf-8", "replace")
        names[body] = known.get(body) or (f"{name}_{body}" if name else f"body_{body}")
    return names


def visual_shapes(env: Any) -> list[VisualShape]:
    """The visual shapes of every body (in the frames `link_poses` places)."""
    client = _check(env).sim.client
    shapes = []
    for body in bodies(env):
        for row in client.getVisualShapeData(body):
            kind = _KINDS.get(int(row[2]), f"geometry-{row[2]}")
            mesh = row[4].decode("utf-8", "replace") if kind == "mesh" and row[4] else None
            shapes.append(
                VisualShape(body, int(row[1]), kind, _vec(row[3]), mesh, _vec(row[5]),
                            _quat(row[6]), tuple(float(c) for c in row[7]))  # type: ignore[arg-type]
            )  # fmt: skip
    return shapes


def link_poses(env: Any, body: int) -> dict[int, tuple[Vec3, Quat]]:
    """World pose of each link frame of ``body`` (-1: the base), the frames shapes sit in.

    The base's frame is its URDF link frame: the centre-of-mass pose PyBullet reports, less
    the base's inertial offset.
    """
    client = _check(env).sim.client
    position, orientation = client.getBasePositionAndOrientation(body)
    inertial = client.getDynamicsInfo(body, -1)[3:5]
    inverse = client.invertTransform(inertial[0], inertial[1])
    base = client.multiplyTransforms(position, orientation, inverse[0], inverse[1])
    poses = {-1: (_vec(base[0]), _quat(base[1]))}
    count = client.getNumJoints(body)
    if count:
        states = client.getLinkStates(body, list(range(count)), computeForwardKinematics=True)
        for link, state in enumerate(states):
            poses[link] = (_vec(state[4]), _quat(state[5]))
    return poses


def tool_position(env: Any) -> np.ndarray:
    """The robot's tool centre point (world frame, m)."""
    cell = _check(env).cell
    assert cell is not None
    return np.asarray(cell.arm.tool_state()[0], dtype=np.float64)


def contact_forces(env: Any) -> np.ndarray:
    """Contacts with a normal force.

    Returns:
        N x 7 rows: the point on body B, the unit normal from B towards A, the force (N).
    """
    client = _check(env).sim.client
    rows = [(*c[6], *c[7], c[9]) for c in client.getContactPoints() if c[9] > 0.0]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 7)


def _vec(v: Any) -> Vec3:
    return (float(v[0]), float(v[1]), float(v[2]))


def _quat(q: Any) -> Quat:
    return (float(q[0]), float(q[1]), float(q[2]), float(q[3]))
