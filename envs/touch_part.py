"""`Testbed/TouchPart-v0`: put the suction cup on the top face of a part resting on the belt.

The reach-and-touch sub-skill of conveyor sorting, small enough to learn with PPO in minutes
on a CPU. The line is stopped: one part, drawn from the site's production log, rests at a
random spot of the belt's pick window, and the tool must reach the centre of its top face. The
cell, robot, gripper, control rate, action scale, sensing, link latency and safety profile are
the site's own (built from its factory data), so a policy's home site still matters.

Observation and action: exactly those of `Testbed/ConveyorSort-v0` (the same named fields in
the robot base frame, see `envs.conveyor_sort`), so a policy moves between the two tasks and
across sites. ``part_pos``/``part_vel`` are sensor readings of the resting part; ``part_type``
and ``bin_pos`` name its bin.

Success: the tool centre comes within ``success_radius_m`` of the top-face centre, or suction
engages on the part (the cup sits on its face). The episode terminates then, so
``success_once`` and ``success_at_end`` agree; it is truncated after ``time_limit_s``.

Reward: ``-distance(tool, top-face centre)`` (m) per step, +1 on success, -0.1 per safety
violation.

Outcome (``episode_metrics["outcome"]``): ``success``, else ``time limit: <part_id> not touched
(closest <d> mm)``; the part id is parts.csv's.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs import observation as obs
from envs.cells.cell import Cell, station_camera
from envs.cells.suction import SuctionGripper
from envs.factory.schema import Part, SiteSpec
from envs.metrics import EpisodeMetrics
from envs.sensing import ActionLink, PartSensor
from envs.sim import Sim
from envs.sites import load_site

REWARD_TOUCH, REWARD_VIOLATION = 1.0, -0.1
PICK_WINDOW_M = (-0.2, 0.3)  # along the belt from its centre: where every robot reaches
LATERAL_M = 0.07  # off the belt's centre line, either side


class TouchPartEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """A site's cell running the touch-part task.

    Args:
        site: A packaged site id (``kr-changwon``), a bundle folder, or a loaded `SiteSpec`.
        time_limit_s: Simulated time before the episode is truncated.
        success_radius_m: Distance from the top-face centre that counts as touching.
        render_mode: ``"rgb_array"`` to render frames, ``"human"`` to open the PyBullet GUI.
        render_size: (width, height) of rendered frames.
        renderer: ``"tiny"`` (CPU TinyRenderer) or ``"egl"`` (headless OpenGL) for frames.
        camera: A camera station of the site's stations.csv to render from; None for the cell
            camera. (The same rendering options as `Testbed/ConveyorSort-v0`, so replay can
            film either task.)

    Raises:
        ValueError: If `time_limit_s` or `success_radius_m` is not positive.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 30}

    def __init__(
        self,
        site: str | SiteSpec = "kr-changwon",
        time_limit_s: float = 3.0,
        success_radius_m: float = 0.02,
        render_mode: str | None = None,
        render_size: tuple[int, int] = (320, 240),
        renderer: str = "tiny",
        camera: str | None = None,
    ) -> None:
        if renderer not in ("tiny", "egl"):
            raise ValueError(f"renderer: expected 'tiny' or 'egl', got {renderer!r}")
        if time_limit_s <= 0 or success_radius_m <= 0:
            raise ValueError(
                "TouchPartEnv: time_limit_s and success_radius_m: expected > 0, "
                f"got {time_limit_s} and {success_radius_m}"
            )
        self.site = site if isinstance(site, SiteSpec) else load_site(site)
        spec = self.site.site
        self.render_mode = render_mode
        self.render_size = render_size
        self.renderer = renderer
        self._station_camera = station_camera(self.site, camera) if camera else None
        self.success_radius_m = success_radius_m
        self.substeps = spec.substeps
        self.control_dt = spec.physics.time_step_s * self.substeps
        self.max_steps = max(1, int(round(time_limit_s / self.control_dt)))
        self.metadata = {**self.metadata, "render_fps": int(round(1.0 / self.control_dt))}
        self.observation_space = obs.observation_space()
        self.action_space = spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        self.sim = Sim(
            spec.physics.time_step_s,
            spec.gravity_mps2,
            spec.physics.solver_iterations,
            gui=render_mode == "human",
        )
        if renderer == "egl":
            self.sim.enable_egl()  # before any body exists
        self.sensor = PartSensor(spec.sensors)
        self.link = ActionLink(spec.policy_link, np.zeros(4, dtype=np.float32))
        self._step_scale = spec.robot.controller.max_ee_speed_mps * self.control_dt
        shares = self.site.arrival_process.part_shares
        self._part_ids = sorted(shares)
        weights = np.array([shares[p] for p in self._part_ids], dtype=np.float64)
        self._part_probs = weights / weights.sum()
        self.cell: Cell | None = None
        self.gripper: SuctionGripper
        self._bodies: dict[str, int] = {}
        self._snapshot = -1
        self.distance_m = math.inf

    # ------------------------------------------------------------------ gymnasium API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Restore the freshly built cell and place this episode's part on the belt."""
        super().reset(seed=seed)
        if self.cell is None:
            self._build()
        assert self.cell is not None
        self.gripper.command(False)  # drop a part held at the end of the last episode
        # Every episode starts from the same snapshot (the first one included), so an episode
        # depends on its seed only, not on what ran before it in this process.
        self.sim.restore_clean(self._snapshot)
        self.cell.arm.reset()
        self.gripper = SuctionGripper(self.sim, self.cell.arm, self.site.site.robot.gripper)
        self.part_id = self._part_ids[
            int(self.np_random.choice(len(self._part_ids), p=self._part_probs))
        ]
        self.part: Part = self.site.part(self.part_id)
        self.part_body = self._bodies[self.part_id]
        self._place_part()
        self.metrics = EpisodeMetrics(self.site.site.safety)
        self.sensor.reset()
        self.link.reset()
        self.steps = 0
        self.sim_time_s = 0.0
        self.touched_at_s: float | None = None
        self._refresh()
        self.min_distance_m = self.distance_m
        return self._observation(), {
            "site": self.site.site_id,
            "bundle_hash": self.site.bundle_hash,
            "part_id": self.part_id,
        }

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Apply one action for one control period."""
        if self.cell is None:
            raise RuntimeError("call reset() before step()")
        applied = self.link.transmit(np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0))
        self.gripper.command(bool(applied[3] > 0.0))
        self.cell.arm.command(applied[:3].astype(np.float64) * self._step_scale)
        self._simulate()
        self.gripper.check_hold(self._tool)
        self.gripper.try_grasp({self.part_body: self.part}, self._tool)
        speed = float(np.linalg.norm(self._tool_vel))
        violations = self.metrics.check_step(self._tool, speed, self._contact)
        self.steps += 1
        self.min_distance_m = min(self.min_distance_m, self.distance_m)
        touched = self.distance_m <= self.success_radius_m or self.gripper.held is not None
        if touched:
            self.touched_at_s = self.sim_time_s
        reward = -self.distance_m + REWARD_TOUCH * touched + REWARD_VIOLATION * len(violations)
        terminated = touched
        truncated = not terminated and self.steps >= self.max_steps
        info: dict[str, Any] = {
            "violations": violations,
            "distance_m": self.distance_m,
            "tcp_speed_mps": speed,
            "contact_force_n": self._contact,
            "energy_j": self.metrics.energy_j,
        }
        if terminated or truncated:
            info["episode_metrics"] = self._summary(touched)
        return self._observation(), float(reward), terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """An RGB frame from the chosen camera (``render_mode="rgb_array"``)."""
        if self.render_mode != "rgb_array" or self.cell is None:
            return None
        width, height = self.render_size
        camera = self._station_camera or self.cell.camera
        return self.sim.render(camera, width, height, self.renderer)

    def close(self) -> None:
        """Release the physics client."""
        self.sim.close()

    # ------------------------------------------------------------------ internals

    def _build(self) -> None:
        """Build the cell once, with one parked body per catalog part, and snapshot it."""
        self.sim.reset_world()
        self.cell = Cell(self.sim, self.site)
        self._bodies = {
            part_id: self.cell.create_part(self.site.part(part_id), slot)
            for slot, part_id in enumerate(self._part_ids)
        }
        self.gripper = SuctionGripper(self.sim, self.cell.arm, self.site.site.robot.gripper)
        self._base_frame = obs.BaseFrame(self.cell.arm.base_position, self.cell.robot_yaw)
        self._snapshot = self.sim.save_state()

    def _place_part(self) -> None:
        """Put the part at a random spot of the belt's pick window, aligned with the belt."""
        cell = self.cell
        assert cell is not None
        along = self.np_random.uniform(*PICK_WINDOW_M)
        lateral = self.np_random.uniform(-LATERAL_M, LATERAL_M)
        across = np.array([-cell.belt_direction[1], cell.belt_direction[0], 0.0])
        position = cell.belt_center + along * cell.belt_direction + lateral * across
        position[2] = cell.belt_top_z + self.part.size_z / 2.0 + 0.001
        orientation = self.sim.quat_from_euler((0.0, 0.0, cell.belt_yaw))
        self.sim.reset_base(self.part_body, tuple(position), orientation)  # type: ignore[arg-type]

    def _simulate(self) -> None:
        assert self.cell is not None
        arm = self.cell.arm
        work = self.sim.advance(self.substeps, (), (0.0, 0.0, 0.0), arm.body, arm.arm_joints)
        self.metrics.add_work(work)
        self.sim_time_s += self.control_dt
        self._refresh()

    def _refresh(self) -> None:
        assert self.cell is not None
        self._tool, self._tool_vel = self.cell.arm.tool_state()
        self._contact = self.sim.total_normal_force(self.cell.arm.body)
        position, _ = self.sim.base_pose(self.part_body)
        velocity, _ = self.sim.base_velocity(self.part_body)
        self._part_pos = np.asarray(position, dtype=np.float64)
        self._part_vel = np.asarray(velocity, dtype=np.float64)
        self.touch_point = self._part_pos + np.array([0.0, 0.0, self.part.size_z / 2.0])
        self.distance_m = float(np.linalg.norm(self._tool - self.touch_point))

    def episode_summary(self) -> dict[str, Any]:
        """The episode's metrics so far, for callers that stop it early (a step cap).

        A touch ends the episode, so an episode still running has not touched.
        """
        return self._summary(touched=False)

    def _summary(self, touched: bool) -> dict[str, Any]:
        summary: dict[str, Any] = self.metrics.summary(1, touched, touched, self.sim_time_s)
        summary.update(
            {
                "parts_touched": int(touched),
                "time_to_touch_s": self.touched_at_s if self.touched_at_s is not None else math.nan,
                "final_distance_m": self.distance_m,
                "min_distance_m": self.min_distance_m,
                "outcome": self._outcome(touched),
            }
        )
        return summary

    def _outcome(self, touched: bool) -> str:
        """``success``, or why not: the only way to fail is not to touch the part in time.

        ``time limit: KR-CAP-300 not touched (closest 34 mm)``; for an episode its caller
        stopped early, ``step cap at step 40: ...``.
        """
        if touched:
            return "success"
        limit = "time limit" if self.steps >= self.max_steps else f"step cap at step {self.steps}"
        closest = f"closest {1000.0 * self.min_distance_m:.0f} mm"
        return f"{limit}: {self.part_id} not touched ({closest})"

    def _observation(self) -> dict[str, np.ndarray]:
        """The observation, built as `Testbed/ConveyorSort-v0` builds it (`envs.observation`)."""
        cell = self.cell
        assert cell is not None
        to_base = self._base_frame
        pos, vel = self.sensor.read(self._part_pos, self._part_vel, self.np_random)
        bin_index = self.site.bin_index_for(self.part_id)
        values = [
            *to_base.point(self._tool),
            *to_base.vector(self._tool_vel),
            float(self.gripper.on),
            float(self.gripper.held is not None),
            *to_base.point(pos),
            *to_base.vector(vel),
            *self.part.size,
            *obs.part_type(bin_index),
            *to_base.point(cell.drop_point(bin_index)),
            min(self.steps / self.max_steps, 1.0),
        ]
        return obs.fields(obs.pack(values))
