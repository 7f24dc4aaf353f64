"""Export a campaign's episode records as a Minari dataset (offline RL, imitation learning).

Episode buffers are built straight from the records (``minari.create_dataset_from_buffers``
with ``EpisodeBuffer``; no ``DataCollector``, so no jax), stored in Minari's Arrow format. The
dataset keeps the env spec (``Testbed/ConveyorSort-v0`` with its ``site`` keyword argument and
the string entry point ``envs.conveyor_sort:ConveyorSortEnv``), so
``dataset.recover_environment()`` rebuilds the env without importing anything first.

One dataset holds one env spec: a campaign that ran several sites (or env kwargs) exports one
dataset per site (``--site``). Per-step info values of the records (TCP speed, contact force,
energy, parts sorted) become Minari ``infos``; Minari stores one info row per observation, so
row 0 (the reset) is NaN.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from testbed.episodes.browse import EpisodeEntry, EpisodeFilter, find_episodes, select_episodes
from testbed.episodes.records import EpisodeRecord, read_record
from testbed.episodes.replay import open_env
from testbed.errors import ExportError, ReplayError
from testbed.governance.records import EgressRequest, gate_records

DATA_FORMAT = "arrow"  # Minari's default, hdf5, would need h5py


@dataclass(frozen=True)
class MinariExport:
    """A written dataset.

    Attributes:
        dataset_id: The Minari dataset id.
        path: The dataset folder.
        datasets_root: The root folder to point ``MINARI_DATASETS_PATH`` at to load it.
        episodes: Episodes exported.
        steps: Steps exported.
        env_id: Env id of every episode.
        env_kwargs: Env keyword arguments of every episode.
    """

    dataset_id: str
    path: Path
    datasets_root: Path
    episodes: int
    steps: int
    env_id: str
    env_kwargs: dict


def export_minari(
    campaign_dir: Path,
    dataset_id: str,
    *,
    out: Path | None = None,
    where: EpisodeFilter | None = None,
    description: str | None = None,
    egress: EgressRequest | None = None,
) -> MinariExport:
    """Write the campaign's (selected) episodes as the Minari dataset ``dataset_id``.

    Args:
        campaign_dir: A campaign folder (records under ``**/episodes/ep-*.npz``).
        dataset_id: ``namespace/name-vN``, e.g. ``testbed/conveyor-sort/kr-changwon-v0``.
        out: Datasets root folder; None for Minari's (``MINARI_DATASETS_PATH`` or
            ``~/.minari/datasets``).
        where: Which episodes to export; None for all.
        description: Dataset description; None for a generated one.
        egress: Who asks, for whom and on what basis; None for the records' own sites.
            Every record goes through the egress gate (`testbed.governance`) first.

    Raises:
        ExportError: If no episode matches, they mix env specs, a record is unreadable or the
            dataset exists already.
        EgressRefused: If the gate refuses a record (nothing is written).
    """
    chosen = _select(Path(campaign_dir), where or EpisodeFilter())
    env_id, env_kwargs = _one_env(chosen)
    records = [_read(entry) for entry in chosen]
    target = Path(out) / dataset_id if out is not None else None
    pairs = [(entry.path, entry.meta) for entry in chosen]
    gate_records(Path(campaign_dir), pairs, "episode_records", target, egress or EgressRequest())
    try:
        env = open_env(records[0].meta, str(chosen[0].path))
    except ReplayError as exc:
        raise ExportError(f"cannot export: {exc}") from exc
    try:
        with _datasets_root(out):
            path = _create(dataset_id, records, env, description or _describe(records))
    finally:
        env.close()
    root = path.parents[len(dataset_id.split("/")) - 1]
    steps = sum(r.steps for r in records)
    return MinariExport(dataset_id, path, root, len(records), steps, env_id, env_kwargs)


def _select(campaign_dir: Path, where: EpisodeFilter) -> list[EpisodeEntry]:
    try:
        entries, problems = find_episodes(campaign_dir)
    except FileNotFoundError as exc:
        raise ExportError(str(exc)) from exc
    if problems:
        raise ExportError("unreadable records:\n  " + "\n  ".join(problems))
    chosen = select_episodes(entries, where)
    if not chosen:
        raise ExportError(f"{campaign_dir}: no episode records match ({len(entries)} found)")
    return chosen


def _create(dataset_id: str, records: list[EpisodeRecord], env: Any, description: str) -> Path:
    """Write the dataset under Minari's current datasets root; returns its folder."""
    from minari import create_dataset_from_buffers  # imported here: 0.3 s on every CLI call

    policies = sorted({r.meta.policy_id or r.meta.policy for r in records})
    try:
        with warnings.catch_warnings():
            # Minari nags about optional metadata (author, permalink, eval env) left unset.
            warnings.filterwarnings("ignore", message=r".*is set to None", category=UserWarning)
            dataset = create_dataset_from_buffers(
                dataset_id,
                [_buffer(index, record) for index, record in enumerate(records)],
                env=env,
                algorithm_name=", ".join(policies),
                description=description,
                data_format=DATA_FORMAT,
                requirements=_requirements(),
            )
    except ValueError as exc:  # malformed id, or a dataset of that id exists
        raise ExportError(f"dataset {dataset_id!r}: {exc}") from exc
    return Path(dataset.spec.data_path).parent


