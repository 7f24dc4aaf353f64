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

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs import snapshot
from envs.cells.cell import Cell
from envs.cells.suction import SuctionGripper
from envs.factory.schema import SiteSpec
from envs.metrics import EpisodeMetrics
from envs.sensing import ActionLink, PartSensor
from envs.sim import Camera, Sim
from envs.sites import load_site
from envs.tasks.conveyor_sort import ConveyorSortTask, sample_schedule

MAX_BINS = 4
_FIELDS: dict[str, tuple[int, float, float]] = {
    "ee_pos": (3, -3.0, 3.0),
    "ee_vel": (3, -5.0, 5.0),
    "gripper": (1, 0.0, 1.0),
    "holding": (1, 0.0, 1.0),
    "part_pos": (3, -3.0, 3.0),
    "part_vel": (3, -5.0, 5.0),
    "part_size": (3, 0.0, 2.0),
    "part_type": (MAX_BINS, 0.0, 1.0),
    "bin_pos": (3, -3.0, 3.0),
    "time": (1, 0.0, 1.0),
}
REWARD_SORTED, REWARD_WRONG_BIN, REWARD_LOST, REWARD_VIOLATION = 5.0, -3.0, -3.0, -0.1


def observation_space() -> spaces.Dict:
    """The observation space, the same for every site."""
    return spaces.Dict(
        {
            name: spaces.Box(low, high, shape=(size,), dtype=np.float32)
            for name, (size, low, high) in _FIELDS.items()
        }
    )


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
        if len(self.site.bins) > MAX_BINS:
            raise ValueError(f"site {self.site.site_id!r} has more than {MAX_BINS} bins")
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
        self.observation_space = observation_space()
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
        self._last_observation: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ gymnasium API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Rebuild the cell and draw this episode's parts from the production log."""
        super().reset(seed=seed)
        self.sim.reset_world()
        self.cell = Cell(self.sim, self.site)
        self.gripper = SuctionGripper(self.sim, self.cell.arm, self.site.site.robot.gripper)
        self.task = ConveyorSortTask(self.cell, sample_schedule(self.site, self.np_random))
        self.metrics = EpisodeMetrics(self.site.site.safety)
        self.sensor.reset()
        self.link.reset()
        self.steps = 0
        self.sim_time_s = 0.0
        self._potential_part: int | None = None
        self._potential = 0.0
        self._base_frame = _BaseFrame(self.cell.arm.base_position, self.cell.robot_yaw)
        self._refresh()
        return self._observe(), {
            "site": self.site.site_id,
            "bundle_hash": self.site.bundle_hash,
        }

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Apply one action for one control period."""
        if self.cell is None:
            raise RuntimeError("call reset() before step()")
        applied = self.link.transmit(np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0))
        events = self.task.arrive(self.sim_time_s)
        release = self.gripper.command(bool(applied[3] > 0.0))
        self.cell.arm.command(applied[:3].astype(np.float64) * self._step_scale)
        self._simulate()
        events += self._grip_events(release)
        events += self.task.update(self.gripper.held)
        violations = self.metrics.check_step(
            self._tool, float(np.linalg.norm(self._tool_vel)), self._contact
        )
        self._count(events)
        self.steps += 1
        reward = self._reward(events, violations)
        terminated = self.task.done() and self.gripper.held is None
        truncated = not terminated and self.steps >= self.max_steps
        info: dict[str, Any] = {
            "events": events,
            "violations": violations,
            "tcp_speed_mps": float(np.linalg.norm(self._tool_vel)),
            "contact_force_n": self._contact,
            "energy_j": self.metrics.energy_j,
            "parts_sorted": len(self.metrics.sorted_times_s),
        }
        if terminated or truncated:
            info["episode_metrics"] = self.episode_summary()
        return self._observe(), reward, terminated, truncated, info

    def episode_summary(self) -> dict[str, Any]:
        """The episode's metrics so far (``info["episode_metrics"]`` at its end).

        Callers that stop an episode early (a step cap) use it to score what happened.
        """
        if self.cell is None:
            raise RuntimeError("call reset() before episode_summary()")
        return self.metrics.summary(
            len(self.task.parts),
            self.task.success_once(),
            self.task.success_at_end(),
            self.sim_time_s,
        )

    def render(self) -> np.ndarray | None:
        """An RGB frame from the chosen camera (``render_mode="rgb_array"``)."""
        if self.render_mode != "rgb_array" or self.cell is None:
            return None
        width, height = self.render_size
        camera = self._station_camera or self.cell.camera
        return self.sim.render(camera, width, height, self.renderer)

    def save_snapshot(self) -> bytes:
        """The env's full state (simulator and Python state) as portable bytes."""
        return snapshot.capture(self, self._last_observation)

    def load_snapshot(self, blob: bytes) -> dict[str, np.ndarray]:
        """Restore a `save_snapshot` state; returns the observation at that point.

        Reset the env with the episode's seed first (bodies must have the same ids).

        Raises:
            ValueError: If the snapshot belongs to another site, bundle or episode.
        """
        observation = snapshot.restore(self, blob)
        self._last_observation = {k: v.copy() for k, v in observation.items()}
        return observation

    def close(self) -> None:
        """Release the physics client."""
        self.sim.close()

    # ------------------------------------------------------------------ internals

    def _simulate(self) -> None:
        cell = self.cell
        assert cell is not None
        belt_velocity = cell.belt_velocity()
        dt = self.sim.time_step_s
        # Part statuses only change between control steps: decide once who rides the belt.
        riders = [b for b in self.task.belt_bodies() if b != self.gripper.held]
        for _ in range(self.substeps):
            for body in riders:
                self.sim.set_base_velocity(body, belt_velocity)
            self.sim.step()
            _, qd, tau = cell.arm.joint_states()
            self.metrics.add_energy(tau, qd, dt)
        self.sim_time_s += self.control_dt
        self._refresh()

    def _refresh(self) -> None:
        assert self.cell is not None
        self._tool, self._tool_vel = self.cell.arm.tool_state()
        self._contact = self.sim.total_normal_force(self.cell.arm.body)

    def _grip_events(self, release: str | None) -> list[str]:
        events = [release] if release else []
        if not self.gripper.check_hold(self._tool):
            events.append("grip_lost")
        if self.gripper.try_grasp(self.task.graspable(), self._tool) is not None:
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

    def _reward(self, events: list[str], violations: list[str]) -> float:
        reward = REWARD_VIOLATION * len(violations)
        for event in events:
            kind = event.split(":", 1)[0]
            reward += {
                "sorted": REWARD_SORTED,
                "wrong_bin": REWARD_WRONG_BIN,
                "lost": REWARD_LOST,
            }.get(kind, 0.0)
        current = self.task.current()
        if current is None:
            self._potential_part = None
            return reward
        assert self.cell is not None
        if current.status == "held":
            potential = 1.0 - float(
                np.linalg.norm(current.position - self.cell.drop_point(current.bin_index))
            )
        else:
            potential = -float(np.linalg.norm(self._tool - current.position))
        if self._potential_part == current.index:
            reward += potential - self._potential
        self._potential_part, self._potential = current.index, potential
        return reward

    def _observe(self) -> dict[str, np.ndarray]:
        observation = self._observation()
        # Kept for snapshots: the sensor cannot be read again without drawing from np_random.
        self._last_observation = {k: v.copy() for k, v in observation.items()}
        return observation

    def _observation(self) -> dict[str, np.ndarray]:
        cell = self.cell
        assert cell is not None
        to_base = self._base_frame
        current = self.task.current()
        obs = {name: np.zeros(size, dtype=np.float32) for name, (size, _, _) in _FIELDS.items()}
        obs["ee_pos"][:] = to_base.point(self._tool)
        obs["ee_vel"][:] = to_base.vector(self._tool_vel)
        obs["gripper"][0] = float(self.gripper.on)
        obs["holding"][0] = float(self.gripper.held is not None)
        if current is not None:
            pos, vel = self.sensor.read(current.position, current.velocity, self.np_random)
            obs["part_pos"][:] = to_base.point(pos)
            obs["part_vel"][:] = to_base.vector(vel)
            obs["part_size"][:] = current.part.size
            obs["part_type"][current.bin_index] = 1.0
            obs["bin_pos"][:] = to_base.point(cell.drop_point(current.bin_index))
        obs["time"][0] = min(self.steps / self.max_steps, 1.0)
        for name, (_, low, high) in _FIELDS.items():
            np.clip(obs[name], low, high, out=obs[name])
        return obs


