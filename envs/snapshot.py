"""Snapshots of a `ConveyorSortEnv`: its full state as portable bytes, without pickle.

A snapshot lets a replay start mid-episode. It holds the PyBullet world (the bytes of a
``.bullet`` file) and the env's Python state, which the engine knows nothing about: the
``np_random`` bit generator, sensor history and action-link queue (us-austin's noise, latency
and dropout depend on them), the task's part lifecycle, metric accumulators, the suction weld,
the commanded tool target, step counters, the reward potential and the last observation.

On disk a snapshot is an uncompressed ``.npz`` (the episode record compresses it):

==========================  ===============================================================
key                         content
==========================  ===============================================================
``state``                   UTF-8 JSON: counters, RNG state, statuses, metrics, weld frames
``bullet``                  bytes of the ``.bullet`` file
``obs/<field>``             the observation the env last returned
``tool``, ``tool_vel``      tool centre point state (world frame)
``arm_target``              the commanded tool position
``hold_offset``             part position minus tool position when the weld was made
``part_position``, ...      (parts, 3) part poses and velocities as the task last saw them
``link_queue``              (k, 4) actions in flight on the policy link
``sensor_pos``, ...         (m, 3) sensor history; ``sensor_last`` the last reading
==========================  ===============================================================

Restoring needs a world built the same way: ``reset(seed=<the episode's seed>)`` first, so
bodies have the same ids and the parts the same schedule; `restore` checks that it is so.
"""

from __future__ import annotations

import dataclasses
import io
import json
from typing import TYPE_CHECKING, Any

import numpy as np

from envs.sim import Attachment

if TYPE_CHECKING:
    from envs.conveyor_sort import ConveyorSortEnv

SNAPSHOT_FORMAT = "testbed.env-snapshot/1"


def capture(env: ConveyorSortEnv, observation: dict[str, np.ndarray]) -> bytes:
    """The env's full state, with the observation it last returned."""
    assert env.cell is not None, "call reset() before save_snapshot()"
    arrays: dict[str, np.ndarray] = {
        "state": np.frombuffer(json.dumps(_python_state(env)).encode(), dtype=np.uint8),
        "bullet": np.frombuffer(env.sim.state_bytes(), dtype=np.uint8),
        "tool": env._tool,
        "tool_vel": env._tool_vel,
        "arm_target": env.cell.arm.target,
        "hold_offset": env.gripper._hold_offset,
        "part_position": _rows([p.position for p in env.task.parts], 3, np.float64),
        "part_velocity": _rows([p.velocity for p in env.task.parts], 3, np.float64),
        "link_queue": _rows(list(env.link._queue), 4, np.float32),
        "sensor_pos": _rows([pos for pos, _ in env.sensor._history], 3, np.float64),
        "sensor_vel": _rows([vel for _, vel in env.sensor._history], 3, np.float64),
    }
    if env.sensor._last is not None:
        arrays["sensor_last"] = np.stack(env.sensor._last)
    arrays.update({f"obs/{name}": value for name, value in observation.items()})
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def restore(env: ConveyorSortEnv, blob: bytes) -> dict[str, np.ndarray]:
    """Put ``env`` in the state `capture` saved; returns the observation at that point.

    Raises:
        ValueError: If the blob is not a snapshot, or was taken at another site, bundle or
            episode (reset the env with the episode's seed first).
    """
    arrays = _read(blob)
    state = json.loads(arrays.pop("state").tobytes().decode())
    _check_compatible(env, state)
    gripper, sim = env.gripper, env.sim
    if gripper.held is not None:
        gripper._drop()
    # Constraints are not part of the .bullet state: remake the weld with its original frames.
    weld = state["gripper"]["attachment"]
    if weld is not None:
        gripper._constraint = sim.attach_exact(Attachment(**_tuples(weld)))
    sim.restore_state_bytes(arrays["bullet"].tobytes())
    gripper.on = state["gripper"]["on"]
    gripper.held = state["gripper"]["held"]
    gripper._hold_offset = arrays["hold_offset"]
    _restore_env(env, state, arrays)
    _restore_task(env, state["parts"], arrays)
    _restore_signals(env, arrays)
    return {k[4:]: v for k, v in arrays.items() if k.startswith("obs/")}


