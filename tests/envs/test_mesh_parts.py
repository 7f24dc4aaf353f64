"""A part of shape `mesh` (an OBJ under the bundle's assets/) builds and rides the belt."""

from __future__ import annotations

import shutil

import gymnasium as gym
import numpy as np

import envs  # noqa: F401
from envs.sites import resolve_site

CUBE_OBJ = """\
v -0.5 -0.5 -0.5
v 0.5 -0.5 -0.5
v 0.5 0.5 -0.5
v -0.5 0.5 -0.5
v -0.5 -0.5 0.5
v 0.5 -0.5 0.5
v 0.5 0.5 0.5
v -0.5 0.5 0.5
f 1 3 2
f 1 4 3
f 5 6 7
f 5 7 8
f 1 2 6
f 1 6 5
f 2 3 7
f 2 7 6
f 3 4 8
f 3 8 7
f 4 1 5
f 4 5 8
"""


def test_a_mesh_part_from_the_bundle_assets_is_built(tmp_path) -> None:
    bundle = tmp_path / "mesh-site"
    shutil.copytree(resolve_site("kr-changwon"), bundle)
    (bundle / "assets").mkdir(exist_ok=True)
    (bundle / "assets" / "unit_cube.obj").write_text(CUBE_OBJ)
    parts = (bundle / "parts.csv").read_text().splitlines()
    header, first, rest = parts[0], parts[1].split(","), parts[2:]
    first[2], first[-1] = "mesh", "assets/unit_cube.obj"
    (bundle / "parts.csv").write_text("\n".join([header, ",".join(first), *rest]) + "\n")
    env = gym.make("Testbed/ConveyorSort-v0", site=str(bundle))
    try:
        observation, _ = env.reset(seed=0)
        for _ in range(30):
            observation, *_ = env.step(np.zeros(4, dtype=np.float32))
        assert all(np.isfinite(v).all() for v in observation.values())
    finally:
        env.close()
