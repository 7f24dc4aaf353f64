"""`Sim.state_bytes` / `Sim.restore_state_bytes`: a saved world continues bit for bit elsewhere.

Elsewhere means a world built the same way (same bodies, same ids) whose *history* differs: it
made and removed other bodies first, as an env does between episodes. PyBullet keys the saved
contacts by ids that count every body ever added, and it can restore only one contact manifold
per pair of collision objects; both must not show in the continued trajectory.
"""

from __future__ import annotations

import numpy as np
import pytest

from envs import _bullet_file
from envs.sim import Sim

DT = 1.0 / 240.0
BIN_SIZE = (0.3, 0.3, 0.15)
PART_HALF = (0.025, 0.025, 0.025)


def _world(churn: int) -> tuple[Sim, int]:
    """Floor, a bin, a part in the bin's corner; ``churn`` bodies made and removed before it."""
    sim = Sim(DT, (0.0, 0.0, -9.81))
    sim.load_urdf("plane.urdf", (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))
    sim.create_open_box(BIN_SIZE, (0.0, 0.0, 0.075), (0.0, 0.0, 0.0, 1.0), 0.01, (0, 0, 1, 1))
    for _ in range(churn):  # e.g. the parts of earlier episodes
        sim.remove_body(sim.create_box(PART_HALF, (2.0, 2.0, 0.1), mass=0.1))
    part = sim.create_box(PART_HALF, (-0.1, -0.1, 0.04), mass=0.2, friction=0.6)
    return sim, part


def _trajectory(sim: Sim, part: int, steps: int) -> np.ndarray:
    rows = []
    for _ in range(steps):
        # Push the part into the corner: it touches the floor and two walls of the bin.
        sim.client.applyExternalForce(part, -1, (-1.0, -1.0, 0.0), (0.0, 0.0, 0.0), 2)
        sim.step()
        position, orientation = sim.base_pose(part)
        velocity, spin = sim.base_velocity(part)
        rows.append([*position, *orientation, *velocity, *spin])
    return np.array(rows)


@pytest.mark.parametrize(("saved_churn", "restored_churn"), [(3, 0), (0, 2)])
def test_restored_state_continues_bit_identically_whatever_the_history(
    saved_churn: int, restored_churn: int
) -> None:
    original, part = _world(saved_churn)
    _trajectory(original, part, 120)  # settle into the corner, contacts warm
    blob = original.state_bytes()
    expected = _trajectory(original, part, 60)
    restored, same_part = _world(restored_churn)
    assert same_part == part  # body ids are reused; broadphase ids are not
    restored.restore_state_bytes(blob)
    assert _trajectory(restored, same_part, 60).tobytes() == expected.tobytes()
    original.close()
    restored.close()


def test_no_collision_object_has_more_than_one_shape() -> None:
    """A compound body would give one object two manifolds with another (the bin's corner)."""
    sim, part = _world(0)
    client = sim.client
    for index in range(client.getNumBodies()):
        body = client.getBodyUniqueId(index)
        for link in range(-1, client.getNumJoints(body)):
            assert len(client.getCollisionShapeData(body, link)) <= 1, (body, link)
    sim.close()


def test_collision_object_ids_are_read_and_rewritten() -> None:
    sim, _ = _world(2)
    blob = sim.state_bytes()
    ids = _bullet_file.collision_object_ids(blob)
    assert ids == sorted(ids) and len(ids) == 7  # floor, 5 bin boxes, the part
    assert ids[-1] == ids[-2] + 3  # two bodies made and removed in between
    renumbered = _bullet_file.with_collision_object_ids(blob, range(1, 8))
    assert _bullet_file.collision_object_ids(renumbered) == list(range(1, 8))
    assert len(renumbered) == len(blob)
    with pytest.raises(ValueError, match="holds 7 collision objects, the world 3"):
        _bullet_file.with_collision_object_ids(blob, [1, 2, 3])
    with pytest.raises(ValueError, match="not a .bullet file"):
        _bullet_file.collision_object_ids(b"PK\x03\x04 not bullet")
    sim.close()