def _python_state(env: ConveyorSortEnv) -> dict[str, Any]:
    metrics = {
        f.name: getattr(env.metrics, f.name)
        for f in dataclasses.fields(env.metrics)
        if f.name != "safety"
    }
    constraint = env.gripper._constraint
    attachment = None if constraint is None else dataclasses.asdict(env.sim.attachment(constraint))
    return {
        "format": SNAPSHOT_FORMAT,
        "site": env.site.site_id,
        "bundle_hash": env.site.bundle_hash,
        "steps": env.steps,
        "sim_time_s": env.sim_time_s,
        "potential_part": env._potential_part,
        "potential": env._potential,
        "contact": env._contact,
        "rng": env.np_random.bit_generator.state,
        "gripper": {"on": env.gripper.on, "held": env.gripper.held, "attachment": attachment},
        "parts": [
            {
                "part_id": p.part.part_id,
                "arrival_s": p.arrival_s,
                "body": p.body,
                "status": p.status,
                "ever_sorted": p.ever_sorted,
                "grasped_once": p.grasped_once,
            }
            for p in env.task.parts
        ],
        "metrics": metrics,
    }


def _check_compatible(env: ConveyorSortEnv, state: dict[str, Any]) -> None:
    if state.get("format") != SNAPSHOT_FORMAT:
        raise ValueError(
            f"snapshot: expected format {SNAPSHOT_FORMAT!r}, got {state.get('format')!r}"
        )
    for key, mine in (("site", env.site.site_id), ("bundle_hash", env.site.bundle_hash)):
        if state[key] != mine:
            raise ValueError(f"snapshot: taken with {key} {state[key]!r}, this env has {mine!r}")
    if env.cell is None:
        raise ValueError("snapshot: reset the env with the episode's seed before restoring")
    saved = [(p["part_id"], p["arrival_s"], p["body"]) for p in state["parts"]]
    built = [(p.part.part_id, p.arrival_s, p.body) for p in env.task.parts]
    if saved != built:
        raise ValueError(
            "snapshot: the env's part schedule differs from the snapshot's "
            f"(first parts {saved[:2]} vs {built[:2]}); reset it with the episode's seed first"
        )


def _restore_env(
    env: ConveyorSortEnv, state: dict[str, Any], arrays: dict[str, np.ndarray]
) -> None:
    assert env.cell is not None
    env.np_random.bit_generator.state = state["rng"]
    env.steps = state["steps"]
    env.sim_time_s = state["sim_time_s"]
    env._potential_part = state["potential_part"]
    env._potential = state["potential"]
    env._tool, env._tool_vel, env._contact = arrays["tool"], arrays["tool_vel"], state["contact"]
    env.cell.arm.target = arrays["arm_target"]
    for name, value in state["metrics"].items():
        setattr(env.metrics, name, value)


def _restore_task(env: ConveyorSortEnv, parts: list[dict[str, Any]], arrays: dict) -> None:
    for instance, saved, position, velocity in zip(
        env.task.parts, parts, arrays["part_position"], arrays["part_velocity"], strict=True
    ):
        instance.status = saved["status"]
        instance.ever_sorted = saved["ever_sorted"]
        instance.grasped_once = saved["grasped_once"]
        instance.position, instance.velocity = position.copy(), velocity.copy()


def _restore_signals(env: ConveyorSortEnv, arrays: dict[str, np.ndarray]) -> None:
    env.link._queue.clear()
    env.link._queue.extend(action.copy() for action in arrays["link_queue"])
    env.sensor._history.clear()
    env.sensor._history.extend(
        (pos.copy(), vel.copy())
        for pos, vel in zip(arrays["sensor_pos"], arrays["sensor_vel"], strict=True)
    )
    last = arrays.get("sensor_last")
    env.sensor._last = (last[0].copy(), last[1].copy()) if last is not None else None


def _read(blob: bytes) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError) as exc:
        raise ValueError(f"snapshot: not a readable env snapshot ({exc})") from exc


def _rows(values: list[np.ndarray], width: int, dtype: type) -> np.ndarray:
    """Stack equal-length vectors (keeping their dtype); an empty list gives (0, width)."""
    return np.stack(values) if values else np.zeros((0, width), dtype)


def _tuples(data: dict[str, Any]) -> dict[str, Any]:
    """JSON lists back to the tuples `Attachment` holds."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
