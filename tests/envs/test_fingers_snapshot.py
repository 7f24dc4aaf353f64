"""Finger grippers: a snapshot taken while the jaws hold a part restores bit for bit, per robot.

Scripted ConveyorSort with ``robot.gripper.kind: fingers`` (a copied shipped bundle) until a
part has been held for a few steps; the snapshot, restored in a fresh env, must continue the
episode with the same observations.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from envs.conveyor_sort import ConveyorSortEnv
from tests.envs.test_fingers_env import finger_bundle, same, scripted_episode

# (site, seed, steps): each seed's first part is held for 4 steps well before ``steps``.
CASES = [
    ("kr-changwon", 3, 190),
    pytest.param("jp-nagoya", 0, 370, marks=pytest.mark.slow),  # slow belt: the first grasp late
    ("us-austin", 3, 260),
]


@pytest.mark.parametrize(("site", "seed", "steps"), CASES)
def test_snapshot_mid_grasp_restores_bit_for_bit(
    tmp_path: Path, site: str, seed: int, steps: int
) -> None:
    env = ConveyorSortEnv(site=str(finger_bundle(site, tmp_path)))
    actions, observations, blob, start = scripted_episode(env, site, seed, steps, 4)
    assert blob is not None, "expected a part held by the fingers for 4 steps"
    env.close()
    again = ConveyorSortEnv(site=str(finger_bundle(site, tmp_path / "again")))
    again.reset(seed=seed)
    same(again.load_snapshot(blob), observations[start], "restored")
    assert again.gripper.held is not None
    for t in range(start, len(actions)):
        observation, *_ = again.step(actions[t])
        same(observation, observations[t + 1], f"step {t}")
    again.close()
