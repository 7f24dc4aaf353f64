"""Episode records: everything needed to score, inspect and replay one episode exactly.

A leaf module shared by the campaign runner (which writes records), replay, the episode browser,
the Minari exporter and the evaluator (which read them).

On disk an episode is one compressed ``.npz`` file (no pickle: ``allow_pickle=False`` on read):

================================  ==========================================================
key                               content
================================  ==========================================================
``meta``                          UTF-8 JSON of `EpisodeMeta` (uint8 array)
``actions``                       (T, *action_shape) what the simulator received at each step
``obs/<field>``                   (T + 1, *field_shape) observations, reset observation first
``rewards``                       (T,) float64
``terminations``, ``truncations``  (T,) bool
``info/<key>``                    (T,) per-step numeric info (TCP speed, contact force, ...)
``latencies_ms``                  (K,) wall time of each policy call
``snapshot/<step>``               uint8 bytes of the env's state before action ``step``
================================  ==========================================================

Events (grasps, drops, violations) are sparse and live in the meta as ``[step, name]`` pairs.
Files are written atomically (temporary file, fsync, rename), so a killed writer never leaves
a partial record under the final name.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

RECORD_FORMAT = "testbed.episode/1"
RECORD_SUFFIX = ".npz"
RECORD_GLOB = f"episodes/ep-*{RECORD_SUFFIX}"
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@dataclass(frozen=True)
class Fault:
    """A policy fault recorded on an episode (the robot held position, or the episode ended)."""

    step: int
    kind: str
    message: str


@dataclass(frozen=True)
class EpisodeMeta:
    """Who ran an episode, where, with what outcome. JSON-serialisable.

    Attributes:
        env_id: Gymnasium id, e.g. ``Testbed/ConveyorSort-v0``.
        env_kwargs: Keyword arguments that rebuild the env with ``gymnasium.make``.
        site: Site id the episode ran at.
        bundle_hash: Hash of the site's factory bundle (replay refuses a changed bundle).
        seed: The seed passed to ``env.reset``.
        episode: Index of the episode within its trial.
        campaign: Campaign name.
        trial: Trial name (unique within the campaign).
        policy: Policy name from the config.
        policy_id: ``id@version`` the policy reported.
        home_site: The site the policy was built or trained for.
        policy_seed: Training seed of the policy (the unit of replication for IQM), if any.
        ended_by: ``terminated``, ``truncated`` or ``fault``.
        steps: Control steps taken.
        total_reward: Sum of rewards.
        metrics: The env's episode summary (empty if the episode ended on a fault).
        faults: Policy faults, in step order.
        events: ``(step, event)`` pairs from the env's info (events and ``violation:<kind>``).
        wall_time_s: Wall time of the episode.
        snapshot_every: Steps between state snapshots (0: none).
        config_hash: Hash of the trial's resolved config.
        versions: Package versions that produced the record.
        created_at: ISO 8601 UTC time the record was written.
        format: Record format id.
    """

    env_id: str
    env_kwargs: dict[str, Any]
    site: str
    bundle_hash: str
    seed: int
    episode: int
    campaign: str = ""
    trial: str = ""
    policy: str = ""
    policy_id: str = ""
    home_site: str = ""
    policy_seed: int | None = None
    ended_by: str = ""
    steps: int = 0
    total_reward: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    faults: tuple[Fault, ...] = ()
    events: tuple[tuple[int, str], ...] = ()
    wall_time_s: float = 0.0
    snapshot_every: int = 0
    config_hash: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    format: str = RECORD_FORMAT

    def to_json(self) -> str:
        """The meta as JSON (NaN and infinities become null)."""
        return json.dumps(_finite(asdict(self)), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> EpisodeMeta:
        """Parse `to_json` output.

        Raises:
            ValueError: If the JSON is not an episode meta of a known format.
        """
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
            got = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"meta: expected format {RECORD_FORMAT!r}, got {got!r}")
        data["faults"] = tuple(Fault(**f) for f in data.get("faults", ()))
        data["events"] = tuple((int(s), str(e)) for s, e in data.get("events", ()))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class EpisodeRecord:
    """One episode: its meta plus step arrays (see the module docstring for shapes)."""

    meta: EpisodeMeta
    actions: np.ndarray
    observations: dict[str, np.ndarray]
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    infos: dict[str, np.ndarray] = field(default_factory=dict)
    latencies_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    snapshots: dict[int, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        steps = len(self.actions)
        for name, array in self.observations.items():
            if len(array) != steps + 1:
                raise ValueError(f"obs/{name}: expected {steps + 1} rows, got {len(array)}")
        for name, array in (
            ("rewards", self.rewards),
            ("terminations", self.terminations),
            ("truncations", self.truncations),
            *self.infos.items(),
        ):
            if len(array) != steps:
                raise ValueError(f"{name}: expected {steps} rows, got {len(array)}")

    @property
    def steps(self) -> int:
        """Number of env steps."""
        return len(self.actions)

    def observation(self, index: int) -> dict[str, np.ndarray]:
        """The observation at ``index`` (0 is the reset observation)."""
        return {name: array[index] for name, array in self.observations.items()}


def record_path(trial_dir: Path, episode: int) -> Path:
    """Where episode ``episode`` of a trial is recorded."""
    return Path(trial_dir) / "episodes" / f"ep-{episode:05d}{RECORD_SUFFIX}"


def write_record(path: Path, record: EpisodeRecord) -> Path:
    """Write ``record`` to ``path`` atomically (compressed); returns the path."""
    arrays: dict[str, np.ndarray] = {
        "meta": np.frombuffer(record.meta.to_json().encode(), dtype=np.uint8),
        "actions": record.actions,
        "rewards": record.rewards,
        "terminations": record.terminations,
        "truncations": record.truncations,
        "latencies_ms": np.asarray(record.latencies_ms, dtype=np.float64),
    }
    arrays.update({f"obs/{k}": v for k, v in record.observations.items()})
    arrays.update({f"info/{k}": v for k, v in record.infos.items()})
    arrays.update(
        {f"snapshot/{s}": np.frombuffer(b, dtype=np.uint8) for s, b in record.snapshots.items()}
    )
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return atomic_write_bytes(Path(path), buffer.getvalue())


def read_record(path: Path) -> EpisodeRecord:
    """Load a record written by `write_record`.

    Raises:
        ValueError: Naming the file, if it is not a readable episode record.
    """
    try:
        with np.load(Path(path), allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        meta = EpisodeMeta.from_json(arrays.pop("meta").tobytes().decode())
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path}: not a readable episode record ({exc})") from exc

    def group(prefix: str) -> dict[str, np.ndarray]:
        return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}

    try:
        return EpisodeRecord(
            meta=meta,
            actions=arrays["actions"],
            observations=group("obs/"),
            rewards=arrays["rewards"],
            terminations=arrays["terminations"],
            truncations=arrays["truncations"],
            infos=group("info/"),
            latencies_ms=arrays.get("latencies_ms", np.zeros(0)),
            snapshots={int(k): v.tobytes() for k, v in group("snapshot/").items()},
        )
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{path}: malformed episode record ({exc})") from exc


def read_meta(path: Path) -> EpisodeMeta:
    """Load only the meta of a record (cheap: the arrays stay compressed on disk)."""
    try:
        with np.load(Path(path), allow_pickle=False) as data:
            return EpisodeMeta.from_json(data["meta"].tobytes().decode())
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path}: not a readable episode record ({exc})") from exc


def episode_row(meta: EpisodeMeta, latencies_ms: np.ndarray | None = None) -> dict[str, Any]:
    """One flat row for the episode table (pandas / SQL): identity, outcome, metrics, latency."""
    latencies = np.asarray(latencies_ms if latencies_ms is not None else [], dtype=np.float64)
    row: dict[str, Any] = {
        "campaign": meta.campaign,
        "trial": meta.trial,
        "policy": meta.policy,
        "policy_id": meta.policy_id,
        "home_site": meta.home_site,
        "policy_seed": meta.policy_seed,
        "site": meta.site,
        "seed": meta.seed,
        "episode": meta.episode,
        "ended_by": meta.ended_by,
        "steps": meta.steps,
        "total_reward": meta.total_reward,
        "faults": len(meta.faults),
        "fault_kinds": ";".join(sorted({f.kind for f in meta.faults})),
        "first_fault": meta.faults[0].message if meta.faults else "",
        "latency_ms_p50": float(np.percentile(latencies, 50)) if latencies.size else math.nan,
        "latency_ms_p99": float(np.percentile(latencies, 99)) if latencies.size else math.nan,
        "wall_time_s": meta.wall_time_s,
        "bundle_hash": meta.bundle_hash,
        "config_hash": meta.config_hash,
    }
    for key, value in meta.metrics.items():
        row[key] = math.nan if value is None else value
    return row


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same folder, fsync and rename.

    Raises:
        OSError: ``cannot write <path>: <reason>`` (same errno and subclass as the cause: a full
            disk, an unwritable folder); the file under ``path`` is then unchanged.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _cannot_write(path, exc) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_UMASK)  # mkstemp makes 0600; give what open() would
        os.replace(temporary, path)
    except BaseException as exc:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _cannot_write(path, exc) from exc
        raise
    return path


def _cannot_write(path: Path, error: OSError) -> OSError:
    reason = error.strerror or str(error)
    if error.errno is None:
        return OSError(f"cannot write {path}: {reason}")
    return OSError(error.errno, f"cannot write {path}: {reason}")  # a PermissionError etc.


def atomic_write_text(path: Path, text: str) -> Path:
    """`atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode())


def _finite(value: Any) -> Any:
    """JSON-safe copy: NaN/inf floats become None, numpy scalars become Python ones."""
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
