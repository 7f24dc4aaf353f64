"""Snapshots of an env: its full state as portable bytes, without pickle.

A snapshot lets a replay start mid-episode. It holds the PyBullet world (the bytes of a
``.bullet`` file) and the Python state the engine knows nothing about, which each component
owns and hands over through ``state()`` / ``load_state()``: the env's counters, ``np_random``
and last readings; the arm's commanded tool point; the suction weld; the task's part
lifecycle; the metric accumulators; the action-link queue and the sensor history (us-austin's
latency, dropout and noise depend on them). This module only packs and unpacks: a component's
state is a flat mapping whose numpy arrays become ``.npz`` entries and whose other (JSON)
values go into the ``state`` entry, all under the component's own key names.

On disk a snapshot is an uncompressed ``.npz`` (the episode record compresses it):

==========================  ===============================================================
key                         content
==========================  ===============================================================
``state``                   UTF-8 JSON: format, site, bundle hash, then the components' JSON
                            values: counters and RNG state (env), ``gripper`` (suction, held
                            body, weld frames), ``parts`` (statuses), ``metrics``
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
bodies have the same ids and the parts the same schedule; the task checks that it is so. The
world's history does not matter (`envs.sim.Sim.restore_state_bytes`).

Format 2 (``testbed.env-snapshot/2``) has the layout of format 1 and each part's
``resolved_step`` and ``in_bin``; its cell builds each bin from five bodies. Format 1 snapshots
come from cells whose bins were one compound body, so their bodies do not match today's cell:
they are refused with that reason (replay such an episode from step 0).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

SNAPSHOT_FORMAT = "testbed.env-snapshot/2"
#: Formats this version cannot restore, and why.
_RETIRED = {
    "testbed.env-snapshot/1": (
        "taken by an earlier version of the env, whose bins were one compound body; its "
        "bodies do not match this cell, so it cannot be restored (replay from step 0)"
    ),
}
_RESERVED = ("state", "bullet", "format")


@dataclass(frozen=True)
class Snapshot:
    """A snapshot read back.

    Attributes:
        bullet: The simulator's state (``.bullet`` bytes), for `Sim.restore_state_bytes`.
        state: The components' states merged: JSON values and numpy arrays by key.
        observation: The observation the env returned when the snapshot was taken.
    """

    bullet: bytes
    state: dict[str, Any]
    observation: dict[str, np.ndarray]


def capture(
    identity: Mapping[str, str],
    bullet: bytes,
    states: Iterable[Mapping[str, Any]],
    observation: Mapping[str, np.ndarray],
) -> bytes:
    """Pack a snapshot.

    Args:
        identity: What a restoring env must match (``site``, ``bundle_hash``).
        bullet: The simulator's state bytes.
        states: Each component's ``state()``; keys must not repeat across components.
        observation: The observation the env last returned.
    """
    document: dict[str, Any] = {"format": SNAPSHOT_FORMAT, **identity}
    arrays: dict[str, np.ndarray] = {}
    for state in states:
        for key, value in state.items():
            if key in document or key in arrays or key in _RESERVED or key.startswith("obs/"):
                raise ValueError(f"snapshot: two components save the key {key!r}")
            if isinstance(value, np.ndarray):
                arrays[key] = value
            else:
                document[key] = value
    arrays["state"] = np.frombuffer(json.dumps(document).encode(), dtype=np.uint8)
    arrays["bullet"] = np.frombuffer(bullet, dtype=np.uint8)
    arrays.update({f"obs/{name}": value for name, value in observation.items()})
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def read(blob: bytes, identity: Mapping[str, str]) -> Snapshot:
    """Unpack a `capture` blob taken by an env with the same ``identity``.

    Raises:
        ValueError: If the blob is not a snapshot, or was taken at another site or bundle.
    """
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        document = json.loads(arrays.pop("state").tobytes().decode())
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"snapshot: not a readable env snapshot ({exc})") from exc
    if document.get("format") in _RETIRED:
        raise ValueError(f"snapshot: {_RETIRED[document['format']]}")
    if document.get("format") != SNAPSHOT_FORMAT:
        raise ValueError(
            f"snapshot: expected format {SNAPSHOT_FORMAT!r}, got {document.get('format')!r}"
        )
    for key, mine in identity.items():
        if document.get(key) != mine:
            raise ValueError(
                f"snapshot: taken with {key} {document.get(key)!r}, this env has {mine!r}"
            )
    bullet = arrays.pop("bullet").tobytes()
    observation = {k[4:]: v for k, v in arrays.items() if k.startswith("obs/")}
    state = {k: v for k, v in arrays.items() if not k.startswith("obs/")}
    state.update(document)
    return Snapshot(bullet, state, observation)