def station_camera(site: SiteSpec, station_id: str) -> Camera:
    """A camera at a camera station, looking along the station's x axis (roll-pitch-yaw).

    Raises:
        ValueError: Naming the site's camera stations, if ``station_id`` is not one of them.
    """
    cameras = [s.station_id for s in site.stations_of("camera")]
    if station_id not in cameras:
        raise ValueError(
            f"camera: {station_id!r} is not a camera station of site {site.site_id!r} "
            f"(stations.csv has {cameras or 'none'})"
        )
    eye, (_, pitch, yaw) = site.world_pose(station_id)
    forward = (np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), -np.sin(pitch))
    target = tuple(float(e + f) for e, f in zip(eye, forward, strict=True))
    return Camera(eye=tuple(float(e) for e in eye), target=target)  # type: ignore[arg-type]


class _BaseFrame:
    """World -> robot base frame (translation and yaw)."""

    def __init__(self, origin: np.ndarray, yaw: float) -> None:
        self.origin = origin
        cos, sin = np.cos(-yaw), np.sin(-yaw)
        self.rotation = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])

    def point(self, p: np.ndarray) -> np.ndarray:
        return self.rotation @ (np.asarray(p) - self.origin)

    def vector(self, v: np.ndarray) -> np.ndarray:
        return self.rotation @ np.asarray(v)
