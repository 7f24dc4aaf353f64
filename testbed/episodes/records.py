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
The meta also holds the episode's outcome reason (`EpisodeMeta.outcome`, see
`testbed.episodes.outcomes`). Files are written atomically (temporary file, fsync, rename), so a
killed writer never leaves a partial record under the final name.

A file under a record's name that is not a readable record raises `RecordError`, naming the
file and saying what is wrong: a *damaged* record (empty, truncated, a corrupt member: CRC or
compressed data) or *not an episode record* (another kind of file, pickled objects, no meta).
Readers that keep going set such a file aside (`set_aside`: renamed to
``ep-NNNNN.npz.damaged``, never deleted), so its episode counts as not recorded and a rerun of
the campaign records it again; `set_aside_records` lists those still missing.
"""

from __future__ import annotations

import errno
import io
import json
import math
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from testbed.atomic import atomic_write_bytes
from testbed.atomic import atomic_write_text as atomic_write_text  # re-exported: older users
from testbed.episodes.outcomes import outcome_reason

RECORD_FORMAT = "testbed.episode/1"
RECORD_SUFFIX = ".npz"
RECORD_GLOB = f"episodes/ep-*{RECORD_SUFFIX}"
_ZIP_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"
#: What numpy and zipfile raise on a damaged archive (an OSError only as EINVAL: a bad offset).
_CORRUPT = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError, OSError)


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
        team: The model team the policy belongs to ("" when the config names none).
        home_site: The site the policy was built or trained for.
        policy_seed: Training seed of the policy (the unit of replication for IQM), if any.
        ended_by: ``terminated``, ``truncated``, ``fault`` or ``max_steps``.
        steps: Control steps taken.
        total_reward: Sum of rewards.
        metrics: The env's episode summary (empty if the episode ended on a fault).
        faults: Policy faults, in step order.
        compute: The policy's compute over the episode (`testbed.episodes.compute.ComputeTally`
            ``summary``: joules or None, cpu_seconds, calls, measured_calls, actions, source,
            watts_per_core, price_per_kwh, currency); empty in records that predate it.
        events: ``(step, event)`` pairs from the env's info (events and ``violation:<kind>``).
        wall_time_s: Wall time of the episode.
        snapshot_every: Steps between state snapshots (0: none).
        config_hash: Hash of the trial's resolved config.
        versions: Package versions that produced the record.
        created_at: ISO 8601 UTC time the record was written.
        format: Record format id.

    Its `outcome` (the reason the episode ended as it did) follows from ``ended_by``,
    ``faults`` and ``metrics``; `to_json` stores it beside them for other readers.
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
    team: str = ""
    home_site: str = ""
    policy_seed: int | None = None
    ended_by: str = ""
    steps: int = 0
    total_reward: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    faults: tuple[Fault, ...] = ()
    compute: dict[str, Any] = field(default_factory=dict)
    events: tuple[tuple[int, str], ...] = ()
    wall_time_s: float = 0.0
    snapshot_every: int = 0
    config_hash: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    format: str = RECORD_FORMAT

    @property
    def outcome(self) -> str:
        """``success``, ``policy fault: <kind>`` or the env's reason (`episodes.outcomes`)."""
        faults = [(f.kind, f.message) for f in self.faults]
        return outcome_reason(self.ended_by, faults, self.metrics)

    def to_json(self) -> str:
        """The meta as JSON (NaN and infinities become null), with its `outcome`."""
        return json.dumps(_finite({**asdict(self), "outcome": self.outcome}), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> EpisodeMeta:
        """Parse `to_json` output.

        The stored ``outcome`` is not read back: `outcome` derives it (also for records
        written before it was stored).

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
    np.savez_compressed(buffer, **cast("dict[str, Any]", arrays))  # keys are never numpy's own
    return atomic_write_bytes(Path(path), buffer.getvalue())


class RecordError(ValueError):
    """A file under an episode record's name that cannot be read as one.

    Attributes:
        path: The file.
        kind: `DAMAGED`, `NOT_A_RECORD`, `UNSUPPORTED` (a record of another format) or
            `UNREADABLE` (the file cannot be read at all: permissions, I/O).
        detail: What exactly is wrong.
    """

    DAMAGED = "damaged episode record"
    NOT_A_RECORD = "not an episode record"
    UNSUPPORTED = "unsupported episode record"
    UNREADABLE = "cannot read episode record"

    def __init__(self, path: Path, kind: str, detail: str) -> None:
        super().__init__(f"{path}: {kind} ({detail})")
        self.path, self.kind, self.detail = Path(path), kind, detail

    @property
    def reason(self) -> str:
        """The message without the path: ``damaged episode record (empty file)``."""
        return f"{self.kind} ({self.detail})"

    @property
    def to_set_aside(self) -> bool:
        """Whether the file holds no usable record (damaged or not one): set it aside."""
        return self.kind in (self.DAMAGED, self.NOT_A_RECORD)


def read_record(path: Path) -> EpisodeRecord:
    """Load a record written by `write_record`, checking every member's CRC first.

    Raises:
        RecordError: Naming the file, if it is not a readable episode record.
    """
    path = Path(path)
    arrays = _arrays(path, None, verify=True)
    meta = _meta(path, arrays.pop("meta", None))

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
        raise RecordError(path, RecordError.NOT_A_RECORD, f"malformed: {exc}") from exc


def read_meta(path: Path, *, verify: bool = False) -> EpisodeMeta:
    """Load only the meta of a record (cheap: the arrays stay compressed on disk).

    Args:
        path: The record.
        verify: Also check the CRC of every member (reads the whole file), so a record with
            a corrupt array is found before anyone relies on it.

    Raises:
        RecordError: Naming the file, if it is not a readable episode record.
    """
    path = Path(path)
    return _meta(path, _arrays(path, ("meta",), verify=verify).get("meta"))


def read_summary(path: Path, *, verify: bool = False) -> tuple[EpisodeMeta, np.ndarray | None]:
    """The meta and the policy latencies (ms; None if absent) of a record: a table row's worth.

    Args:
        path: The record.
        verify: Also check the CRC of every member (see `read_meta`).

    Raises:
        RecordError: Naming the file, if it is not a readable episode record.
    """
    path = Path(path)
    arrays = _arrays(path, ("meta", "latencies_ms"), verify=verify)
    return _meta(path, arrays.get("meta")), arrays.get("latencies_ms")


def _arrays(path: Path, keys: tuple[str, ...] | None, *, verify: bool) -> dict[str, np.ndarray]:
    """The arrays ``keys`` (all when None) of the archive at ``path``; missing keys left out."""
    _check_head(path)
    if verify and (corrupt := _corruption(path)):
        raise RecordError(path, RecordError.DAMAGED, corrupt)
    try:
        with np.load(path, allow_pickle=False) as data:
            names = data.files if keys is None else [k for k in keys if k in data.files]
            return {key: data[key] for key in names}
    except _CORRUPT as exc:  # diagnosed: a damaged archive, or one that is not a record
        raise _diagnosed(path, exc) from exc


def _check_head(path: Path) -> None:
    """Refuse what is not a zip archive before numpy guesses it is a pickle."""
    try:
        with path.open("rb") as handle:
            head = handle.read(len(_NPY_MAGIC))
    except OSError as exc:
        raise RecordError(path, RecordError.UNREADABLE, exc.strerror or str(exc)) from exc
    if not head:
        raise RecordError(path, RecordError.DAMAGED, "empty file")
    if head.startswith(_NPY_MAGIC):
        raise RecordError(path, RecordError.NOT_A_RECORD, "a single .npy array, not an .npz")
    if not head.startswith(_ZIP_MAGIC):
        raise RecordError(path, RecordError.NOT_A_RECORD, "not an .npz archive")


def _corruption(path: Path) -> str:
    """What is corrupt in the zip archive at ``path`` (every member read, CRC checked), or "".

    Raises:
        RecordError: `RecordError.UNREADABLE` on an I/O error.
    """
    member = ""
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                member = info.filename
                with archive.open(info) as stream:
                    while stream.read(1 << 20):
                        pass
    except _CORRUPT as exc:
        if isinstance(exc, OSError) and exc.errno not in (None, errno.EINVAL):
            raise RecordError(path, RecordError.UNREADABLE, exc.strerror or str(exc)) from exc
        if not member:
            return f"truncated or corrupt archive: {exc}"
        return f"corrupt member {member}: {exc}"
    return ""


def _diagnosed(path: Path, error: Exception) -> RecordError:
    """The `RecordError` for ``error`` raised while numpy read ``path``."""
    corrupt = _corruption(path)
    if corrupt:
        return RecordError(path, RecordError.DAMAGED, corrupt)
    if isinstance(error, ValueError) and "pickle" in str(error).lower():
        return RecordError(
            path, RecordError.NOT_A_RECORD, "holds pickled Python objects, which records never do"
        )
    if isinstance(error, OSError) and not isinstance(error, zipfile.BadZipFile):
        return RecordError(path, RecordError.UNREADABLE, error.strerror or str(error))
    return RecordError(path, RecordError.NOT_A_RECORD, f"unreadable array: {error}")


def _meta(path: Path, array: np.ndarray | None) -> EpisodeMeta:
    if array is None:
        raise RecordError(path, RecordError.NOT_A_RECORD, "no meta")
    try:
        data = json.loads(array.tobytes().decode())
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise RecordError(path, RecordError.NOT_A_RECORD, f"meta is not JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        detail = f"format {got!r}; this testbed reads {RECORD_FORMAT!r}"
        kind = RecordError.UNSUPPORTED if isinstance(got, str) else RecordError.NOT_A_RECORD
        raise RecordError(path, kind, detail)
    try:
        return EpisodeMeta.from_json(json.dumps(data))
    except (ValueError, TypeError, KeyError) as exc:
        raise RecordError(path, RecordError.NOT_A_RECORD, f"malformed meta: {exc}") from exc


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
