"""Behaviour cloning: fit the actor of an SB3 actor-critic policy to a Minari dataset's actions.

Why not ``imitation``'s BC: its release 1.0.1 pins ``gymnasium~=0.29`` and
``stable-baselines3~=2.2.1`` (this project runs gymnasium 1.x and SB3 2.9) and brings ~30 more
packages (sacred, optuna, tensorboard, datasets...). Its BC is a short loop over an SB3
``ActorCriticPolicy``; this module runs the same kind of loop on the same policy class, so the
result is an ordinary SB3 model (``model.zip``): ``testbed serve sb3:`` serves it, and PPO can
fine-tune it in the env afterwards.

The loss is the mean squared error between the policy's mean action and the demonstrated one
(a deterministic demonstrator, served deterministically): imitation's negative log-likelihood
with a learned standard deviation weights the same error by a shrinking variance. Once fitted,
the policy's log standard deviation is set to the residual error on held-out episodes, so an
RL fine-tune explores at the scale of the imitation's own error.

Image fields (``image``: uint8 ``(H, W, 3)``, `envs.camera_obs`) stay uint8 in memory. A policy
whose features extractor has parameters (SB3's ``CombinedExtractor``: a CNN per image field) is
trained end to end: each batch goes through the extractor (SB3's own preprocessing: images
scaled to [0, 1], channel-first as the model's space says). Without images the extractor only
flattens, so features are computed once.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy

from testbed.errors import UsageError
from testbed.training.best import BestPolicy
from testbed.training.config import BCConfig
from testbed.training.pixels import Auxiliary, image_keys, shifted
from testbed.training.standardization import Standardization

logger = logging.getLogger(__name__)

BC_CSV_HEADER = "gradient_step,train_loss,validation_loss,success_rate,eval_episodes\n"
_MIN_STD = 0.05
LOSS_ROWS = 50
"""Rows of losses in ``bc.csv`` besides the evaluations (success NaN on those rows)."""


@dataclass(frozen=True)
class Demonstrations:
    """Transitions of a dataset, observation ``t`` paired with the action taken at ``t``.

    Attributes:
        dataset_id: The Minari dataset id.
        env_id: The env the episodes ran in.
        env_kwargs: Its keyword arguments (``site``).
        observations: Per field, ``(N, ...)`` float32, uint8 for image fields (only the
            requested fields).
        actions: ``(N, action_dim)`` float32.
        episode: ``(N,)`` index of each transition's episode.
        episodes: How many episodes.
    """

    dataset_id: str
    env_id: str
    env_kwargs: dict[str, Any]
    observations: dict[str, np.ndarray]
    actions: np.ndarray
    episode: np.ndarray
    episodes: int


@dataclass(frozen=True)
class BCReport:
    """What a behaviour-cloning run did (``model.json``'s ``bc`` record).

    Attributes:
        dataset: The Minari dataset id.
        dataset_site: The ``site`` its episodes ran at.
        episodes: Episodes used for training.
        transitions: Their transitions.
        validation_episodes: Episodes held out.
        validation_transitions: Their transitions.
        gradient_steps: Optimiser steps made.
        kept_step: The step whose policy was kept: the last one, or with `BCConfig.keep_best`
            the evaluated one with the highest success rate (the latest of equals).
        train_loss: Mean squared action error over the last 1% of steps.
        validation_loss: Mean squared action error on the held-out episodes (NaN without any).
        action_std: Per action dimension, the standard deviation the policy was given.
        wall_time_s: Seconds of fitting (evaluations included).
    """

    dataset: str
    dataset_site: str
    episodes: int
    transitions: int
    validation_episodes: int
    validation_transitions: int
    gradient_steps: int
    kept_step: int
    train_loss: float
    validation_loss: float
    action_std: list[float]
    wall_time_s: float


def load_demonstrations(
    dataset_id: str, datasets_root: str, obs_keys: Sequence[str]
) -> Demonstrations:
    """Read a Minari dataset written by ``testbed export minari``.

    Args:
        dataset_id: Minari id.
        datasets_root: Folder holding it; empty for Minari's own (``MINARI_DATASETS_PATH``).
        obs_keys: Fields to keep (empty: all).

    Raises:
        UsageError: If the dataset is missing, has no Dict observation, or lacks a field.
    """
    import minari  # imported here: 0.3 s

    with _datasets_root(datasets_root):
        try:
            dataset = minari.load_dataset(dataset_id)
        except (FileNotFoundError, ValueError) as exc:
            where = os.environ.get("MINARI_DATASETS_PATH", "Minari's default folder")
            found = "not found" if "not found" in str(exc) else f"unreadable ({exc})"
            raise UsageError(
                f"bc.dataset {dataset_id!r}: {found} in {where}; expected a dataset written "
                "by testbed export minari",
                f"testbed export minari outputs/campaigns/NAME --dataset-id {dataset_id} "
                f"--out {datasets_root or where}",
            ) from None
        spaces = getattr(dataset.observation_space, "spaces", None)
        if spaces is None:
            raise UsageError(f"bc.dataset {dataset_id!r}: expected Dict observations")
        keys = list(obs_keys) or sorted(spaces)
        missing = [k for k in keys if k not in spaces]
        if missing:
            raise UsageError(
                f"obs_keys: no field(s) {missing} in bc.dataset {dataset_id!r}; it has "
                f"{sorted(spaces)}"
            )
        fields: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        dtypes = {k: np.uint8 if spaces[k].dtype == np.uint8 else np.float32 for k in keys}
        actions, episode = [], []
        for index, data in enumerate(dataset.iterate_episodes()):
            for key in keys:
                fields[key].append(np.asarray(data.observations[key][:-1], dtype=dtypes[key]))
            actions.append(np.asarray(data.actions, dtype=np.float32))
            episode.append(np.full(len(data.actions), index))
        env_spec = dataset.spec.env_spec
    return Demonstrations(
        dataset_id=dataset_id,
        env_id=env_spec.id if env_spec is not None else "",
        env_kwargs=dict(env_spec.kwargs) if env_spec is not None else {},
        observations={k: np.concatenate(v) for k, v in fields.items()},
        actions=np.concatenate(actions),
        episode=np.concatenate(episode),
        episodes=len(actions),
    )


Evaluate = Callable[[int], float]
"""Called with the gradient step; returns the home-site success rate of the policy now."""


def clone(
    model: BaseAlgorithm,
    demos: Demonstrations,
    cfg: BCConfig,
    *,
    seed: int,
    csv_path: Path,
    evaluate: Evaluate | None = None,
    progress: bool = True,
) -> BCReport:
    """Fit ``model.policy``'s mean action to the demonstrations (module docstring).

    The last `BCConfig.validation_episodes` episodes are held out. `LOSS_ROWS` times during
    the run, and every `BCConfig.eval_every` steps and at the end with `evaluate`'s success
    rate (if given), the losses are appended to `csv_path`. With `BCConfig.keep_best` the
    policy of the best evaluation is restored at the end (`BCReport.kept_step`).

    Raises:
        TypeError: If the model's policy is not an SB3 ``ActorCriticPolicy`` with a Gaussian.
    """
    policy = model.policy
    if not isinstance(policy, ActorCriticPolicy) or not hasattr(policy, "log_std"):
        raise TypeError(f"behaviour cloning needs a Gaussian ActorCriticPolicy, got {policy}")
    held_out = demos.episode >= demos.episodes - cfg.validation_episodes
    train = _features(policy, demos, ~held_out)
    valid = _features(policy, demos, held_out)
    auxiliary = None
    if cfg.aux_keys:
        if not _trainable(policy):
            raise UsageError(
                "bc.aux_keys: expected a policy with a trainable features extractor (a CNN on "
                "images), got one that only flattens; set bc.aux_keys=[]"
            )
        auxiliary = Auxiliary.build(
            demos.observations, cfg.aux_keys, policy.features_dim, held_out, cfg.aux_weight, seed
        )
    scaling = None
    if cfg.standardize:
        train_inputs, valid_inputs = train[0], valid[0]
        if not isinstance(train_inputs, torch.Tensor) or not isinstance(valid_inputs, torch.Tensor):
            raise ValueError(
                "bc.standardize: expected a policy whose features extractor only flattens, "
                "got one with parameters (a CNN on images); set bc.standardize=false"
            )
        scaling = Standardization.of(train_inputs)
        train = (scaling.apply(train_inputs), train[1])
        valid = (scaling.apply(valid_inputs), valid[1])
        if evaluate is not None:
            evaluate = scaling.folded(policy, evaluate)
    generator = torch.Generator().manual_seed(seed)
    images = image_keys(policy)
    if cfg.image_shift_px and not (images and _trainable(policy)):
        raise UsageError(
            "bc.image_shift_px: expected a policy with a CNN on image fields (obs_keys with "
            "an image), got none; set bc.image_shift_px=0"
        )
    parameters = list(policy.parameters())
    if auxiliary is not None:
        parameters += list(auxiliary.head.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, cfg.gradient_steps, eta_min=cfg.learning_rate / 10
    )
    csv_path.write_text(BC_CSV_HEADER)
    start = time.perf_counter()
    recent: deque[float] = deque(maxlen=max(cfg.gradient_steps // 100, 1))  # last 1% of steps
    checkpoints = _checkpoints(cfg.gradient_steps, cfg.eval_every)
    best = BestPolicy() if cfg.keep_best and evaluate is not None else None
    log_every = max(cfg.gradient_steps // LOSS_ROWS, 1)
    n_train = len(train[1])
    with _progress(progress, cfg.gradient_steps) as advance:
        for step in range(1, cfg.gradient_steps + 1):
            index = torch.randint(n_train, (min(cfg.batch_size, n_train),), generator=generator)
            policy.set_training_mode(True)
            inputs = _take(train[0], index)
            if cfg.image_shift_px and isinstance(inputs, dict):
                inputs = shifted(inputs, images, cfg.image_shift_px, generator)
            mean, features = _forward(policy, inputs)
            loss = torch.nn.functional.mse_loss(mean, train[1][index])
            total = (
                loss
                if auxiliary is None
                else loss + auxiliary.loss(features, auxiliary.train[index])
            )
            optimizer.zero_grad()
            total.backward()
            optimizer.step()
            schedule.step()
            recent.append(loss.item())
            advance(recent[-1])
            if step in checkpoints:
                rate = _checkpoint(
                    policy, step, recent, valid, evaluate, cfg.eval_episodes, csv_path
                )
                if best is not None:
                    best.offer(policy, step, rate)
            elif step % log_every == 0:
                _checkpoint(policy, step, recent, valid, None, 0, csv_path)
    kept_step = best.restore(policy) if best is not None else cfg.gradient_steps
    residual = _residual_std(policy, valid if len(valid[1]) else train)
    validation_loss = _validation_loss(policy, valid)
    with torch.no_grad():
        policy.log_std.copy_(torch.log(torch.as_tensor(residual)))
    if scaling is not None:
        scaling.fold(policy)
    policy.set_training_mode(False)
    return BCReport(
        dataset=demos.dataset_id,
        dataset_site=str(demos.env_kwargs.get("site", "")),
        episodes=demos.episodes - cfg.validation_episodes,
        transitions=n_train,
        validation_episodes=cfg.validation_episodes,
        validation_transitions=len(valid[1]),
        gradient_steps=cfg.gradient_steps,
        kept_step=kept_step,
        train_loss=float(np.mean(recent)),
        validation_loss=validation_loss,
        action_std=[round(float(s), 4) for s in residual],
        wall_time_s=round(time.perf_counter() - start, 2),
    )


Inputs = torch.Tensor | dict[str, torch.Tensor]
"""Precomputed features ``(N, D)``, or the observations for a trainable features extractor."""
Batch = tuple[Inputs, torch.Tensor]
"""Inputs and actions ``(N, action_dim)``."""
_CHUNK = 512
"""Transitions per forward pass when evaluating a whole set through a CNN."""


def _features(policy: ActorCriticPolicy, demos: Demonstrations, mask: np.ndarray) -> Batch:
    """The policy's inputs for the selected transitions.

    The features extractor of a ``MultiInputPolicy`` on Box fields only flattens and
    concatenates them (no parameters), so cloning trains on its output, computed once. An
    extractor with parameters (a CNN on images) gets the observations themselves, image
    fields transposed to the model's channel-first space where SB3 made it so.
    """
    spaces = getattr(policy.observation_space, "spaces", {})
    observations = {
        k: torch.as_tensor(_as_model_layout(v[mask], spaces.get(k)))
        for k, v in demos.observations.items()
        if not spaces or k in spaces  # auxiliary targets (bc.aux_keys) are not inputs
    }
    actions = torch.as_tensor(demos.actions[mask])
    if _trainable(policy):
        return observations, actions
    with torch.no_grad():
        features = policy.pi_features_extractor(observations)
    return features, actions


def _as_model_layout(values: np.ndarray, space: Any) -> np.ndarray:
    """Images ``(N, H, W, C)`` as ``(N, C, H, W)`` when the model's space is channel-first."""
    shape = tuple(getattr(space, "shape", ()) or ())
    if values.ndim == 4 and len(shape) == 3 and values.shape[1:] != shape:
        if (values.shape[3], values.shape[1], values.shape[2]) == shape:
            return np.ascontiguousarray(values.transpose(0, 3, 1, 2))
    return values


def _trainable(policy: ActorCriticPolicy) -> bool:
    return any(True for _ in policy.pi_features_extractor.parameters())


def _take(inputs: Inputs, index: torch.Tensor | slice) -> Inputs:
    if isinstance(inputs, dict):
        return {k: v[index] for k, v in inputs.items()}
    return inputs[index]


def _forward(policy: ActorCriticPolicy, inputs: Inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """The policy's mean action for ``inputs``, and the features it computed it from."""
    if isinstance(inputs, dict):  # observations: through the (trainable) features extractor
        extracted = policy.extract_features(inputs, policy.pi_features_extractor)
        assert isinstance(extracted, torch.Tensor)  # one extractor: one tensor
        features = extracted
    else:
        features = inputs
    return policy.action_net(policy.mlp_extractor.forward_actor(features)), features


def _mean_action(policy: ActorCriticPolicy, inputs: Inputs) -> torch.Tensor:
    return _forward(policy, inputs)[0]


def _mean_actions(policy: ActorCriticPolicy, inputs: Inputs, count: int) -> torch.Tensor:
    """`_mean_action` of a whole set, in chunks (no gradient)."""
    with torch.no_grad():
        parts = [
            _mean_action(policy, _take(inputs, slice(start, start + _CHUNK)))
            for start in range(0, count, _CHUNK)
        ]
    return torch.cat(parts) if parts else torch.zeros((0,))


def _validation_loss(policy: ActorCriticPolicy, valid: Batch) -> float:
    if not len(valid[1]):
        return math.nan
    policy.set_training_mode(False)
    mean = _mean_actions(policy, valid[0], len(valid[1]))
    return float(torch.nn.functional.mse_loss(mean, valid[1]))


def _residual_std(policy: ActorCriticPolicy, batch: Batch) -> np.ndarray:
    """Per action dimension, RMS of (clipped mean - demonstrated action), at least `_MIN_STD`."""
    policy.set_training_mode(False)
    error = _mean_actions(policy, batch[0], len(batch[1])).clamp(-1.0, 1.0) - batch[1]
    rms = error.pow(2).mean(dim=0).sqrt().numpy()
    return np.maximum(rms, _MIN_STD).astype(np.float32)


def _checkpoints(steps: int, every: int) -> set[int]:
    marks = set(range(every, steps + 1, every)) if every else set()
    return marks | {steps}


def _checkpoint(
    policy: ActorCriticPolicy,
    step: int,
    recent: deque[float],
    valid: Batch,
    evaluate: Evaluate | None,
    eval_episodes: int,
    csv_path: Path,
) -> float:
    """Append a row to the loss log; the success rate (NaN without an evaluation)."""
    validation = _validation_loss(policy, valid)
    rate, episodes = (evaluate(step), eval_episodes) if evaluate is not None else (math.nan, 0)
    with csv_path.open("a") as csv:
        csv.write(f"{step},{np.mean(recent):.6f},{validation:.6f},{rate:.4f},{episodes}\n")
    logger.info(
        "bc step %d: train loss %.5f, validation loss %.5f, success %.2f",
        step,
        np.mean(recent),
        validation,
        rate,
    )
    return rate


@contextmanager
def _progress(show: bool, total: int) -> Iterator[Callable[[float], None]]:
    """A rich progress bar over gradient steps; yields ``advance(loss)``."""
    if not show:
        yield lambda loss: None
        return
    columns = (
        TextColumn("behaviour cloning"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps, loss {task.fields[loss]:.5f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, refresh_per_second=4) as bar:
        task = bar.add_task("bc", total=total, loss=math.nan)
        yield lambda loss: bar.update(task, advance=1, loss=loss)


@contextmanager
def _datasets_root(root: str) -> Iterator[None]:
    """Point Minari at `root` for the duration (it reads ``MINARI_DATASETS_PATH``)."""
    if not root:
        yield
        return
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(Path(root).expanduser().resolve())
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous
