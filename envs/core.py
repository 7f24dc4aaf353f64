"""`CellEnv`: the Gymnasium env every task of a site's cell shares (panda-gym's ``RobotTaskEnv``).

It owns the simulator, the cell (scene), the robot and its controller, the site's gripper
(suction or fingers, `envs.cells.gripper`), the
part sensor, the policy link, rendering, the substep loop, the shared observation fields
(``ee_pos``, ``ee_vel``, ``gripper``, ``holding``, ``time``; `envs.observation`), the control
period ``control_dt``, the episode summary and snapshots. A `envs.tasks.base.Task` supplies
what differs. It offers testbed the explicit contract of `envs.contract.CellContract`.

Action: `Box(-1, 1, (4,))`: tool displacement (x, y, z) as a fraction of the site controller's
``max_ee_speed_mps`` times the control period, and suction (on if > 0); clipped to the box and
delayed by the site's policy-link latency. ``max_ee_speed_mps`` bounds the tool's speed (the
norm): a displacement longer than one period's worth is scaled down along its direction.

Every episode starts from the cell as built (saved once), so an episode depends only on its
seed: the same trajectory bit for bit as in a freshly built env.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, cast

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs import observation as obs
from envs import snapshot
from envs.camera_obs import CameraObs
from envs.cells import framing
from envs.cells.cell import Cell, station_camera
from envs.cells.gripper import Gripper, make_gripper
from envs.factory.schema import SiteSpec
from envs.metrics import EpisodeMetrics
from envs.safety.coworker import build_coworkers
from envs.safety.monitor import CoworkerMonitor, MonitorLimits
from envs.sensing import ActionLink, PartSensor
from envs.sim import Sim
from envs.sites import load_site
from envs.tasks.base import Task

__all__ = ["CellEnv"]

Observation = dict[str, np.ndarray]


_COWORKER_STREAM = 0xC0


class CellEnv(gym.Env[Observation, np.ndarray]):
    """A site's cell running one task.

    Args:
        make_task: Builds the task for the loaded site.
        site: A packaged site id (``kr-changwon``), a bundle folder, or a loaded `SiteSpec`.
        render_mode: ``"rgb_array"`` to render frames, ``"human"`` to open the PyBullet GUI
            (needs a display).
        render_size: (width, height) of rendered frames.
        renderer: ``"tiny"`` (CPU TinyRenderer) or ``"egl"`` (headless OpenGL) for frames.
        camera: A camera station of the site's stations.csv to render from (looking along
            its orientation); None for the cell camera.
        camera_obs: Image fields in the observation (`envs.camera_obs`: ``station``,
            ``width``, ``height``, ``depth``), rendered every step with ``renderer``; None
            (the default) for none.

    Raises:
        ValueError: If the renderer, camera or camera_obs is unknown or malformed.
        envs.errors.MissingStationError: If the site lacks a station kind the task needs.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 30}

    def __init__(
        self,
        make_task: Callable[[SiteSpec], Task],
        site: str | SiteSpec = "kr-changwon",
        render_mode: str | None = None,
        render_size: tuple[int, int] = (320, 240),
        renderer: str = "tiny",
        camera: str | None = None,
        camera_obs: Mapping[str, Any] | CameraObs | None = None,
    ) -> None:
        if renderer not in ("tiny", "egl"):
            raise ValueError(f"renderer: expected 'tiny' or 'egl', got {renderer!r}")
        self.site = site if isinstance(site, SiteSpec) else load_site(site)
        self.task = make_task(self.site)
        Cell.check_stations(self.site, self.task.needs)
        spec = self.site.site
        self.render_mode = render_mode
        self.render_size = render_size
        self.renderer = renderer
        self._station_camera = station_camera(self.site, camera) if camera else None
        self.substeps = spec.substeps
        self.control_dt = spec.physics.time_step_s * self.substeps
        self.max_steps = self.task.max_steps(self.control_dt)
        self.metadata = {**self.metadata, "render_fps": int(round(1.0 / self.control_dt))}
        self.layout = obs.Layout(self.task.observation_fields)
        self.camera_obs = CameraObs.parse(camera_obs)
        self._obs_camera = self._image_camera(self.camera_obs)
        space = self.layout.space()
        if self.camera_obs is not None:
            space = spaces.Dict({**space.spaces, **self.camera_obs.spaces(self._obs_camera)})
        self.observation_space = cast(spaces.Space[Observation], space)
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
        self.coworkers: CoworkerMonitor | None = None
        self._resets_since_seed = 0
        self.gripper: Gripper
        self._world_restored = False
        self._last_vector = np.zeros(self.layout.size, dtype=np.float32)

    @property
    def site_id(self) -> str:
        """The site's id (``kr-changwon``)."""
        return self.site.site_id

    @property
    def bundle_hash(self) -> str:
        """The hash of the site's factory bundle ."""
        return self.site.bundle_hash

    # ------------------------------------------------------------------ gymnasium API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observation, dict[str, Any]]:
        """Restore the freshly built cell and set up this episode's task."""
        super().reset(seed=seed)
        self._restore_cell()
        cell = self.cell
        assert cell is not None
        self.gripper.reset()
        task_info = self.task.reset(self.np_random)
        self.metrics = EpisodeMetrics(self.site.site.safety)
        self._resets_since_seed = 0 if seed is not None else self._resets_since_seed + 1
        if self.coworkers is not None:
            self.coworkers.reset(self._coworker_rng(), self.max_steps * self.control_dt)
        self.sensor.reset()
        self.link.reset()
        self.steps = 0
        self.sim_time_s = 0.0
        self._refresh()
        self.task.after_physics(self._tool)
        info = {"site": self.site.site_id, "bundle_hash": self.site.bundle_hash, **task_info}
        return self._observe(), info

    def step(self, action: np.ndarray) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        """Apply one action for one control period."""
        cell = self.cell
        if cell is None:
            raise RuntimeError("call reset() before step()")
        task, gripper = self.task, self.gripper
        clipped = np.minimum(np.maximum(np.asarray(action, dtype=np.float32), -1.0), 1.0)
        applied = self.link.transmit(clipped)
        events = task.before_physics(self.sim_time_s)
        release = gripper.command(bool(applied[3] > 0.0))
        # The tool has not moved since the last refresh: no need to ask the engine again.
        hold = self.coworkers is not None and self.coworkers.before_physics(
            self.sim_time_s + self.control_dt
        )  # a protective stop: the arm holds its pose this step
        motion = applied[:3].astype(np.float64) * (0.0 if hold else self._step_scale)
        length = math.sqrt(motion[0] ** 2 + motion[1] ** 2 + motion[2] ** 2)
        if length > self._step_scale:  # max_ee_speed_mps bounds the tool's speed, not each axis
            motion *= self._step_scale / length
        cell.arm.command(motion, self._tool)
        carried, velocity = task.carried(gripper.held)
        arm = cell.arm
        work = self.sim.advance(self.substeps, carried, velocity, arm.body, arm.arm_joints)
        self.metrics.add_work(work)
        self.sim_time_s += self.control_dt
        self._refresh()
        task.after_physics(self._tool)
        if release:
            events.append(release)
        positions = task.positions()
        if not gripper.check_hold(self._tool, positions):
            events.append("grip_lost")
        if gripper.try_grasp(task.graspable(), self._tool, positions) is not None:
            events.append(gripper.engaged_event)
        events += task.update(events, gripper.held, self.steps, self.metrics, self.sim_time_s)
        speed = task.tool_speed(self._tool_vel)
        violations = self.metrics.check_step(self._tool, speed, self._contact)
        if self.coworkers is not None:
            violations += self.coworkers.check(speed)
        self.steps += 1
        reward = task.reward(events, violations, self._tool, gripper.held)
        terminated = task.terminated(gripper.held)
        truncated = not terminated and self.steps >= self.max_steps
        info = task.info(events, self.metrics)
        info.update(
            violations=violations,
            tcp_speed_mps=speed,
            contact_force_n=self._contact,
            energy_j=self.metrics.energy_j,
        )
        if terminated or truncated:
            info["episode_metrics"] = self.episode_summary()
        return self._observe(), float(reward), terminated, truncated, info

    def coworker_visits(self) -> tuple[tuple[tuple[float, float], ...], ...]:
        """Each co-worker's visits this episode as ``(start_s, end_s)``; empty without people.

        A person is in the cell from ``start_s`` (inclusive) to ``end_s`` (exclusive), in
        simulated seconds; the schedule is drawn at reset.
        """
        if self.coworkers is None:
            return ()
        return tuple(
            tuple((visit.start_s, visit.end_s) for visit in person.visits)
            for person in self.coworkers.people
        )

    def episode_summary(self) -> dict[str, Any]:
        """The episode's metrics so far (``info["episode_metrics"]`` at its end).

        Callers that stop an episode early (a step cap) use it to score what happened. Besides
        the numbers of `EpisodeMetrics.summary` it holds ``outcome``: ``"success"`` or why not.
        """
        if self.cell is None:
            raise RuntimeError("call reset() before episode_summary()")
        ended = self.steps >= self.max_steps
        summary = self.task.summary(self.metrics, self.sim_time_s, self.steps, ended)
        if self.coworkers is not None:
            summary.update(self.coworkers.summary())
        return summary

    def render(self) -> np.ndarray | None:
        """An RGB frame from the chosen camera (``render_mode="rgb_array"``)."""
        if self.render_mode != "rgb_array" or self.cell is None:
            return None
        width, height = self.render_size
        camera = self._station_camera or self.cell.camera(width / height)
        return self.sim.render(camera, width, height, self.renderer)

    def close(self) -> None:
        """Release the physics client."""
        self.sim.close()

    # ------------------------------------------------------------------ snapshots

    def save_snapshot(self) -> bytes:
        """The env's full state (simulator and Python state) as portable bytes."""
        if self.cell is None:
            raise RuntimeError("call reset() before save_snapshot()")
        states = [self._state(), *(part.state() for part in self._stateful())]
        return snapshot.capture(
            self._identity(), self.sim.state_bytes(), states, self._last_observation
        )

    def load_snapshot(self, blob: bytes) -> Observation:
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
        if self.coworkers is not None:
            self.coworkers.load_state(saved.state)
        self._load_state(saved.state)
        # Restoring .bullet bytes leaves engine state (contact pairs) that a later restore of the
        # saved cell would keep: the next reset builds the world afresh.
        self._world_restored = True
        observation = saved.observation
        self._last_vector = np.concatenate(
            [np.asarray(observation[name], dtype=np.float32) for name in self.layout.specs]
        )
        if self.camera_obs is not None:  # images are not in snapshots: render them again
            observation = {**observation, **self._images()}
        return observation

    @property
    def _last_observation(self) -> Observation:
        """The observation the env last returned (views of the env's own copy)."""
        return self.layout.fields(self._last_vector)

    def _identity(self) -> dict[str, str]:
        """What a snapshot must have been taken with to restore here."""
        return {"site": self.site.site_id, "bundle_hash": self.site.bundle_hash}

    def _stateful(self) -> tuple[Any, ...]:
        """The components whose ``state()`` a snapshot holds besides the env's own."""
        parts = (self.gripper, self.task, self.metrics, self.link, self.sensor)
        return parts if self.coworkers is None else (*parts, self.coworkers)

    def _state(self) -> dict[str, Any]:
        """The env's own step state: counters, RNG, last readings.

        With the arm controller's commanded tool point (``arm_target``): the one state of the
        arm that the simulator's saved state does not hold.
        """
        assert self.cell is not None
        return {
            "arm_target": np.array(self.cell.arm.target, dtype=np.float64),
            "steps": self.steps,
            "sim_time_s": self.sim_time_s,
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
        self._contact = state["contact"]
        self._tool, self._tool_vel = state["tool"], state["tool_vel"]

    # ------------------------------------------------------------------ internals

    def _restore_cell(self) -> None:
        """Put the world back to the cell as built, without the last episode's bodies.

        The cell (floor, stations, robot: loading the robot took ~50 ms a reset) is built once,
        with the task's bodies, and saved. Every episode, the first included, then has the task
        remove what the last one made (the last made first, so body ids and the engine's object
        order return to the built cell's) and restores the save with `Sim.restore_clean`. After
        `load_snapshot` the world is built afresh instead.
        """
        if self.cell is None or self._world_restored:
            self.sim.reset_world()
            self.cell = Cell(self.sim, self.site, self.task.needs)
            self.task.build(self.cell)
            self.coworkers = self._build_coworkers(self.cell)
            self.gripper = make_gripper(self.sim, self.cell, self.site.site.robot.gripper)
            self._base_frame = obs.BaseFrame(self.cell.arm.base_position, self.cell.robot_yaw)
            self._cell_state = self.sim.save_state()
            self._world_restored = False
        else:
            self.gripper.command(False)  # remove the weld of a part still held
            self.task.clear()
        self.sim.restore_clean(self._cell_state)
        self.cell.arm.reset()

    def _coworker_rng(self) -> np.random.Generator:
        """The co-workers' own random stream.

        Derived from the episode's seed and the resets since it was given, so that
        np_random's draws (the task's, the sensors') stay what they were without co-workers.
        """
        seed = self.np_random_seed
        if seed < 0:  # np_random set by hand: no seed to derive from
            seed = int(self.np_random.integers(2**63))
        return np.random.default_rng([seed, _COWORKER_STREAM, self._resets_since_seed])

    def _build_coworkers(self, cell: Cell) -> CoworkerMonitor | None:
        """The site's co-workers, parked, and their monitor; None for a site without any."""
        if not self.site.site.coworkers:
            return None
        people = build_coworkers(self.sim, self.site)
        limits = MonitorLimits.of(self.site.site.safety.profile())
        return CoworkerMonitor(
            self.sim, people, limits, cell.arm.body, cell.arm.base_position, self.control_dt
        )

    def _refresh(self) -> None:
        assert self.cell is not None
        self._tool, self._tool_vel = self.cell.arm.tool_state()
        self._contact = self.sim.total_normal_force(self.cell.arm.body)

    def _observe(self) -> Observation:
        """The observation: shared fields around the task's, one clipped float32 vector."""
        to_base = self._base_frame
        values = [
            *to_base.point(self._tool),
            *to_base.vector(self._tool_vel),
            float(self.gripper.on),
            float(self.gripper.held is not None),
            *self.task.observe(self.sensor, self.np_random, to_base),
            min(self.steps / self.max_steps, 1.0),
        ]
        vector = self.layout.pack(values)
        # Kept for snapshots: the sensor cannot be read again without drawing from np_random.
        self._last_vector = vector.copy()
        fields = self.layout.fields(vector)
        if self.camera_obs is not None:
            fields.update(self._images())
        return fields

    def _image_camera(self, options: CameraObs | None) -> Any:
        """The camera of the image fields: a camera station's, else the cell camera."""
        if options is None:
            return None
        if options.station is not None:
            return station_camera(self.site, options.station)
        aspect = options.width / options.height
        return framing.fit_camera(framing.cell_bounds(self.site), framing.view_direction(), aspect)

    def _images(self) -> dict[str, np.ndarray]:
        """The image fields of this step (`envs.camera_obs`), from the pinned renderer."""
        options = self.camera_obs
        assert options is not None
        if not options.depth:
            image = self.sim.render(self._obs_camera, options.width, options.height, self.renderer)
            return {"image": image}
        image, depth = self.sim.render_depth(
            self._obs_camera, options.width, options.height, self.renderer
        )
        return {"image": image, "depth": depth}
