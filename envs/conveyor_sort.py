"""`Testbed/ConveyorSort-v0`: sort parts arriving on a conveyor into bins by type.

Observation (`Dict` of float32 `Box`es; positions and velocities in the robot base frame, m and
m/s, so one policy runs on every robot and layout):

=============  =====  ================================================================
field          shape  meaning
=============  =====  ================================================================
ee_pos         3      tool centre point position
ee_vel         3      tool centre point velocity
gripper        1      1 if suction is on, else 0
holding        1      1 if a part is on the cup, else 0
part_pos       3      current part's centre (sensor reading: noise, latency, dropout)
part_vel       3      current part's velocity (sensor reading)
part_size      3      current part's full extents
part_type      4      one-hot of the bin the current part belongs in; zeros if no part
bin_pos        3      drop point above that bin; zeros if no part
time           1      elapsed fraction of the episode's time limit
=============  =====  ================================================================

The current part is the held one, else the earliest arrival not yet resolved.

Action: `Box(-1, 1, (4,))`: tool displacement (x, y, z) as a fraction of the site controller's
``max_ee_speed_mps`` times the control period, and suction (on if > 0). Actions are clipped to
the box and delayed by the site's policy-link latency.

Reward (documented, dense plus terms): potential-based shaping with potential
``-distance(tool, current part)`` before a grasp and ``1 - distance(part, drop point)`` while
holding; +5 for a part sorted into its bin, -3 for a wrong bin, -3 for a lost part, -0.1 for
each safety violation.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs import observation as obs
from envs import snapshot
from envs.cells.cell import Cell, station_camera
from envs.cells.suction import SuctionGripper
from envs.factory.schema import SiteSpec
from envs.metrics import EpisodeMetrics
from envs.sensing import ActionLink, PartSensor
from envs.sim import Sim
from envs.sites import load_site
from envs.tasks.conveyor_sort import ConveyorSortTask, PartInstance, sample_schedule

__all__ = ["ConveyorSortEnv", "observation_space"]
observation_space = obs.observation_space  # the shared observation (envs.observation)

REWARD_SORTED, REWARD_WRONG_BIN, REWARD_LOST, REWARD_VIOLATION = 5.0, -3.0, -3.0, -0.1
_REWARDS = {"sorted": REWARD_SORTED, "wrong_bin": REWARD_WRONG_BIN, "lost": REWARD_LOST}


class ConveyorSortEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """A site's cell running the conveyor-sort task.

    Args:
        site: A packaged site id (``kr-changwon``), a bundle folder, or a loaded `SiteSpec`.
        render_mode: ``"rgb_array"`` to render frames, ``"human"`` to open the PyBullet GUI
            (needs a display).
        render_size: (width, height) of rendered frames.
        renderer: ``"tiny"`` (CPU TinyRenderer) or ``"egl"`` (headless OpenGL) for frames.
        camera: A camera station of the site's stations.csv to render from (looking along
            its orientation); None for the cell camera.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 30}

    def __init__(
        self,
        site: str | SiteSpec = "kr-changwon",
        render_mode: str | None = None,
        render_size: tuple[int, int] = (320, 240),
        renderer: str = "tiny",
        camera: str | None = None,
    ) -> None:
        self.site = site if isinstance(site, SiteSpec) else load_site(site)
        spec = self.site.site
        if len(self.site.bins) > obs.MAX_BINS:
            raise ValueError(f"site {self.site.site_id!r} has more than {obs.MAX_BINS} bins")
        if renderer not in ("tiny", "egl"):
            raise ValueError(f"renderer: expected 'tiny' or 'egl', got {renderer!r}")
        self.render_mode = render_mode
        self.render_size = render_size
        self.renderer = renderer
        self._station_camera = station_camera(self.site, camera) if camera else None
        self.substeps = spec.substeps
        self.control_dt = spec.physics.time_step_s * self.substeps
        self.max_steps = int(round(spec.task.time_limit_s / self.control_dt))
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
            self.sim.enable_egl()  # before any body exists: the plugin registers shapes as made
        self.sensor = PartSensor(spec.sensors)
        self.link = ActionLink(spec.policy_link, np.zeros(4, dtype=np.float32))
        self._step_scale = spec.robot.controller.max_ee_speed_mps * self.control_dt
        self.cell: Cell | None = None
        self._world_restored = False
        self._last_vector = np.zeros(obs.SIZE, dtype=np.float32)

    # ------------------------------------------------------------------ gymnasium API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Restore the freshly built cell and draw this episode's parts from the production log."""
        super().reset(seed=seed)
        self._restore_cell()
        assert self.cell is not None
        self.gripper = SuctionGripper(self.sim, self.cell.arm, self.site.site.robot.gripper)
        self.task = ConveyorSortTask(self.cell, sample_schedule(self.site, self.np_random))
        self.metrics = EpisodeMetrics(self.site.site.safety)
        self.sensor.reset()
        self.link.reset()
        self.steps = 0
        self.sim_time_s = 0.0
        self._potential_part: int | None = None
        self._potential = 0.0
        self._base_frame = obs.BaseFrame(self.cell.arm.base_position, self.cell.robot_yaw)
        self._refresh()
        return self._observe(self.task.current()), {
            "site": self.site.site_id,
            "bundle_hash": self.site.bundle_hash,
        }

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Apply one action for one control period."""
        if self.cell is None:
            raise RuntimeError("call reset() before step()")
        clipped = np.minimum(np.maximum(np.asarray(action, dtype=np.float32), -1.0), 1.0)
        applied = self.link.transmit(clipped)
        events = self.task.arrive(self.sim_time_s)
        release = self.gripper.command(bool(applied[3] > 0.0))
        # The tool has not moved since the last refresh: no need to ask the engine again.
        self.cell.arm.command(applied[:3].astype(np.float64) * self._step_scale, self._tool)
        self._simulate()
        self.task.observe()
        events += self._grip_events(release)
        events += self.task.update(self.gripper.held, self.steps)
        speed = math.hypot(*self._tool_vel)
        violations = self.metrics.check_step(self._tool, speed, self._contact)
        self._count(events)
        self.steps += 1
        current = self.task.current()
        reward = self._reward(events, violations, current)
        terminated = self.task.done() and self.gripper.held is None
        truncated = not terminated and self.steps >= self.max_steps
        info: dict[str, Any] = {
            "events": events,
            "violations": violations,
            "tcp_speed_mps": speed,
            "contact_force_n": self._contact,
            "energy_j": self.metrics.energy_j,
            "parts_sorted": len(self.metrics.sorted_times_s),
        }
        if terminated or truncated:
            info["episode_metrics"] = self.episode_summary()
        return self._observe(current), reward, terminated, truncated, info

    def episode_summary(self) -> dict[str, Any]:
        """The episode's metrics so far (``info["episode_metrics"]`` at its end).

        Callers that stop an episode early (a step cap) use it to score what happened. Besides
        the numbers of `EpisodeMetrics.summary` it holds ``outcome``: ``"success"`` or why not
        (``"lost: KR-CAP-300 at step 695"``; see `envs.tasks.conveyor_sort`).
        """
        if self.cell is None:
            raise RuntimeError("call reset() before episode_summary()")
        summary: dict[str, Any] = self.metrics.summary(
            len(self.task.parts),
            self.task.success_once(),
            self.task.success_at_end(),
            self.sim_time_s,
        )
        summary["outcome"] = self.task.outcome(self.steps, self.steps >= self.max_steps)
        return summary

    def render(self) -> np.ndarray | None:
        """An RGB frame from the chosen camera (``render_mode="rgb_array"``)."""
        if self.render_mode != "rgb_array" or self.cell is None:
            return None
        width, height = self.render_size
        camera = self._station_camera or self.cell.camera
        return self.sim.render(camera, width, height, self.renderer)

    def save_snapshot(self) -> bytes:
        """The env's full state (simulator and Python state) as portable bytes."""
        if self.cell is None:
            raise RuntimeError("call reset() before save_snapshot()")
        states = [self._state(), *(part.state() for part in self._stateful())]
        return snapshot.capture(
            self._identity(), self.sim.state_bytes(), states, self._last_observation
        )

    def load_snapshot(self, blob: bytes) -> dict[str, np.ndarray]:
        """Restore a `save_snapshot` state; returns the observation at that point.

        Reset the env with the episode's seed first (bodies must have the same ids).

        Raises:
            ValueError: If the snapshot belongs to another site, bundle or episode.
        """
        saved = snapshot.read(blob, self._identity())
        if self.cell is None:
            raise ValueError("snapshot: reset the env with the episode's seed before restoring")
        try:
            self.task.load_state(saved.state)
        except ValueError as exc:
            raise ValueError(f"snapshot: {exc}") from exc
        self.gripper.load_state(saved.state)  # the weld first: it is not in the world's state
        self.sim.restore_state_bytes(saved.bullet)
        for part in (self.metrics, self.link, self.sensor):
            part.load_state(saved.state)
        self._load_state(saved.state)
        # Restoring .bullet bytes leaves engine state (contact pairs) that a later restore of the
        # saved cell would keep: the next reset builds the world afresh.
        self._world_restored = True
        observation = saved.observation
        self._last_vector = np.concatenate(
            [np.asarray(observation[name], dtype=np.float32) for name in obs.FIELDS]
        )
        return observation

    def close(self) -> None:
        """Release the physics client."""
        self.sim.close()

    # ------------------------------------------------------------------ internals

    def _identity(self) -> dict[str, str]:
        """What a snapshot must have been taken with to restore here."""
        return {"site": self.site.site_id, "bundle_hash": self.site.bundle_hash}

    def _stateful(self) -> tuple[Any, ...]:
        """The components whose ``state()`` a snapshot holds besides the env's own."""
        return (self.gripper, self.task, self.metrics, self.link, self.sensor)

    def _state(self) -> dict[str, Any]:
        """The env's own step state: counters, reward potential, RNG, last readings.

        With the arm controller's commanded tool point (``arm_target``): the one state of the
        arm that the simulator's saved state does not hold.
        """
        assert self.cell is not None
        return {
            "arm_target": np.array(self.cell.arm.target, dtype=np.float64),
            "steps": self.steps,
            "sim_time_s": self.sim_time_s,
            "potential_part": self._potential_part,
            "potential": self._potential,
            "contact": self._contact,
            "rng": self.np_random.bit_generator.state,
            "tool": self._tool,
            "tool_vel": self._tool_vel,
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        assert self.cell is not None
        self.cell.arm.target = np.array(state["arm_target"], dtype=np.float64)
        self.np_random.bit_generator.state = state["rng"]
        self.steps = state["steps"]
        self.sim_time_s = state["sim_time_s"]
        self._potential_part = state["potential_part"]
        self._potential = state["potential"]
        self._contact = state["contact"]
        self._tool, self._tool_vel = state["tool"], state["tool_vel"]

    def _restore_cell(self) -> None:
        """Put the world back to the cell as built, without the last episode's parts.

        The cell (floor, conveyor, bins, robot: loading the robot took ~50 ms a reset) is built
        once and saved. Every episode, the first included, then removes the previous parts
        (the last made first, so body ids and the engine's object order return to the built
        cell's) and restores the save with `Sim.restore_clean`. An episode thus depends only
        on its seed: the same trajectory bit for bit as in a freshly built env. After
        `load_snapshot` the world is built afresh instead.
        """
        if self.cell is None or self._world_restored:
            self.sim.reset_world()
            self.cell = Cell(self.sim, self.site)
            self._cell_state = self.sim.save_state()
            self._world_restored = False
        else:
            self.gripper.command(False)  # remove the weld of a part still held
            for part in reversed(self.task.parts):
                self.sim.remove_body(part.body)
        self.sim.restore_clean(self._cell_state)
        self.cell.arm.reset()

    def _simulate(self) -> None:
        cell = self.cell
        assert cell is not None
        # Part statuses only change between control steps: decide once who rides the belt.
        riders = [b for b in self.task.belt_bodies() if b != self.gripper.held]
        arm = cell.arm
        work = self.sim.advance(
            self.substeps, riders, cell.belt_velocity(), arm.body, arm.arm_joints
        )
        self.metrics.add_work(work)
        self.sim_time_s += self.control_dt
        self._refresh()

    def _refresh(self) -> None:
        assert self.cell is not None
        self._tool, self._tool_vel = self.cell.arm.tool_state()
        self._contact = self.sim.total_normal_force(self.cell.arm.body)

    def _grip_events(self, release: str | None) -> list[str]:
        events = [release] if release else []
        positions = self.task.positions()  # read by task.observe() after this step's physics
        if not self.gripper.check_hold(self._tool, positions):
            events.append("grip_lost")
        if self.gripper.try_grasp(self.task.graspable(), self._tool, positions) is not None:
            events.append("suction_engaged")
        return events

    def _count(self, events: list[str]) -> None:
        for event in events:
            kind = event.split(":", 1)[0]
            if kind == "sorted":
                self.metrics.sorted_times_s.append(self.sim_time_s)
            elif kind == "wrong_bin":
                self.metrics.wrong_bin += 1
            elif kind == "lost":
                self.metrics.lost += 1
            elif kind == "grasp":
                self.metrics.grasps += 1
            elif kind == "grip_lost":
                self.metrics.grip_losses += 1

    def _reward(
        self, events: list[str], violations: list[str], current: PartInstance | None
    ) -> float:
        reward = REWARD_VIOLATION * len(violations)
        for event in events:
            reward += _REWARDS.get(event.split(":", 1)[0], 0.0)
        if current is None:
            self._potential_part = None
            return reward
        assert self.cell is not None
        if current.status == "held":
            potential = 1.0 - math.dist(current.position, self.cell.drop_point(current.bin_index))
        else:
            potential = -math.dist(self._tool, current.position)
        if self._potential_part == current.index:
            reward += potential - self._potential
        self._potential_part, self._potential = current.index, potential
        return reward

    def _observe(self, current: PartInstance | None) -> dict[str, np.ndarray]:
        vector = self._observation(current)
        # Kept for snapshots: the sensor cannot be read again without drawing from np_random.
        self._last_vector = vector.copy()
        return obs.fields(vector)

    @property
    def _last_observation(self) -> dict[str, np.ndarray]:
        """The observation the env last returned (views of the env's own copy)."""
        return obs.fields(self._last_vector)

    def _observation(self, current: PartInstance | None) -> np.ndarray:
        """The observation as one clipped float32 vector, fields in `obs.FIELDS` order."""
        cell = self.cell
        assert cell is not None
        to_base = self._base_frame
        values = [
            *to_base.point(self._tool),
            *to_base.vector(self._tool_vel),
            float(self.gripper.on),
            float(self.gripper.held is not None),
        ]
        if current is None:
            values.extend(obs.NO_PART)
        else:
            pos, vel = self.sensor.read(current.position, current.velocity, self.np_random)
            values.extend(to_base.point(pos))
            values.extend(to_base.vector(vel))
            values.extend(current.part.size)
            values.extend(obs.part_type(current.bin_index))
            values.extend(to_base.point(cell.drop_point(current.bin_index)))
        values.append(min(self.steps / self.max_steps, 1.0))
        return obs.pack(values)
