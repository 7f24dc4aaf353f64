"""The cell camera frames the whole cell at every shipped site, for every task and image shape.

Checked with the matrices the renderer uses (`envs.render.project`): the layout's bounds
project inside the image, and so does the robot's own AABB as PyBullet measures it, and in the
rendered segmentation mask no robot pixel touches the image border.
"""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the env ids)
from envs.cells import framing
from envs.render import matrices, project
from envs.sites import list_sites, load_site

TASKS = ("ConveyorSort", "PegInHole", "Palletize", "TouchPart")
SIZES = ((320, 240), (160, 120), (320, 199), (240, 320), (640, 360))


def _inside(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    return (
        np.isfinite(pixels).all(axis=1)
        & (pixels[:, 0] >= 0)
        & (pixels[:, 0] <= width)
        & (pixels[:, 1] >= 0)
        & (pixels[:, 1] <= height)
    )


def _robot_aabb_corners(client, body: int) -> np.ndarray:
    lows, highs = [], []
    for link in range(-1, client.getNumJoints(body)):
        low, high = client.getAABB(body, link)
        lows.append(low)
        highs.append(high)
    low, high = np.min(lows, axis=0), np.max(highs, axis=0)
    return np.array(list(itertools.product(*zip(low, high, strict=True))), dtype=np.float64)


@pytest.mark.parametrize("site", list_sites())
@pytest.mark.parametrize("task", TASKS)
def test_the_whole_cell_is_in_frame(site: str, task: str) -> None:
    env = gym.make(f"Testbed/{task}-v0", site=site, render_mode="rgb_array")
    try:
        env.reset(seed=0)
        cell, client = env.unwrapped.cell, env.unwrapped.sim.client
        bounds = framing.cell_bounds(cell.site)
        robot = _robot_aabb_corners(client, cell.arm.body)
        for width, height in SIZES:
            camera = cell.camera(width / height)
            pixels = project(client, camera, bounds, width, height)
            assert _inside(pixels, width, height).all(), (site, task, width, height)
            # Framed tightly: the bounds span most of the image along one axis at least.
            span = (pixels.max(axis=0) - pixels.min(axis=0)) / (width, height)
            assert span.max() > 0.9, span
            assert _inside(project(client, camera, robot, width, height), width, height).all()
    finally:
        env.close()


@pytest.mark.parametrize("site", list_sites())
def test_no_robot_pixel_touches_the_border(site: str) -> None:
    env = gym.make("Testbed/ConveyorSort-v0", site=site, render_mode="rgb_array")
    try:
        env.reset(seed=0)
        cell, client = env.unwrapped.cell, env.unwrapped.sim.client
        width, height = 320, 240
        view, proj = matrices(client, cell.camera(width / height), width / height)
        mask = np.asarray(
            client.getCameraImage(width, height, view, proj, renderer=client.ER_TINY_RENDERER)[4]
        ).reshape(height, width)
        robot = (mask & ((1 << 24) - 1)) == cell.arm.body
        assert robot.sum() > 300  # the arm is there, not a speck (us-austin: 452 px)
        border = np.concatenate([robot[0], robot[-1], robot[:, 0], robot[:, -1]])
        assert not border.any()
        frame = env.render()
        assert frame is not None and frame.shape == (height, width, 3)
    finally:
        env.close()


def test_the_old_fixed_view_cut_the_robot_off() -> None:
    """The check can fail: the eye and target the cell camera had before put bounds outside."""
    import pybullet

    from envs.render import Camera

    site = load_site("kr-changwon")
    old = Camera(eye=(1.2, 0.0, 1.0), target=(0.21, 0.27, 0.05))
    pixels = project(pybullet, old, framing.cell_bounds(site), 320, 240)
    assert not _inside(pixels, 320, 240).all()


def test_points_behind_the_camera_project_to_nan() -> None:
    import pybullet

    from envs.render import Camera

    camera = Camera(eye=(1.0, 0.0, 1.0), target=(0.0, 0.0, 1.0))
    pixels = project(pybullet, camera, np.array([[0.0, 0.0, 1.0], [2.0, 0.0, 1.0]]), 320, 240)
    assert np.allclose(pixels[0], (160.0, 120.0))
    assert np.isnan(pixels[1]).all()
