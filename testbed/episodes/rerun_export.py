"""A Rerun recording (``.rrd``) of a replayed episode, for the Rerun viewer.

``testbed replay EP --rerun out.rrd`` replays the record (verified, like a video) and logs, on
the timelines ``step`` (observation index) and ``sim_time`` (simulated seconds):

- ``world/<body>/link_<k>``: every link's pose (`Transform3D`, logged when it moves) with
  its shapes below it as ``shape_<j>`` (`Boxes3D`, `Cylinders3D`, `Ellipsoids3D`, `Asset3D`
  for meshes; static);
- ``world/tool``: the tool centre point each step; ``world/tool_path``: its whole path
  (`LineStrips3D`, static);
- ``world/contacts``: contact forces as arrows (1 cm per newton, from the contact point);
- ``events``: the episode's events, ``violation:<kind>`` at warning level (`TextLog`);
- ``scalars/reward``, ``scalars/return``, ``scalars/<info>`` (the record's per-step infos:
  TCP speed, contact force, energy ...), ``kpis/<kind>`` (parts sorted, lost ... so far) and,
  at the last step, ``kpis/<metric>`` for every numeric metric of the episode;
- ``camera/<observation>``: image observations, when the record has them.

Everything comes from the record and its replay: never from a measured run, and nothing
reaches a viewer or the network (the file sink only). The replay reads the simulator and
changes nothing, so it stays bit-identical. Guide: docs/replay.md.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from envs import scene
from testbed.episodes.env_contract import contract_of
from testbed.episodes.records import EpisodeRecord
from testbed.episodes.replay import Observer, ReplayReport, ReplayStep, open_env, replay_episode
from testbed.episodes.video_overlay import TALLIED
from testbed.errors import ReplayError

APPLICATION_ID = "physical-ai-testbed"
NEWTONS_TO_M = 0.01  # contact arrows: 1 cm per newton
_MESH_SUFFIXES = (".obj", ".stl", ".glb", ".gltf")


@dataclass(frozen=True)
class RerunReport:
    """A written Rerun recording.

    Attributes:
        path: The ``.rrd`` file.
        steps: Observations logged (the ``step`` timeline's length).
        entities: Entity paths logged.
        wall_time_s: Wall time of the replay and export.
    """

    path: Path
    steps: int
    entities: tuple[str, ...]
    wall_time_s: float


def _rerun() -> Any:
    try:
        import rerun
    except ImportError:
        raise ReplayError(
            "--rerun needs rerun-sdk: pip install 'physical-ai-testbed[rerun]'"
        ) from None
    return rerun


def export_rerun(
    record: EpisodeRecord,
    out: Path,
    *,
    verify: bool = True,
    from_step: int = 0,
    source: str = "<record>",
    observers: tuple[Observer, ...] = (),
) -> tuple[ReplayReport, RerunReport]:
    """Replay ``record`` and log it into the Rerun file ``out`` (written whole or not at all).

    Raises:
        ReplayError: If rerun-sdk is missing, the output is unusable, or the replay fails.
        ReplayDivergenceError: At the first difference, when verifying.
    """
    rr = _rerun()
    out = Path(out)
    if out.suffix.lower() != ".rrd":
        raise ReplayError(f"--rerun {out}: expected a .rrd file")
    if not out.parent.is_dir():
        raise ReplayError(f"--rerun {out}: folder {out.parent} does not exist")
    partial = out.with_name(f".{out.stem}.partial.rrd")
    meta = record.meta
    stream = rr.RecordingStream(
        APPLICATION_ID, recording_id=f"{meta.site}-seed{meta.seed}-{meta.campaign}-{meta.episode}"
    )
    env = open_env(meta, source)
    start = time.perf_counter()
    try:
        stream.save(partial)
        logger = _Logger(rr, stream, record, contract_of(env).control_dt)
        report = replay_episode(
            record,
            verify=verify,
            from_step=from_step,
            env=env,
            source=source,
            observers=(logger, *observers),
        )
        logger.finish()
        stream.flush()
        stream.disconnect()
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        env.close()
    os.replace(partial, out)
    wall = time.perf_counter() - start
    return report, RerunReport(out, logger.steps, tuple(sorted(logger.entities)), wall)


class _Logger:
    """The observer that logs each replayed step to a Rerun stream."""

    def __init__(self, rr: Any, stream: Any, record: EpisodeRecord, control_dt: float) -> None:
        self.rr, self.stream, self.record, self.control_dt = rr, stream, record, control_dt
        self.entities: set[str] = set()
        self.names: dict[int, str] = {}
        self.floor: int | None = None
        self.poses: dict[str, Any] = {}
        self.path: list[np.ndarray] = []
        self.steps = 0
        self.last = -1
        self.tally = {
            kind: sorted(s for s, e in record.meta.events if e.startswith(kind + ":"))
            for kind in TALLIED
        }
        self.images = [
            name
            for name, rows in record.observations.items()
            if rows.dtype == np.uint8 and rows.ndim == 4 and rows.shape[-1] in (1, 3, 4)
        ]

    def log(self, path: str, *items: Any, static: bool = False) -> None:
        self.entities.add(path)
        self.stream.log(path, *items, static=static)

    def __call__(self, step: ReplayStep) -> None:
        rr, index = self.rr, step.index
        if not self.names:
            self._describe(step.env)
        self.stream.set_time("step", sequence=index)
        self.stream.set_time("sim_time", duration=index * self.control_dt)
        self._poses(step.env)
        tool = scene.tool_position(step.env)
        self.path.append(tool)
        self.log("world/tool", rr.Points3D([tool], radii=0.008, colors=[(255, 200, 0)]))
        contacts = scene.contact_forces(step.env)
        self.log(
            "world/contacts",
            rr.Arrows3D(
                origins=contacts[:, :3],
                vectors=contacts[:, 3:6] * contacts[:, 6:7] * NEWTONS_TO_M,
                colors=[(255, 60, 60)],
            ),
        )
        for event in step.events:
            level = rr.TextLogLevel.WARN if event.startswith("violation:") else rr.TextLogLevel.INFO
            self.log("events", rr.TextLog(event, level=level))
        self._scalars(step)
        for name in self.images:
            self.log(f"camera/{name}", rr.Image(self.record.observations[name][index]))
        self.steps += 1
        self.last = index

    def _scalars(self, step: ReplayStep) -> None:
        rr, index = self.rr, step.index
        self.log("scalars/reward", rr.Scalars(step.reward))
        self.log("scalars/return", rr.Scalars(step.total_reward))
        if index > 0:  # infos belong to the action that led here
            for name, rows in self.record.infos.items():
                if np.issubdtype(rows.dtype, np.number) and rows.ndim == 1:
                    self.log(f"scalars/{name}", rr.Scalars(float(rows[index - 1])))
        for kind, steps in self.tally.items():
            if steps:
                done = sum(1 for s in steps if s <= index - 1)
                self.log(f"kpis/{kind}", rr.Scalars(float(done)))

    def _describe(self, env: Any) -> None:
        """Log every body's shapes once (static), under its links."""
        rr = self.rr
        self.names = scene.bodies(env)
        self.floor = next((body for body, name in self.names.items() if name == "floor"), None)
        counts: dict[str, int] = {}
        for shape in scene.visual_shapes(env):
            link = f"world/{self.names[shape.body]}/link_{shape.link}"
            number = counts[link] = counts.get(link, -1) + 1
            path = f"{link}/shape_{number}"
            archetype = self._archetype(shape)
            if archetype is None:
                continue
            offset = rr.Transform3D(
                translation=shape.position,
                quaternion=rr.Quaternion(xyzw=shape.orientation),
                scale=shape.size if shape.kind == "mesh" else None,
            )
            self.log(path, offset, archetype, static=True)

    def _archetype(self, shape: scene.VisualShape) -> Any:
        rr = self.rr
        color = [int(round(255 * c)) for c in shape.rgba]
        if shape.kind == "box":
            return rr.Boxes3D(half_sizes=[np.asarray(shape.size) / 2.0], colors=[color],
                              fill_mode="solid")  # fmt: skip
        if shape.kind == "sphere":
            return rr.Ellipsoids3D(half_sizes=[[shape.size[0]] * 3], colors=[color],
                                   fill_mode="solid")  # fmt: skip
        if shape.kind in ("cylinder", "capsule"):
            return rr.Cylinders3D(lengths=[shape.size[0]], radii=[shape.size[1]], colors=[color],
                                  fill_mode="solid")  # fmt: skip
        if shape.kind == "plane" or shape.body == self.floor:  # a flat box will do
            return rr.Boxes3D(half_sizes=[[2.0, 2.0, 0.0005]], centers=[[0.0, 0.0, -0.0005]],
                              colors=[(200, 200, 200)], fill_mode="solid")  # fmt: skip
        if shape.kind == "mesh" and shape.mesh and shape.mesh.lower().endswith(_MESH_SUFFIXES):
            return rr.Asset3D(path=shape.mesh, albedo_factor=color)
        return None

    def _poses(self, env: Any) -> None:
        rr = self.rr
        for body, name in self.names.items():
            for link, pose in scene.link_poses(env, body).items():
                path = f"world/{name}/link_{link}"
                if self.poses.get(path) == pose:
                    continue
                self.poses[path] = pose
                self.log(
                    path,
                    rr.Transform3D(translation=pose[0], quaternion=rr.Quaternion(xyzw=pose[1])),
                )

    def finish(self) -> None:
        """Log the tool's whole path and the episode's KPIs at the last step."""
        rr = self.rr
        if self.path:
            self.log("world/tool_path", rr.LineStrips3D([np.asarray(self.path)],
                     colors=[(255, 200, 0)], radii=0.003), static=True)  # fmt: skip
        for name, value in sorted(self.record.meta.metrics.items()):
            if isinstance(value, bool | int | float) and np.isfinite(float(value)):
                self.log(f"kpis/{name}", rr.Scalars(float(value)))