def _one_env(entries: list[EpisodeEntry]) -> tuple[str, dict]:
    specs = {(e.meta.env_id, json.dumps(e.meta.env_kwargs, sort_keys=True)) for e in entries}
    if len(specs) > 1:
        listed = ", ".join(f"{i} {k}" for i, k in sorted(specs))
        raise ExportError(
            f"the episodes use {len(specs)} env specs ({listed}); a Minari dataset holds one: "
            "export one site at a time (--site)"
        )
    env_id, kwargs = specs.pop()
    return env_id, json.loads(kwargs)


def _read(entry: EpisodeEntry) -> EpisodeRecord:
    try:
        return read_record(entry.path)
    except ValueError as exc:
        raise ExportError(str(exc)) from exc


def _buffer(index: int, record: EpisodeRecord) -> object:
    from minari.data_collector import EpisodeBuffer

    reset_row = np.full(1, np.nan)
    # Lists, not 1-D arrays: Minari 0.5.4's Arrow storage cannot decode the shape it writes
    # for a 1-D info array (an empty shape string).
    infos = {k: np.concatenate([reset_row, v]).tolist() for k, v in record.infos.items()}
    return EpisodeBuffer(
        id=index,
        seed=record.meta.seed,
        observations=dict(record.observations),
        actions=record.actions,
        rewards=record.rewards,
        terminations=record.terminations,
        truncations=record.truncations,
        infos=infos,
    )


def _describe(records: list[EpisodeRecord]) -> str:
    meta = records[0].meta
    campaigns = ", ".join(sorted({r.meta.campaign for r in records if r.meta.campaign}))
    policies = ", ".join(sorted({r.meta.policy for r in records if r.meta.policy}))
    return (
        f"{len(records)} episodes of {meta.env_id} at site {meta.site} (bundle "
        f"{meta.bundle_hash[:12]}), policies: {policies or 'unknown'}, exported from testbed "
        f"campaign {campaigns or 'unknown'} episode records."
    )


def _requirements() -> list[str]:
    """Pins that rebuild the env (checked by ``recover_environment``); installed ones only."""
    pins = []
    for name in ("pybullet", "physical-ai-testbed"):
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return pins


@contextmanager
def _datasets_root(out: Path | None) -> Iterator[None]:
    """Point Minari at ``out`` for the duration (it reads ``MINARI_DATASETS_PATH``)."""
    if out is None:
        yield
        return
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(Path(out).resolve())
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous
